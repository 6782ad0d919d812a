"""DraftService: the use cases of drafts, whichever API dialect or process asks.

Create, read, list, change, adopt and delete drafts of the configured accounts; what goes into a
version (the caller's content, the draft's own bookkeeping, other clients' headers) and who may
change it (If-Match, a send in progress, an Idempotency-Key). Where a draft is and how a version
is written safely is :class:`mailbridge.store.DraftStore`'s business; pages are
:mod:`mailbridge.listing`'s. No state but the store's cache of where a draft was last seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from mailbridge.accounts import Accounts
from mailbridge.config import AccountConfig
from mailbridge.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    Unprocessable,
)
from mailbridge.events import NO_EVENTS, Event, EventSink
from mailbridge.imap import ImapConnection
from mailbridge.listing import list_drafts
from mailbridge.locks import KeyedLocks
from mailbridge.mime import (
    build_message,
    make_message_id,
    set_header,
    state_headers,
)
from mailbridge.model import Address, DraftContent, DraftState, Status
from mailbridge.reading import fetch_whole
from mailbridge.store import DraftStore
from mailbridge.versions import HEADER_REPLACES, HEADER_WRITE, KEYWORD_REPLACED
from mailbridge.views import (
    HEADER_APPROVAL,
    HEADER_APPROVED_DIGEST,
    HEADER_DECIDED_AT,
    HEADER_DECIDED_BY,
    HEADER_SEND_STATE,
    DraftQuery,
    Page,
    StoredMessage,
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


_T = TypeVar("_T")


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


class DraftService:
    """Create, read, list, replace and delete drafts of the configured accounts."""

    def __init__(self, accounts: Accounts, *, cache_size: int = 10_000) -> None:
        self.accounts = accounts
        self.store = DraftStore(accounts, cache_size=cache_size)
        self._key_locks = KeyedLocks()
        self.events: EventSink = NO_EVENTS
        """Told of every change made here (and by the send and message services over it)."""

    async def find(self, accounts: Sequence[AccountConfig], ref: UUID) -> StoredMessage:
        """The draft ``ref`` in whichever of ``accounts`` holds it: first the one this instance
        last saw it in, then the others, asked concurrently.

        NotFound when none does; when none does and an account could not be asked, that
        account's error (e.g. ImapUnavailable), since the draft may be there.
        """
        if len(accounts) == 1:
            return await self.get(accounts[0], ref)
        holder = self.store.cached_holder(accounts, ref)
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
        holder = self.store.cached_holder(accounts, ref)
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

    @staticmethod
    def _sender(account: AccountConfig, current: StoredMessage | None = None) -> Address:
        """The From of a version: the account's address, with the draft's own display name
        when its From is that address (a person may have set one), else the account's."""
        own = current.parsed.sender if current is not None else None
        if own is not None and own.name and own.email.lower() == account.email.lower():
            return Address(email=account.email, name=own.name)
        return Address(email=account.email, name=account.display_name)


    async def get(self, account: AccountConfig, ref: UUID | int) -> StoredMessage:
        """The draft ``ref`` (stable id or IMAP UID) loaded whole. NotFound if there is none.

        A draft that was sent is found by its stable id in Sent (status sent).
        """
        return await self.store.get(account, ref)


    async def create(self, account: AccountConfig, content: DraftContent, *,
                     idempotency_key: str | None = None,
                     extra_headers: Sequence[tuple[str, str]] = ()) -> tuple[StoredMessage, bool]:
        """Stores a new draft (APPEND with ``\\Draft \\Seen``); ``extra_headers`` (e.g.
        Reply-To) go into it as given, and stay with it through later versions.

        Returns the draft and whether it was created now (False: ``idempotency_key`` named an
        earlier create, whose draft is returned; exactly one message exists for a key).
        """
        if idempotency_key is None:
            return self._created(await self._create(account, content, None, extra_headers)), True
        async with self._key_locks.hold((account.id, idempotency_key)):
            existing = await self.store.find_current(account, HEADER_IDEMPOTENCY,
                                                     key_part(idempotency_key))
            if existing is not None:
                check_same_request(existing.header(HEADER_IDEMPOTENCY), idempotency_key)
                return existing, False
            made = await self._create(account, content, idempotency_key, extra_headers)
        return self._created(made), True

    def _created(self, draft: StoredMessage) -> StoredMessage:
        self.events.emit(Event("draft.created", draft.account, draft))
        if draft.content.planned_send_at is not None:
            self.events.emit(Event("draft.scheduled", draft.account, draft))
        return draft

    async def _create(self, account: AccountConfig, content: DraftContent,
                      idempotency_key: str | None,
                      extra_headers: Sequence[tuple[str, str]] = ()) -> StoredMessage:
        now = utcnow()
        state = DraftState(id=uuid.uuid4(), created_at=now, updated_at=now)
        raw = build_message(content, sender=self._sender(account),
                            message_id=make_message_id(account.email.rpartition("@")[2]),
                            date=now, state=state, extra_headers=extra_headers)
        if idempotency_key is None:
            return await self.store.add(account, raw, content, state)
        raw = set_header(raw, HEADER_IDEMPOTENCY, idempotency_key)
        return await self.store.add(account, raw, content, state,
                                    unique=(HEADER_IDEMPOTENCY, key_part(idempotency_key)))

    async def list(self, account: AccountConfig, query: DraftQuery) -> Page:
        """A page of drafts, newest first (see :func:`mailbridge.listing.list_drafts`)."""
        return await list_drafts(self.store, account, query)


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
        async with self.store.pool(account).connection() as conn:
            current = await self.store.load(conn, account, ref)
            check_writable(current, expected, "changed")
            new = await self.write_version(
                conn, current, dataclasses.replace(current.content, **changes),
                own_headers=dict.fromkeys(SEND_HEADERS), last_error=None,
                strict=expected is not None)
        self.events.emit(Event("draft.updated", account, new))
        if changes.get("planned_send_at") is not None:
            self.events.emit(Event("draft.scheduled", account, new))
        return new

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
        if has_flag(current.flags, KEYWORD_REPLACED):
            current = await self.store.unreplace(conn, current)
        state = DraftState(id=current.id, created_at=current.created_at, updated_at=utcnow(),
                           last_error=last_error)
        if content != current.content and current.header(HEADER_APPROVAL) == "approved" \
                and HEADER_APPROVAL not in own_headers:
            # an approval approves one message: a changed one goes back to review
            own_headers = {**own_headers, HEADER_APPROVAL: "requested", HEADER_DECIDED_BY: None,
                           HEADER_DECIDED_AT: None, HEADER_APPROVED_DIGEST: None}
        raw = self.version_raw(current, content, state, own_headers)
        return await self.store.write(conn, current, raw, content, state, strict=strict,
                                 add_flags=add_flags, drop_flags=drop_flags)

    def version_raw(self, current: StoredMessage, content: DraftContent, state: DraftState,
                    own_headers: Mapping[str, str | None]) -> bytes:
        """The message of a new version of ``current`` with ``content`` and ``state`` (see
        :meth:`write_version`). One content always gives the same bytes, but for the
        X-Mailbridge-* fields and Date: what a send delivers is what a preview showed."""
        account = current.account
        # a draft without Message-ID (neomutt's) gets one made from its stable id
        message_id = current.parsed.message_id \
            or f"{current.id.hex}@{account.email.rpartition('@')[2]}"
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
        return raw

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
        current = await fetch_whole(conn, account, folder, uid)
        if current is None or current.parsed.message_id or current.parsed.state is not None:
            return None
        if has_flag(current.flags, KEYWORD_REPLACED):
            current = await self.store.unreplace(conn, current)
        state = DraftState(id=current.id, created_at=current.created_at,
                           updated_at=current.updated_at, last_error=None)
        raw = current.raw
        message_id = make_message_id(account.email.rpartition("@")[2])
        for name, value in [*state_headers(state), ("Message-ID", f"<{message_id}>")]:
            raw = set_header(raw, name, value)
        return await self.store.write(conn, current, raw, current.content, state)

    async def delete(self, account: AccountConfig, ref: UUID | int, *,
                     expected: Expected | None = None) -> StoredMessage:
        """Deletes the draft: permanently, or into Trash when the account says ``delete = "trash"``.

        Every other copy of it goes too (a version being written, or one a dead writer left), so
        nothing of it can come back. Returns the draft as it was. PreconditionFailed when
        ``expected`` names other versions.
        """
        async with self.store.pool(account).connection() as conn:
            current = await self.store.load(conn, account, ref)
            check_writable(current, expected, "deleted")
            async with self.events.taking(account, current.folder, current.uidvalidity,
                                          [current.uid]):
                await self.store.delete(conn, current, conditional=expected is not None)
        self.events.emit(Event("draft.deleted", account, current))
        return current
