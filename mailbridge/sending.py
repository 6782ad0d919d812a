"""Sending drafts: exactly once, never twice, never silently lost.

A send goes through states that live in the draft itself, so any instance (or a restarted
one) can see and finish it:

1. **claim**: a new version of the draft with ``X-Mailbridge-Send-State: sending`` and a
   lease (``X-Mailbridge-Lease-Until``), written like any replace: concurrent claimers of one
   version are arbitrated on the server (lowest UID wins), so of two requests, two instances or
   the scheduler exactly one goes on; the others get Conflict (409).
2. **deliver** over SMTP (mailbridge.smtp). On acceptance the claimed version is flagged
   ``$MailbridgeDelivered`` at once.
3. **file**: APPEND what was delivered (plus Bcc) to Sent (per ``sent_copy``), remove the
   draft from Drafts, mark the replied-to message ``\\Answered`` (a forwarded one
   ``$Forwarded``).

A process that dies holding a claim leaves it to expire; the sweeper (mailbridge.scheduler) then
files a delivered draft (no second delivery) and marks an undelivered one failed with an unknown
outcome (the SMTP server may have accepted it: never re-sent automatically; a person may resend).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from uuid import UUID

from email_validator import EmailNotValidError, validate_email

from mailbridge.approvals import ApprovalService, check_approved
from mailbridge.config import AccountConfig, Config, SchedulerConfig
from mailbridge.drafts import (
    HEADER_ATTEMPTS,
    HEADER_LEASE,
    HEADER_RETRY_AT,
    HEADER_SEND_KEY,
    DraftService,
    Expected,
    IdempotencyKeyReused,
    check_same_request,
    check_writable,
    key_part,
)
from mailbridge.errors import (
    Conflict,
    InvalidInput,
    MailbridgeError,
    NotApproved,
    NotFound,
    NotSendable,
    SmtpError,
    SmtpOutcomeUnknown,
    SmtpRejected,
    SmtpTemporaryFailure,
    SmtpUnavailable,
    Unprocessable,
)
from mailbridge.events import Event
from mailbridge.imap import FetchItem, ImapConnection
from mailbridge.locks import KeyedLocks
from mailbridge.mime import (
    HEADER_ID,
    header_time,
    set_header,
    strip_for_sending,
)
from mailbridge.model import DraftContent, DraftState, Status
from mailbridge.reading import fetch_whole, whole
from mailbridge.replies import FORWARDED_MESSAGE_ID
from mailbridge.smtp import Sender, smtp_endpoint
from mailbridge.store import CURRENT_ONLY, KEYWORD_DELIVERED, search_string
from mailbridge.versions import (
    HEADER_REPLACES,
)
from mailbridge.views import (
    APPROVAL_HEADERS,
    HEADER_REQUESTED_BY,
    HEADER_SEND_STATE,
    StoredMessage,
    utcnow,
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


_PAUSE_AT = os.environ.get("MAILBRIDGE_TEST_PAUSE_AT")
"""Read once, when the process starts: see :func:`_checkpoint`."""


async def _checkpoint(name: str) -> None:
    """Test hook: with MAILBRIDGE_TEST_PAUSE_AT=name the process announces it on stderr and
    stops here for good, so a crash test can kill -9 it at exactly this point."""
    if _PAUSE_AT == name:
        log.warning("paused at %s (MAILBRIDGE_TEST_PAUSE_AT)", name)
        import sys

        print(f"MAILBRIDGE-PAUSED-AT {name}", file=sys.stderr, flush=True)
        await asyncio.Event().wait()


@dataclasses.dataclass(frozen=True)
class Preview:
    """A message as a send would hand it to SMTP: its bytes and its envelope."""

    message: bytes
    mail_from: str
    recipients: list[str]


class SendService:
    """Sends drafts now (the API) or when due (the scheduler), each exactly once."""

    def __init__(self, drafts: DraftService, sender: Sender, config: Config) -> None:
        self.drafts = drafts
        self.sender = sender
        self.settings: SchedulerConfig = config.scheduler
        self.limits = config.server.limits
        self._locks = KeyedLocks()

    # ---------------------------------------------------------------- public

    async def send(self, account: AccountConfig, ref: UUID | int, *, expected: Expected | None = None,
                   idempotency_key: str | None = None,
                   requester: str | None = None) -> StoredMessage:
        """Sends the draft ``ref`` now. Returns the sent message (status sent).

        A draft already sent returns its Sent copy (a retried request delivers nothing more).
        Raises Conflict while another send of it is in flight, PreconditionFailed for a stale
        If-Match, InvalidInput (422) for a draft that cannot be sent, SendFailed when SMTP failed
        (the draft is kept: failed for a rejection or an unknown outcome, unchanged for a
        temporary failure).
        """
        async with self._locks.hold((account.id, str(ref))):
            return await self._send(account, ref, expected=expected, key=idempotency_key,
                                    scheduled=False, requester=requester)

    async def _check_approved(self, account: AccountConfig, current: StoredMessage,
                              requester: str | None) -> None:
        """NotApproved unless ``current`` may be sent (mailbridge.approvals). A draft whose
        approval is missing (an account that requires one) or stale (changed since) is put up
        for approval at once: it then awaits approval, as a request would have made it."""
        def raw() -> bytes:
            state = DraftState(id=current.id, created_at=current.created_at,
                               updated_at=utcnow(), last_error=None)
            return self.drafts.version_raw(current, current.content, state, {})
        try:
            check_approved(current, account, raw)
        except NotApproved as exc:
            if exc.unrequested:
                by = requester or current.header(HEADER_REQUESTED_BY) or "mailbridge"
                exc.awaiting = await ApprovalService(self).request(account, current.id, by=by)
            raise

    async def preview(self, account: AccountConfig, ref: UUID | int) -> Preview:
        """What a send of the draft ``ref`` would hand to the SMTP server now: the message
        (no Bcc, no X-Mailbridge-* header, Date of now) and its envelope. NotFound when there is
        no such draft in Drafts (a sent one is in Sent: nothing more would be sent);
        InvalidInput (422) for a draft without valid recipients, as a send answers."""
        pool = self.drafts.accounts.pool(account)
        async with pool.connection() as conn:
            current = await self.drafts.store.load(conn, account, ref)
        recipients = self.recipients(current)
        # the version a send writes before it delivers (its X-Mailbridge-* fields and Date
        # are not delivered)
        state = DraftState(id=current.id, created_at=current.created_at, updated_at=utcnow(),
                           last_error=None)
        raw = self.drafts.version_raw(current, current.content, state, {})
        return Preview(self._wire(raw), account.email, recipients)

    # ------------------------------------------------------------- the flow

    async def _send(self, account: AccountConfig, ref: UUID | int, *, expected: Expected | None,
                    key: str | None, scheduled: bool,
                    requester: str | None = None) -> StoredMessage:
        pool = self.drafts.accounts.pool(account)
        async with pool.connection() as conn:
            try:
                current = await self.drafts.store.load(conn, account, ref)
            except NotFound:
                if isinstance(ref, UUID):  # sent already: the same result, nothing sent again
                    done = await self.drafts.store.find_sent(conn, account, ref)
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
            check_writable(current, expected, "sent")
            if key is not None:
                await self._check_key_unused(conn, account, current, key)
            if key is not None and current.header(HEADER_SEND_KEY) == key \
                    and current.status is Status.FAILED:
                raise SendFailed(SmtpRejected(current.last_error or "the earlier send failed"),
                                 current)
            try:
                await self._check_approved(
                    account, current, requester or ("scheduler" if scheduled else None))
                recipients = self.recipients(current)
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
                    conn, current, current.content, last_error=None, strict=expected is not None,
                    own_headers={HEADER_SEND_STATE: "sending", HEADER_LEASE: header_time(lease),
                                 HEADER_SEND_KEY: key, HEADER_RETRY_AT: None},
                    drop_flags=(KEYWORD_DELIVERED,))
            except Conflict:
                raise Conflict("the draft is being sent or changed by another request") from None
        return await self._deliver_and_file(account, claimed, recipients, scheduled=scheduled)

    async def send_new(self, account: AccountConfig, content: DraftContent, *,
                       extra_headers: Sequence[tuple[str, str]] = (),
                       idempotency_key: str | None = None) -> StoredMessage:
        """Sends a new message now: a draft made and sent in one call, with a draft's
        guarantees (delivered once, a copy in Sent, the same result for a retry with the same
        Idempotency-Key, which finds the draft or its Sent copy by the key and delivers nothing
        again). A send that fails leaves the draft in Drafts, status failed, as a draft's does;
        one without a valid recipient is refused before anything is stored."""
        try:
            self._recipients_of(content)
        except NotSendable as exc:  # here the recipients are the request's own
            raise Unprocessable(exc.message, field=exc.field) from None
        if idempotency_key is not None:
            async with self.drafts.accounts.pool(account).connection() as conn:
                done = await self._by_send_key(conn, account, idempotency_key)
            if done is not None and done.status is Status.SENT:
                return done
        draft, _ = await self.drafts.create(account, content, idempotency_key=idempotency_key,
                                            extra_headers=extra_headers)
        return await self.send(account, draft.id, idempotency_key=idempotency_key)

    async def _sent_from_uid(self, conn: ImapConnection, account: AccountConfig,
                             uid: int) -> StoredMessage | None:
        """The Sent copy of the draft that had ``uid`` in Drafts when its send began."""
        folders = await self.drafts.accounts.pool(account).folders(conn=conn)
        if folders.drafts is None or folders.sent is None:
            return None
        validity = (await conn.select(folders.drafts)).uidvalidity
        await conn.select(folders.sent)
        found = await conn.uid_search("UNDELETED", "HEADER", HEADER_SENT_FROM,
                                      search_string(f"<{validity}.{uid}>"))
        if not found.uids:
            return None
        return await fetch_whole(conn, account, folders.sent, max(found.uids))

    async def _by_send_key(self, conn: ImapConnection, account: AccountConfig,
                           key: str) -> StoredMessage | None:
        """The draft (Drafts) or its Sent copy that carries the send key ``key``, else None."""
        folders = await self.drafts.accounts.pool(account).folders(conn=conn)
        for folder in (folders.drafts, folders.sent):
            if folder is None:
                continue
            await conn.select(folder)
            found = await conn.uid_search("UNDELETED", *CURRENT_ONLY,
                                          "HEADER", HEADER_SEND_KEY, search_string(key_part(key)))
            if found.uids:
                done = await fetch_whole(conn, account, folder, max(found.uids))
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
                                      search_string(key_part(key)))
        if any(uid != current.uid for uid in found.uids):
            raise IdempotencyKeyReused()

    def recipients(self, draft: StoredMessage) -> list[str]:
        """The envelope recipients of the draft (see :meth:`_recipients_of`)."""
        return self._recipients_of(draft.content)

    def _recipients_of(self, c: DraftContent) -> list[str]:
        """The envelope recipients of ``c``; NotSendable (naming the field) when there are
        none, too many, or one is not a valid address."""
        addresses = [*c.to, *c.cc, *c.bcc]
        if not addresses:
            raise NotSendable("the draft has no recipient (to, cc or bcc)", field="to")
        if len(addresses) > self.limits.max_recipients:
            raise NotSendable(f"the draft has {len(addresses)} recipients, more than the "
                               f"limit of {self.limits.max_recipients}", field="to")
        for field, group in (("to", c.to), ("cc", c.cc), ("bcc", c.bcc)):
            for i, a in enumerate(group):
                try:
                    validate_email(a.email, check_deliverability=False, test_environment=True,
                                   allow_smtputf8=True)
                except EmailNotValidError as exc:
                    raise NotSendable(f"{field}[{i}]: {a.email!r} is not a valid address: {exc}",
                                       field=f"{field}[{i}]") from None
        return list(dict.fromkeys(a.email for a in addresses))

    @staticmethod
    def _wire(raw: bytes) -> bytes:
        """What goes to the SMTP server: no Bcc, no X-Mailbridge-*, Date of now."""
        return set_header(strip_for_sending(raw), "Date", format_datetime(datetime.now(UTC)))

    async def _deliver_and_file(self, account: AccountConfig, claimed: StoredMessage,
                                recipients: list[str], *, scheduled: bool) -> StoredMessage:
        wire = self._wire(claimed.raw)
        try:
            await self.sender.send(smtp_endpoint(account), wire, mail_from=account.email,
                                   recipients=recipients)
        except SmtpError as exc:
            after = await self._after_failure(account, claimed, exc, scheduled)
            if after is not None and after.status is Status.FAILED:
                self.drafts.events.emit(Event("draft.failed", account, after))
            raise SendFailed(exc, after) from None
        # accepted: from here on the draft must be filed, never delivered again. One connection
        # does the rest with Drafts kept selected (no SELECT between Drafts and Sent: APPEND
        # needs none): mark it delivered first, so that a crash from here on leaves it to the
        # sweeper to file (never to deliver again), then file it.
        pool = self.drafts.accounts.pool(account)
        async with pool.connection() as conn:
            await conn.select(claimed.folder, sync=False)
            # the claim may have been written on another connection (see add_flag)
            await self.drafts.store.add_flag(conn, [claimed.uid], KEYWORD_DELIVERED)
            await _checkpoint("after-smtp")
            # the claim was written by this very send, so no earlier filing of it can have left
            # a Sent copy: no search of Sent first
            async with self.drafts.events.taking(account, claimed.folder, claimed.uidvalidity,
                                                 [claimed.uid]):
                sent = await self._file_on(conn, account, claimed, wire, refiling=False)
        self.drafts.events.emit(Event("draft.sent", account, sent))
        self.drafts.events.emit(Event("email.sent", account, sent))
        return sent

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
            own[HEADER_RETRY_AT] = header_time(datetime.now(UTC) + timedelta(seconds=delay))
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
                current = await fetch_whole(conn, account, claimed.folder, claimed.uid)
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
        async with pool.connection() as conn, self.drafts.events.taking(
                account, claimed.folder, claimed.uidvalidity, [claimed.uid]):
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
                result = await self.drafts.store.find_sent(conn, account, claimed.id)
            if result is None:
                copy = self._sent_copy(claimed, wire)
                stored_at = utcnow()
                appended = await conn.append(folders.sent, copy, flags=("\\Seen",),
                                             date=stored_at)
                if appended is not None:  # the record from what we stored: nothing read back
                    result = whole(account, folders.sent, appended.uidvalidity,
                                                    FetchItem(seq=0, uid=appended.uid,
                                                              flags=("\\Seen",),
                                                              internaldate=stored_at,
                                                              size=len(copy),
                                                              sections={"": copy}))
                else:
                    result = await self.drafts.store.find_sent(conn, account, claimed.id)
        await conn.select(claimed.folder, sync=False)  # no command if still selected
        await self.drafts.store.remove(conn, [claimed.uid])
        self.drafts.store.forget(account, claimed.id)
        if claimed.content.in_reply_to:
            await self._mark_original(conn, claimed.content.in_reply_to, "\\Answered")
        forwarded = claimed.header(FORWARDED_MESSAGE_ID)
        if forwarded:
            await self._mark_original(conn, forwarded, "$Forwarded")
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
        for name in APPROVAL_HEADERS:  # who asked, who approved: the audit trail stays
            value = claimed.header(name)
            if value:
                copy = set_header(copy, name, value)
        return copy

    async def _mark_original(self, conn: ImapConnection, message_id: str, flag: str) -> None:
        """Flags the message being replied to (``\\Answered``) or forwarded (``$Forwarded``),
        where it can be found (INBOX)."""
        mid = message_id.strip().strip("<>")
        with contextlib.suppress(MailbridgeError):
            await conn.select("INBOX")
            found = await conn.uid_search("HEADER", "Message-ID", search_string(f"<{mid}>"))
            if found.uids:
                await conn.uid_store(found.uids, "+FLAGS.SILENT", [flag])
