"""Labels: named, coloured tags on messages, kept as IMAP keywords.

A label on a message is an IMAP keyword (RFC 3501 section 2.3.2) on it, so mail clients that
show keywords (Thunderbird's tags, mutt's ``%Y``) see it and searches find it. The keyword is
the label's id: the name itself where the name is a safe keyword (at most 50 ASCII letters,
digits and punctuation other than IMAP's specials, not starting with ``$``, which
marks system keywords such as ``$Forwarded`` and mailbridge's own; Dovecot takes keywords of
at most 50 characters), else ``mb_`` and 26 characters of the name's SHA-256 in base32
(``Nächste Woche`` is ``mb_...``): the same name gives the same id in every account, and any
name of up to 100 characters works.

The registry (name, colour, description, creation time of each label) is kept in the account's
mailbridge mailbox (:mod:`mailbridge.records`), one record per label. Names are unique per
account regardless of case. A keyword a mail client set that no label of the registry has is
not shown as a label.

IMAP keeps no author or time for a keyword, and mailbridge keeps none either: who applied a
label and when are answered at assignment only.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mailbridge.config import AccountConfig
from mailbridge.errors import Conflict, ImapCapabilityMissing, InvalidInput, NotFound
from mailbridge.imap import ImapConnection
from mailbridge.mime.headers import header_time, parse_header_time
from mailbridge.reading import select_named
from mailbridge.records import RecordBox
from mailbridge.store import DraftStore
from mailbridge.views import utcnow

__all__ = ["MAX_KEYWORD", "Label", "LabelService", "keyword_of"]

KIND = "label"
MAX_KEYWORD = 50
"""Longest keyword Dovecot accepts (its ``mail_max_keyword_length`` default)."""
MAX_NAME = 100
_SAFE = frozenset(chr(c) for c in range(0x21, 0x7F)) - set('(){%*"\\]&')
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
PALETTE = ("#e53935", "#8e24aa", "#3949ab", "#039be5", "#00897b", "#43a047", "#fdd835",
           "#fb8c00", "#6d4c41", "#546e7a")
"""Colours given to labels created without one, chosen by the name."""


@dataclass(frozen=True, slots=True)
class Label:
    id: str
    """The IMAP keyword."""
    name: str
    color: str
    description: str | None
    created_at: datetime


def keyword_of(name: str) -> str:
    """The keyword (and id) of the label ``name`` (see the module's text)."""
    if _is_keyword(name):
        return name
    digest = base64.b32encode(hashlib.sha256(name.encode("utf-8")).digest()).decode("ascii")
    return "mb_" + digest[:26].lower()


def check_name(name: str, field: str = "name") -> str:
    """``name`` without surrounding space; InvalidInput when it cannot be a label's name."""
    name = name.strip()
    if not name:
        raise InvalidInput("a label needs a name", field=field)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise InvalidInput("a label's name may not hold control characters (CR, LF, tab...)",
                           field=field)
    if len(name) > MAX_NAME:
        raise InvalidInput(f"a label's name has at most {MAX_NAME} characters", field=field)
    return name


class LabelService:
    """The label registry of each account, and labels on its messages."""

    def __init__(self, store: DraftStore, records: RecordBox) -> None:
        self.store = store
        self.records = records

    async def registry(self, account: AccountConfig) -> list[Label]:
        """The account's labels, in the order they were created."""
        # a record a person changed into something that is not a keyword is not a label
        return [_label(r.key, r.data) for r in await self.records.read(account, KIND)
                if _is_keyword(r.key)]

    async def create(self, account: AccountConfig, name: str, color: str | None = None,
                     description: str | None = None) -> Label:
        """Adds a label to the registry; Conflict when one of that name (any case) exists."""
        name = check_name(name)
        if color is not None and not _COLOR.fullmatch(color):
            raise InvalidInput("color must be a hex colour like #ff0000", field="color")
        existing = _named(await self.registry(account), name)
        if existing is not None:
            raise Conflict(f"{account.email} has a label {existing.name!r} already",
                           field="name")
        return await self._add(account, name, color, description)

    async def _add(self, account: AccountConfig, name: str, color: str | None = None,
                   description: str | None = None) -> Label:
        """Stores a new label (two writers of one name leave two records of one id: the
        registry reads the newest)."""
        label = Label(keyword_of(name), name, (color or _color_for(name)).lower(),
                      description or None, utcnow())
        await self.records.add(account, KIND, label.id, {
            "name": label.name, "color": label.color, "description": label.description,
            "created_at": header_time(label.created_at)})
        return label

    async def _ensure(self, account: AccountConfig, names: Iterable[str],
                      known: list[Label]) -> tuple[list[Label], list[Label]]:
        """The labels of ``names`` among ``known`` (the registry as just read), created where
        missing; and those created."""
        found: list[Label] = []
        created: list[Label] = []
        for name in (check_name(n, "labels") for n in names):
            label = _named(known + created, name)
            if label is None:
                label = await self._add(account, name)
                created.append(label)
            found.append(label)
        return found, created

    async def delete(self, account: AccountConfig, label_id: str) -> Label:
        """Removes a label from the registry and from every message of the account."""
        label = next((lb for lb in await self.registry(account) if lb.id == label_id), None)
        if label is None:
            raise NotFound(f"{account.email} has no label {label_id!r}", field="id")
        async with self.store.pool(account).connection() as conn:
            for folder in await self._folders(conn, account):
                await conn.select(folder)
                uids = (await conn.uid_search("KEYWORD", label.id)).uids
                if uids:
                    await conn.uid_store(uids, "-FLAGS.SILENT", [label.id])
        await self.records.remove(account, KIND, label.id)
        return label

    async def count(self, account: AccountConfig, labels: Sequence[Label]) -> dict[str, int]:
        """How many messages of the account (all folders but Trash) carry each label."""
        counts = dict.fromkeys((lb.id for lb in labels), 0)
        if not labels:
            return counts
        async with self.store.pool(account).connection() as conn:
            trash = (await self.store.pool(account).folders(conn=conn)).trash
            for folder in await self._folders(conn, account):
                if folder == trash:
                    continue
                await conn.select(folder)
                for label in labels:
                    counts[label.id] += len((await conn.uid_search(
                        "UNDELETED", "KEYWORD", label.id)).uids)
        return counts

    async def on_message(self, account: AccountConfig, folder: str,
                         uid: int) -> tuple[list[Label], str]:
        """The registry's labels the message carries, and its Message-ID (``""`` if none)."""
        registry = await self.registry(account)
        async with self.store.pool(account).connection() as conn:
            flags, message_id = await _message(conn, account, folder, uid)
        return [lb for lb in registry if lb.id.lower() in flags], message_id

    async def assign(self, account: AccountConfig, folder: str, uid: int,
                     ids: Sequence[str], names: Sequence[str]
                     ) -> tuple[list[Label], list[Label], str]:
        """Puts labels on a message: those of ``ids`` (NotFound for one the registry lacks) and
        of ``names`` (created when missing). Returns the labels the message now carries, those
        created, and its Message-ID."""
        registry = await self.registry(account)
        by_id = {lb.id: lb for lb in registry}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise NotFound(f"{account.email} has no label {missing[0]!r}", field="label_ids")
        async with self.store.pool(account).connection() as conn:
            await _message(conn, account, folder, uid)  # NotFound before anything is created
        named, created = await self._ensure(account, names, registry)
        wanted = list({lb.id: lb for lb in [*(by_id[i] for i in ids), *named]}.values())
        async with self.store.pool(account).connection() as conn:
            info = await select_named(conn, account, folder)
            keywords = [lb.id for lb in wanted]
            if keywords and not info.keeps(keywords):
                raise ImapCapabilityMissing(
                    f"the folder {folder!r} of {account.email} keeps no new keywords "
                    "(PERMANENTFLAGS), so it cannot carry labels")
            if keywords:
                await conn.uid_store([uid], "+FLAGS.SILENT", keywords)
            flags, message_id = await _message(conn, account, folder, uid)
        on = [lb for lb in [*registry, *created] if lb.id.lower() in flags]
        return on, created, message_id

    async def remove(self, account: AccountConfig, folder: str, uid: int,
                     ids: Sequence[str]) -> tuple[int, str]:
        """Takes labels off a message; returns how many of them it carried, and its Message-ID."""
        async with self.store.pool(account).connection() as conn:
            flags, message_id = await _message(conn, account, folder, uid)
            on = [i for i in dict.fromkeys(ids) if i.lower() in flags]
            if on:
                await conn.uid_store([uid], "-FLAGS.SILENT", on)
        return len(on), message_id

    async def _folders(self, conn: ImapConnection, account: AccountConfig) -> list[str]:
        own = await self.records.folder(conn, account)
        return [m.name for m in await conn.list_mailboxes()
                if not m.has_attribute("\\Noselect") and not m.has_attribute("\\NonExistent")
                and m.name != own]


async def _message(conn: ImapConnection, account: AccountConfig, folder: str,
                   uid: int) -> tuple[frozenset[str], str]:
    """The message's flags (lower-case) and Message-ID; NotFound when it is not there."""
    await select_named(conn, account, folder)
    items = await conn.uid_fetch([uid], "(UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    if not items:
        await conn.noop()
        items = await conn.uid_fetch([uid], "(UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    flags = frozenset(f.lower() for f in items[0].flags or ()) if items else frozenset()
    if not items or "\\deleted" in flags:
        raise NotFound(f"no message {uid} in {folder!r} of {account.email}", field="uid")
    header = next(iter(items[0].sections.values()), b"").decode("utf-8", "replace")
    found = re.search(r"<[^<>\s]+>", header)
    return flags, found.group(0) if found else ""


def _is_keyword(value: str) -> bool:
    return 0 < len(value) <= MAX_KEYWORD and all(c in _SAFE or c == "&" for c in value) \
        and not value.startswith(("$", "\\"))


def _named(labels: Iterable[Label], name: str) -> Label | None:
    folded = name.casefold()
    return next((lb for lb in labels if lb.name.casefold() == folded), None)


def _color_for(name: str) -> str:
    return PALETTE[hashlib.sha256(name.casefold().encode()).digest()[0] % len(PALETTE)]


def _label(key: str, data: Mapping[str, Any]) -> Label:
    color = str(data.get("color") or "")
    return Label(key, str(data.get("name") or key),
                 color if _COLOR.fullmatch(color) else _color_for(key),
                 str(data["description"]) if data.get("description") else None,
                 parse_header_time(str(data.get("created_at") or "")) or datetime.fromtimestamp(0, UTC))
