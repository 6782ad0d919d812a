"""DraftService: drafts as messages in the account's IMAP Drafts folder.

The mail server is the database. A draft is one message in Drafts with ``\\Draft \\Seen``;
mailbridge's bookkeeping (stable id, timestamps, context link, schedule) travels in
X-Mailbridge-* headers of that message, so any number of instances and any mail client see one
truth. This module holds no state but a cache of where a stable id was last seen, which is
checked against the server before it is used.

Replacing a draft appends the new version first and removes the old one only if it is unchanged
since it was read (RFC 7162 conditional STORE), so a concurrent edit (another request, another
instance, Thunderbird) is detected and nothing is ever lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.parser
import email.policy
import logging
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from mailbridge.accounts import Accounts
from mailbridge.config import AccountConfig
from mailbridge.errors import (
    Conflict,
    ImapCapabilityMissing,
    ImapNotFound,
    ImapProtocolError,
    ImapUnavailable,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    Unprocessable,
)
from mailbridge.imap import FetchItem, ImapConnection, ImapPool, SelectInfo
from mailbridge.imap.bodystructure import (
    BodyPart,
    attachment_names,
    choose_parts,
    decoded_size_estimate,
    parse_bodystructure,
)
from mailbridge.imap.utf7 import quote_astring
from mailbridge.mime import (
    HEADER_CONTEXT_ID,
    HEADER_CONTEXT_TYPE,
    HEADER_CREATED_AT,
    HEADER_ID,
    HEADER_LAST_ERROR,
    HEADER_PLANNED_SEND_AT,
    HEADER_UPDATED_AT,
    _scan_headers,
    build_message,
    make_message_id,
    parse_message,
    set_header,
    state_headers,
)
from mailbridge.mime.decoding import decode_text_part
from mailbridge.model import (
    Address,
    AttachmentInfo,
    DraftContent,
    DraftState,
    ParsedMessage,
    Status,
)
from mailbridge.versions import (
    HEADER_REPLACES,
    HEADER_WRITE,
    KEYWORD_PENDING,
    KEYWORD_REPLACED,
    Copy,
    Resolution,
    replaces_header,
    resolve,
    rivals,
    write_header,
)
from mailbridge.views import (
    HEADER_SEND_STATE,
    DraftQuery,
    Page,
    PagePosition,
    StoredMessage,
    foreign_id,
    has_flag,
    utcnow,
)

HEADER_IDEMPOTENCY = "X-Mailbridge-Idempotency-Key"
HEADER_LEASE = "X-Mailbridge-Lease-Until"
"""While sending: until when the claim holds; after that a sweeper may take over."""
HEADER_SEND_KEY = "X-Mailbridge-Send-Key"
HEADER_ATTEMPTS = "X-Mailbridge-Attempts"
HEADER_RETRY_AT = "X-Mailbridge-Retry-At"
SEND_HEADERS = (HEADER_SEND_STATE, HEADER_LEASE, HEADER_SEND_KEY, HEADER_ATTEMPTS, HEADER_RETRY_AT)
KEYWORD_DELIVERED = "$MailbridgeDelivered"
"""Set on a claimed draft the moment the SMTP server accepted it: a crash after that point must
lead to filing, never to a second delivery."""
CURRENT_ONLY = ("NOT", "KEYWORD", KEYWORD_PENDING, "NOT", "KEYWORD", KEYWORD_REPLACED)
"""SEARCH keys that leave out copies being written and versions being replaced (see
mailbridge.versions): what is left is each draft's current version."""
OWN_KEYWORDS = (KEYWORD_PENDING, KEYWORD_REPLACED, KEYWORD_DELIVERED)
"""The keywords mailbridge keeps its state in: a Drafts folder that cannot keep them (its
PERMANENTFLAGS say so) is read, but drafts are not changed there."""
DRAFT_FLAGS = ("\\Draft", "\\Seen")

# Headers of a message that a replace keeps although DraftContent has no field for them: mail
# client draft markers and settings, and mailbridge's own idempotency key.
KEPT_HEADER_PREFIXES = ("x-mozilla-", "x-uniform-type-identifier", "x-apple-", "user-agent",
                        "x-mailer", "reply-to", "disposition-notification-to",
                        "return-receipt-to", HEADER_IDEMPOTENCY.lower())

CONTENT_FIELDS = frozenset(f.name for f in dataclasses.fields(DraftContent))


class IdempotencyKeyReused(Unprocessable):
    """An Idempotency-Key came back with another request than the one it was first used for
    (IETF draft-ietf-httpapi-idempotency-key-header: 422)."""

    code = "idempotency_key_reused"

    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was used before for another request; use a new "
                         "key for a new request", field="Idempotency-Key")


def key_part(key: str) -> str:
    """The searchable part of an idempotency key value ``"<key> <request digest>"``."""
    return key.split(" ", 1)[0]


def check_same_request(stored: str | None, key: str) -> None:
    """Raises IdempotencyKeyReused when ``stored`` (the value kept with the first request) has
    the key of ``key`` but another request digest. Values without a digest (kept before
    digests existed) match any request."""
    if stored is None or key_part(stored) != key_part(key):
        return
    digest, wanted = stored.partition(" ")[2], key.partition(" ")[2]
    if digest and wanted and digest != wanted:
        raise IdempotencyKeyReused()

_header_parser = email.parser.BytesHeaderParser(policy=email.policy.default)
_T = TypeVar("_T")

log = logging.getLogger("mailbridge.drafts")
_FAMILY_FIELDS = f"HEADER.FIELDS ({HEADER_REPLACES} {HEADER_WRITE})".upper()


def _lasting_flags(item: FetchItem) -> tuple[str, ...]:
    """A message's flags without \\Recent, which only tells which IMAP session saw the message
    first (RFC 3501 2.3.2; gone from IMAP4rev2): a message must not read differently depending
    on the pooled connection that read it."""
    return tuple(f for f in item.flags or () if f.lower() != "\\recent")


@dataclass(frozen=True)
class Expected:
    """The versions of a draft a change is meant for (the API reads it from If-Match): any
    version when ``versions`` is None, else one of these :attr:`StoredMessage.etag` values."""

    versions: frozenset[str] | None = None

    def allows(self, version: str) -> bool:
        return self.versions is None or version in self.versions


def check_writable(current: StoredMessage, expected: Expected | None, action: str) -> None:
    """Raises PreconditionFailed when ``current`` is not an ``expected`` version, Conflict while
    the draft is being sent (``action`` says what cannot be done: changed, deleted, sent)."""
    if expected is not None and not expected.allows(current.etag):
        raise PreconditionFailed(f"the draft changed since that ETag; it was not {action}",
                                 field="If-Match")
    if current.status is Status.SENDING:
        raise Conflict(f"the draft is being sent right now and cannot be {action}")


def _search_string(value: str) -> str:
    """A SEARCH argument: quoted; RFC 3501 strings are sent as UTF-8 with CHARSET UTF-8."""
    try:
        return quote_astring(value)
    except ValueError:
        raise InvalidInput("line breaks are not allowed in a filter", field="filter") from None


def _needs_utf8(criteria: Sequence[str]) -> bool:
    return any(not c.isascii() for c in criteria)


