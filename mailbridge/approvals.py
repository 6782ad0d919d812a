"""Approval: agents draft, people approve, kept in the draft itself.

A send asked for by a token that may write but not send, or of an account with
``require_approval = true``, does not deliver: it marks the draft ``awaiting_approval``. A
token with the ``approve`` scope then approves it (it is sent at once, or at its planned time)
or rejects it (it stays, ``rejected``, with the reason). The record travels in the draft's
own headers, which are never delivered (``X-Mailbridge-Approval``, ``-Approval-Requested-By``,
``-Requested-At``, ``-Decided-By``, ``-Decided-At``, ``-Reason``), and the Sent copy keeps them,
so the mailbox itself is the audit trail.

An approval approves one message: ``X-Mailbridge-Approved-Digest`` is the SHA-256 of the draft
as it would be delivered (Date aside). A change through the API sends an approved draft back to
review at once; a change anywhere else (a mail client) is found when the send compares the
digest, and sends it back to review then. Nothing that was not approved is ever delivered
while an approval is needed.

Why ``approve`` is a scope of its own, not ``send``: a token that sends directly (a billing
system on an account without approval) need not be one that may approve what an agent wrote,
and a reviewer's token need not be able to send anything it did not review.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING
from uuid import UUID

from mailbridge.config import AccountConfig
from mailbridge.drafts import Expected, check_writable
from mailbridge.errors import Conflict, NotApproved
from mailbridge.events import Event
from mailbridge.mime import strip_for_sending
from mailbridge.mime.headers import header_time
from mailbridge.model import DraftState, Status
from mailbridge.views import (
    HEADER_APPROVAL,
    HEADER_APPROVED_DIGEST,
    HEADER_DECIDED_AT,
    HEADER_DECIDED_BY,
    HEADER_REJECTION,
    HEADER_REQUESTED_AT,
    HEADER_REQUESTED_BY,
    StoredMessage,
    utcnow,
)

if TYPE_CHECKING:
    from mailbridge.sending import SendService

__all__ = ["ApprovalService", "check_approved", "digest"]

_DATE = re.compile(rb"^Date:[^\r\n]*\r?\n(?:[ \t][^\r\n]*\r?\n)*", re.MULTILINE | re.IGNORECASE)
REVIEWABLE = frozenset({Status.DRAFT, Status.SCHEDULED, Status.HELD, Status.AWAITING_APPROVAL,
                        Status.REJECTED, Status.APPROVED, Status.FAILED})


def digest(raw: bytes) -> str:
    """The SHA-256 of the message ``raw`` as a send delivers it (no Bcc, no X-Mailbridge-*),
    without its Date."""
    return hashlib.sha256(_DATE.sub(b"", strip_for_sending(raw), count=1)).hexdigest()


def check_approved(current: StoredMessage, account: AccountConfig,
                   raw: Callable[[], bytes]) -> None:
    """Raises NotApproved unless ``current`` may be sent as ``raw()`` (the version a send is
    about to write): approved for exactly that message, or needing no approval."""
    approval = current.header(HEADER_APPROVAL)
    if approval == "requested":
        raise NotApproved("the draft awaits approval")
    if approval == "rejected":
        raise NotApproved("the draft was rejected; it is sent only once approved")
    if approval == "approved":
        if current.header(HEADER_APPROVED_DIGEST) != digest(raw()):
            raise NotApproved("the draft changed since it was approved; it awaits approval "
                              "again", unrequested=True)
        return
    if account.require_approval:
        raise NotApproved(f"{account.email} requires approval for every send", unrequested=True)


class ApprovalService:
    """Requests, approvals and rejections of drafts' sends."""

    def __init__(self, sending: SendService) -> None:
        self.sending = sending
        self.drafts = sending.drafts

    async def request(self, account: AccountConfig, ref: UUID | int, *, by: str,
                      expected: Expected | None = None) -> StoredMessage:
        """Marks the draft ``awaiting_approval`` (asked for by ``by``, a token's name); one
        that awaits it already is returned as it is. A draft that could not be sent (no valid
        recipient) is refused now, as a send would refuse it."""
        async with self.drafts.store.pool(account).connection() as conn:
            current = await self.drafts.store.load(conn, account, ref)
            check_writable(current, expected, "sent")
            if current.status is Status.AWAITING_APPROVAL:
                return current
            self._check_state(current, "sent")
            self.sending.recipients(current)
            new = await self.drafts.write_version(
                conn, current, current.content, last_error=None, strict=expected is not None,
                own_headers={HEADER_APPROVAL: "requested", HEADER_REQUESTED_BY: by,
                             HEADER_REQUESTED_AT: header_time(utcnow()),
                             HEADER_DECIDED_BY: None, HEADER_DECIDED_AT: None,
                             HEADER_REJECTION: None, HEADER_APPROVED_DIGEST: None})
        self.drafts.events.emit(Event("draft.approval_requested", account, new))
        return new

    async def approve(self, account: AccountConfig, ref: UUID | int, *, by: str,
                      expected: Expected | None = None) -> StoredMessage:
        """Approves the draft as it is now (by ``by``), then sends it, or leaves it to the
        scheduler when it has a planned time. Returns the sent (or scheduled) draft."""
        async with self.drafts.store.pool(account).connection() as conn:
            current = await self.drafts.store.load(conn, account, ref)
            check_writable(current, expected, "approved")
            self._check_state(current, "approved")
            self.sending.recipients(current)
            state = DraftState(id=current.id, created_at=current.created_at,
                               updated_at=utcnow(), last_error=None)
            approved = await self.drafts.write_version(
                conn, current, current.content, last_error=None, strict=expected is not None,
                own_headers={HEADER_APPROVAL: "approved", HEADER_DECIDED_BY: by,
                             HEADER_DECIDED_AT: header_time(utcnow()), HEADER_REJECTION: None,
                             HEADER_APPROVED_DIGEST: digest(self.drafts.version_raw(
                                 current, current.content, state, {}))})
        self.drafts.events.emit(Event("draft.approved", account, approved))
        if approved.content.planned_send_at is not None:
            return approved
        return await self.sending.send(account, approved.id)

    async def reject(self, account: AccountConfig, ref: UUID | int, *, by: str, reason: str,
                     expected: Expected | None = None) -> StoredMessage:
        """Rejects the draft's send (by ``by``, for ``reason``): it stays, ``rejected``."""
        async with self.drafts.store.pool(account).connection() as conn:
            current = await self.drafts.store.load(conn, account, ref)
            check_writable(current, expected, "rejected")
            self._check_state(current, "rejected")
            rejected = await self.drafts.write_version(
                conn, current, current.content, last_error=None, strict=expected is not None,
                own_headers={HEADER_APPROVAL: "rejected", HEADER_DECIDED_BY: by,
                             HEADER_DECIDED_AT: header_time(utcnow()),
                             HEADER_REJECTION: " ".join(reason.split()),
                             HEADER_APPROVED_DIGEST: None})
        self.drafts.events.emit(Event("draft.rejected", account, rejected))
        return rejected

    async def send_or_request(self, account: AccountConfig, ref: UUID | int, *, by: str,
                              may_send: bool, expected: Expected | None = None,
                              idempotency_key: str | None = None) -> tuple[StoredMessage, bool]:
        """A caller's send: sends the draft when the caller ``may_send`` (its token has the send
        scope) and no approval is needed, else puts it up for approval. Returns the draft and
        whether it was sent (False: it awaits approval)."""
        if not may_send:
            return await self.request(account, ref, by=by, expected=expected), False
        try:
            return await self.sending.send(account, ref, expected=expected,
                                           idempotency_key=idempotency_key, requester=by), True
        except NotApproved as exc:
            if exc.awaiting is not None:  # put up for approval by this very call
                return exc.awaiting, False
            draft = await self.drafts.get(account, ref)
            if draft.status is not Status.AWAITING_APPROVAL:
                raise
            return draft, False

    @staticmethod
    def _check_state(current: StoredMessage, action: str) -> None:
        if current.status not in REVIEWABLE:
            raise Conflict(f"a draft that is {current.status.value} cannot be {action}")
