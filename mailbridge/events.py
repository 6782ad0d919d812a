"""Events: what happened to a draft or a message, told to whoever listens (webhooks).

The services emit them as they change things (:class:`~mailbridge.drafts.DraftService`,
:class:`~mailbridge.sending.SendService`, :class:`~mailbridge.messages.MessageService`), through
an :class:`EventSink`; the application's sink is the webhook dispatcher
(:mod:`mailbridge.delivery`). Emitting never waits and never fails the change it reports.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from mailbridge.config import AccountConfig
from mailbridge.views import StoredMessage, utcnow

__all__ = ["NO_EVENTS", "Event", "EventSink", "Origin"]

Origin = Literal["api", "mailbox"]


@dataclass(frozen=True)
class Event:
    """One event: its ``type`` (``draft.created``, ``email.sent``...), the account it happened
    in, and the draft or message concerned as it is now (as it was, for a deletion)."""

    type: str
    account: AccountConfig
    message: StoredMessage
    origin: Origin = "api"
    id: str = field(default_factory=lambda: "evt_" + uuid.uuid4().hex)
    """Stable: every delivery of it carries it (``webhook-id``), so a receiver can drop a
    repeat."""
    occurred_at: datetime = field(default_factory=utcnow)
    detail: Mapping[str, Any] = field(default_factory=dict)
    """What the message alone does not say (``email.bounced``: the DSN's recipients)."""


class EventSink(Protocol):
    def emit(self, event: Event) -> None: ...

    def taking(self, account: AccountConfig, folder: str, uidvalidity: int,
               uids: Sequence[int]) -> AbstractAsyncContextManager[None]:
        """Wraps the removal of ``uids`` from ``folder`` by the API (a delete, a send), whose
        event the service emits itself, so that no watcher reports it as a mail client's
        (see :mod:`mailbridge.ledger`)."""
        ...


class _Nobody:
    def emit(self, event: Event) -> None:
        return None

    def taking(self, account: AccountConfig, folder: str, uidvalidity: int,
               uids: Sequence[int]) -> AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()


NO_EVENTS: EventSink = _Nobody()
"""The sink of services nobody listens to."""
