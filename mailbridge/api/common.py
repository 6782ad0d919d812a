"""What both API dialects share: authentication per request, JSON bodies within the size limits,
ETag / If-Match / Idempotency-Key, query parameters, and turning validated input into the
DraftContent (or the changes of an update) that DraftService takes.

Everything a request carries is checked here before DraftService is called, so a bad request
never reaches the mail server and never leaves a partial draft. Each problem is raised as the
:mod:`mailbridge.errors` class whose HTTP meaning fits, with ``field`` named as the caller wrote
it (``attachments[1].content``, ``plannedSendAt``...); the error middleware of
:mod:`mailbridge.api.app` renders it in the dialect's shape.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import mimetypes
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ValidationError

from mailbridge.api.keys import AUTH, CONFIG
from mailbridge.auth import Principal
from mailbridge.config import AccountConfig, Limits, Scope
from mailbridge.drafts import Expected
from mailbridge.errors import HeaderInjection, InvalidInput, PayloadTooLarge, Unprocessable
from mailbridge.mime import check_header_value, parse_address_list
from mailbridge.model import Address, Attachment, DraftContent
from mailbridge.views import PagePosition, StoredMessage

M = TypeVar("M", bound=BaseModel)

BODY_DIGEST = web.RequestKey("body_digest", str)
"""Request key: a digest of the JSON body read (for Idempotency-Key)."""
_EMPTY_DIGEST = hashlib.sha256(b"").hexdigest()[:16]

MAX_IDEMPOTENCY_KEY = 200
MAX_FOLDER_NAME = 1000
MAX_UID = 2**32 - 1

# str.splitlines() breaks at these too, and so does the email package when it folds a header:
# any of them in a header value could start a header of its own.
_LINE_BREAKS = frozenset("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")
_MESSAGE_ID = re.compile(r"[\x21-\x3b\x3d\x3f-\x7e]+")  # printable ASCII without < and >


class MalformedJson(InvalidInput):
    """The request body is not JSON, or not a JSON object."""

    code = "malformed_json"


class UnsupportedMediaType(InvalidInput):
    """The request body is declared as something other than JSON."""

    code = "unsupported_media_type"

    def __init__(self, message: str) -> None:
        super().__init__(message, field="Content-Type")


class UnreadableBody(InvalidInput):
    """The request body could not be read as sent (a Content-Encoding it does not follow).
    Where it ends is unknown then, so the connection is closed after the answer."""

    close_connection = True


class RequestTimeout(UnreadableBody):
    """The request body did not arrive within ``request_timeout_seconds`` (408)."""

    code = "request_timeout"


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads' object_pairs_hook: an object naming one key twice is refused (RFC 8259 4:
    the names "SHOULD be unique"; which value a reader keeps is anyone's guess)."""
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def _json_depth(text: str) -> int:
    """How deep the arrays and objects of the JSON ``text`` nest, found without parsing it
    (strings dropped by one regex, then the brackets counted)."""
    depth = deepest = 0
    for m in _JSON_BRACKET.finditer(_JSON_STRING.sub("", text)):
        if m.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


_MANY_VALUES = 100_000
"""Bodies with more commas than this (values, roughly) are parsed in a worker thread: a parse
of 40 MB of short values takes long enough to stall other requests, and the GIL still switches
every few milliseconds there. Other bodies, attachments among them, are parsed inline: a long
string parses fast (27 MB of base64 in ~13 ms), and a worker thread's malloc arena would keep
what it allocated (peak RSS of a 20 MB attachment upload 3.7x -> 6.5x its size)."""


def _parse_json(raw: bytearray, max_depth: int) -> tuple[Any, bool]:
    """``raw`` decoded and parsed (ValueError / _DuplicateKey / MalformedJson for bad input),
    and whether it has \\u escapes (only those can make a lone surrogate); the nesting is
    checked before the parse."""
    text = raw.decode("utf-8")
    if text.count("[") + text.count("{") > max_depth and _json_depth(text) > max_depth:
        raise MalformedJson(f"the JSON body nests arrays and objects deeper than {max_depth} "
                            "levels")
    return json.loads(text, object_pairs_hook=_refuse_duplicates), "\\u" in text


def _is_json_media_type(value: str) -> bool:
    media = value.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/")
                                           and media.endswith("+json"))


class UnknownField(InvalidInput):
    """The request names a field the call does not have (often a misspelling)."""

    code = "unknown_field"


# ----------------------------------------------------------------------------- authentication

