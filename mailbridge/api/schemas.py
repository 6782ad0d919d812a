"""The JSON both API dialects accept and return, as pydantic models.

Request models forbid unknown fields, so a misspelt field is an error naming it rather than a
silently ignored value. They check shapes and types only; what a value means (an address, base64,
a line break in a header, the configured size limits) is checked by
:mod:`mailbridge.api.conversion`, which turns a validated request into a
:class:`~mailbridge.model.DraftContent`.

Dialect 1 (Jasni, ``/api/v1``) is camelCase on the wire: its models use snake_case attribute names
with camelCase aliases, and responses are dumped with ``model_dump(mode="json", by_alias=True)``.
Dialect 2 (Exante, ``/api/email``) is snake_case throughout.

The OpenAPI document is built from these models (validation schemas of the request models,
serialization schemas of the response models).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    WrapValidator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError
from pydantic_core.core_schema import ValidatorFunctionWrapHandler

from mailbridge.model import Status

__all__ = [
    "AccountCheck",
    "ExanteAttachmentIn",
    "ExanteAttachmentOut",
    "ExanteDraft",
    "ExanteDraftList",
    "ExanteDraftUpsert",
    "ExanteError",
    "ExanteErrorBody",
    "HealthStatus",
    "JasniAccount",
    "JasniAccountList",
    "JasniAddress",
    "JasniAttachmentIn",
    "JasniAttachmentOut",
    "JasniDraft",
    "JasniDraftCreate",
    "JasniDraftData",
    "JasniDraftDeleted",
    "JasniDraftList",
    "JasniDraftSaved",
    "JasniDraftSummary",
    "JasniDraftUpdate",
    "JasniEmail",
    "JasniEmailAction",
    "JasniEmailChanged",
    "JasniEmailData",
    "JasniEmailDeleted",
    "JasniEmailList",
    "JasniEmailSummary",
    "JasniError",
    "JasniForwardRequest",
    "JasniForwarded",
    "JasniForwardedFrom",
    "JasniOk",
    "JasniRaw",
    "JasniReplied",
    "JasniReplyRequest",
    "JasniSendEmail",
    "JasniSendRequest",
    "JasniSent",
    "Readiness",
    "rfc3339",
]


# ----------------------------------------------------------------------------- shared types

def rfc3339(value: datetime) -> str:
    """``value`` as RFC 3339: UTC as ``...Z``, any other offset kept; whole seconds; always a
    four-digit year (``strftime("%Y")`` would write year 672 as ``672``)."""
    value = value.replace(microsecond=0)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if value.utcoffset() == UTC.utcoffset(None):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"
    return value.isoformat()


def _text_only(value: Any) -> Any:
    """Input times are strings with an offset (or aware datetimes built in code), never the
    Unix numbers pydantic would otherwise take."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a string: an RFC 3339 date-time with an offset")
    return value


def _plausible_year(value: datetime) -> datetime:
    if not 1970 <= value.astimezone(UTC).year <= 9999:
        raise ValueError("must be between 1970 and 9999")
    return value


PlannedTime = Annotated[AwareDatetime, BeforeValidator(_text_only), AfterValidator(_plausible_year),
                        WithJsonSchema({"type": "string", "format": "date-time"})]
"""An RFC 3339 date-time with an offset (``Z``, ``+hh:mm``), fractions of a second allowed,
between 1970 and 9999, on input (parsed by pydantic's AwareDatetime)."""

