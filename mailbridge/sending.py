"""Sending drafts: exactly once, never twice, never silently lost.

A send goes through states that live in the draft itself, so any instance (or a restarted
one) can see and finish it:

1. **claim**: a new version of the draft with ``X-Mailbridge-Send-State: sending`` and a
   lease (``X-Mailbridge-Lease-Until``), written like any replace: concurrent claimers of one
   version are arbitrated on the server (lowest UID wins), so of two requests, two instances or
   the scheduler exactly one goes on; the others get Conflict (409).
2. **deliver** over SMTP (mailbridge.sender). On acceptance the claimed version is flagged
   ``$MailbridgeDelivered`` at once.
3. **file**: APPEND what was delivered (plus Bcc) to Sent (per ``sent_copy``), remove the
   draft from Drafts, mark the replied-to message ``\\Answered``.

A process that dies holding a claim leaves it to expire; the sweeper then files a delivered
draft (no second delivery) and marks an undelivered one failed with an unknown outcome (the
SMTP server may have accepted it: never re-sent automatically; a person may resend).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar
from uuid import UUID

from email_validator import EmailNotValidError, validate_email

from mailbridge.config import AccountConfig, Config, SchedulerConfig
from mailbridge.drafts import (
    CURRENT_ONLY,
    HEADER_ATTEMPTS,
    HEADER_LEASE,
    HEADER_RETRY_AT,
    HEADER_SEND_KEY,
    HEADER_SEND_STATE,
    KEYWORD_DELIVERED,
    DraftService,
    IdempotencyKeyReused,
    KeyedLocks,
    StoredMessage,
    _fields,
    _search_string,
    check_same_request,
    check_writable,
    is_held,
    key_part,
    utcnow,
)
from mailbridge.errors import (
    Conflict,
    InvalidInput,
    MailbridgeError,
    NotFound,
    SmtpError,
    SmtpOutcomeUnknown,
    SmtpRejected,
    SmtpTemporaryFailure,
    SmtpUnavailable,
    Unprocessable,
)
from mailbridge.imap import FetchItem, ImapConnection
from mailbridge.mime import (
    HEADER_ID,
    HEADER_PLANNED_SEND_AT,
    HEADER_UPDATED_AT,
    set_header,
    strip_for_sending,
)
from mailbridge.model import Status
from mailbridge.sender import Sender, smtp_endpoint
from mailbridge.versions import (
    HEADER_REPLACES,
    HEADER_WRITE,
    KEYWORD_PENDING,
    KEYWORD_REPLACED,
    Copy,
)

log = logging.getLogger("mailbridge.sending")

HEADER_SENT_FROM = "X-Mailbridge-Sent-From"
"""On a Sent copy: the Drafts version (``<uidvalidity.uid>``) the send began with, so a retry by
that UID answers the same result."""

OUTCOME_UNKNOWN = ("outcome unknown: the send was interrupted during the SMTP dialogue; the server "
                   "may or may not have accepted the message, so it is not sent again "
                   "automatically (send it again on purpose if it did not arrive)")


class SendFailed(MailbridgeError):
    """The send was attempted and failed; ``draft`` is the draft as it stands now."""

    def __init__(self, error: SmtpError, draft: StoredMessage | None) -> None:
        super().__init__(error.message)
        self.code = error.code
        self.error = error
        self.draft = draft


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def _checkpoint(name: str) -> None:
    """Test hook: with MAILBRIDGE_TEST_PAUSE_AT=name the process announces it on stderr and
    stops here for good, so a crash test can kill -9 it at exactly this point."""
    if os.environ.get("MAILBRIDGE_TEST_PAUSE_AT") == name:
        log.warning("paused at %s (MAILBRIDGE_TEST_PAUSE_AT)", name)
        import sys

        print(f"MAILBRIDGE-PAUSED-AT {name}", file=sys.stderr, flush=True)
        await asyncio.Event().wait()


@dataclass(frozen=True)
class Due:
    account: AccountConfig
    id: UUID
    uid: int
    when: datetime


@dataclass(frozen=True)
class _Planned:
    """A scheduled draft as the scheduler's search found it: due at ``when`` or not yet."""

    id: UUID
    uid: int
    when: datetime