def authorize(request: web.Request, scope: Scope) -> Principal:
    """The caller behind the request's bearer token, if it has ``scope``.

    Raises Unauthorized (401) without a valid token, Forbidden (403) without the scope.
    """
    principal = request.app[AUTH].authenticate(request.headers.get("Authorization"))
    principal.require(scope)
    return principal


def resolve_account(principal: Principal, ref: str | None, field: str) -> AccountConfig:
    """The account ``ref`` (id or email) the token may use; NotFound for any other.

    ``ref`` may be omitted when the token sees exactly one account; otherwise its absence is a 422.
    """
    if ref is None or ref == "":
        if len(principal.accounts) != 1:
            raise Unprocessable(f"{field} is required (this token may use several accounts)",
                               field=field)
        return principal.accounts[0]
    return principal.account(ref, field=field)


def limits_of(request: web.Request) -> Limits:
    return request.app[CONFIG].server.limits


# ----------------------------------------------------------------------------- request bodies

async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body parsed as a JSON object.

    Raises UnsupportedMediaType (415) for a body declared as anything but JSON (no
    Content-Type is taken as JSON), PayloadTooLarge (413) beyond ``max_request_bytes``,
    MalformedJson (400) for anything but a JSON object (including text that is not UTF-8,
    strings with lone surrogates, a key given twice, nesting deeper than ``max_json_depth``).
    """
    declared = request.headers.get("Content-Type")
    if declared is not None and not _is_json_media_type(declared):
        raise UnsupportedMediaType("the request body must be JSON (Content-Type: "
                                   "application/json)")
    limits = limits_of(request)
    raw = await _read_body(request, limits.max_request_bytes)
    if "Idempotency-Key" in request.headers:
        request[BODY_DIGEST] = hashlib.sha256(raw).hexdigest()[:16]
    if not raw.strip():
        raise MalformedJson("the request body must be a JSON object; it is empty")
    try:
        if raw.count(b",") > _MANY_VALUES:  # in a thread: other requests are served meanwhile
            data, escapes = await asyncio.to_thread(_parse_json, raw, limits.max_json_depth)
        else:
            data, escapes = _parse_json(raw, limits.max_json_depth)
        del raw
    except _DuplicateKey as exc:
        raise MalformedJson(f"the key {exc.key!r} appears twice in one object",
                            field=exc.key) from None
    except (ValueError, RecursionError) as exc:
        detail = f": {exc.msg} at line {exc.lineno} column {exc.colno}" \
            if isinstance(exc, json.JSONDecodeError) else ""
        raise MalformedJson(f"the request body is not valid JSON{detail}") from None
    if not isinstance(data, dict):
        raise MalformedJson(f"the request body must be a JSON object, not {_json_type(data)}")
    bad = _first_bad_string(data, "") if escapes else None
    if bad is not None:
        raise InvalidInput("text is not valid Unicode (a lone surrogate escape)", field=bad or None)
    return data


async def _read_body(request: web.Request, limit: int) -> bytearray:
    """The request body, read from the stream into one buffer (aiohttp's request.read() would
    keep a cached copy for the whole request). PayloadTooLarge beyond ``limit`` bytes,
    UnreadableBody when it does not follow its Content-Encoding, RequestTimeout when it does not
    arrive within ``request_timeout_seconds``."""
    def too_large() -> PayloadTooLarge:
        return PayloadTooLarge(f"the request body exceeds the limit of {limit} bytes")

    declared = request.content_length
    if declared is not None and declared > limit:
        raise too_large()
    body = bytearray(min(declared or 0, limit))
    filled = 0
    timeout = limits_of(request).request_timeout_seconds
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.content.iter_chunked(1 << 20):
                end = filled + len(chunk)
                if end > limit:
                    raise too_large()
                if end <= len(body):
                    body[filled:end] = chunk
                else:
                    del body[filled:]
                    body += chunk
                filled = end
    except web.RequestPayloadError:  # a Content-Encoding the body does not follow, mostly
        encoding = request.headers.get("Content-Encoding")
        raise UnreadableBody(f"the request body could not be read as sent (Content-Encoding: "
                             f"{encoding or 'none'})", field="Content-Encoding") from None
    except TimeoutError:
        raise RequestTimeout(f"the request body did not arrive within {timeout:g}s") from None
    del body[filled:]
    return body


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return "a number"


def _first_bad_string(value: Any, path: str) -> str | None:
    """The path of the first string (or key) that cannot be encoded as UTF-8, else None."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if not _is_unicode(item):
                return where
        elif isinstance(item, dict):
            for k, v in item.items():
                sub = f"{where}.{k}" if where else str(k)
                if not _is_unicode(k):
                    return where
                stack.append((v, sub))
        elif isinstance(item, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(item))
    return None


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def field_path(loc: Sequence[int | str]) -> str:
    """A pydantic error location as the caller wrote it: ``attachments[0].content``."""
    text = ""
    for step in loc:
        if isinstance(step, int):
            text += f"[{step}]"
        else:
            text += f".{step}" if text else step
    return text


