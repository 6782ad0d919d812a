"""The one place where errors get their HTTP status.

Domain errors (:mod:`mailbridge.errors`) carry a ``code`` and no HTTP meaning; the API answers
with the status of the nearest class in an error's hierarchy that :data:`STATUSES` names, as
Starlette's exception handlers are looked up along ``__mro__``.
"""

from __future__ import annotations

from mailbridge.api.bodies import RequestTimeout, UnsupportedMediaType
from mailbridge.errors import (
    Conflict,
    Forbidden,
    ImapError,
    ImapNotFound,
    ImapUnavailable,
    MailbridgeError,
    NotFound,
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

__all__ = ["STATUSES", "WWW_AUTHENTICATE", "status_of"]

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


def status_of(exc: MailbridgeError) -> int:
    """The HTTP status of ``exc``: that of the nearest class :data:`STATUSES` names (a failed
    send answers with the status of the SMTP error behind it)."""
    if isinstance(exc, SendFailed):
        return status_of(exc.error)
    for cls in type(exc).__mro__:
        if cls in STATUSES:
            return STATUSES[cls]
    return 500