_FolderState = tuple[int, int, int, int]
_STATE_ITEMS = ("UIDVALIDITY", "UIDNEXT", "MESSAGES", "HIGHESTMODSEQ")


async def _folder_state(conn: ImapConnection, folder: str) -> _FolderState | None:
    """Selects ``folder`` on ``conn``, up to date, and returns its (UIDVALIDITY, UIDNEXT,
    MESSAGES, HIGHESTMODSEQ) now; None without mod-sequences (no CONDSTORE, or NOMODSEQ).

    While these four are unchanged, so is everything a search of the folder can find: a new
    message raises UIDNEXT, an expunge alone lowers MESSAGES, any flag change ($MailbridgePending
    cleared, \\Deleted set) raises HIGHESTMODSEQ, and a message's headers never change without a
    new UID. So what a search found may be kept for as long as the state read before it stays
    the same.

    A SELECT reports the state itself. When ``folder`` is selected already: NOOP, then STATUS.
    Dovecot (2.3) answers STATUS of the selected mailbox from the session's own view, which only
    a command such as NOOP brings up to date; a STATUS of a mailbox not selected costs a sync of
    its own (about half a SELECT), and leaves the connection where it was.
    """
    if conn.selected != folder:
        info = await conn.select(folder)
        if not conn.modseq_available or not info.highestmodseq or info.uidnext is None:
            return None
        return (info.uidvalidity, info.uidnext, info.exists, info.highestmodseq)
    await conn.noop()
    if not conn.modseq_available:
        return None
    status = await conn.status(folder, _STATE_ITEMS)
    if not status.get("HIGHESTMODSEQ") or any(item not in status for item in _STATE_ITEMS):
        return None  # HIGHESTMODSEQ 0: the mailbox keeps no mod-sequences (RFC 7162 3.1.2.1)
    return (status["UIDVALIDITY"], status["UIDNEXT"], status["MESSAGES"], status["HIGHESTMODSEQ"])


_Found = TypeVar("_Found")


class _WhileUnchanged(Generic[_Found]):
    """What a search of a folder found, kept per (account id, folder) for as long as the
    folder's state (see :func:`_folder_state`) stays the one read before the search."""

    def __init__(self) -> None:
        self._kept: dict[tuple[UUID, str], tuple[_FolderState, _Found]] = {}

    async def get(self, key: tuple[UUID, str], state: _FolderState | None,
                  search: Callable[[], Awaitable[_Found]]) -> _Found:
        kept = self._kept.get(key)
        if state is not None and kept is not None and kept[0] == state:
            return kept[1]
        found = await search()
        if state is not None:
            self._kept[key] = (state, found)
        else:  # no mod-sequences: nothing tells a change, search every time
            self._kept.pop(key, None)
        return found