def validate_body(model: type[M], data: Mapping[str, Any]) -> M:
    """``data`` validated as ``model``.

    An unknown field is UnknownField (400); a missing field or a value of the wrong type or form
    is InvalidInput with status 422. Either names the field; the first problem is reported.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        unknown = [e for e in errors if e["type"] == "extra_forbidden"]
        if unknown:
            where = field_path(unknown[0]["loc"])
            raise UnknownField(f"unknown field {where!r}", field=where) from None
        first = errors[0]
        where = field_path(first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "missing":
            message = "is required"
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise Unprocessable(f"{where}: {message}{more}" if where else message + more,
                           field=where or None) from None


# ----------------------------------------------------------------------------- headers

def idempotency_key(request: web.Request, principal: Principal) -> str | None:
    """The request's Idempotency-Key as DraftService and SendService take it, None when absent:
    the key scoped to the token and hashed, a space, and a digest of the request body (see
    :func:`mailbridge.drafts.check_same_request`), so that a key reused with another request is
    told from a retry.

    The key must be 1-200 printable ASCII characters (InvalidInput 400 otherwise). Two tokens
    using the same key never see each other's drafts.
    """
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not all(" " <= c <= "~" for c in key):
        raise InvalidInput(f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable ASCII "
                           "characters", field="Idempotency-Key")
    scoped = hashlib.sha256(f"{principal.name}:{key}".encode()).hexdigest()[:32]
    return f"{scoped} {request.get(BODY_DIGEST, _EMPTY_DIGEST)}"


def if_match(request: web.Request) -> Expected | None:
    """The versions the If-Match header (RFC 9110 13.1.1) allows: ``*`` (any), or a
    comma-separated list of entity tags (weak ones never match); None without the header. The
    services answer 412 when the draft is at another version."""
    value = request.headers.get("If-Match")
    if value is None:
        return None
    if not value.strip():
        raise InvalidInput("If-Match is empty; send the ETag of the draft or *", field="If-Match")
    tags = [t.strip() for t in value.split(",")]
    if "*" in tags:
        return Expected()
    return Expected(frozenset(t for t in tags if not t.startswith("W/")))


def with_etag(response: web.Response, draft: StoredMessage) -> web.Response:
    response.headers["ETag"] = draft.etag
    return response


# ----------------------------------------------------------------------------- query and path

def query_text(request: web.Request, name: str) -> str | None:
    """Query parameter ``name`` (None when absent or empty); no line breaks or NUL allowed."""
    value = request.query.get(name)
    if value is None or value == "":
        return None
    header_safe(name, value)
    return value


def query_limit(request: web.Request, name: str = "limit", default: int = 50,
                maximum: int = 100) -> int:
    """Query parameter ``name`` as an integer 1..``maximum``; InvalidInput (400) otherwise."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.strip().isdigit():
        raise InvalidInput(f"{name} must be an integer from 1 to {maximum}", field=name)
    value = int(raw.strip())
    if not 1 <= value <= maximum:
        raise InvalidInput(f"{name} must be an integer from 1 to {maximum}", field=name)
    return value


def encode_cursor(position: PagePosition | None) -> str | None:
    """The opaque ``next_cursor`` a caller passes back for the next page."""
    if position is None:
        return None
    raw = f"{position.uidvalidity}:{position.before_uid}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def query_cursor(request: web.Request, name: str = "cursor") -> PagePosition | None:
    """The paging cursor, one this service handed out (InvalidInput 400 for anything else)."""
    value = request.query.get(name)
    if value is None or value == "":
        return None
    try:
        if len(value) > 100:
            raise ValueError(value)
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        validity, before = raw.split(":")
        return PagePosition(int(validity), int(before))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("cursor is not one this service handed out", field=name) from None


