"""What a request says besides its body: the Idempotency-Key, If-Match and ETag headers, query
parameters (limits, cursors, folders) and path ids, each checked and turned into the value the
services take."""

from __future__ import annotations

import base64
import binascii
import hashlib
from uuid import UUID

from aiohttp import web

from mailbridge.api.bodies import BODY_DIGEST, EMPTY_DIGEST
from mailbridge.auth import Principal
from mailbridge.drafts import Expected
from mailbridge.errors import InvalidInput
from mailbridge.mime import LINE_BREAKS, check_header_value
from mailbridge.mime.decoding import SURROGATE
from mailbridge.model import Status
from mailbridge.views import PagePosition, StoredMessage

MAX_IDEMPOTENCY_KEY = 200
MAX_FOLDER_NAME = 1000
MAX_UID = 2**32 - 1
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
"""Page sizes of every list call."""



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
    return scoped_key(principal, key, request.get(BODY_DIGEST, EMPTY_DIGEST))


def scoped_key(principal: Principal, key: str, digest: str,
               field: str = "Idempotency-Key") -> str:
    """An idempotency key ``key`` (named ``field``) of a request whose digest is ``digest``,
    as the services take it (see :func:`idempotency_key`)."""
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not all(" " <= c <= "~" for c in key):
        raise InvalidInput(f"{field} must be 1-{MAX_IDEMPOTENCY_KEY} printable ASCII "
                           "characters", field=field)
    scoped = hashlib.sha256(f"{principal.name}:{key}".encode()).hexdigest()[:32]
    return f"{scoped} {digest}"


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


def query_text(request: web.Request, name: str) -> str | None:
    """Query parameter ``name`` (None when absent or empty); no line breaks or NUL allowed."""
    value = request.query.get(name)
    if value is None or value == "":
        return None
    check_header_value(name, value)
    return value


def query_bool(request: web.Request, name: str) -> bool:
    """Query parameter ``name`` as a boolean: ``true``/``1``/``yes`` or ``false``/``0``/``no``
    (any case), false when absent; InvalidInput (400) otherwise."""
    raw = (request.query.get(name) or "").strip().lower()
    if raw in ("", "false", "0", "no"):
        return False
    if raw in ("true", "1", "yes"):
        return True
    raise InvalidInput(f"{name} must be true or false", field=name)


def query_limit(request: web.Request, name: str = "limit", default: int = DEFAULT_LIMIT,
                maximum: int = MAX_LIMIT) -> int:
    """Query parameter ``name`` as an integer 1..``maximum``; InvalidInput (400) otherwise."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.strip().isdigit():
        raise InvalidInput(f"{name} must be an integer from 1 to {maximum}", field=name)
    return check_limit(int(raw.strip()), name, maximum)


def check_limit(value: int, name: str = "limit", maximum: int = MAX_LIMIT) -> int:
    """``value`` if it is a page size 1..``maximum``; InvalidInput (400) otherwise."""
    if not 1 <= value <= maximum:
        raise InvalidInput(f"{name} must be an integer from 1 to {maximum}", field=name)
    return value


def parse_status(text: str | None, name: str = "status") -> Status | None:
    """A draft status filter (None for none); InvalidInput (400) for an unknown one."""
    if text is None:
        return None
    try:
        return Status(text)
    except ValueError:
        raise InvalidInput(f"{name} must be one of: {', '.join(s.value for s in Status)}",
                           field=name) from None


def encode_cursor(position: PagePosition | None) -> str | None:
    """The opaque ``next_cursor`` a caller passes back for the next page."""
    if position is None:
        return None
    raw = f"{position.uidvalidity}:{position.before_uid}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def query_cursor(request: web.Request, name: str = "cursor") -> PagePosition | None:
    """The paging cursor, one this service handed out (InvalidInput 400 for anything else)."""
    return decode_cursor(request.query.get(name), name)


def decode_cursor(value: str | None, name: str = "cursor") -> PagePosition | None:
    """A ``next_cursor`` this service handed out (None for none); InvalidInput otherwise."""
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
    if len(folder) > MAX_FOLDER_NAME or any(c in LINE_BREAKS or c == "\0" for c in folder) \
            or SURROGATE.search(folder) is not None:
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


def accepts_json(accept: str | None) -> bool:
    """Whether an Accept header (RFC 9110 section 12.5.1) allows ``application/json``: absent,
    or naming it, ``application/*`` or ``*/*`` with a quality above 0."""
    if accept is None or not accept.strip():
        return True
    for item in accept.split(","):
        kind, *params = (p.strip() for p in item.split(";"))
        zero = any(p.replace(" ", "").lower() in ("q=0", "q=0.0", "q=0.00", "q=0.000")
                   for p in params)
        if kind.lower() in ("application/json", "application/*", "*/*") and not zero:
            return True
    return False