class SendService:
    """Sends drafts now (the API) or when due (the scheduler), each exactly once."""

    def __init__(self, drafts: DraftService, sender: Sender, config: Config) -> None:
        self.drafts = drafts
        self.sender = sender
        self.settings: SchedulerConfig = config.scheduler
        self.limits = config.server.limits
        self._locks = KeyedLocks()
        # what the scheduler's last searches of each Drafts folder found
        self._planned: _WhileUnchanged[tuple[_Planned, ...]] = _WhileUnchanged()
        self._claims: _WhileUnchanged[tuple[tuple[int, datetime | None], ...]] = _WhileUnchanged()
        self._leftovers: _WhileUnchanged[tuple[tuple[UUID, datetime | None], ...]] = \
            _WhileUnchanged()
        self._nameless: _WhileUnchanged[tuple[int, ...]] = _WhileUnchanged()

    # ---------------------------------------------------------------- public

    async def send(self, account: AccountConfig, ref: UUID | int, *, if_match: str | None = None,
                   idempotency_key: str | None = None) -> StoredMessage:
        """Sends the draft ``ref`` now. Returns the sent message (status sent).

        A draft already sent returns its Sent copy (a retried request delivers nothing more).
        Raises Conflict while another send of it is in flight, PreconditionFailed for a stale
        If-Match, InvalidInput (422) for a draft that cannot be sent, SendFailed when SMTP failed
        (the draft is kept: failed for a rejection or an unknown outcome, unchanged for a
        temporary failure).
        """
        async with self._locks.hold((account.id, str(ref))):
            return await self._send(account, ref, if_match=if_match, key=idempotency_key,
                                    scheduled=False)

    # ------------------------------------------------------------- the flow

    async def _send(self, account: AccountConfig, ref: UUID | int, *, if_match: str | None,
                    key: str | None, scheduled: bool) -> StoredMessage:
        pool = self.drafts.accounts.pool(account)
        async with pool.connection() as conn:
            try:
                current = await self.drafts._load(conn, account, ref)
            except NotFound:
                if isinstance(ref, UUID):  # sent already: the same result, nothing sent again
                    done = await self.drafts.find_sent(conn, account, ref)
                    if done is not None:
                        return done
                    raise
                # a retry by the UID the draft had before this key's send replaced it
                found = await self._by_send_key(conn, account, key) if key is not None else None
                if found is None:  # or a retry by UID of a send that is done: its Sent copy
                    found = await self._sent_from_uid(conn, account, ref)
                if found is None:
                    raise
                if found.status is Status.SENT:
                    return found
                current = found
            check_writable(current, if_match, "sent")
            if key is not None:
                await self._check_key_unused(conn, account, current, key)
            if key is not None and current.header(HEADER_SEND_KEY) == key \
                    and current.status is Status.FAILED:
                raise SendFailed(SmtpRejected(current.last_error or "the earlier send failed"),
                                 current)
            try:
                recipients = self._recipients(current)
            except InvalidInput as exc:
                if scheduled:  # no caller to answer: record it, once, and stop trying
                    await self.drafts.write_version(
                        conn, current, current.content, last_error=exc.message,
                        own_headers={HEADER_SEND_STATE: "failed", HEADER_LEASE: None,
                                     HEADER_RETRY_AT: None})
                raise
            lease = datetime.now(UTC) + timedelta(seconds=self.settings.lease_seconds)
            try:
                claimed = await self.drafts.write_version(
                    conn, current, current.content, last_error=None, strict=if_match is not None,
                    own_headers={HEADER_SEND_STATE: "sending", HEADER_LEASE: _rfc3339(lease),
                                 HEADER_SEND_KEY: key, HEADER_RETRY_AT: None},
                    drop_flags=(KEYWORD_DELIVERED,))
            except Conflict:
                raise Conflict("the draft is being sent or changed by another request") from None
        return await self._deliver_and_file(account, claimed, recipients, scheduled=scheduled)

    async def _sent_from_uid(self, conn: ImapConnection, account: AccountConfig,
                             uid: int) -> StoredMessage | None:
        """The Sent copy of the draft that had ``uid`` in Drafts when its send began."""
        folders = await self.drafts.accounts.pool(account).folders(conn=conn)
        if folders.drafts is None or folders.sent is None:
            return None
        validity = (await conn.select(folders.drafts)).uidvalidity
        await conn.select(folders.sent)
        found = await conn.uid_search("UNDELETED", "HEADER", HEADER_SENT_FROM,
                                      _search_string(f"<{validity}.{uid}>"))
        if not found.uids:
            return None
        return await self.drafts._fetch_full(conn, account, folders.sent, max(found.uids))

    async def _by_send_key(self, conn: ImapConnection, account: AccountConfig,
                           key: str) -> StoredMessage | None:
        """The draft (Drafts) or its Sent copy that carries the send key ``key``, else None."""
        folders = await self.drafts.accounts.pool(account).folders(conn=conn)
        for folder in (folders.drafts, folders.sent):
            if folder is None:
                continue
            await conn.select(folder)
            found = await conn.uid_search("UNDELETED", *CURRENT_ONLY,
                                          "HEADER", HEADER_SEND_KEY, _search_string(key_part(key)))
            if found.uids:
                done = await self.drafts._fetch_full(conn, account, folder, max(found.uids))
                if done is not None:
                    check_same_request(done.header(HEADER_SEND_KEY), key)
                return done
        return None

    async def _check_key_unused(self, conn: ImapConnection, account: AccountConfig,
                                current: StoredMessage, key: str) -> None:
        """Raises IdempotencyKeyReused when ``key`` came with another request body for this
        draft, or is held by another draft in Drafts (one SEARCH of the folder selected
        already). A key whose draft was sent and filed already is not looked for in Sent: that
        would cost every keyed send a SELECT and a SEARCH of Sent."""
        check_same_request(current.header(HEADER_SEND_KEY), key)
        found = await conn.uid_search("UNDELETED", *CURRENT_ONLY, "HEADER", HEADER_SEND_KEY,
                                      _search_string(key_part(key)))
        if any(uid != current.uid for uid in found.uids):
            raise IdempotencyKeyReused()

    def _recipients(self, draft: StoredMessage) -> list[str]:
        c = draft.content
        addresses = [*c.to, *c.cc, *c.bcc]
        if not addresses:
            raise Unprocessable("the draft has no recipient (to, cc or bcc)", field="to")
        if len(addresses) > self.limits.max_recipients:
            raise Unprocessable(f"the draft has {len(addresses)} recipients, more than the "
                               f"limit of {self.limits.max_recipients}", field="to")
        for field, group in (("to", c.to), ("cc", c.cc), ("bcc", c.bcc)):
            for i, a in enumerate(group):
                try:
                    validate_email(a.email, check_deliverability=False, test_environment=True,
                                   allow_smtputf8=True)
                except EmailNotValidError as exc:
                    raise Unprocessable(f"{field}[{i}]: {a.email!r} is not a valid address: {exc}",
                                       field=f"{field}[{i}]") from None
        return list(dict.fromkeys(a.email for a in addresses))

    def _wire(self, draft: StoredMessage) -> bytes:
        """What goes to the SMTP server: no Bcc, no X-Mailbridge-*, Date of now."""
        now = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
        return set_header(strip_for_sending(draft.raw), "Date", now)

    async def _deliver_and_file(self, account: AccountConfig, claimed: StoredMessage,
                                recipients: list[str], *, scheduled: bool) -> StoredMessage:
        wire = self._wire(claimed)
        try:
            await self.sender.send(smtp_endpoint(account), wire, mail_from=account.email,
                                   recipients=recipients)
        except SmtpError as exc:
            raise SendFailed(exc, await self._after_failure(account, claimed, exc, scheduled)) \
                from None
        # accepted: from here on the draft must be filed, never delivered again. One connection
        # does the rest with Drafts kept selected (no SELECT between Drafts and Sent: APPEND
        # needs none): mark it delivered first, so that a crash from here on leaves it to the
        # sweeper to file (never to deliver again), then file it.
        pool = self.drafts.accounts.pool(account)
        async with pool.connection() as conn:
            await conn.select(claimed.folder, sync=False)
            await conn.uid_store([claimed.uid], "+FLAGS.SILENT", [KEYWORD_DELIVERED])
            await _checkpoint("after-smtp")
            # the claim was written by this very send, so no earlier filing of it can have left
            # a Sent copy: no search of Sent first
            return await self._file_on(conn, account, claimed, wire, refiling=False)

    async def _after_failure(self, account: AccountConfig, claimed: StoredMessage,
                             exc: SmtpError, scheduled: bool) -> StoredMessage | None:
        """Writes the draft's state after a failed attempt; returns it (None if that failed)."""
        temporary = isinstance(exc, SmtpTemporaryFailure | SmtpUnavailable)
        attempts = int(claimed.header(HEADER_ATTEMPTS) or 0) + 1
        own: dict[str, str | None] = {HEADER_SEND_STATE: None, HEADER_LEASE: None}
        error: str | None = exc.message
        if isinstance(exc, SmtpOutcomeUnknown):
            own[HEADER_SEND_STATE] = "failed"
            error = f"{OUTCOME_UNKNOWN}; {exc.message}"
        elif temporary and scheduled and attempts < self.settings.max_attempts:
            delay = min(self.settings.retry_base_seconds * 2 ** (attempts - 1),
                        self.settings.retry_max_seconds)
            own[HEADER_ATTEMPTS] = str(attempts)
            own[HEADER_RETRY_AT] = _rfc3339(datetime.now(UTC) + timedelta(seconds=delay))
            log.info("temporary failure sending %s (attempt %d), retrying in %.0fs: %s",
                     claimed.id, attempts, delay, exc.message)
        elif temporary and not scheduled:
            error = claimed.last_error  # a direct send answers 503 and leaves the draft as it was
        else:
            own[HEADER_SEND_STATE] = "failed"
            if temporary:
                error = f"gave up after {attempts} attempts: {exc.message}"
        pool = self.drafts.accounts.pool(account)
        try:
            async with pool.connection() as conn:
                current = await self.drafts._fetch_full(conn, account, claimed.folder, claimed.uid)
                if current is None:
                    return None
                return await self.drafts.write_version(conn, current, current.content,
                                                       own_headers=own, last_error=error)
        except MailbridgeError:
            log.exception("could not record the failed send of %s; the lease will expire and the "
                          "sweeper will mark it", claimed.id)
            return None

    async def _file(self, account: AccountConfig, claimed: StoredMessage,
                    wire: bytes) -> StoredMessage:
        """Files a delivered draft whose filing may have begun before (the sweeper's case): as
        :meth:`_file_on`, on a connection of its own, looking for an earlier Sent copy first."""
        pool = self.drafts.accounts.pool(account)
        async with pool.connection() as conn:
            return await self._file_on(conn, account, claimed, wire, refiling=True)

    async def _file_on(self, conn: ImapConnection, account: AccountConfig,
                       claimed: StoredMessage, wire: bytes, *, refiling: bool) -> StoredMessage:
        """Files a delivered draft: Sent copy (per sent_copy), out of Drafts, original \\Answered.

        Idempotent when ``refiling``: a Sent copy already there (an earlier, interrupted filing)
        is not doubled. Without ``refiling`` the caller guarantees there is none (it has just
        claimed the draft itself), which saves a SELECT of Sent and a search of the whole folder.
        Returns the Sent copy, or the claimed draft marked sent when no copy is kept.
        """
        pool = self.drafts.accounts.pool(account)
        folders = await pool.folders(conn=conn)
        sent_copy = account.sent_copy
        if sent_copy == "auto":
            sent_copy = "none" if conn.has("X-GM-EXT-1") else "append"
        result: StoredMessage | None = None
        if sent_copy == "append" and folders.sent is not None:
            if refiling:
                result = await self.drafts.find_sent(conn, account, claimed.id)
            if result is None:
                copy = self._sent_copy(claimed, wire)
                stored_at = utcnow()
                appended = await conn.append(folders.sent, copy, flags=("\\Seen",),
                                             date=stored_at)
                if appended is not None:  # the record from what we stored: nothing read back
                    result = self.drafts._from_full(account, folders.sent, appended.uidvalidity,
                                                    FetchItem(seq=0, uid=appended.uid,
                                                              flags=("\\Seen",),
                                                              internaldate=stored_at,
                                                              size=len(copy),
                                                              sections={"": copy}))
                else:
                    result = await self.drafts.find_sent(conn, account, claimed.id)
        await conn.select(claimed.folder, sync=False)  # no command if still selected
        await self.drafts._remove(conn, [claimed.uid])
        self.drafts._forget(account, claimed.id)
        if claimed.content.in_reply_to:
            await self._mark_answered(conn, claimed.content.in_reply_to)
        if result is None:
            result = dataclasses.replace(  # uid 0: no copy of it is kept anywhere
                claimed, uid=0, kept_headers=(*[(n, v) for n, v in claimed.kept_headers
                                         if n.lower() != HEADER_SEND_STATE.lower()],
                                       (HEADER_SEND_STATE, "sent")))
        log.info("sent draft %s of %s", claimed.id, account.email)
        return result

    @staticmethod
    def _sent_copy(claimed: StoredMessage, wire: bytes) -> bytes:
        """What Sent keeps: what was delivered, plus Bcc and mailbridge's bookkeeping."""
        copy = wire
        if claimed.content.bcc:
            copy = set_header(copy, "Bcc", ", ".join(str(a) for a in claimed.content.bcc))
        copy = set_header(copy, HEADER_ID, str(claimed.id))
        copy = set_header(copy, HEADER_SEND_STATE, "sent")
        sent_from = claimed.header(HEADER_REPLACES)  # the UID the caller knew
        if sent_from:
            copy = set_header(copy, HEADER_SENT_FROM, sent_from)
        send_key = claimed.header(HEADER_SEND_KEY)
        if send_key:  # a keyed retry by the draft's old UID finds it (_send)
            copy = set_header(copy, HEADER_SEND_KEY, send_key)
        for name in ("X-Mailbridge-Context-Type", "X-Mailbridge-Context-Id"):
            value = getattr(claimed.content, "context_type" if name.endswith("Type")
                            else "context_id")
            if value:
                copy = set_header(copy, name, value)
        return copy

    async def _mark_answered(self, conn: ImapConnection, message_id: str) -> None:
        """Flags the message being replied to \\Answered, where it can be found (INBOX)."""
        mid = message_id.strip().strip("<>")
        with contextlib.suppress(MailbridgeError):
            await conn.select("INBOX")
            found = await conn.uid_search("HEADER", "Message-ID", _search_string(f"<{mid}>"))
            if found.uids:
                await conn.uid_store(found.uids, "+FLAGS.SILENT", ["\\Answered"])

    # -------------------------------------------------------- the scheduler

    async def due(self, account: AccountConfig, now: datetime) -> list[Due]:
        """Scheduled drafts of ``account`` whose time (or retry time) has come."""
        _, due = await self._tick(account, now, sweep=False)
        return due

    async def sweep(self, account: AccountConfig, now: datetime) -> None:
        """Finishes sends whose claim expired (their sender died): files the delivered ones,
        marks the others failed with an unknown outcome. Resolves what dead writers left (see
        mailbridge.versions) once their time is up."""
        stale, _ = await self._tick(account, now, due=False)
        await self._file_stale(account, stale)

    async def _tick(self, account: AccountConfig, now: datetime, *, sweep: bool = True,
                    due: bool = True) -> tuple[list[StoredMessage], list[Due]]:
        """One look of the scheduler at ``account``'s Drafts, on one connection: takes over the
        expired claims (``sweep``; returns those delivered, to be filed) and lists what is due
        (``due``).

        Both searches of Drafts (claims, scheduled drafts) are skipped while the folder is
        unchanged since the last one (see :func:`_folder_state`): what they found is kept, and
        leases and times are compared with ``now`` anew at every tick.
        """
        pool = self.drafts.accounts.pool(account)
        async with pool.connection() as conn:
            folder = await pool.folder("drafts", conn)
            state = await _folder_state(conn, folder)
            if sweep and await self._settle_leftovers(conn, account, folder, state, now):
                state = await _folder_state(conn, folder)
            if sweep and await self._adopt_nameless(conn, account, folder, state):
                state = await _folder_state(conn, folder)
            stale = await self._take_expired(conn, account, folder, state, now) if sweep else []
            result = []
            if due:
                planned = await self._planned.get((account.id, folder), state,
                                                  lambda: self._search_planned(conn, folder))
                result = sorted((Due(account, p.id, p.uid, p.when) for p in planned
                                 if p.when <= now), key=lambda d: d.when)
        return stale, result

    @staticmethod
    async def _search_planned(conn: ImapConnection, folder: str) -> tuple[_Planned, ...]:
        """Every scheduled draft of ``folder`` (selected and synced) with its time (or retry
        time), due or not."""
        await conn.select(folder, sync=False)  # no command: it is (see _folder_state)
        found = await conn.uid_search("UNDELETED", *CURRENT_ONLY,
                                      "HEADER", HEADER_PLANNED_SEND_AT, '""',
                                      "NOT", "HEADER", HEADER_SEND_STATE, '""')
        if not found.uids:
            return ()
        fields = (f"HEADER.FIELDS ({HEADER_ID} {HEADER_PLANNED_SEND_AT} {HEADER_RETRY_AT} "
                  f"{HEADER_UPDATED_AT})").upper()
        items = await conn.uid_fetch(found.uids, f"(UID INTERNALDATE BODY.PEEK[{fields}])")
        result = []
        for item in items:
            headers = _fields(item.sections.get(fields, b""))
            planned = _parse_time(headers.get(HEADER_PLANNED_SEND_AT.lower()))
            retry = _parse_time(headers.get(HEADER_RETRY_AT.lower()))
            draft_id = headers.get(HEADER_ID.lower())
            if planned is None or draft_id is None or item.uid is None:
                continue
            if is_held(planned, _parse_time(headers.get(HEADER_UPDATED_AT.lower())),
                       item.internaldate):
                continue  # saved by a mail client after its time: not sent unasked
            with contextlib.suppress(ValueError):
                result.append(_Planned(UUID(draft_id), item.uid,
                                       max(planned, retry) if retry else planned))
        return tuple(result)

    async def _take_expired(self, conn: ImapConnection, account: AccountConfig, folder: str,
                            state: _FolderState | None, now: datetime) -> list[StoredMessage]:
        """Takes over the claims of ``folder`` whose lease expired: a delivered one gets a
        new lease (returned, to be filed), the others are marked failed, outcome unknown."""
        claims = await self._claims.get((account.id, folder), state,
                                        lambda: self._search_claims(conn, folder))
        stale = []
        for uid, lease_seen in claims:
            if lease_seen is not None and lease_seen > now:
                continue  # its sender still holds it (read whole once the lease has expired)
            draft = await self.drafts._fetch_full(conn, account, folder, uid)
            if draft is None or draft.status is not Status.SENDING:
                continue
            lease = _parse_time(draft.header(HEADER_LEASE))
            if lease is not None and lease > now:
                continue
            delivered = any(f.lower() == KEYWORD_DELIVERED.lower() for f in draft.flags)
            own: dict[str, str | None]
            if delivered:  # take the claim over, then file it
                lease_until = datetime.now(UTC) + timedelta(seconds=self.settings.lease_seconds)
                own = {HEADER_LEASE: _rfc3339(lease_until)}
                error = draft.last_error
            else:
                own = {HEADER_SEND_STATE: "failed", HEADER_LEASE: None}
                error = OUTCOME_UNKNOWN
            try:
                taken = await self.drafts.write_version(conn, draft, draft.content,
                                                        own_headers=own, last_error=error)
            except Conflict:
                continue  # another instance is on it
            if delivered:
                stale.append(taken)
            else:
                log.warning("draft %s: %s", draft.id, OUTCOME_UNKNOWN)
        return stale

    async def _settle_leftovers(self, conn: ImapConnection, account: AccountConfig, folder: str,
                                state: _FolderState | None, now: datetime) -> bool:
        """Resolves the drafts of ``folder`` with a copy that a writer left pending or flagged
        replaced, once that copy's writer counts as gone (a commit: at once). Returns whether
        it looked at any."""
        leftovers = await self._leftovers.get((account.id, folder), state,
                                              lambda: self._search_leftovers(conn, folder))
        acted = False
        for draft_id, ready in leftovers:
            if ready is not None and ready > now:
                continue  # a write in flight
            acted = True
            try:
                await self.drafts.settle_id(conn, folder, draft_id)
            except Conflict:
                continue  # changing right now: the next tick looks again
        return acted

    async def _adopt_nameless(self, conn: ImapConnection, account: AccountConfig, folder: str,
                              state: _FolderState | None) -> bool:
        """Writes its id into each draft of ``folder`` that has neither Message-ID nor
        X-Mailbridge-Id (see DraftService.adopt), so that a mail client's re-save keeps it.
        Returns whether there were any."""
        nameless = await self._nameless.get((account.id, folder), state,
                                            lambda: self._search_nameless(conn, folder))
        for uid in nameless:
            try:
                await self.drafts.adopt(conn, account, folder, uid)
            except Conflict:
                continue  # changed meanwhile: the next tick looks again
        return bool(nameless)

    @staticmethod
    async def _search_nameless(conn: ImapConnection, folder: str) -> tuple[int, ...]:
        """The UIDs of ``folder``'s (selected and synced) drafts without Message-ID and without
        X-Mailbridge-Id."""
        await conn.select(folder, sync=False)  # no command: it is (see _folder_state)
        found = await conn.uid_search("UNDELETED", *CURRENT_ONLY, "NOT", "HEADER", "Message-ID",
                                      '""', "NOT", "HEADER", HEADER_ID, '""')
        return found.uids

    async def _search_leftovers(self, conn: ImapConnection,
                                folder: str) -> tuple[tuple[UUID, datetime | None], ...]:
        """Each draft of ``folder`` (selected and synced) with a pending or replaced copy, with
        the time from which it may be resolved (None: now)."""
        await conn.select(folder, sync=False)  # no command: it is (see _folder_state)
        found = await conn.uid_search("UNDELETED", "OR", "KEYWORD", KEYWORD_PENDING,
                                      "KEYWORD", KEYWORD_REPLACED)
        if not found.uids:
            return ()
        info = conn.select_info
        fields = f"HEADER.FIELDS ({HEADER_ID} {HEADER_WRITE})".upper()
        items = await conn.uid_fetch(found.uids, f"(UID FLAGS INTERNALDATE BODY.PEEK[{fields}])")
        ready: dict[UUID, datetime | None] = {}
        for item in items:
            headers = _fields(item.sections.get(fields, b""))
            try:
                draft_id = UUID(headers.get(HEADER_ID.lower(), ""))
            except ValueError:
                continue  # not one of mailbridge's drafts
            copy = Copy.of(item.uid or 0, item.flags or (), write=headers.get(HEADER_WRITE.lower()),
                           uidvalidity=info.uidvalidity if info else 0,
                           internaldate=item.internaldate)
            at = None if copy.replaced else copy.abandoned_at(self.drafts.orphan_after)
            if draft_id in ready:
                earlier = ready[draft_id]
                at = None if at is None or earlier is None else min(at, earlier)
            ready[draft_id] = at
        return tuple(ready.items())

    @staticmethod
    async def _search_claims(conn: ImapConnection,
                             folder: str) -> tuple[tuple[int, datetime | None], ...]:
        """The UIDs of ``folder`` (selected and synced) in send-state sending, each with the
        end of its lease."""
        await conn.select(folder, sync=False)  # no command: it is (see _folder_state)
        found = await conn.uid_search("UNDELETED", *CURRENT_ONLY,
                                      "HEADER", HEADER_SEND_STATE, '"sending"')
        if not found.uids:
            return ()
        fields = f"HEADER.FIELDS ({HEADER_LEASE})".upper()
        items = await conn.uid_fetch(found.uids, f"(UID BODY.PEEK[{fields}])")
        return tuple((item.uid, _parse_time(_fields(item.sections.get(fields, b""))
                                            .get(HEADER_LEASE.lower())))
                     for item in items if item.uid is not None)

    async def _file_stale(self, account: AccountConfig, stale: list[StoredMessage]) -> None:
        for taken in stale:
            log.warning("filing draft %s, delivered before its sender stopped", taken.id)
            await self._file(account, taken, self._wire(taken))

    async def send_due(self, due: Due) -> None:
        """Sends one due draft; losing the claim to another instance is normal and quiet."""
        try:
            async with self._locks.hold((due.account.id, str(due.id))):
                await self._send(due.account, due.id, if_match=None, key=None, scheduled=True)
            late = (utcnow() - due.when).total_seconds()
            log.info("scheduled draft %s sent %.1fs after its time", due.id, late)
        except (Conflict, NotFound):
            pass
        except SendFailed as exc:
            log.warning("scheduled draft %s: %s", due.id, exc.message)
        except MailbridgeError as exc:
            log.warning("scheduled draft %s not sent now: %s", due.id, exc.message)

    async def run_scheduler(self, accounts: list[AccountConfig]) -> None:
        """The scheduler loop: every interval, sweep expired claims and send what is due."""
        gate = asyncio.Semaphore(self.settings.concurrency)
        running: set[asyncio.Task[None]] = set()
        in_flight: set[tuple[UUID, UUID]] = set()

        async def one(due: Due) -> None:
            try:
                async with gate:
                    await self.send_due(due)
            finally:
                in_flight.discard((due.account.id, due.id))

        while True:
            now = utcnow()
            for account in accounts:
                try:
                    stale, due_now = await self._tick(account, now)
                    await self._file_stale(account, stale)
                    for due in due_now:
                        key = (account.id, due.id)
                        if key in in_flight:
                            continue
                        in_flight.add(key)
                        task = asyncio.create_task(one(due))
                        running.add(task)
                        task.add_done_callback(running.discard)
                except MailbridgeError as exc:
                    log.warning("scheduler: %s: %s", account.email, exc.message)
            await asyncio.sleep(self.settings.interval_seconds)