def query_folder(request: web.Request, default: str = "INBOX") -> str:
    """The ``folder`` parameter: any mailbox name, without line breaks or NUL."""
    folder = request.query.get("folder") or default
    if len(folder) > MAX_FOLDER_NAME or any(c in _LINE_BREAKS or c == "\0" for c in folder) \
            or not _is_unicode(folder):
        raise InvalidInput("folder is not a usable mailbox name", field="folder")
    return folder


def parse_ref(text: str, *, integers: bool, field: str = "uid") -> UUID | int:
    """A draft reference from a path: an IMAP UID (when ``integers``) or a stable UUID.

    Raises InvalidInput (400) for anything else.
    """
    if integers and text.isascii() and text.isdigit():
        uid = int(text)
        if 1 <= uid <= MAX_UID:
            return uid
        raise InvalidInput(f"{field} must be an IMAP UID (1..{MAX_UID}) or a draft id",
                           field=field)
    try:
        return UUID(text)
    except ValueError:
        expected = "an IMAP UID or a draft id (UUID)" if integers else "a draft id (UUID)"
        raise InvalidInput(f"{field} must be {expected}", field=field) from None


def parse_draft_id(text: str, field: str = "uid") -> UUID:
    """A draft's stable id (UUID) from a path; InvalidInput (400) for anything else."""
    try:
        return UUID(text)
    except ValueError:
        raise InvalidInput(f"{field} must be a draft id (UUID)", field=field) from None


def parse_uid(text: str, field: str = "uid") -> int:
    """An IMAP UID from a path; InvalidInput (400) for anything else."""
    if text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_UID:
        return int(text)
    raise InvalidInput(f"{field} must be an IMAP UID (1..{MAX_UID})", field=field)


# ----------------------------------------------------------------------------- addresses out

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


# ----------------------------------------------------------------------------- draft content

def header_safe(field: str, value: str) -> str:
    """``value`` unchanged if it can go into a mail header; HeaderInjection (400) otherwise."""
    check_header_value(field, value)
    if any(c in _LINE_BREAKS or c == "\0" for c in value):
        raise HeaderInjection(f"{field} must not contain a line break or NUL character",
                              field=field)
    return value


@dataclass(frozen=True)
class RawAttachment:
    """An attachment as a request carries it, before its base64 is decoded."""

    filename: str
    content_type: str | None
    data: str


@dataclass(frozen=True)
class Names:
    """How a dialect names the draft fields on the wire (for error messages)."""

    to: str = "to"
    cc: str = "cc"
    bcc: str = "bcc"
    subject: str = "subject"
    text: str = "text"
    html: str = "html"
    attachments: str = "attachments"
    filename: str = "filename"
    content_type: str = "contentType"
    data: str = "content"
    in_reply_to: str = "inReplyTo"
    references: str = "references"
    context_type: str = "contextType"
    context_id: str = "contextId"
    planned_send_at: str = "plannedSendAt"

    def of(self, name: str) -> str:
        wire: str = getattr(self, name)
        return wire


JASNI_NAMES = Names()
EXANTE_NAMES = Names(text="body_text", html="body_html", content_type="content_type",
                     data="data_base64", in_reply_to="in_reply_to", context_type="context_type",
                     context_id="context_id", planned_send_at="planned_send_at")


@dataclass(frozen=True)
class DraftInput:
    """Validated request fields, keyed by DraftContent field name; only the fields given."""

    values: Mapping[str, Any]
    names: Names = field(default_factory=Names)


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
        changes["subject"] = _short(names.subject, header_safe(names.subject, values["subject"] or ""),
                                    limits)
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
            else _message_id(raw_id, names.in_reply_to)
    if "references" in values:
        refs = values["references"]
        items = (refs.replace(",", " ").split() if isinstance(refs, str) else list(refs or ()))
        changes["references"] = tuple(
            _message_id(r, f"{names.references}[{i}]" if not isinstance(refs, str)
                        else names.references) for i, r in enumerate(items))
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
                           field=names.attachments)
    result = []
    total = 0
    for i, item in enumerate(items):
        where = f"{names.attachments}[{i}]"
        filename = _short(f"{where}.{names.filename}",
                          header_safe(f"{where}.{names.filename}", item.filename), limits)
        if "/" in filename or "\\" in filename or filename.strip(". ") == "":
            raise InvalidInput("the filename must be a plain file name, without a path",
                               field=f"{where}.{names.filename}")
        content_type = _content_type(item.content_type, filename, f"{where}.{names.content_type}")
        data_field = f"{where}.{names.data}"
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
                                  field=names.attachments)
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
