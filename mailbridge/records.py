"""mailbridge's own mailbox: small records kept in the mail server, not in a side database.

What mailbridge must remember beyond drafts (the label registry) is kept as messages in one
mailbox of its own per account, ``Mailbridge`` under the account's personal namespace
(``INBOX.Mailbridge`` on Courier and Cyrus; RFC 2342 NAMESPACE) unless ``[accounts.folders]
mailbridge`` names another. It is created, not subscribed, on the first write. A record is one
small message: ``X-Mailbridge-Record`` says its kind, ``X-Mailbridge-Record-Key`` its key, and
the body is its data as JSON. Any instance reads the same records; a mail client shows them as
plain messages.

Two records of one key (two writers adding it at once, or a replace whose writer died between
its two steps) are read as the newest (highest UID); removing a key removes every record of it,
and a replace adds the new record before it removes the old ones, so a reader never finds the
key missing.
"""

from __future__ import annotations

import contextlib
import email.message
import email.parser
import email.policy
import email.utils
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mailbridge.config import AccountConfig
from mailbridge.errors import ImapNotFound, ImapProtocolError
from mailbridge.imap import ImapConnection
from mailbridge.imap.utf7 import decode_mailbox, quote_astring
from mailbridge.mime.headers import INTERNAL_HEADER_PREFIX
from mailbridge.store import DraftStore

__all__ = ["FOLDER", "HEADER_RECORD", "HEADER_RECORD_KEY", "HEADER_RECORD_TOKEN", "Record",
           "RecordBox"]

FOLDER = "Mailbridge"
HEADER_RECORD = INTERNAL_HEADER_PREFIX + "Record"
HEADER_RECORD_KEY = INTERNAL_HEADER_PREFIX + "Record-Key"
HEADER_RECORD_TOKEN = INTERNAL_HEADER_PREFIX + "Record-Token"
"""Unique to one record: how :meth:`RecordBox.claim` tells its own record from another's."""
_CLAIM_FIELDS = f"HEADER.FIELDS ({HEADER_RECORD} {HEADER_RECORD_KEY} {HEADER_RECORD_TOKEN})"
_parser = email.parser.BytesParser(policy=email.policy.default)
_headers = email.parser.BytesHeaderParser(policy=email.policy.default)


@dataclass(frozen=True, slots=True)
class Record:
    uid: int
    kind: str
    key: str
    data: Mapping[str, Any]