def _parse_stored(raw: bytes) -> ParsedMessage:
    """A message from the server as parse_message reads it. One that the reader fails on (a bug
    in it) is logged and shown empty: it must not make a whole folder unreadable."""
    try:
        return parse_message(raw)
    except Exception:
        log.exception("could not read a message of %d bytes; shown empty", len(raw))
        return ParsedMessage(content=DraftContent(), sender=None, message_id=None, date=None,
                             state=None, draft_marker=False)


def _decode_part(raw: bytes, part: BodyPart) -> str:
    """A text part's bytes, as the server stores them, as text: the one decoder GET uses too."""
    return decode_text_part(raw, subtype=part.subtype, charset=part.charset,
                            encoding=part.encoding, params=part.params)


_MIME_STATE_HEADERS = frozenset(h.lower() for h in (
    HEADER_ID, HEADER_CREATED_AT, HEADER_UPDATED_AT, HEADER_CONTEXT_TYPE, HEADER_CONTEXT_ID,
    HEADER_PLANNED_SEND_AT, HEADER_LAST_ERROR))


def _kept_headers(header_block: bytes) -> tuple[tuple[str, str], ...]:
    """Headers a new version carries over: other clients' (KEPT_HEADER_PREFIXES) and
    mailbridge's own bookkeeping beyond what the MIME layer writes from DraftState."""
    fields, _ = _scan_headers(header_block, 0, len(header_block))
    fast: list[tuple[str, str]] = []
    for f in fields:
        lowered = f.name.lower()
        if not f.name or lowered in _MIME_STATE_HEADERS:
            continue
        if not lowered.startswith("x-mailbridge-"):
            if lowered.startswith(KEPT_HEADER_PREFIXES):
                break  # another client's header: the stdlib reading below
            continue
        value = header_block[f.value_start:f.end]
        if not value.isascii() or b"=?" in value:
            break
        fast.append((f.name, value.decode("ascii").replace("\r\n", "").replace("\n", "").strip()))
    else:  # only mailbridge's own plain ASCII headers: as the stdlib would read them, faster
        return tuple(fast)
    msg = _header_parser.parsebytes(header_block)
    kept = []
    for name, value in msg.raw_items():
        lowered = name.lower()
        if lowered in _MIME_STATE_HEADERS:
            continue
        if lowered.startswith(KEPT_HEADER_PREFIXES) or lowered.startswith("x-mailbridge-"):
            kept.append((name, str(value).replace("\r\n", "").replace("\n", "").strip()))
    return tuple(kept)


