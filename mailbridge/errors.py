"""mailbridge's errors: one root class, one subclass per condition a caller acts on.

Each class carries a machine ``code`` and no HTTP meaning: the API maps error classes to HTTP
statuses in one place (:mod:`mailbridge.api.statuses`) by walking the class hierarchy, so a
module raises the most specific class it knows and never builds a response itself. Messages are
written for the person reading them: they say what happened and, where there is one, what to do.
They never carry a secret.
"""

from __future__ import annotations

from typing import Any


class MailbridgeError(Exception):
    """Root of every error mailbridge raises on purpose."""

    code: str = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(MailbridgeError):
    """The configuration file is missing, unreadable or invalid.

    The message names the file, the section and the key, e.g.
    ``config.toml: [[accounts]] #2 (alice@example.test): imap.port: Input should be ...``.
    """

    code = "config_error"


class ImapError(MailbridgeError):
    """Anything that went wrong talking IMAP to an account's mail server."""

    code = "imap_error"

    def __init__(self, message: str, *, account: str | None = None) -> None:
        super().__init__(message)
        self.account = account


class ImapAuthError(ImapError):
    """The server refused the configured username/password (LOGIN answered NO).

    Retrying will not help; the account's credentials in the configuration must be fixed.
    """

    code = "imap_auth_failed"


class ImapUnavailable(ImapError):
    """The server could not be reached: connection refused, timed out, or dropped mid-command.

    Raised also when an operation did not finish within its timeout. The connection involved has
    been discarded; a later operation opens a new one, so retrying later may succeed.
    """

    code = "imap_unavailable"


class ImapProtocolError(ImapError):
    """The server answered BAD, or NO to a command that should have worked, or something unparsable."""

    code = "imap_protocol_error"


class ImapCapabilityMissing(ImapError):
    """An operation needs an IMAP extension (e.g. UIDPLUS, CONDSTORE, MOVE) the server lacks."""

    code = "imap_capability_missing"


class ImapNotFound(ImapError):
    """A mailbox or a message (by UID) does not exist on the server."""

    code = "not_found"


class RequestError(MailbridgeError):
    """The caller's request cannot be served as it stands; ``field`` names the culprit if any."""

    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidInput(RequestError):
    """A value is malformed: wrong type, bad address, bad base64, a line break in a header..."""

    code = "invalid_input"


class Unprocessable(InvalidInput):
    """Well-formed input that cannot be used: a draft with no recipient when sending, more
    recipients than allowed, an account the draft does not belong to..."""


class NotSendable(Unprocessable):
    """The draft cannot be sent as it is (no recipient, too many, an invalid stored address):
    the request was fine, the draft is not."""


class HeaderInjection(InvalidInput):
    """A value that ends up in a mail header contains CR or LF (RFC 5322 header injection)."""

    code = "header_injection"


class PayloadTooLarge(RequestError):
    """The request, a body, an attachment or the recipients exceed a configured limit."""

    code = "payload_too_large"


class Unauthorized(RequestError):
    """No bearer token, or one that matches no configured token."""

    code = "unauthorized"


class Forbidden(RequestError):
    """The token is valid but lacks the scope (read, write, send) the call needs."""

    code = "forbidden"


class AccountsFromConfiguration(Forbidden):
    """Accounts are the operator's configuration: no call creates, changes or removes one."""

    code = "accounts_from_configuration"


class NotFound(RequestError):
    """No such draft, message or account (or one the token may not see)."""

    code = "not_found"


class Conflict(RequestError):
    """The draft changed meanwhile (another update won) or is being sent; retry with fresh data."""

    code = "conflict"


class NotApproved(Conflict):
    """The draft may not be sent before a token with the ``approve`` scope approves it (it
    awaits approval, was rejected, changed since it was approved, or its account requires
    approval)."""

    code = "approval_required"

    def __init__(self, message: str, *, field: str | None = None, unrequested: bool = False):
        super().__init__(message, field=field)
        self.unrequested = unrequested
        """Nobody has asked for the approval yet (an account that requires it)."""
        self.awaiting: Any = None
        """The draft as it now awaits approval, when the send put it up for approval."""


class PreconditionFailed(RequestError):
    """If-Match named a version of the draft that is no longer current; nothing was changed."""

    code = "precondition_failed"


class SmtpError(MailbridgeError):
    """Anything that went wrong submitting a message over SMTP (RFC 5321, RFC 6409).

    ``reply_code`` and ``reply`` are the server's reply (code and text) when there was one, else
    None and ``""`` (connection refused, timeout, TLS failure). The message quotes the reply and
    says whether anything may have been delivered; it never contains the password.
    """

    code = "smtp_error"

    def __init__(
        self, message: str, *, reply_code: int | None = None, reply: str = "", account: str | None = None
    ) -> None:
        super().__init__(message)
        self.reply_code = reply_code
        self.reply = reply
        self.account = account


class SmtpRejected(SmtpError):
    """The server refused the message for good: a 5xx reply to MAIL FROM, RCPT TO (every
    recipient) or DATA. Nothing was delivered; sending it again unchanged will fail again.

    Raised also when the message cannot be submitted to this server at all (a non-ASCII address
    and no SMTPUTF8). When only some recipients are refused, nothing is raised: the send result
    lists them, because the others did get the message.
    """

    code = "smtp_rejected"


class SmtpTemporaryFailure(SmtpError):
    """The server answered 4xx (try again later) to MAIL FROM, RCPT TO, DATA or AUTH.

    Nothing was delivered, so sending again later is safe.
    """

    code = "smtp_temporary_failure"


class SmtpUnavailable(SmtpError):
    """The message could not be handed over: connection refused or dropped, timeout, TLS failure
    (untrusted certificate, STARTTLS configured but not offered), a greeting other than 220 — all
    before the end of the message data was sent. Nothing was delivered; retrying later is safe.
    """

    code = "smtp_unavailable"


class SmtpAuthFailed(SmtpError):
    """The server refused the configured username/password (e.g. 535), requires AUTH that is not
    configured (530), or offers no AUTH mechanism mailbridge can use on this connection.

    Retrying will not help; the account's SMTP settings must be fixed.
    """

    code = "smtp_auth_failed"


class SmtpOutcomeUnknown(SmtpError):
    """The whole message was sent, then the connection dropped or timed out before the server's
    final reply to DATA: the server may or may not have accepted (and delivered) it.

    Do NOT retry automatically — that may deliver the message twice. Check the recipients' side
    (or the Sent folder) or ask the user.
    """

    code = "smtp_outcome_unknown"
