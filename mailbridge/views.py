"""What the API shows of a message: the stored message with its stable id, times and status,
and the list types (query, page, position). Pure, no I/O.

A draft's status is derived from the message alone: its send-state header, its planned time,
and whether a mail client saved it after mailbridge last wrote it (held).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from mailbridge.config import AccountConfig
from mailbridge.mime import snippet
from mailbridge.model import AttachmentInfo, DraftContent, ParsedMessage, Status

__all__ = [
    "EDITED_ELSEWHERE_AFTER",
    "HEADER_SEND_STATE",
    "ID_NAMESPACE",
    "DraftQuery",
    "Page",
    "PagePosition",
    "StoredMessage",
    "foreign_id",
    "has_flag",
    "is_held",
    "saved_elsewhere",
    "utcnow",
]

HEADER_SEND_STATE = "X-Mailbridge-Send-State"
"""``sending`` (claimed by a sender, see HEADER_LEASE), ``failed``, or ``sent`` (in Sent)."""
HEADER_APPROVAL = "X-Mailbridge-Approval"
"""``requested``, ``approved`` or ``rejected`` (mailbridge.approvals)."""
HEADER_REQUESTED_BY = "X-Mailbridge-Approval-Requested-By"
HEADER_REQUESTED_AT = "X-Mailbridge-Approval-Requested-At"
HEADER_DECIDED_BY = "X-Mailbridge-Approval-Decided-By"
HEADER_DECIDED_AT = "X-Mailbridge-Approval-Decided-At"
HEADER_REJECTION = "X-Mailbridge-Approval-Reason"
HEADER_APPROVED_DIGEST = "X-Mailbridge-Approved-Digest"
"""SHA-256 of the message an approval approved, as it would be delivered (Date aside): a send
of anything else waits for a new approval."""
APPROVAL_HEADERS = (HEADER_APPROVAL, HEADER_REQUESTED_BY, HEADER_REQUESTED_AT, HEADER_DECIDED_BY,
                    HEADER_DECIDED_AT, HEADER_REJECTION, HEADER_APPROVED_DIGEST)

ID_NAMESPACE = UUID("6d61696c-6272-6964-6765-000000000001")
"""uuid5 namespace of the stable ids given to drafts that other mail clients wrote."""

EDITED_ELSEWHERE_AFTER = timedelta(seconds=2)
"""mailbridge stores each version with INTERNALDATE = its X-Mailbridge-Updated-At (whole
seconds); an INTERNALDATE later than that by more than this means another client saved the
message since (a person edited the draft in a mail client)."""


def saved_elsewhere(updated: datetime | None, stored: datetime | None) -> bool:
    """Whether a message mailbridge last wrote at ``updated`` (X-Mailbridge-Updated-At) was
    saved again by another client since: its INTERNALDATE ``stored`` is later."""
    return updated is not None and stored is not None and stored > updated + EDITED_ELSEWHERE_AFTER


def is_held(planned: datetime, updated: datetime | None, stored: datetime | None) -> bool:
    """Whether a scheduled draft is held (Status.HELD): saved by another client at or after
    its planned time, so a person edited it while it was due."""
    return saved_elsewhere(updated, stored) and stored is not None and stored >= planned



def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)



@dataclass(frozen=True)
class StoredMessage:
    """A message as it stands on the server (a draft, or any message of a folder).

    ``parsed.content.attachments`` hold the bytes only when ``complete`` (loaded whole);
    ``attachments`` always describes them.
    """

    account: AccountConfig
    folder: str
    uid: int
    uidvalidity: int
    modseq: int | None
    flags: tuple[str, ...]
    size: int
    internaldate: datetime | None
    parsed: ParsedMessage
    attachments: tuple[AttachmentInfo, ...]
    kept_headers: tuple[tuple[str, str], ...]
    complete: bool
    raw: bytes = dataclasses.field(default=b"", repr=False)
    """The message as stored, when ``complete``."""

    @property
    def content(self) -> DraftContent:
        return self.parsed.content

    @property
    def id(self) -> UUID:
        """The stable id: X-Mailbridge-Id, else derived from the Message-ID (or the UID)."""
        if self.parsed.state is not None:
            return self.parsed.state.id
        return foreign_id(self.parsed.message_id, self.uidvalidity, self.uid)

    @property
    def seen(self) -> bool:
        return has_flag(self.flags, "\\Seen")

    @property
    def has_attachments(self) -> bool:
        return any(not a.inline for a in self.attachments)

    @property
    def snippet(self) -> str:
        return snippet(self.parsed.content)

    @property
    def date(self) -> datetime:
        """The message's date as lists show it: its Date header, else the server's arrival
        time (INTERNALDATE) when the header is missing or unreadable."""
        return self.parsed.date or self.internaldate or self.created_at

    @property
    def created_at(self) -> datetime:
        if self.parsed.state is not None:
            return self.parsed.state.created_at
        return self.parsed.date or self.internaldate or utcnow()

    @property
    def edited_elsewhere(self) -> bool:
        """True when another client saved this message after mailbridge last wrote it."""
        state = self.parsed.state
        return state is not None and saved_elsewhere(state.updated_at, self.internaldate)

    @property
    def updated_at(self) -> datetime:
        """When the draft last changed: mailbridge's last write, or a mail client's later save
        (its INTERNALDATE)."""
        if self.parsed.state is not None:
            if self.edited_elsewhere and self.internaldate is not None:
                return self.internaldate
            return self.parsed.state.updated_at
        return self.internaldate or self.parsed.date or utcnow()

    @property
    def last_error(self) -> str | None:
        return self.parsed.state.last_error if self.parsed.state is not None else None

    @property
    def status(self) -> Status:
        send_state = self.header(HEADER_SEND_STATE)
        if send_state == "sending":
            return Status.SENDING
        if send_state == "failed":
            return Status.FAILED
        if send_state == "sent":
            return Status.SENT
        approval = self.header(HEADER_APPROVAL)
        if approval == "requested":
            return Status.AWAITING_APPROVAL
        if approval == "rejected":
            return Status.REJECTED
        planned = self.content.planned_send_at
        if approval == "approved" and planned is None:
            return Status.APPROVED
        if planned is not None:
            state = self.parsed.state
            if state is not None and is_held(planned, state.updated_at, self.internaldate):
                return Status.HELD
            return Status.SCHEDULED
        return Status.DRAFT

    def header(self, name: str) -> str | None:
        """The value of one of the kept headers (mailbridge's own X-Mailbridge-* state among
        them), else None."""
        for n, v in self.kept_headers:
            if n.lower() == name.lower():
                return v
        return None

    @property
    def etag(self) -> str:
        """Changes whenever the message changes: replaced (new UID) or flags touched (MODSEQ)."""
        return f'"{self.uidvalidity}.{self.uid}.{self.modseq or 0}"'


@dataclass(frozen=True)
class PagePosition:
    """Where a page of a folder ended: the next page holds the UIDs below ``before_uid``, as
    long as the folder's UIDVALIDITY is still ``uidvalidity``."""

    uidvalidity: int
    before_uid: int


@dataclass(frozen=True)
class DraftQuery:
    """Filters and paging of a draft list; every filter is evaluated by IMAP SEARCH."""

    limit: int = 50
    after: PagePosition | None = None
    """Where the previous page ended (its ``next``); None for the first page."""
    context_type: str | None = None
    context_id: str | None = None
    status: Status | None = None
    recipient: str | None = None
    subject: str | None = None


@dataclass(frozen=True)
class Page:
    """One page of a list, newest first; ``next`` is None on the last page."""

    items: list[StoredMessage]
    total: int
    next: PagePosition | None


def foreign_id(message_id: str | None, uidvalidity: int, uid: int) -> UUID:
    """The stable id of a draft another client wrote: from its Message-ID when it has one."""
    if message_id:
        return uuid.uuid5(ID_NAMESPACE, message_id.strip().strip("<>").lower())
    return uuid.uuid5(ID_NAMESPACE, f"uid:{uidvalidity}:{uid}")


def has_flag(flags: Iterable[str], flag: str) -> bool:
    return any(f.lower() == flag.lower() for f in flags)
