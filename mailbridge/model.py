"""The draft as mailbridge's domain sees it: plain data, no I/O, no HTTP.

The API dialects translate their JSON into these objects and back; the MIME layer turns them
into RFC 5322 messages and back; DraftService stores them in IMAP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from uuid import UUID


class Status(StrEnum):
    """A draft's life: draft -> scheduled -> sending -> sent | failed.

    ``held``: scheduled, but saved by a mail client after its planned time (a person edited it
    while it was due): not sent until a new planned time or a send call releases it.
    ``awaiting_approval``: its send was asked for by a token that may not send, or in an
    account that requires approval; ``approved`` (briefly, while it is being sent, unless it
    is scheduled); ``rejected`` (kept, with the reason). See mailbridge.approvals."""

    DRAFT = "draft"
    SCHEDULED = "scheduled"
    HELD = "held"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True)
class Address:
    """One mailbox address with an optional display name (RFC 5322 ``name-addr``)."""

    email: str
    name: str = ""

    def __str__(self) -> str:
        """``Name <a@b>`` for people (the name quoted when it needs it), never RFC 2047 encoded;
        never raises (also for addresses read from other clients' messages)."""
        if not self.name:
            return self.email
        name = self.name
        if any(c in name for c in '()<>[]:;@\\,."'):
            name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{name} <{self.email}>"


@dataclass(frozen=True)
class Attachment:
    """A file attached to a draft; ``data`` holds the decoded bytes."""

    filename: str
    content_type: str
    data: bytes = field(repr=False)
    content_id: str | None = None
    """Set for inline parts (``Content-ID``), e.g. images an HTML body refers to as ``cid:``."""
    inline: bool = False
    mime_headers: tuple[bytes, ...] = field(default=(), compare=False, repr=False)
    """The part's Content-Type and Content-Disposition fields as read from a stored message
    (folding and all): a rewrite of the draft writes them back byte for byte, so parameters
    such as charset, format and name survive. Empty for attachments a caller gives."""

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class DraftContent:
    """Everything a caller can set on a draft (what a replace merges into)."""

    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    subject: str = ""
    text: str | None = None
    html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    context_type: str | None = None
    context_id: str | None = None
    planned_send_at: datetime | None = None
    """Aware datetime; when set the draft is scheduled."""


@dataclass(frozen=True)
class DraftState:
    """mailbridge's own bookkeeping, kept in X-Mailbridge-* headers of the mailbox copy.

    Never sent to recipients (the sender strips these headers).
    """

    id: UUID
    created_at: datetime
    updated_at: datetime
    last_error: str | None = None


@dataclass(frozen=True)
class ParsedMessage:
    """A message read back from the server: any message, whoever wrote it.

    ``state`` is None for messages mailbridge did not write (no X-Mailbridge-Id); the caller
    derives a stable id for those from the Message-ID.
    """

    content: DraftContent
    sender: Address | None
    message_id: str | None
    date: datetime | None
    state: DraftState | None
    draft_marker: bool
    """True when a mail client marked it as a draft in a header (Thunderbird's
    X-Mozilla-Draft-Info, Apple Mail's X-Uniform-Type-Identifier: com.apple.mail-draft)."""


@dataclass(frozen=True)
class AttachmentInfo:
    """What a listing says about an attachment without loading its bytes."""

    filename: str
    content_type: str
    size: int
    """Decoded size in bytes (exact when the message was loaded whole, else estimated from the
    encoded size the server reports)."""
    inline: bool = False
    content_id: str | None = None
