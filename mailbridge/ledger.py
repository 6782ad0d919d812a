"""Which instance reports a change: the first to claim it, through the mail server.

A change made through the API is reported by the instance that made it. A change made by a
mail client (or by mail arriving) is seen by the watcher of every instance
(:mod:`mailbridge.watching`); each claims it, and only the one whose claim comes first reports
it. A claim is a record in the account's mailbridge mailbox (:meth:`RecordBox.claim
<mailbridge.records.RecordBox.claim>`) keyed by the change, ``<folder>/<uidvalidity>/<uid>/new``
or ``.../gone``, so that every instance names one change alike, and the event's id is made from
that key: a receiver that gets it twice anyway (see :data:`KEEP_SECONDS`) sees the same
``webhook-id``.

A removal made through the API is claimed *before* it is carried out (:meth:`Ledger.taking`),
so no watcher can claim it first and report it as a mail client's.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Literal

from mailbridge import __version__
from mailbridge.config import AccountConfig
from mailbridge.errors import ImapError
from mailbridge.records import RecordBox

__all__ = ["KEEP_SECONDS", "KIND", "Ledger", "change_key", "event_id"]

log = logging.getLogger("mailbridge.ledger")

KIND = "event"
KEEP_SECONDS = 600
"""How long a claim is kept: an instance whose watcher sees a change later than that after
another reported it would report it again (watchers see changes within seconds)."""

Change = Literal["new", "gone"]


def change_key(folder: str, uidvalidity: int, uid: int, change: Change) -> str:
    return f"{folder}/{uidvalidity}/{uid}/{change}"


def event_id(account: AccountConfig, key: str) -> str:
    """The id of the event that reports the change ``key``: the same in every instance."""
    return "evt_" + hashlib.sha256(f"{account.id}/{key}".encode()).hexdigest()[:32]


class Ledger:
    def __init__(self, records: RecordBox) -> None:
        self.records = records

    async def claim(self, account: AccountConfig, key: str) -> bool:
        """Whether this instance is the first to claim the change ``key``."""
        return await self.records.claim(account, KIND, key, {"by": f"mailbridge/{__version__}"})

    @asynccontextmanager
    async def taking(self, account: AccountConfig, folder: str, uidvalidity: int,
                     uids: Sequence[int]) -> AsyncIterator[None]:
        """Claims the removal of ``uids`` for the API before the block removes them; when the
        block fails, the claims are withdrawn (a removal that did not happen must stay
        reportable). A claim that cannot be written is logged, not raised: the removal goes
        on, and is then reported by a watcher as a mail client's."""
        keys = [change_key(folder, uidvalidity, uid, "gone") for uid in uids]
        for key in keys:
            try:
                await self.claim(account, key)
            except ImapError as exc:
                log.warning("%s: could not claim the removal %s: %s", account.email, key, exc)
        try:
            yield
        except Exception:
            for key in keys:
                try:
                    await self.records.remove(account, KIND, key)
                except ImapError:
                    log.warning("%s: could not withdraw the claim %s", account.email, key)
            raise

    async def prune(self, account: AccountConfig) -> int:
        return await self.records.prune(account, KIND, KEEP_SECONDS)