Timestamp = Annotated[
    datetime,
    PlainSerializer(rfc3339, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""An RFC 3339 date-time on output (UTC as ``Z``)."""


def _string_or_list(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise PydanticCustomError("string_or_list", "must be a string or a list of strings")


StringOrList = Annotated[str | list[str], WrapValidator(_string_or_list)]
"""One string (dialect 1: comma-separated addresses, space-separated Message-IDs) or a list."""


def _string_list(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise PydanticCustomError("string_list", "must be a list of strings")


StringList = Annotated[list[str], WrapValidator(_string_list)]

ContextValue = Annotated[str, Field(max_length=256)]


class _Request(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")


class _CamelRequest(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid", alias_generator=to_camel,
                              validate_by_alias=True,
                              validate_by_name=False)


class _Response(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True, validate_by_name=True, validate_by_alias=True)


class _CamelResponse(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True, alias_generator=to_camel, validate_by_name=True,
                              validate_by_alias=True, serialize_by_alias=True)


# ----------------------------------------------------------------------------- dialect 1: Jasni

class JasniAttachmentIn(_CamelRequest):
    """An attachment to store: its bytes base64-encoded (RFC 4648, standard alphabet, padded)."""

    filename: Annotated[str, Field(min_length=1, max_length=255)]
    content_type: str | None = None
    """MIME type such as ``application/pdf``; guessed from the filename when omitted."""
    data: str = Field(alias="content")


class _JasniDraftFields(_CamelRequest):
    to: StringOrList | None = None
    """One address, a comma-separated list, or a list; ``Name <a@b>`` accepted."""
    cc: StringOrList | None = None
    bcc: StringOrList | None = None
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    attachments: list[JasniAttachmentIn] | None = None
    in_reply_to: str | None = None
    """Message-ID of the message this replies to (with or without angle brackets)."""
    references: StringOrList | None = None
    """Message-IDs of the thread: a space-separated string or a list."""
    context_type: ContextValue | None = None
    context_id: ContextValue | None = None
    planned_send_at: PlannedTime | None = None
    """When set the draft is scheduled; null clears it."""


class JasniDraftCreate(_JasniDraftFields):
    """POST /api/v1/emails/drafts."""

    account: str | None = None
    """The account's email address or id; may be omitted when the token sees one account."""


class JasniDraftUpdate(_JasniDraftFields):
    """PUT /api/v1/emails/drafts/{uid}, or PUT /api/v1/emails/drafts with ``uid`` in the body
    (the Jasni SDK's form): only the fields given change (null clears one)."""

    account: str | None = None
    uid: int | UUID | None = None
    """The draft (its IMAP UID or stable id) when the path does not name it."""


class JasniSendEmail(_JasniDraftFields):
    """POST /api/v1/emails/send: a new message, sent at once (the Jasni SDK's emails.send)."""

    from_: str = Field(alias="from")
    """The account to send from: its email address (or configured id)."""
    reply_to: str | None = None
    """Where replies should go: one address, ``Name <a@b>`` accepted."""


class JasniReplyRequest(_CamelRequest):
    """POST /api/v1/emails/{uid}/reply: the reply's own words; the rest comes from the
    original."""

    text: str | None = None
    html: str | None = None
    reply_all: bool = False
    """Also to everybody the original went to (To and Cc), the account itself left out."""
    include_original: bool = True
    """Quote the original below the reply."""


class JasniForwardRequest(_CamelRequest):
    """POST /api/v1/emails/{uid}/forward: to whom, and the forwarder's own words."""

    to: StringOrList
    cc: StringOrList | None = None
    bcc: StringOrList | None = None
    text: str | None = None
    html: str | None = None
    include_original: bool = True
    """Put the original's text and html below the forwarder's (its attachments go anyway)."""


class JasniSendRequest(_CamelRequest):
    """POST /api/v1/emails/drafts/{uid}/send."""

    account: str | None = None


class JasniAddress(_CamelResponse):
    address: str
    name: str | None = None


class JasniAttachmentOut(_CamelResponse):
    filename: str
    content_type: str
    size: int


class JasniEmailSummary(_CamelResponse):
    """A list entry of GET /api/v1/emails. A message without a Message-ID or From has ``""``
    there, not null: the Jasni SDK's models want a string (a null failed the whole list)."""

    uid: int
    message_id: str
    from_: JasniAddress | str = Field(alias="from")
    to: list[JasniAddress]
    subject: str
    date: Timestamp
    seen: bool
    has_attachments: bool
    snippet: str
    flags: list[str]


class JasniEmail(JasniEmailSummary):
    """GET /api/v1/emails/{uid}: the whole message (bcc only for Drafts and Sent)."""

    cc: list[JasniAddress]
    bcc: list[JasniAddress] | None
    text: str | None
    html: str | None
    attachments: list[JasniAttachmentOut]
    in_reply_to: str | None
    references: str | None
    """Space-separated Message-IDs, as in the header."""


class Approval(BaseModel):
    """Who asked for a draft's send to be approved, and who decided, when, and why."""

    model_config = ConfigDict(use_attribute_docstrings=True)
    status: Literal["requested", "approved", "rejected"]
    requested_by: str | None
    """The name of the token that asked (``[[tokens]] name``)."""
    requested_at: Timestamp | None
    decided_by: str | None
    """The name of the token that approved or rejected it."""
    decided_at: Timestamp | None
    reason: str | None
    """Why it was rejected."""


class _JasniDraftExtra(_CamelResponse):
    id: UUID
    """The draft's stable id: never changes while the draft lives (the uid does)."""
    status: Status
    context_type: str | None
    context_id: str | None
    planned_send_at: Timestamp | None
    approval: Approval | None = Field(default=None, alias="approval")
    """The approval of its send, once one was asked for (snake_case inside, as dialect 2's)."""


class JasniDraftSummary(JasniEmailSummary, _JasniDraftExtra):
    """A list entry of GET /api/v1/emails/drafts."""

    text: str | None
    html: str | None


class JasniDraft(JasniEmail, _JasniDraftExtra):
    """GET /api/v1/emails/drafts/{uid}: the whole draft."""


class JasniDraftSaved(_CamelResponse):
    """data of a create (201) or update (200)."""

    uid: int
    id: UUID
    account: str
    message: str


class JasniSent(_CamelResponse):
    """data of a send: the message's UID in Sent (null when the account keeps no Sent copy,
    e.g. Gmail, whose submission files its own), its Message-ID, the account, and what the
    Jasni SDK reads: the sender, the recipients (to, as addresses), the subject, and whether a
    copy is in Sent."""

    uid: int | None
    message_id: str
    account: str
    message: str
    from_: str = Field(alias="from")
    to: list[str]
    cc: list[str]
    subject: str
    saved_to_sent: bool


class JasniReplied(JasniSent):
    """data of a reply: what was sent, and how it threads (what the Jasni SDK reads)."""

    in_reply_to: str
    references: str


class JasniForwardedFrom(_CamelResponse):
    uid: int
    from_: JasniAddress | str = Field(alias="from")
    subject: str
    date: Timestamp


class JasniForwarded(JasniSent):
    """data of a forward (what the Jasni SDK reads)."""

    forwarded_from: JasniForwardedFrom


class JasniDraftDeleted(_CamelResponse):
    uid: int
    account: str
    message: str


class JasniEmailAction(_CamelRequest):
    """PATCH /api/v1/emails/{uid}: what to do with the message."""

    action: Literal["read", "unread"]


class JasniEmailChanged(_CamelResponse):
    """data of PATCH /api/v1/emails/{uid}."""

    uid: int
    account: str
    folder: str
    seen: bool
    message: str


class JasniEmailDeleted(_CamelResponse):
    """data of DELETE /api/v1/emails/{uid}: where the message went (``moved_to`` is Trash, or
    null when it was deleted for good)."""

    uid: int
    account: str
    folder: str
    moved_to: str | None
    message: str


class JasniPreview(_CamelResponse):
    """data of GET /api/v1/emails/drafts/{uid}/preview: what a send would hand to SMTP now."""

    raw: str
    """The message (RFC 5322) as text: no Bcc, no X-Mailbridge-* header."""
    envelope_from: str
    """MAIL FROM."""
    envelope_to: list[str]
    """RCPT TO, in order: To, Cc and Bcc."""
    account: str


class RejectRequest(BaseModel):
    """Body of a reject: why."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=1000)
    """Why the draft may not be sent as it is (one line; kept in the draft)."""


class JasniApprovalAnswer(_CamelResponse):
    """data of a send that now awaits approval (202), an approval or a rejection."""

    uid: int
    id: UUID
    account: str
    status: Status
    message: str


class JasniRaw(_CamelResponse):
    """data of GET /api/v1/emails/{uid}/raw: the message's RFC 5322 source as text (UTF-8; a
    byte that is not UTF-8 reads as U+FFFD)."""

    raw: str
    uid: int
    account: str


class JasniAttachmentData(JasniAttachmentOut):
    """An attachment with its bytes: ``content`` is base64 (RFC 4648, padded), ``size`` the
    decoded size."""

    content: str


class JasniAttachmentList(_CamelResponse):
    """data of GET /api/v1/emails/{uid}/attachments: every attachment, in the order of the
    message's ``attachments``, with its bytes."""

    attachments: list[JasniAttachmentData]
    uid: int
    account: str


class JasniAttachmentOne(_CamelResponse):
    """data of GET /api/v1/emails/{uid}/attachments/{attachment} (as JSON)."""

    attachment: JasniAttachmentData
    uid: int
    account: str


class JasniThreadPreview(_CamelResponse):
    """One thread of GET /api/v1/emails/threads."""

    thread_id: str
    """The Message-ID of the conversation's first message (in this folder or not); ``uid:<UID>``
    for a message without any Message-ID."""
    subject: str
    """The subject of its oldest message here."""
    message_count: int
    unread_count: int
    last_message_date: Timestamp
    participants: list[JasniAddress]
    """Everyone in From, To and Cc of its messages, once each, in order of appearance."""
    snippet: str | None
    """The start of its newest message's text."""
    email_uids: list[int]
    """Its messages' UIDs, oldest first."""


class JasniThreadList(_CamelResponse):
    """data of GET /api/v1/emails/threads: the threads of the folder's ``limit`` newest messages,
    the most recently active first."""

    threads: list[JasniThreadPreview]
    folder: str
    total_threads: int
    total_emails: int


class JasniThread(_CamelResponse):
    """data of GET /api/v1/emails/threads/{threadId}: every message of the thread, oldest first."""

    thread_id: str
    subject: str
    participants: list[JasniAddress]
    message_count: int
    unread_count: int
    emails: list[JasniEmail]


class JasniDraftList(_CamelResponse):
    drafts: list[JasniDraftSummary]
    total: int
    account: str


class JasniDraftData(_CamelResponse):
    draft: JasniDraft


class JasniEmailList(_CamelResponse):
    emails: list[JasniEmailSummary]
    folder: str
    total: int
    account: str


class JasniEmailData(_CamelResponse):
    email: JasniEmail


# labels: snake_case, as the Jasni SDK reads them

LabelName = Annotated[str, Field(min_length=1, max_length=100)]


class JasniLabel(_Response):
    id: str
    """The IMAP keyword that marks the label's messages."""
    name: str
    color: str
    """``#rrggbb``."""
    description: str | None
    created_at: Timestamp
    email_count: int | None = None
    """With ``include_count=true``: messages carrying it, in every folder but Trash."""


class JasniLabelList(_Response):
    """data of GET /api/v1/labels."""

    labels: list[JasniLabel]
    total: int


class JasniLabelCreate(_Request):
    """POST /api/v1/labels."""

    name: LabelName
    color: str | None = None
    """``#rrggbb``; one is chosen from the name when omitted."""
    description: Annotated[str, Field(max_length=1000)] | None = None


class JasniLabelCreated(_Response):
    label: JasniLabel
    message: str


class JasniLabelDeleted(_Response):
    deleted_id: str
    deleted_name: str
    message: str


class JasniEmailLabel(JasniLabel):
    applied_by: str
    """Who applied it, as the caller said (``agent_name``) in the answer of the assignment;
    IMAP keeps no author of a keyword, so a list says ``""``."""
    applied_at: str
    """When, in the answer of the assignment; ``""`` in a list (IMAP keeps no time)."""
    metadata: dict[str, Any] | None = None


class JasniEmailLabels(_Response):
    """data of GET /api/v1/emails/{uid}/labels."""

    labels: list[JasniEmailLabel]
    message_id: str
    account: str


class JasniLabelAssign(_Request):
    """POST /api/v1/emails/{uid}/labels: labels by id, or by name (created when missing)."""

    label_ids: list[Annotated[str, Field(min_length=1, max_length=50)]] | None = None
    labels: list[LabelName] | None = None
    agent_name: Annotated[str, Field(max_length=200)] | None = None
    metadata: dict[str, Any] | None = None
    """Echoed in the answer; not stored."""


class JasniCreatedLabel(_Response):
    id: str
    name: str
    color: str


class JasniLabelsAssigned(_Response):
    labels: list[JasniEmailLabel]
    """Every label the message carries now."""
    created_labels: list[JasniCreatedLabel]
    message_id: str
    account: str
    message: str


class JasniLabelsRemoved(_Response):
    removed_count: int
    message_id: str
    message: str


# webhooks (snake_case in both dialects, as the Jasni SDK reads them)

WebhookUrl = Annotated[str, Field(min_length=1, max_length=2000)]
WebhookEvents = Annotated[list[Annotated[str, Field(max_length=100)]], Field(min_length=1, max_length=50)]
WebhookDescription = Annotated[str, Field(max_length=500)]


class Webhook(_Response):
    """A webhook subscription; ``secret`` only in the answer that created it."""

    id: UUID
    url: str
    events: list[str]
    active: bool
    description: str | None
    created_at: Timestamp
    updated_at: Timestamp | None
    secret: str | None = None
    """What deliveries are signed with. Keep it: it is shown only now."""


class WebhookCreate(_Request):
    url: WebhookUrl
    """http:// or https://, without user:password@."""
    events: WebhookEvents
    description: WebhookDescription | None = None


class WebhookUpdate(_Request):
    """The fields to change; a field left out or null is kept."""

    url: WebhookUrl | None = None
    events: WebhookEvents | None = None
    active: bool | None = None
    description: WebhookDescription | None = None


class JasniWebhookUpdate(WebhookUpdate):
    """PATCH /api/v1/webhooks: ``id`` in the body (the Jasni SDK's form), or in the path."""

    id: UUID | None = None


class JasniWebhookData(_Response):
    webhook: Webhook


class JasniWebhookList(_Response):
    webhooks: list[Webhook]


class JasniWebhookDeleted(_Response):
    id: str
    message: str


class WebhookAttempt(_Response):
    """One delivery attempt (of this instance: attempts live in its memory, the last 100 per
    subscription)."""

    event_id: str
    type: str
    attempt: int
    """1 for the first try of this event, 2 for the first retry..."""
    at: Timestamp
    status: int | None
    """The receiver's HTTP status; null when there was no answer (timeout, no connection)."""
    latency_ms: float
    outcome: Literal["delivered", "retrying", "failed"]
    error: str | None


class JasniWebhookDeliveries(_Response):
    deliveries: list[WebhookAttempt]


class ExanteWebhookDeliveries(_Response):
    items: list[WebhookAttempt]


class JasniEventBody(_Response):
    """What a dialect 1 (Jasni-signed) webhook delivery POSTs."""

    event: str
    """``email.sent``, ``email.deleted``..."""
    data: dict[str, Any]
    """The message as a list entry of ``GET /api/v1/emails`` shows it (``uid``, ``messageId``,
    ``from``, ``to``, ``subject``, ``date``...), plus ``account``, ``folder``, ``origin``
    (``api`` or ``mailbox``) and ``eventId`` (the same in every delivery of the event); for
    ``email.bounced`` the message is the Sent copy of what bounced, and ``bounce`` says more
    (as in dialect 2's ``data.bounce``)."""


class EventEmail(_Response):
    folder: str
    uid: int
    message_id: str | None
    from_: str | None = Field(alias="from")
    to: list[str]
    cc: list[str]
    subject: str
    date: Timestamp


class BouncedRecipient(_Response):
    address: str
    status: str | None
    """The RFC 3463 status code, e.g. ``5.1.1``."""
    diagnostic: str | None
    """What the receiving server said (Diagnostic-Code)."""


class EventBounce(_Response):
    dsn_uid: int
    """The UID of the delivery status notification in INBOX."""
    message_id: str
    """The Message-ID of the message that bounced."""
    recipients: list[BouncedRecipient]
    """The recipients it could not be delivered to."""


class StandardEventData(_Response):
    event_id: str
    """Also the ``webhook-id`` header: the same in every delivery of the event."""
    origin: Literal["api", "mailbox"]
    account: str
    draft: ExanteDraft | None = None
    """For ``draft.*`` events: the draft record (as it was, for ``draft.deleted``)."""
    email: EventEmail | None = None
    """For ``email.*`` events. Never the Bcc of a message that was received. For
    ``email.bounced``, the Sent copy of the message that bounced."""
    bounce: EventBounce | None = None
    """For ``email.bounced``: the delivery status notification that says so."""


class StandardEventBody(_Response):
    """What a dialect 2 (Standard Webhooks) delivery POSTs."""

    type: str
    timestamp: Timestamp
    data: StandardEventData


class ExanteWebhookList(_Response):
    items: list[Webhook]


class JasniAccount(_CamelResponse):
    id: UUID
    email: str
    name: str
    created_at: Timestamp = Field(alias="created_at")
    """``[[accounts]] created_at`` of the configuration, else when the configuration was read
    (snake_case, as the Jasni SDK reads it)."""


class JasniAccountList(_CamelResponse):
    accounts: list[JasniAccount]
    total: int


T = TypeVar("T", bound=BaseModel)


class JasniOk(_CamelResponse, Generic[T]):
    """The success envelope of dialect 1."""

    success: Literal[True] = True
    data: T


class JasniError(_CamelResponse):
    """The error envelope of dialect 1; ``field`` names the culprit when known."""

    success: Literal[False] = False
    error: str
    code: str
    field: str | None = None


# ----------------------------------------------------------------------------- dialect 2: Exante

class ExanteAttachmentIn(_Request):
    filename: Annotated[str, Field(min_length=1, max_length=255)]
    content_type: str | None = None
    """MIME type such as ``application/pdf``; guessed from the filename when omitted."""
    data: str = Field(alias="data_base64")


class ExanteDraftUpsert(_Request):
    """POST /api/email/drafts: create (no ``uid``) or update the fields given (``uid``)."""

    uid: UUID | None = None
    """The draft's stable id: present = update it, absent = create a new draft."""
    from_account_id: str | None = None
    """Account id (or email); required on create unless the token sees exactly one account."""
    to: StringList | None = None
    cc: StringList | None = None
    bcc: StringList | None = None
    subject: str | None = None
    text: str | None = Field(None, alias="body_text")
    html: str | None = Field(None, alias="body_html")
    attachments: list[ExanteAttachmentIn] | None = None
    context_type: ContextValue | None = None
    context_id: ContextValue | None = None
    planned_send_at: PlannedTime | None = None
    """RFC 3339 with offset; null clears it (the draft is no longer scheduled)."""


class _ExanteAnswer(_Request):
    from_account_id: str | None = None
    """The account the original is in, which the draft is sent from (id or email); may be
    omitted when the token may use exactly one account."""
    folder: Annotated[str, Field(min_length=1, max_length=1000)] = "INBOX"
    """The original's folder; ``Drafts``, ``Sent``, ``Trash``, ``Junk``, ``Archive`` (any case)
    mean the account's folder of that role."""
    message_uid: Annotated[int, Field(ge=1, le=4294967295)]
    """The original's IMAP UID in ``folder``."""
    text: str | None = Field(None, alias="body_text")
    """Your own words, above the original."""
    html: str | None = Field(None, alias="body_html")
    include_original: bool = True
    context_type: ContextValue | None = None
    context_id: ContextValue | None = None
    planned_send_at: PlannedTime | None = None


class ExanteReplyDraft(_ExanteAnswer):
    """POST /api/email/drafts/reply: a draft replying to a received message."""

    reply_all: bool = False
    """Also to everybody the original went to (To and Cc), the account itself left out."""


class ExanteForwardDraft(_ExanteAnswer):
    """POST /api/email/drafts/forward: a draft forwarding a received message, its attachments
    along."""

    to: StringList
    cc: StringList | None = None
    bcc: StringList | None = None


class ExanteAttachmentOut(_Response):
    filename: str
    content_type: str
    size: int


class ExanteDraft(_Response):
    """The draft record of dialect 2."""

    uid: UUID
    """The stable id of the draft (not the IMAP UID)."""
    from_account_id: UUID
    from_email: str
    to: list[str]
    cc: list[str]
    bcc: list[str]
    subject: str
    body_text: str | None
    body_html: str | None
    attachments: list[ExanteAttachmentOut]
    context_type: str | None
    context_id: str | None
    planned_send_at: Timestamp | None
    status: Status
    last_error: str | None
    message_id: str | None
    created_at: Timestamp
    updated_at: Timestamp
    approval: Approval | None = None
    """The approval of its send, once one was asked for."""


class ExanteDraftList(_Response):
    items: list[ExanteDraft]
    next_cursor: str | None


class ExanteErrorBody(_Response):
    code: str
    message: str
    field: str | None = None


class ExanteError(_Response):
    """The error shape of dialect 2 (and of paths outside both dialects)."""

    error: ExanteErrorBody


# ----------------------------------------------------------------------------- health

class HealthStatus(BaseModel):
    """GET /healthz: the process serves HTTP."""

    status: Literal["ok"]


class AccountCheck(BaseModel):
    """One configured account as GET /readyz found it (``code`` and ``error`` only on failure)."""

    id: UUID
    email: str
    imap: Literal["ok", "error"]
    code: str | None = None
    error: str | None = None


class Readiness(BaseModel):
    """GET /readyz: whether every configured account's IMAP server accepts the login."""

    status: Literal["ready", "unavailable"]
    accounts: list[AccountCheck]


# ----------------------------------------------------------------------------- MCP tools
# The results of the MCP tools at /mcp (mailbridge.api.mcp_tools): a draft is dialect 2's
# record (ExanteDraft); a message of any folder is shown with the same snake_case names.

class McpDraftDeleted(_Response):
    """delete_draft: the draft is gone."""

    uid: UUID
    deleted: Literal[True]


class McpEmailSummary(_Response):
    """A message of a folder as list_emails shows it (``from``: "" when it has none)."""

    uid: int
    """Its IMAP UID in ``folder``: what get_email and reply_draft take."""
    message_id: str | None
    from_: str = Field(alias="from")
    to: list[str]
    subject: str
    date: Timestamp
    seen: bool
    has_attachments: bool
    snippet: str


class McpEmail(McpEmailSummary):
    """get_email: the whole message (``bcc`` only in Drafts and Sent)."""

    folder: str
    cc: list[str]
    bcc: list[str] | None
    body_text: str | None
    body_html: str | None
    attachments: list[ExanteAttachmentOut]
    in_reply_to: str | None


class McpEmailList(_Response):
    """list_emails: the newest messages of a folder, newest first."""

    account: str
    folder: str
    total: int
    """How many messages the folder holds (not deleted)."""
    emails: list[McpEmailSummary]
