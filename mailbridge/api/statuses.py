"""The one place where errors get their HTTP status.

Domain errors (:mod:`mailbridge.errors`) carry a ``code`` and no HTTP meaning; the API answers
with the status of the nearest class in an error's hierarchy that :data:`STATUSES` names, as
Starlette's exception handlers are looked up along ``__mro__``.
"""

from __future__ import annotations

from mailbridge.api.bodies import RequestTimeout, UnsupportedMediaType
from mailbridge.drafts import IdempotencyKeyReused
from mailbridge.errors import (
    Conflict,
    Forbidden,
    ImapError,
    ImapNotFound,
    ImapUnavailable,
    MailbridgeError,
    NotFound,
    NotSendable,
    PayloadTooLarge,
    PreconditionFailed,
    RequestError,
    SmtpError,
    SmtpTemporaryFailure,
    SmtpUnavailable,
    Unauthorized,
    Unprocessable,
)
from mailbridge.sending import SendFailed

__all__ = ["DIALECT_1", "STATUSES", "WWW_AUTHENTICATE", "status_of"]

WWW_AUTHENTICATE = 'Bearer realm="mailbridge"'
"""The challenge a 401 answer carries (RFC 6750)."""

STATUSES: dict[type[BaseException], int] = {
    MailbridgeError: 500,
    RequestError: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    RequestTimeout: 408,
    Conflict: 409,
    PreconditionFailed: 412,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    Unprocessable: 422,
    ImapError: 502,
    ImapNotFound: 404,
    ImapUnavailable: 503,
    SmtpError: 502,
    SmtpTemporaryFailure: 503,
    SmtpUnavailable: 503,
}


DIALECT_1: dict[type[BaseException], int] = {
    Unprocessable: 400,
    NotSendable: 422,
    IdempotencyKeyReused: 422,
}
"""Where dialect 1 (``/api/v1``) differs. A request whose values cannot be used (a required field
missing, a wrong type, too many recipients, an account to name) is a 400 there: the Jasni SDK
raises 400 as ``ValidationError`` and has no class for 422, which it raises as a bare
``JasniError``. 422 stays for what is not the request's fault or is a standard's: a draft that
cannot be sent as it is (no recipient) and a reused Idempotency-Key (IETF
draft-ietf-httpapi-idempotency-key-header). Dialect 2 keeps 422 for all of these."""


def status_of(exc: MailbridgeError, *, dialect_1: bool = False) -> int:
    """The HTTP status of ``exc``: that of the nearest class :data:`STATUSES` (and, for
    ``dialect_1``, :data:`DIALECT_1`) names; a failed send answers with the status of the SMTP
    error behind it."""
    if isinstance(exc, SendFailed):
        return status_of(exc.error, dialect_1=dialect_1)
    for cls in type(exc).__mro__:
        if dialect_1 and cls in DIALECT_1:
            return DIALECT_1[cls]
        if cls in STATUSES:
            return STATUSES[cls]
    return 500