class RecordBox:
    """The records of each account, in its mailbridge mailbox."""

    def __init__(self, store: DraftStore) -> None:
        self.store = store
        self._names: dict[str, str] = {}

    async def folder(self, conn: ImapConnection, account: AccountConfig) -> str:
        """The mailbox's name: configured, else ``Mailbridge`` in the personal namespace."""
        configured = account.folders.mailbridge
        if configured:
            return configured
        name = self._names.get(account.email)
        if name is None:
            prefix, _ = await conn.personal_namespace()
            name = self._names[account.email] = decode_mailbox(prefix) + FOLDER
        return name

    async def read(self, account: AccountConfig, kind: str, *,
                   prefix: str | None = None) -> list[Record]:
        """Every record of ``kind`` (whose key starts with ``prefix``, if given), one per key
        (the newest), in the order the keys were first added."""
        async with self.store.accounts.record_pool(account).connection() as conn:
            folder = await self.folder(conn, account)
            try:
                await conn.select(folder)
            except ImapNotFound:
                return []
            narrow = ("HEADER", HEADER_RECORD_KEY, quote_astring(prefix)) if prefix else ()
            uids = (await conn.uid_search("UNDELETED", "HEADER", HEADER_RECORD,
                                          quote_astring(kind), *narrow)).uids
            items = await conn.uid_fetch(uids, "(UID FLAGS BODY.PEEK[])") if uids else []
        records: dict[str, Record] = {}
        for item in items:  # in UID order: a later record of a key replaces an earlier one
            record = _parse(item.uid or 0, item.sections.get("", b""))
            if record is not None and record.kind == kind \
                    and record.key.startswith(prefix or "") \
                    and "\\deleted" not in {f.lower() for f in item.flags or ()}:
                records[record.key] = record
        return list(records.values())

    async def replace(self, account: AccountConfig, kind: str, key: str,
                      data: Mapping[str, Any]) -> None:
        """Stores ``data`` as the record of ``key``, then removes the older ones."""
        await self.add(account, kind, key, data)
        await self.remove(account, kind, key, keep_newest=True)

    async def claim(self, account: AccountConfig, kind: str, key: str,
                    data: Mapping[str, Any]) -> bool:
        """Adds a record of ``key`` and tells whether it is the first one (the lowest UID, the
        one total order the server keeps): of any number of instances claiming one key at
        once, exactly one is told True, and a later claim is told False while the first
        record is kept (see :meth:`prune`)."""
        token = uuid.uuid4().hex
        await self.add(account, kind, key, data, token=token)
        async with self.store.accounts.record_pool(account).connection() as conn:
            await conn.select(await self.folder(conn, account))
            uids = (await conn.uid_search("HEADER", HEADER_RECORD_KEY, quote_astring(key))).uids
            items = await conn.uid_fetch(uids, f"(UID BODY.PEEK[{_CLAIM_FIELDS}])") if uids else []
        for item in items:  # in UID order: the first record of exactly this kind and key
            fields = _headers.parsebytes(item.sections.get(_CLAIM_FIELDS.upper(), b""))
            if _kind_key(fields) == (kind, key):
                return str(fields.get(HEADER_RECORD_TOKEN, "")).strip() == token
        return False

    async def prune(self, account: AccountConfig, kind: str, older_than: int) -> int:
        """Removes the records of ``kind`` stored more than ``older_than`` seconds ago;
        returns how many. Uses WITHIN's OLDER (RFC 5032) where offered, else the records'
        INTERNALDATE."""
        async with self.store.accounts.record_pool(account).connection() as conn:
            try:
                await conn.select(await self.folder(conn, account))
            except ImapNotFound:
                return 0
            criteria = ["UNDELETED", "HEADER", HEADER_RECORD, quote_astring(kind)]
            if conn.has("WITHIN"):
                doomed = list((await conn.uid_search(*criteria, "OLDER", str(older_than))).uids)
            else:
                uids = (await conn.uid_search(*criteria)).uids
                limit = datetime.now(UTC) - timedelta(seconds=older_than)
                doomed = [i.uid for i in (await conn.uid_fetch(uids, "(UID INTERNALDATE)")
                                          if uids else [])
                          if i.uid is not None and i.internaldate is not None
                          and i.internaldate < limit]
            if doomed:
                await self.store.remove(conn, doomed)
            return len(doomed)

    async def add(self, account: AccountConfig, kind: str, key: str,
                  data: Mapping[str, Any], *, token: str | None = None) -> None:
        """Stores a record, creating the mailbox on first use."""
        message = email.message.EmailMessage(policy=email.policy.SMTP)
        message["From"] = account.email
        message["Subject"] = f"mailbridge {kind}: {key}"
        message["Date"] = email.utils.formatdate(usegmt=True)
        message[HEADER_RECORD] = kind
        message[HEADER_RECORD_KEY] = key
        if token is not None:
            message[HEADER_RECORD_TOKEN] = token
        message.set_content(json.dumps(dict(data), ensure_ascii=False, sort_keys=True) + "\n",
                            subtype="json", charset="utf-8", cte="base64")
        raw = message.as_bytes()
        async with self.store.accounts.record_pool(account).connection() as conn:
            folder = await self.folder(conn, account)
            try:
                await conn.append(folder, raw, ("\\Seen",))
            except ImapNotFound:  # [TRYCREATE]: the first record of this account
                with contextlib.suppress(ImapProtocolError):  # created meanwhile by another
                    await conn.create_mailbox(folder)
                await conn.append(folder, raw, ("\\Seen",))

    async def remove(self, account: AccountConfig, kind: str, key: str, *,
                     keep_newest: bool = False) -> int:
        """Removes every record of ``kind`` and ``key`` (with ``keep_newest``, all but the one
        with the highest UID); returns how many it removed."""
        async with self.store.accounts.record_pool(account).connection() as conn:
            folder = await self.folder(conn, account)
            try:
                await conn.select(folder)
            except ImapNotFound:
                return 0
            uids = (await conn.uid_search("UNDELETED", "HEADER", HEADER_RECORD_KEY,
                                          quote_astring(key))).uids
            items = await conn.uid_fetch(uids, "(UID BODY.PEEK[HEADER])") if uids else []
            doomed = [item.uid for item in items if item.uid is not None
                      and _kind_key(_headers.parsebytes(item.sections.get("HEADER", b"")))
                      == (kind, key)]
            if keep_newest:
                doomed = sorted(doomed)[:-1]
            if doomed:
                await self.store.remove(conn, doomed)
            return len(doomed)


def _parse(uid: int, raw: bytes) -> Record | None:
    """The record a message holds; None when it is not one (a message a person put there)."""
    message = _parser.parsebytes(raw)
    kind, key = _kind_key(message)
    if not kind or not key:
        return None
    try:
        body = message.get_body() if message.is_multipart() else message
        payload = body.get_content() if body is not None else "{}"
        data = json.loads(payload) if isinstance(payload, str) else json.loads(payload or b"{}")
    except (ValueError, LookupError, KeyError):
        return None
    if not isinstance(data, dict):
        return None
    return Record(uid, kind, key, data)


def _kind_key(message: email.message.Message) -> tuple[str, str]:
    return (str(message.get(HEADER_RECORD, "")).strip(),
            str(message.get(HEADER_RECORD_KEY, "")).strip())