def _header_block(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    return raw if end < 0 else raw[:end + 2]


class KeyedLocks:
    """One asyncio.Lock per key, kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[object, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: object) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class DraftService:
    """Create, read, list, replace and delete drafts of the configured accounts."""

    def __init__(self, accounts: Accounts, *, cache_size: int = 10_000) -> None:
        self.accounts = accounts
        self.orphan_after = timedelta(seconds=accounts.config.drafts.orphan_seconds)
        self._locations: OrderedDict[tuple[UUID, UUID], tuple[int, int]] = OrderedDict()
        self._cache_size = cache_size
        self._key_locks = KeyedLocks()

    # ------------------------------------------------------------------ plumbing

    def _pool(self, account: AccountConfig) -> ImapPool:
        return self.accounts.pool(account)

    def _remember(self, account: AccountConfig, draft_id: UUID, uidvalidity: int, uid: int) -> None:
        key = (account.id, draft_id)
        self._locations[key] = (uidvalidity, uid)
        self._locations.move_to_end(key)
        while len(self._locations) > self._cache_size:
            self._locations.popitem(last=False)

    def cached_holder(self, accounts: Iterable[AccountConfig], draft_id: UUID
                      ) -> AccountConfig | None:
        """Which of ``accounts`` this instance last saw the draft ``draft_id`` in, if any: a
        hint to ask that account first (the server has the last word)."""
        for account in accounts:
            if (account.id, draft_id) in self._locations:
                return account
        return None

    async def find(self, accounts: Sequence[AccountConfig], ref: UUID) -> StoredMessage:
        """The draft ``ref`` in whichever of ``accounts`` holds it: first the one this instance
        last saw it in, then the others, asked concurrently.

        NotFound when none does; when none does and an account could not be asked, that
        account's error (e.g. ImapUnavailable), since the draft may be there.
        """
        if len(accounts) == 1:
            return await self.get(accounts[0], ref)
        holder = self.cached_holder(accounts, ref)
        if holder is not None:
            with contextlib.suppress(NotFound):
                return await self.get(holder, ref)
        return await self._ask_the_others(accounts, ref, holder)

    async def in_holder(self, accounts: Sequence[AccountConfig], ref: UUID,
                        action: Callable[[AccountConfig], Awaitable[_T]]) -> _T:
        """Runs ``action`` on whichever of ``accounts`` holds the draft ``ref`` (found as by
        :meth:`find`); without loading the draft first when this instance knows where it is."""
        if len(accounts) == 1:
            return await action(accounts[0])
        holder = self.cached_holder(accounts, ref)
        if holder is not None:
            with contextlib.suppress(NotFound):
                return await action(holder)
        return await action((await self._ask_the_others(accounts, ref, holder)).account)

    async def _ask_the_others(self, accounts: Sequence[AccountConfig], ref: UUID,
                              asked: AccountConfig | None) -> StoredMessage:
        """The draft ``ref`` from whichever of ``accounts`` but ``asked`` (which has just
        answered NotFound) holds it, all asked concurrently; errors as :meth:`find`."""
        others = [a for a in accounts if asked is None or a.id != asked.id]
        results = await asyncio.gather(*(self.get(a, ref) for a in others), return_exceptions=True)
        failure: BaseException | None = None
        for result in results:
            if isinstance(result, StoredMessage):
                return result
            if not isinstance(result, NotFound):
                failure = failure or result
        if failure is not None:
            raise failure
        raise NotFound(f"no draft {ref}", field="uid")

    def _forget(self, account: AccountConfig, draft_id: UUID) -> None:
        self._locations.pop((account.id, draft_id), None)

    @staticmethod
    def _sender(account: AccountConfig, current: StoredMessage | None = None) -> Address:
        """The From of a version: the account's address, with the draft's own display name
        when its From is that address (a person may have set one), else the account's."""
        own = current.parsed.sender if current is not None else None
        if own is not None and own.name and own.email.lower() == account.email.lower():
            return Address(email=account.email, name=own.name)
        return Address(email=account.email, name=account.display_name)

    @staticmethod
    def _items(conn: ImapConnection, *extra: str) -> str:
        modseq = " MODSEQ" if conn.condstore_enabled else ""
        return f"(UID FLAGS{modseq} INTERNALDATE RFC822.SIZE {' '.join(extra)})"

    async def _folder(self, account: AccountConfig, role: str = "drafts",
                      conn: ImapConnection | None = None) -> str:
        return await self._pool(account).folder(role, conn)

    # ------------------------------------------------------------ reading

    def _from_full(self, account: AccountConfig, folder: str, uidvalidity: int,
                   item: FetchItem) -> StoredMessage:
        raw = item.sections.get("", b"")
        parsed = _parse_stored(raw)
        return StoredMessage(
            account=account, folder=folder, uid=item.uid or 0, uidvalidity=uidvalidity,
            modseq=item.modseq, flags=_lasting_flags(item), size=item.size or len(raw),
            internaldate=item.internaldate, parsed=parsed,
            attachments=tuple(AttachmentInfo(a.filename, a.content_type, a.size, a.inline,
                                             a.content_id)
                              for a in parsed.content.attachments),
            kept_headers=_kept_headers(_header_block(raw)), complete=True, raw=raw,
        )

    async def _fetch_full(self, conn: ImapConnection, account: AccountConfig, folder: str,
                          uid: int) -> StoredMessage | None:
        info = await conn.select(folder, sync=False)
        items = await conn.uid_fetch([uid], self._items(conn, "BODY.PEEK[]"))
        # no body: expunged by another session but not yet reported to this one (Dovecot
        # answers such a message with its old flags and an empty body)
        if not items or has_flag(items[0].flags or (), "\\Deleted") \
                or not items[0].sections.get(""):
            return None
        return self._from_full(account, folder, info.uidvalidity, items[0])

    async def _written(self, conn: ImapConnection, account: AccountConfig, folder: str,
                       uid: int, raw: bytes, content: DraftContent,
                       state: DraftState) -> StoredMessage | None:
        """The message we just stored as ``raw`` (built from ``content``), without fetching its
        body back: a 20 MB attachment is not read again. None when it is gone already."""
        info = await conn.select(folder, sync=False)
        modseq = " MODSEQ" if conn.modseq_available else ""
        items = await conn.uid_fetch([uid], f"(UID FLAGS{modseq} INTERNALDATE RFC822.SIZE)")
        if not items or has_flag(items[0].flags or (), "\\Deleted"):
            return None
        item = items[0]
        header = _header_block(raw)
        head = parse_message(header + b"\r\n")
        parsed = dataclasses.replace(head, content=dataclasses.replace(
            head.content, text=content.text, html=content.html,
            attachments=content.attachments), state=state)
        return StoredMessage(
            account=account, folder=folder, uid=uid, uidvalidity=info.uidvalidity,
            modseq=item.modseq, flags=_lasting_flags(item), size=item.size or len(raw),
            internaldate=item.internaldate, parsed=parsed,
            attachments=tuple(AttachmentInfo(a.filename, a.content_type, a.size, a.inline,
                                             a.content_id) for a in content.attachments),
            kept_headers=_kept_headers(header), complete=True, raw=raw)

    async def _fetch_summaries(self, conn: ImapConnection, account: AccountConfig, folder: str,
                               uidvalidity: int, uids: Sequence[int]) -> list[StoredMessage]:
        """Headers, structure and text bodies of ``uids`` (no attachment bytes): two FETCHes."""
        if not uids:
            return []
        items = await conn.uid_fetch(uids, self._items(conn, "BODYSTRUCTURE BODY.PEEK[HEADER]"))
        plans: list[tuple[FetchItem, ParsedMessage, BodyPart | None, BodyPart | None,
                          tuple[AttachmentInfo, ...]]] = []
        wanted: dict[tuple[str, ...], list[int]] = {}
        for item in items:
            header = item.sections.get("HEADER", b"")
            parsed = _parse_stored(header + (b"" if header.endswith(b"\r\n\r\n") else b"\r\n"))
            text = html = None
            infos: tuple[AttachmentInfo, ...] = ()
            if item.bodystructure is not None:
                choice = choose_parts(parse_bodystructure(item.bodystructure))
                text, html = choice.text, choice.html
                infos = tuple(
                    AttachmentInfo(name, p.content_type,
                                   decoded_size_estimate(p), inline=p.disposition == "inline"
                                   or (p.content_id is not None and p.disposition != "attachment"),
                                   content_id=p.content_id.strip("<>") if p.content_id else None)
                    for name, p in zip(attachment_names(choice.attachments), choice.attachments,
                                       strict=True))
            plans.append((item, parsed, text, html, infos))
            parts = tuple(p.part for p in (text, html) if p is not None)
            if parts and item.uid is not None:
                wanted.setdefault(parts, []).append(item.uid)
        bodies: dict[tuple[int, str], bytes] = {}
        for parts, group in wanted.items():
            sections = " ".join(f"BODY.PEEK[{p}]" for p in parts)
            for got in await conn.uid_fetch(group, f"(UID {sections})"):
                for p in parts:
                    bodies[(got.uid or 0, p)] = got.sections.get(p, b"")
        result = []
        for item, parsed, text, html, infos in plans:
            uid = item.uid or 0
            content = dataclasses.replace(
                parsed.content,
                text=_decode_part(bodies.get((uid, text.part), b""), text) if text else None,
                html=_decode_part(bodies.get((uid, html.part), b""), html) if html else None,
            )
            result.append(StoredMessage(
                account=account, folder=folder, uid=uid, uidvalidity=uidvalidity,
                modseq=item.modseq, flags=_lasting_flags(item), size=item.size or 0,
                internaldate=item.internaldate,
                parsed=dataclasses.replace(parsed, content=content), attachments=infos,
                kept_headers=_kept_headers(item.sections.get("HEADER", b"")), complete=False,
            ))
        return result

    async def _locate(self, conn: ImapConnection, account: AccountConfig, folder: str,
                      ref: UUID | int) -> int | None:
        """The UID in ``folder`` of the live draft ``ref`` (a stable id or a UID), else None.

        By UID: that message, if it is a draft and not deleted. By stable id: UID SEARCH on
        X-Mailbridge-Id, else (drafts other clients wrote, whose ids are uuid5) the Message-ID
        derived ids. (:meth:`_load` tries the location cache before it comes here.)
        """
        info = await conn.select(folder)
        if isinstance(ref, int):
            found = await conn.uid_search("UID", str(ref), "UNDELETED", *CURRENT_ONLY)
            return ref if ref in found.uids else None
        self._forget(account, ref)
        uid = await self._locate_by_id(conn, ref)
        if uid is not None:
            self._remember(account, ref, info.uidvalidity, uid)
            return uid
        if ref.version != 5:  # mailbridge's own ids are uuid4; derived ones (foreign_id) uuid5
            return None
        foreign = await conn.uid_search("UNDELETED", *CURRENT_ONLY, "NOT", "HEADER", HEADER_ID,
                                        '""')
        if foreign.uids:
            items = await conn.uid_fetch(foreign.uids, "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            for it in sorted(items, key=lambda i: -(i.uid or 0)):
                mid = _message_id_of(it.sections.get("HEADER.FIELDS (MESSAGE-ID)", b""))
                if it.uid and foreign_id(mid, info.uidvalidity, it.uid) == ref:
                    self._remember(account, ref, info.uidvalidity, it.uid)
                    return it.uid
        return None

    async def _locate_by_id(self, conn: ImapConnection, ref: UUID) -> int | None:
        """The UID of the current version of the draft ``ref`` (X-Mailbridge-Id), else None.

        One SEARCH finds every copy and one FETCH of their flags tells the usual case, a single
        settled copy. Anything else (a write in flight, or what a dead writer left) is resolved
        as :mod:`mailbridge.versions` says, here and now.
        """
        seen: tuple[int, ...] | None = None
        for _ in range(3):
            found = await conn.uid_search("HEADER", HEADER_ID, _search_string(str(ref)))
            if not found.uids:
                if seen == ():
                    return None
                # twice before it counts: pymap's maildir misses a message in a HEADER search
                # while another session changes its flags (5 of 1,117 searches measured)
                seen = ()
                await conn.noop()
                continue
            items = await conn.uid_fetch(found.uids, "(UID FLAGS)")
            live = [i for i in items if i.uid and not has_flag(i.flags or (), "\\Deleted")]
            if len(live) == 1 and not any(has_flag(live[0].flags or (), k)
                                          for k in (KEYWORD_PENDING, KEYWORD_REPLACED)):
                return live[0].uid
            if live:
                return await self.settle(conn, ref)
            if found.uids == seen:
                return None  # only deleted copies, twice: it was deleted
            # the FETCH may see a newer state than the SEARCH did (a replace finished in
            # between, its new version not among the UIDs found): look again
            seen = found.uids
            await conn.noop()
        return None

    async def settle_id(self, conn: ImapConnection, folder: str, draft_id: UUID) -> int | None:
        """Resolves every copy of the draft ``draft_id`` in ``folder`` (see :meth:`settle`);
        returns the UID of its current version, None when it has none."""
        await conn.select(folder)
        return await self._locate_by_id(conn, draft_id)

    async def _family(self, conn: ImapConnection, uids: Sequence[int]) -> list[Copy]:
        """The copies ``uids`` of one draft, and the versions their pending ones replace, as
        they stand now in the selected (and synced) folder."""
        info = conn.select_info
        uidvalidity = info.uidvalidity if info is not None else 0
        items = await conn.uid_fetch(uids, f"(UID FLAGS INTERNALDATE BODY.PEEK[{_FAMILY_FIELDS}])")
        family = []
        for item in items:
            fields = _fields(item.sections.get(_FAMILY_FIELDS, b""))
            family.append(Copy.of(item.uid or 0, item.flags or (), uidvalidity=uidvalidity,
                                  replaces=fields.get(HEADER_REPLACES.lower()),
                                  write=fields.get(HEADER_WRITE.lower()),
                                  internaldate=item.internaldate))
        have = {c.uid for c in family}
        targets = {c.replaces for c in family if c.pending and c.replaces is not None} - have
        if targets:
            for item in await conn.uid_fetch(sorted(targets), "(UID FLAGS)"):
                family.append(Copy.of(item.uid or 0, item.flags or (), uidvalidity=uidvalidity))
        return family

    async def settle(self, conn: ImapConnection, draft_id: UUID) -> int | None:
        """Resolves the copies of the draft ``draft_id`` (in the selected, synced folder) down
        to its current version, carrying out what :func:`mailbridge.versions.resolve` says:
        adopts a committed copy, removes abandoned and superseded ones. Returns the current
        UID, or None when the draft has none. Safe to run from any number of instances at once.
        """
        gone_before = False
        for attempt in range(6):
            found = await conn.uid_search("HEADER", HEADER_ID, _search_string(str(draft_id)))
            if not found.uids:
                return None
            family = await self._family(conn, found.uids)
            if set(found.uids) - {c.uid for c in family}:
                # expunged between SEARCH and FETCH: a write finished meanwhile, and its new
                # version is not among the UIDs found; look again
                await conn.noop()
                continue
            decision = resolve(family, now=datetime.now(UTC), orphan_after=self.orphan_after)
            if not decision.settled:
                if await self._carry_out(conn, family, decision):
                    return decision.current
            elif decision.current is not None:
                return decision.current
            elif not decision.in_flight:
                if gone_before:
                    return None
                # none is current and none is being written: deleted, unless this view missed
                # the newest version (pymap leaves a message whose flags change meanwhile out
                # of another session's view): look once more
                gone_before = True
            # no current version but a write in flight: it is being removed by its writer
            # right now, or this session's view lags behind its commit; look again
            await asyncio.sleep(0.01 * attempt)
            await conn.noop()
        raise Conflict("the draft is being changed by someone else right now; retry")

    async def _carry_out(self, conn: ImapConnection, family: Sequence[Copy],
                         decision: Resolution) -> bool:
        """Does what ``decision`` says. False when an abandoned copy turned out to be committed
        just now (its writer was late, not gone): then nothing of it was removed."""
        by_uid = {c.uid: c for c in family}
        if decision.adopt:
            log.warning("adopting committed version(s) %s left pending by their writer",
                        list(decision.adopt))
            await conn.uid_store(decision.adopt, "-FLAGS.SILENT", [KEYWORD_PENDING])
        if decision.discard:
            log.warning("removing copies %s abandoned by writers that are gone",
                        list(decision.discard))
            targets = {t for u in decision.discard if (t := by_uid[u].replaces) is not None}
            if not await self._discard(conn, decision.discard, targets):
                return False
        if decision.remove:
            log.info("removing copies %s: superseded, or versions that lost", list(decision.remove))
            await self._remove(conn, decision.remove)
        return True

    async def _discard(self, conn: ImapConnection, uids: Sequence[int],
                       targets: Iterable[int]) -> bool:
        """Removes the abandoned pending copies ``uids`` unless one of the versions they replace
        (``targets``) is flagged $MailbridgeReplaced by now: then their writer committed after
        all, the mark is taken back and False returned. (The writer checks its own copy after
        its commit in the same way, so whichever of the two came second sees the other.)"""
        await conn.uid_store(uids, "+FLAGS.SILENT", ["\\Deleted"])
        items = await conn.uid_fetch(sorted(set(targets)), "(UID FLAGS)")
        if any(has_flag(i.flags or (), KEYWORD_REPLACED) for i in items):
            await conn.uid_store(uids, "-FLAGS.SILENT", ["\\Deleted"])
            return False
        await self._expunge(conn, uids)
        return True

    async def _load_cached(self, conn: ImapConnection, account: AccountConfig, folder: str,
                           ref: UUID) -> StoredMessage | None:
        """The draft ``ref`` at the UID the location cache holds, checked on what one FETCH of
        it returns (same UIDVALIDITY, still there, committed, same id); None on any doubt."""
        cached = self._locations.get((account.id, ref))
        if cached is None:
            return None
        info = await conn.select(folder)  # sync first: the cache may be stale
        if cached[0] != info.uidvalidity:
            return None
        draft = await self._fetch_full(conn, account, folder, cached[1])
        if draft is None or draft.id != ref or has_flag(draft.flags, KEYWORD_PENDING) \
                or has_flag(draft.flags, KEYWORD_REPLACED):
            self._forget(account, ref)
            return None
        self._remember(account, ref, draft.uidvalidity, draft.uid)
        return draft

    async def _load(self, conn: ImapConnection, account: AccountConfig, ref: UUID | int,
                    folder: str | None = None) -> StoredMessage:
        folder = folder or await self._folder(account, conn=conn)
        if isinstance(ref, UUID):
            cached = await self._load_cached(conn, account, folder, ref)
            if cached is not None:
                return cached
        vanished = False
        for _ in range(5):
            uid = await self._locate(conn, account, folder, ref)
            if uid is None:
                break
            draft = await self._fetch_full(conn, account, folder, uid)
            if draft is not None:
                self._remember(account, draft.id, draft.uidvalidity, draft.uid)
                return draft
            # replaced or removed between SEARCH and FETCH (a concurrent update): look again
            vanished = True
            if isinstance(ref, UUID):
                self._forget(account, ref)
            else:
                break
        if vanished and isinstance(ref, UUID):
            raise Conflict(f"draft {ref} is being changed by someone else right now; retry")
        raise NotFound(f"no draft {ref} in {account.email}", field="uid")

    # ------------------------------------------------------------ public API

    async def get(self, account: AccountConfig, ref: UUID | int) -> StoredMessage:
        """The draft ``ref`` (stable id or IMAP UID) loaded whole. NotFound if there is none.

        A draft that was sent is found by its stable id in Sent (status sent).
        """
        async with self._pool(account).connection() as conn:
            try:
                return await self._load(conn, account, ref)
            except (NotFound, Conflict):  # Conflict: it left Drafts while read (filed into Sent?)
                if isinstance(ref, UUID):
                    sent = await self.find_sent(conn, account, ref)
                    if sent is not None:
                        return sent
                raise

    async def find_sent(self, conn: ImapConnection, account: AccountConfig,
                        draft_id: UUID) -> StoredMessage | None:
        """The Sent copy of the sent draft ``draft_id`` (by its X-Mailbridge-Id), else None."""
        sent = (await self._pool(account).folders(conn=conn)).sent
        if sent is None:
            return None
        try:
            await conn.select(sent)
        except ImapNotFound:
            return None
        found = await conn.uid_search("UNDELETED", "HEADER", HEADER_ID, _search_string(str(draft_id)))
        if not found.uids:
            return None
        return await self._fetch_full(conn, account, sent, min(found.uids))

    async def create(self, account: AccountConfig, content: DraftContent, *,
                     idempotency_key: str | None = None) -> tuple[StoredMessage, bool]:
        """Stores a new draft (APPEND with ``\\Draft \\Seen``).

        Returns the draft and whether it was created now (False: ``idempotency_key`` named an
        earlier create, whose draft is returned; exactly one message exists for a key).
        """
        if idempotency_key is None:
            return await self._create(account, content, None), True
        async with self._key_locks.hold((account.id, idempotency_key)):
            existing = await self._by_idempotency_key(account, idempotency_key)
            if existing is not None:
                check_same_request(existing.header(HEADER_IDEMPOTENCY), idempotency_key)
                return existing, False
            return await self._create(account, content, idempotency_key), True

    async def _by_idempotency_key(self, account: AccountConfig, key: str) -> StoredMessage | None:
        folder = await self._folder(account)
        async with self._pool(account).connection() as conn:
            await conn.select(folder)
            found = await conn.uid_search("UNDELETED", *CURRENT_ONLY, "HEADER", HEADER_IDEMPOTENCY,
                                          _search_string(key_part(key)))
            if not found.uids:
                return None
            draft = await self._fetch_full(conn, account, folder, min(found.uids))
            return draft

    async def _create(self, account: AccountConfig, content: DraftContent,
                      idempotency_key: str | None) -> StoredMessage:
        folder = await self._folder(account)
        now = utcnow()
        state = DraftState(id=uuid.uuid4(), created_at=now, updated_at=now)
        raw = build_message(content, sender=self._sender(account),
                            message_id=make_message_id(account.email.rpartition("@")[2]),
                            date=now, state=state)
        if idempotency_key:
            raw = set_header(raw, HEADER_IDEMPOTENCY, idempotency_key)
        async with self._pool(account).connection() as conn:
            appended = await conn.append(folder, raw, flags=DRAFT_FLAGS, date=now)
            # a search follows only without APPENDUID or with an idempotency key
            await conn.select(folder, sync=appended is None or idempotency_key is not None)
            if appended is not None:
                uid = appended.uid
            else:  # no UIDPLUS: find it by its id
                found = await conn.uid_search("HEADER", HEADER_ID, _search_string(str(state.id)))
                uid = max(found.uids)
            own_uid = uid
            if idempotency_key is not None:
                # Another instance may have raced us with the same key: the lowest UID wins
                # and the others remove their copy, so one message is left for the key.
                same = await conn.uid_search("UNDELETED", "HEADER", HEADER_IDEMPOTENCY,
                                             _search_string(key_part(idempotency_key)))
                winner = min(same.uids) if same.uids else uid
                if winner != uid:
                    await self._remove(conn, [uid])
                    uid = winner
            if uid == own_uid:  # ours: we know its bytes, read back only flags and MODSEQ
                draft = await self._written(conn, account, folder, uid, raw, content, state)
            else:
                draft = await self._fetch_full(conn, account, folder, uid)
            if draft is None and uid == own_uid:
                # replaced at once by a send (the scheduler claims a draft that is due already):
                # it was stored all the same; answer its current version, or its Sent copy
                try:
                    draft = await self._load(conn, account, state.id, folder)
                except NotFound:
                    sent = await self.find_sent(conn, account, state.id)
                    if sent is not None:
                        return sent
        if draft is None:
            raise Conflict("the new draft vanished right after it was stored; retry")
        self._remember(account, draft.id, draft.uidvalidity, draft.uid)
        return draft

    async def list(self, account: AccountConfig, query: DraftQuery) -> Page:
        """A page of drafts, newest first, filtered by IMAP SEARCH on the server.

        Costs one SEARCH plus two FETCHes of the page's messages (headers, structure, text
        parts), whatever the folder's size beyond the server's own SEARCH.
        """
        folder = await self._folder(account)
        # versions flagged replaced are searched too: until the new version's step 4 they are
        # the draft's only visible copy (see _without_superseded)
        base: list[str] = ["UNDELETED", "NOT", "KEYWORD", KEYWORD_PENDING]
        versions = True
        filters: list[str] = []
        if query.context_type is not None:
            filters += ["HEADER", HEADER_CONTEXT_TYPE, _search_string(query.context_type)]
        if query.context_id is not None:
            filters += ["HEADER", HEADER_CONTEXT_ID, _search_string(query.context_id)]
        if query.recipient is not None:
            r = _search_string(query.recipient)
            filters += ["OR", "OR", "TO", r, "CC", r, "BCC", r]
        for word in (query.subject or "").split():
            filters += ["SUBJECT", _search_string(word)]
        status = query.status
        if status in (Status.DRAFT, Status.SCHEDULED, Status.HELD):
            filters += ["NOT", "HEADER", HEADER_SEND_STATE, '""']
            filters += (["NOT"] if status is Status.DRAFT else []) + [
                "HEADER", HEADER_PLANNED_SEND_AT, '""']
        elif status in (Status.SENDING, Status.FAILED):
            filters += ["HEADER", HEADER_SEND_STATE, _search_string(status.value)]
        elif status is Status.SENT:  # sent drafts live in Sent, still carrying their id
            folder = await self._folder(account, "sent")
            base = ["UNDELETED", "HEADER", HEADER_ID, '""']
            versions = False
        criteria = base + filters
        page = await self._page(account, folder, criteria, query.limit, query.after,
                                versions=versions)

        def exact(m: StoredMessage) -> bool:  # HEADER search matches substrings; held is no
            c = m.content                       # SEARCH key (it compares two dates)
            return ((query.context_type is None or c.context_type == query.context_type)
                    and (query.context_id is None or c.context_id == query.context_id)
                    and (status not in (Status.SCHEDULED, Status.HELD) or m.status is status))

        return Page(items=[m for m in page.items if exact(m)], total=page.total, next=page.next)

    async def list_folder(self, account: AccountConfig, folder: str, limit: int,
                          after: PagePosition | None = None) -> Page:
        """A page of any folder's messages (not deleted), newest first."""
        return await self._page(account, folder, ["UNDELETED"], limit, after)

    async def get_message(self, account: AccountConfig, folder: str, uid: int) -> StoredMessage:
        """Any message of any folder by UID, loaded whole; NotFound if absent."""
        async with self._pool(account).connection() as conn:
            await _select_named(conn, account, folder)
            message = await self._fetch_full(conn, account, folder, uid)
        if message is None:
            raise NotFound(f"no message {uid} in {folder!r} of {account.email}", field="uid")
        return message

    async def _page(self, account: AccountConfig, folder: str, criteria: Sequence[str], limit: int,
                    after: PagePosition | None, *, versions: bool = False) -> Page:
        """One page of the messages ``criteria`` find, newest first. ``versions``: drafts'
        versions, of which those already superseded by a committed one are left out."""
        async with self._pool(account).connection() as conn:
            info = await _select_named(conn, account, folder)
            if after is not None:
                if after.uidvalidity != info.uidvalidity:
                    raise InvalidInput("the cursor is stale (the folder was rebuilt); start over",
                                       field="cursor")
                if after.before_uid <= 1:
                    return Page(items=[], total=0, next=None)
                criteria = [*criteria, "UID", f"1:{after.before_uid - 1}"]
            if _needs_utf8(criteria):
                criteria = ["CHARSET", "UTF-8", *criteria]
            found = await conn.uid_search(*criteria, esearch=True)
            newest = sorted(found.uids, reverse=True)
            chosen = newest[:limit]
            items = await self._fetch_summaries(conn, account, folder, info.uidvalidity, chosen)
            if versions:
                items = list(await self._without_superseded(conn, account, folder, items))
        items.sort(key=lambda m: -m.uid)
        more = len(newest) > limit
        return Page(items=items, total=len(newest),
                    next=PagePosition(info.uidvalidity, chosen[-1]) if more else None)

    async def _without_superseded(self, conn: ImapConnection, account: AccountConfig,
                                  folder: str, items: Sequence[StoredMessage]
                                  ) -> Sequence[StoredMessage]:
        """``items`` with each version flagged $MailbridgeReplaced whose successor is committed
        (no longer pending) replaced by that successor, which stands for the draft (it may have
        been pending still when the page was searched). A replaced version whose successor is
        pending, or was lost, is the draft's copy to show."""
        listed = {m.uid for m in items}
        if any(has_flag(m.flags, KEYWORD_REPLACED) for m in items):
            await conn.noop()  # see the flag changes other sessions made since the SEARCH
        kept: list[StoredMessage] = []
        successors: list[int] = []
        for m in items:
            if has_flag(m.flags, KEYWORD_REPLACED):
                found = await conn.uid_search(
                    "UNDELETED", "NOT", "KEYWORD", KEYWORD_PENDING, "HEADER", HEADER_REPLACES,
                    _search_string(replaces_header(m.uidvalidity, m.uid)))
                if found.uids:
                    successors += [u for u in found.uids if u not in listed]
                    continue
            kept.append(m)
        if successors:
            kept += await self._fetch_summaries(conn, account, folder, items[0].uidvalidity,
                                                sorted(set(successors)))
        return kept

    async def replace(self, account: AccountConfig, ref: UUID | int, changes: Mapping[str, Any], *,
                      expected: Expected | None = None) -> StoredMessage:
        """Merges ``changes`` (DraftContent field -> new value) into the draft and stores it.

        See :meth:`write_version`. A caller's edit also ends a failed send (status back to draft
        or scheduled, last_error cleared). Returns the new version.
        """
        unknown = set(changes) - CONTENT_FIELDS
        if unknown:
            raise InvalidInput(f"unknown draft field(s): {', '.join(sorted(unknown))}",
                               field=sorted(unknown)[0])
        async with self._pool(account).connection() as conn:
            current = await self._load(conn, account, ref)
            check_writable(current, expected, "changed")
            return await self.write_version(
                conn, current, dataclasses.replace(current.content, **changes),
                own_headers=dict.fromkeys(SEND_HEADERS), last_error=None,
                strict=expected is not None)

    async def write_version(self, conn: ImapConnection, current: StoredMessage,
                            content: DraftContent, *, own_headers: Mapping[str, str | None],
                            last_error: str | None, strict: bool = False,
                            add_flags: Sequence[str] = (), drop_flags: Sequence[str] = ()
                            ) -> StoredMessage:
        """Replaces ``current`` by a new version with ``content``: the one write path of a draft.

        The four steps of :mod:`mailbridge.versions`: APPEND the new version pending, with a
        token of this write; arbitrate against other writers of the same version (the lowest UID
        wins; copies abandoned by dead writers do not count); commit by flagging ``current``
        $MailbridgeReplaced only if no other client touched it since it was read (conditional
        STORE, RFC 7162); then clear the pending flag and remove ``current``. A loser removes its
        copy and gets Conflict, or PreconditionFailed when ``strict`` (an If-Match was given). A
        write that could not commit within its time (``[drafts] orphan_seconds``) gives up with
        ImapUnavailable, leaving ``current`` as it was.

        The stable id, Message-ID, created_at and other clients' headers carry over;
        ``own_headers`` sets (str) or removes (None) mailbridge's X-Mailbridge-* bookkeeping
        headers. Returns the new version.
        """
        account = current.account
        if has_flag(current.flags, KEYWORD_REPLACED):
            current = await self._unreplace(conn, current)
        state = DraftState(id=current.id, created_at=current.created_at, updated_at=utcnow(),
                           last_error=last_error)
        message_id = current.parsed.message_id or make_message_id(account.email.rpartition("@")[2])
        own = {n: v for n, v in current.kept_headers if n.lower().startswith("x-mailbridge-")}
        own.pop(HEADER_REPLACES, None)
        own.pop(HEADER_WRITE, None)
        for name, value in own_headers.items():
            own.pop(name, None)
            if value is not None:
                own[name] = value
        raw = build_message(content, sender=self._sender(account, current), message_id=message_id,
                            date=state.updated_at, state=state,
                            extra_headers=[h for h in current.kept_headers
                                           if not h[0].lower().startswith("x-mailbridge-")])
        for name, value in own.items():
            raw = set_header(raw, name, value)
        return await self._write(conn, current, raw, content, state, strict=strict,
                                 add_flags=add_flags, drop_flags=drop_flags)

    async def adopt(self, conn: ImapConnection, account: AccountConfig, folder: str,
                    uid: int) -> StoredMessage | None:
        """Gives the draft ``uid`` of ``folder`` that has neither Message-ID nor X-Mailbridge-Id
        (neomutt postpones such drafts) its id for good: the id it has been shown under so far
        (derived from its UID) is written into it as X-Mailbridge-Id, with a Message-ID, so a
        client's re-save that keeps any of the two keeps the id. Everything else stays byte
        for byte, and its created_at and updated_at are those shown so far. A write like any
        other (see :meth:`write_version`). Returns the new version; None when there is nothing
        to do (the message is gone or has an id of its own), Conflict when it changed meanwhile.
        """
        current = await self._fetch_full(conn, account, folder, uid)
        if current is None or current.parsed.message_id or current.parsed.state is not None:
            return None
        if has_flag(current.flags, KEYWORD_REPLACED):
            current = await self._unreplace(conn, current)
        state = DraftState(id=current.id, created_at=current.created_at,
                           updated_at=current.updated_at, last_error=None)
        raw = current.raw
        message_id = make_message_id(account.email.rpartition("@")[2])
        for name, value in [*state_headers(state), ("Message-ID", f"<{message_id}>")]:
            raw = set_header(raw, name, value)
        return await self._write(conn, current, raw, current.content, state)

    async def _write(self, conn: ImapConnection, current: StoredMessage, raw: bytes,
                     content: DraftContent, state: DraftState, *, strict: bool = False,
                     add_flags: Sequence[str] = (), drop_flags: Sequence[str] = ()
                     ) -> StoredMessage:
        """Stores ``raw`` (``content`` and ``state``) as the version after ``current``: the
        four steps described at :meth:`write_version`."""
        account = current.account
        info = await conn.select(current.folder, sync=False)
        if not info.keeps(OWN_KEYWORDS):
            log.error("%s: folder %r keeps no keywords (PERMANENTFLAGS %s); drafts cannot be "
                      "changed there", account.email, current.folder, info.permanentflags)
            raise ImapCapabilityMissing(
                f"the IMAP server keeps no keywords on messages in {current.folder!r}, and "
                f"mailbridge needs {', '.join(OWN_KEYWORDS)} to change a draft safely; allow "
                f"keywords there (see README, \"Any IMAP server\")", account=account.email)
        replaces = replaces_header(current.uidvalidity, current.uid)
        raw = set_header(raw, HEADER_REPLACES, replaces)
        token = uuid.uuid4().hex
        commit_by = datetime.now(UTC) + self.orphan_after + timedelta(seconds=len(raw) / 1e6)
        raw = set_header(raw, HEADER_WRITE, write_header(token, commit_by))
        # the draft's own flags, \Seen or not, \Draft or not (a person may have marked it)
        dropped = {f.lower() for f in ("\\Deleted", KEYWORD_PENDING, KEYWORD_REPLACED, *drop_flags)}
        keep = [f for f in current.flags if f.lower() not in dropped]
        flags = list(dict.fromkeys([*keep, *add_flags, KEYWORD_PENDING]))
        appended = await conn.append(current.folder, raw, flags=flags, date=state.updated_at)
        await conn.select(current.folder)  # sync: every lower UID is visible now
        new_uid = await self._own_copy(conn, appended.uid if appended else None, token)
        won = await self._arbitrate(conn, current, new_uid, replaces)
        if won and datetime.now(UTC) > commit_by:
            await self._remove(conn, [new_uid])
            raise ImapUnavailable(
                f"the IMAP server took longer than {self.orphan_after.total_seconds():g}s to store "
                f"the new version; nothing was changed, retry (or raise [drafts] orphan_seconds)",
                account=account.email)
        if won:
            committed = await self._store_if_unchanged(conn, current, KEYWORD_REPLACED)
            if committed is None:
                # ``current`` is gone: removed before our commit (then we lost), or right
                # after it by a reader that finished the commit for us, which clears our
                # pending flag before it removes the old version
                items = await conn.uid_fetch([new_uid], "(UID FLAGS)")
                committed = bool(items) and not any(
                    has_flag(items[0].flags or (), k) for k in (KEYWORD_PENDING, "\\Deleted"))
            won = committed
        if not won:
            await self._remove(conn, [new_uid])
            if strict:
                raise PreconditionFailed("the draft changed meanwhile; nothing was changed",
                                         field="If-Match")
            raise Conflict("the draft was changed by someone else meanwhile; fetch it and retry")
        # committed. Our copy must still be there: an instance that took it for abandoned (a
        # clock far off, a write far slower than its time) may have marked it meanwhile.
        cleared = await conn.uid_store([new_uid], "-FLAGS", [KEYWORD_PENDING])
        mine = cleared.flags.get(new_uid)
        if mine is None:  # no FETCH: unchanged (a reader adopted it already), or gone
            items = await conn.uid_fetch([new_uid], "(UID FLAGS)")
            mine = (items[0].flags or ()) if items else None
        if mine is None or has_flag(mine, "\\Deleted"):
            await conn.uid_store([current.uid], "-FLAGS.SILENT", [KEYWORD_REPLACED])
            raise Conflict("the new version was taken for abandoned and removed; the draft is "
                           "unchanged, retry")
        await self._remove(conn, [current.uid])
        fresh = await self._written(conn, account, current.folder, new_uid, raw, content, state)
        if fresh is None:
            raise Conflict("the draft was changed by someone else meanwhile; fetch it and retry")
        self._remember(account, fresh.id, fresh.uidvalidity, fresh.uid)
        return fresh

    async def _unreplace(self, conn: ImapConnection, current: StoredMessage) -> StoredMessage:
        """``current`` without the $MailbridgeReplaced a writer left on it when its successor
        was lost (it is the draft still): cleared only if nobody touched it since it was read,
        then read again. Conflict when it changed.

        A successor may reappear meanwhile: :meth:`_discard` marks an abandoned copy \\Deleted,
        then takes the mark back if the version it replaces is flagged replaced (its writer did
        commit). So the flag is cleared first and later copies of the draft looked for after:
        if one is live (a successor, or a version further down its line), the flag goes back on
        and the caller gets Conflict. Whichever of the two came second sees the other, so two
        versions never both stand. (The look after also catches a copy this reader's view
        missed.)"""
        await conn.select(current.folder, sync=False)
        if conn.condstore_enabled and current.modseq is not None:
            result = await conn.uid_store([current.uid], "-FLAGS", [KEYWORD_REPLACED],
                                          unchangedsince=current.modseq)
            if current.uid in result.modified:
                raise Conflict("the draft was changed by someone else meanwhile; fetch it and retry")
        else:
            # nothing makes the STORE conditional, and while the flag is off another writer's
            # unconditional commit could go through: look before as well
            if await self._later_copies(conn, current):
                raise Conflict("the draft was changed by someone else meanwhile; fetch it and retry")
            await conn.uid_store([current.uid], "-FLAGS.SILENT", [KEYWORD_REPLACED])
        if await self._later_copies(conn, current):
            await conn.uid_store([current.uid], "+FLAGS.SILENT", [KEYWORD_REPLACED])
            raise Conflict("the draft was changed by someone else meanwhile; fetch it and retry")
        fresh = await self._fetch_full(conn, current.account, current.folder, current.uid)
        if fresh is None or has_flag(fresh.flags, KEYWORD_REPLACED):
            raise Conflict("the draft was changed by someone else meanwhile; fetch it and retry")
        return fresh

    @staticmethod
    async def _later_copies(conn: ImapConnection, current: StoredMessage) -> bool:
        """Whether a live copy of the draft came after ``current`` (seen after a NOOP)."""
        await conn.noop()  # see what other sessions did meanwhile
        later = await conn.uid_search(
            "UID", f"{current.uid + 1}:*", "UNDELETED", "HEADER", HEADER_ID,
            _search_string(str(current.id)))
        return any(uid > current.uid for uid in later.uids)

    @staticmethod
    async def _own_copy(conn: ImapConnection, appended: int | None, token: str) -> int:
        """The UID of the copy this write stored: APPENDUID's (UIDPLUS), else the one message
        carrying the write's token (some servers show a session its own APPEND only after a
        NOOP, which the caller's select has sent)."""
        if appended is not None:
            return appended
        found = await conn.uid_search("HEADER", HEADER_WRITE, _search_string(token))
        if not found.uids:
            raise ImapUnavailable("the IMAP server does not show the version just stored; retry")
        return found.uids[0]

    async def _arbitrate(self, conn: ImapConnection, current: StoredMessage, new_uid: int,
                         replaces: str) -> bool:
        """True when the copy ``new_uid`` may go on to replace ``current``: no live copy with a
        lower UID replaces it too. Copies abandoned by dead writers are removed, not counted."""
        # Rivals replace ``current`` too, so they were appended after it: UIDs above
        # current.uid. Only those below new_uid can beat us; search just that range (a search
        # over the whole folder costs ~1 us per message in Dovecot, this one nearly nothing).
        # "a:b" with b < a would mean b:a in IMAP, so an empty range is no search at all.
        if current.uid + 1 > new_uid - 1:
            return True
        found = await conn.uid_search("UID", f"{current.uid + 1}:{new_uid - 1}",
                                      "HEADER", HEADER_REPLACES, _search_string(replaces))
        if not found.uids:
            return True
        family = [c for c in await self._family(conn, found.uids) if c.uid in found.uids]
        beating, abandoned = rivals(family, new_uid, now=datetime.now(UTC),
                                    orphan_after=self.orphan_after)
        if beating:
            return False
        if abandoned:
            log.warning("removing copies %s abandoned by writers that are gone", abandoned)
            return await self._discard(conn, abandoned, [current.uid])
        return True

    async def _store_if_unchanged(self, conn: ImapConnection, current: StoredMessage,
                                  flag: str) -> bool | None:
        """Adds ``flag`` to ``current`` only if nobody touched it since it was read (RFC 7162
        conditional STORE). Returns True when it did, False when ``current`` changed, None when
        it is gone: expunged before the STORE, or (the server then answers no FETCH either)
        just after it. Without mod-sequences the check is a FETCH of its flags just before the
        STORE: a change in between is missed (documented limitation)."""
        if conn.condstore_enabled and current.modseq is not None:
            result = await conn.uid_store([current.uid], "+FLAGS", [flag],
                                          unchangedsince=current.modseq)
            # MODIFIED wins: the reply may also carry an unsolicited FETCH for the same message
            # (another session's flag change)
            if current.uid in result.modified:
                return False
            return True if current.uid in result.changed else None
        items = await conn.uid_fetch([current.uid], "(UID FLAGS)")
        if not items:
            return None
        if has_flag(items[0].flags or (), "\\Deleted") \
                or set(_lasting_flags(items[0])) != set(current.flags):
            return False
        await conn.uid_store([current.uid], "+FLAGS.SILENT", [flag])
        return True

    async def _remove(self, conn: ImapConnection, uids: Sequence[int]) -> None:
        await conn.uid_store(uids, "+FLAGS.SILENT", ["\\Deleted"])
        await self._expunge(conn, uids)

    @staticmethod
    async def _expunge(conn: ImapConnection, uids: Sequence[int]) -> None:
        # Without UIDPLUS a plain EXPUNGE would also remove what other clients marked \Deleted;
        # then the message stays marked \Deleted (hidden by every client) instead.
        if conn.has("UIDPLUS"):
            await conn.uid_expunge(uids)

    async def delete(self, account: AccountConfig, ref: UUID | int, *,
                     expected: Expected | None = None) -> StoredMessage:
        """Deletes the draft: permanently, or into Trash when the account says ``delete = "trash"``.

        Every other copy of it goes too (a version being written, or one a dead writer left), so
        nothing of it can come back. Returns the draft as it was. PreconditionFailed when
        ``expected`` names other versions.
        """
        async with self._pool(account).connection() as conn:
            current = await self._load(conn, account, ref)
            check_writable(current, expected, "deleted")
            await conn.select(current.folder, sync=False)
            if expected is not None \
                    and not await self._store_if_unchanged(conn, current, "\\Deleted"):
                raise PreconditionFailed("the draft changed meanwhile", field="If-Match")
            # the other copies a write may have left: pending ones and replaced versions,
            # anywhere, and anything appended after it; flags and UIDs are in the index, so
            # only those few messages are read for the header (a search of every message's
            # header costs ~3 us per message: 48 ms at 15,000 drafts)
            copies = await conn.uid_search(
                "OR", "UID", f"{current.uid}:*", "OR", "KEYWORD", KEYWORD_PENDING,
                "KEYWORD", KEYWORD_REPLACED, "HEADER", HEADER_ID, _search_string(str(current.id)))
            others = [u for u in copies.uids if u != current.uid]
            if account.delete == "trash":
                trash = await self._folder(account, "trash", conn)
                if expected is not None:  # marked \Deleted above: the copy in Trash is not
                    await conn.uid_store([current.uid], "-FLAGS.SILENT", ["\\Deleted"])
                if conn.has("MOVE"):
                    await conn.uid_move([current.uid], trash)
                else:
                    await conn.uid_copy([current.uid], trash)
                    others.append(current.uid)
            else:
                others.append(current.uid)
            await self._remove(conn, others)
        self._forget(account, current.id)
        return current


async def _select_named(conn: ImapConnection, account: AccountConfig, folder: str) -> SelectInfo:
    """SELECT a folder a caller named: NotFound when there is none, InvalidInput (400) when the
    server refuses the name or the folder (NO or BAD), without the server's own words."""
    try:
        return await conn.select(folder)
    except ImapNotFound:
        raise NotFound(f"no folder {folder!r} in {account.email}", field="folder") from None
    except ImapProtocolError:
        raise InvalidInput(f"the mail server of {account.email} refuses the folder {folder!r}: "
                           "the name is not valid there, or the folder cannot be opened",
                           field="folder") from None


def _fields(block: bytes) -> dict[str, str]:
    """The header fields of ``block`` by lower-cased name (the first of each), unfolded."""
    msg = _header_parser.parsebytes(block)
    return {k.lower(): str(v).strip() for k, v in reversed(msg.items())}


def _message_id_of(header: bytes) -> str | None:
    msg = _header_parser.parsebytes(header)
    value = msg.get("Message-ID")
    return str(value).strip().strip("<>") if value else None
