"""Between the dialects' validated input and the draft model: the DraftContent (or the changes of
an update) that DraftService takes, built from either dialect's names, within the limits; and
addresses as the dialects show them. Everything is checked here, so a bad request never reaches
the mail server and never leaves a partial draft."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import mimetypes
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from mailbridge.api.schemas import Approval, Webhook, WebhookAttempt
from mailbridge.config import Limits
from mailbridge.delivery import Attempt
from mailbridge.errors import InvalidInput, PayloadTooLarge, Unprocessable
from mailbridge.mime import check_header_value, parse_address_list
from mailbridge.mime.headers import parse_header_time
from mailbridge.model import Address, Attachment, DraftContent
from mailbridge.subscriptions import Subscription
from mailbridge.views import (
    HEADER_APPROVAL,
    HEADER_DECIDED_AT,
    HEADER_DECIDED_BY,
    HEADER_REJECTION,
    HEADER_REQUESTED_AT,
    HEADER_REQUESTED_BY,
    StoredMessage,
)

_CONTENT_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")
_MESSAGE_ID = re.compile(r"[\x21-\x3b\x3d\x3f-\x7e]+")  # printable ASCII without < and >



_PLAIN_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\U0010ffff-]+"
                         r"(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\U0010ffff-]+)*")


def format_address(address: Address) -> str:
    """``Name <a@b>`` (the name quoted when it needs to be), or ``a@b`` without a name.

    Unlike ``str(Address)`` (the email package's formatter) it never raises: internationalised
    local parts (RFC 6532) and odd addresses read from other clients' messages come out as is.
    What it returns reads back with :func:`mailbridge.mime.parse_address_list`.
    """
    if not address.name:
        return address.email
    name = address.name
    if not _PLAIN_NAME.fullmatch(name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{address.email}>"


def header_safe(field: str, value: str) -> str:
    """``value`` unchanged if it can go into a mail header; HeaderInjection (400) otherwise
    (see :func:`mailbridge.mime.check_header_value`)."""
    check_header_value(field, value)
    return value


@dataclass(frozen=True)
class RawAttachment:
    """An attachment as a request carries it, before its base64 is decoded."""

    filename: str
    content_type: str | None
    data: str


class Names:
    """How a dialect names the draft fields on the wire, for error messages: the aliases of its
    pydantic request model (and of the model of its ``attachments`` items), so that the model is
    the one place a dialect's names are written. A field the model lacks keeps its own name."""

    def __init__(self, model: type[BaseModel]) -> None:
        self._wire = _aliases(model)
        attachments = model.model_fields.get("attachments")
        item = _item_model(attachments.annotation) if attachments is not None else None
        if item is not None:
            self._wire.update(_aliases(item))

    def of(self, name: str) -> str:
        return self._wire.get(name, name)


def _aliases(model: type[BaseModel]) -> dict[str, str]:
    return {name: f.alias or name for name, f in model.model_fields.items()}


def _item_model(annotation: Any) -> type[BaseModel] | None:
    """The model inside ``list[Model] | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _item_model(arg)
        if found is not None:
            return found
    return None


@functools.cache
def names_of(model: type[BaseModel]) -> Names:
    return Names(model)


_DRAFT_FIELDS = tuple(f.name for f in dataclasses.fields(DraftContent))


@dataclass(frozen=True)
class DraftInput:
    """Validated request fields, keyed by DraftContent field name; only the fields given."""

    values: Mapping[str, Any]
    names: Names


def draft_input(body: BaseModel) -> DraftInput:
    """The draft fields a dialect's validated request body gives. Its model's attributes are
    named as DraftContent's fields (the wire names are their aliases), and its attachments as
    RawAttachment's, so one adapter serves both dialects."""
    values = {name: getattr(body, name) for name in _DRAFT_FIELDS
              if name in type(body).model_fields and name in body.model_fields_set}
    if values.get("attachments") is not None:
        values["attachments"] = [RawAttachment(a.filename, a.content_type, a.data)
                                 for a in values["attachments"]]
    return DraftInput(values, names_of(type(body)))


def draft_changes(given: DraftInput, limits: Limits) -> dict[str, Any]:
    """The DraftContent fields the request sets, checked and converted (an update's changes).

    A null clears a field. Raises InvalidInput / HeaderInjection (400) for bad addresses, bad
    base64 and line breaks in header values, InvalidInput 422 for too many recipients,
    PayloadTooLarge (413) beyond the configured body and attachment limits. Limits apply to
    what the request carries (fields an update keeps are not counted again).
    """
    names, values = given.names, given.values
    changes: dict[str, Any] = {}
    _count_recipients_roughly(values, names, limits)
    recipients = 0
    for key in ("to", "cc", "bcc"):
        if key in values:
            raw = values[key]
            parsed: tuple[Address, ...] = () if raw is None else tuple(
                parse_address_list(raw, names.of(key)))
            recipients += len(parsed)
            if recipients > limits.max_recipients:
                raise Unprocessable(f"too many recipients: at most {limits.max_recipients} in "
                                   "to, cc and bcc together", field=names.of(key))
            for i, address in enumerate(parsed):
                _short(f"{names.of(key)}[{i}]", address.name, limits)
            changes[key] = parsed
    if "subject" in values:
        subject = names.of("subject")
        changes["subject"] = _short(subject, header_safe(subject, values["subject"] or ""), limits)
    body = 0
    for key in ("text", "html"):
        if key in values:
            changes[key] = values[key]
            body += len(values[key].encode()) if values[key] is not None else 0
    if body > limits.max_body_bytes:
        biggest = max((k for k in ("text", "html") if changes.get(k)),
                      key=lambda k: len(changes[k]))
        raise PayloadTooLarge(f"text and html together exceed the limit of "
                              f"{limits.max_body_bytes} bytes", field=names.of(biggest))
    if "attachments" in values:
        changes["attachments"] = _attachments(values["attachments"] or (), names, limits)
    if "in_reply_to" in values:
        raw_id = values["in_reply_to"]
        changes["in_reply_to"] = None if raw_id in (None, "") \
            else _message_id(raw_id, names.of("in_reply_to"))
    if "references" in values:
        refs = values["references"]
        items = (refs.replace(",", " ").split() if isinstance(refs, str) else list(refs or ()))
        changes["references"] = tuple(
            _message_id(r, f"{names.of('references')}[{i}]" if not isinstance(refs, str)
                        else names.of("references")) for i, r in enumerate(items))
    for key in ("context_type", "context_id"):
        if key in values:
            value = values[key]
            changes[key] = None if value in (None, "") \
                else _short(names.of(key), header_safe(names.of(key), value), limits)
    if "planned_send_at" in values:
        planned: datetime | None = values["planned_send_at"]
        changes["planned_send_at"] = planned
    return changes


def _count_recipients_roughly(values: Mapping[str, Any], names: Names, limits: Limits) -> None:
    """Refuses a request with far too many recipients before any address is parsed (parsing
    100,000 of them would hold the event loop for seconds): a list counts its items, a string
    its "@" signs (a display name may hold one too, hence the slack). The exact count follows
    the parsing."""
    rough = 0
    for key in ("to", "cc", "bcc"):
        raw = values.get(key)
        if isinstance(raw, str):
            rough += raw.count("@") // 2
        elif isinstance(raw, list | tuple):
            rough += len(raw)
        if rough > limits.max_recipients:
            raise Unprocessable(f"too many recipients: at most {limits.max_recipients} in "
                               "to, cc and bcc together", field=names.of(key))


def _short(field: str, value: str, limits: Limits) -> str:
    """``value`` unless it is longer than ``max_header_chars`` (InvalidInput 422)."""
    if len(value) > limits.max_header_chars:
        raise Unprocessable(f"is longer than {limits.max_header_chars} characters", field=field)
    return value


def draft_content(given: DraftInput, limits: Limits) -> DraftContent:
    """A new draft's content from the request (what a create stores); see :func:`draft_changes`."""
    return DraftContent(**draft_changes(given, limits))


def _attachments(items: Sequence[RawAttachment], names: Names,
                 limits: Limits) -> tuple[Attachment, ...]:
    if len(items) > limits.max_attachments:
        raise Unprocessable(f"too many attachments: at most {limits.max_attachments}",
                           field=names.of("attachments"))
    result = []
    total = 0
    for i, item in enumerate(items):
        where = f"{names.of('attachments')}[{i}]"
        filename = _short(f"{where}.{names.of('filename')}",
                          header_safe(f"{where}.{names.of('filename')}", item.filename), limits)
        if "/" in filename or "\\" in filename or filename.strip(". ") == "":
            raise InvalidInput("the filename must be a plain file name, without a path",
                               field=f"{where}.{names.of('filename')}")
        content_type = _content_type(item.content_type, filename, f"{where}.{names.of('content_type')}")
        data_field = f"{where}.{names.of('data')}"
        # the decoded size is 3/4 of the encoded one: refuse before spending memory on it
        if len(item.data) // 4 * 3 > limits.max_attachment_bytes + 3:
            raise PayloadTooLarge(f"the attachment exceeds the limit of "
                                  f"{limits.max_attachment_bytes} bytes", field=data_field)
        try:
            data = base64.b64decode(item.data, validate=True)
        except (ValueError, binascii.Error):
            raise InvalidInput("not valid base64 (RFC 4648 standard alphabet, padded, "
                               "without line breaks)", field=data_field) from None
        if len(data) > limits.max_attachment_bytes:
            raise PayloadTooLarge(f"the attachment exceeds the limit of "
                                  f"{limits.max_attachment_bytes} bytes", field=data_field)
        total += len(data)
        if total > limits.max_draft_attachments_bytes:
            raise PayloadTooLarge(f"the attachments together exceed the limit of "
                                  f"{limits.max_draft_attachments_bytes} bytes",
                                  field=names.of("attachments"))
        result.append(Attachment(filename=filename, content_type=content_type, data=data))
    return tuple(result)


def _content_type(value: str | None, filename: str, where: str) -> str:
    if value is None or value.strip() == "":
        guessed, _ = mimetypes.guess_type(filename, strict=False)
        return guessed or "application/octet-stream"
    header_safe(where, value)
    value = value.strip()
    if not _CONTENT_TYPE.fullmatch(value):
        raise Unprocessable("must be a MIME type such as application/pdf (type/subtype, "
                           "no parameters)", field=where)
    return value.lower()


def _message_id(value: str, where: str) -> str:
    """A Message-ID as given (with or without angle brackets) -> the id without them (what
    DraftContent holds; the renderers add them back)."""
    header_safe(where, value)
    bare = value.strip()
    if bare.startswith("<") and bare.endswith(">"):
        bare = bare[1:-1]
    if not bare or len(bare) > 900 or not _MESSAGE_ID.fullmatch(bare):
        raise Unprocessable("must be a Message-ID such as <abc@example.com>", field=where)
    return bare


def message_id(value: str | None) -> str | None:
    """A Message-ID as it appears in a header, ``<id>`` (both dialects show it so)."""
    if not value:
        return None
    bare = value.strip().strip("<>")
    return f"<{bare}>" if bare else None


def webhook_view(sub: Subscription, *, with_secret: bool = False) -> Webhook:
    """A subscription as both dialects show it (the secret only when it was just made)."""
    return Webhook(id=sub.id, url=sub.url, events=list(sub.events), active=sub.active,
                   description=sub.description, created_at=sub.created_at,
                   updated_at=sub.updated_at, secret=sub.secret if with_secret else None)


def attempt_view(a: Attempt) -> WebhookAttempt:
    return WebhookAttempt(event_id=a.event_id, type=a.type, attempt=a.attempt, at=a.at,
                          status=a.status, latency_ms=a.latency_ms, outcome=a.outcome,
                          error=a.error)


def render_approval(m: StoredMessage) -> Approval | None:
    """The approval record a draft carries in its headers (mailbridge.approvals), if any."""
    status = m.header(HEADER_APPROVAL)
    if status not in ("requested", "approved", "rejected"):
        return None
    return Approval(status=typing.cast(Literal["requested", "approved", "rejected"], status),
                    requested_by=m.header(HEADER_REQUESTED_BY),
                    requested_at=parse_header_time(m.header(HEADER_REQUESTED_AT)),
                    decided_by=m.header(HEADER_DECIDED_BY),
                    decided_at=parse_header_time(m.header(HEADER_DECIDED_AT)),
                    reason=m.header(HEADER_REJECTION))
