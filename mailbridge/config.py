"""Configuration: a TOML file read into frozen pydantic models.

Every model forbids unknown keys, so a misspelt option is an error rather than a silently ignored
line. Every problem found while loading becomes one :class:`~mailbridge.errors.ConfigError` whose
message has one line per problem, each naming the file, the section and the key, e.g.::

    config.toml: [[accounts]] #2 (bob@example.test) imap.port: Input should be less than or equal to 65535
    config.toml: [server] prot: unknown key (expected one of: host, port, limits, public_url)

Secrets: passwords are :class:`pydantic.SecretStr`, so ``repr()``/``str()`` of any model shows
``**********``; error messages never quote an input value (and, as a second line of defence, any
password string found in the file is masked out of the message); :func:`describe` prints neither
passwords nor token hashes.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from uuid import UUID

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mailbridge.errors import ConfigError

__all__ = [
    "AccountConfig",
    "Config",
    "DeleteMode",
    "Endpoint",
    "Folders",
    "ImapConfig",
    "Limits",
    "Scope",
    "Security",
    "SentCopy",
    "ServerConfig",
    "SmtpConfig",
    "TokenConfig",
    "describe",
    "format_location",
    "load_config",
    "parse_config",
]

Security = Literal["tls", "starttls", "none"]
Scope = Literal["read", "write", "send", "approve", "metrics"]
SentCopy = Literal["auto", "append", "none"]
DeleteMode = Literal["permanent", "trash"]

MiB = 1024 * 1024

_FORBIDDEN_CHARS = ("\r", "\n", "\0")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
# Passwords shorter than this are not masked out of error messages: masking "ab" would mangle
# ordinary words, and no message quotes an input value in the first place.
_MIN_MASKED_SECRET = 4


def _no_line_breaks(value: str) -> str:
    """Return ``value`` unchanged; raise ValueError if it contains CR, LF or NUL.

    Such a character in a value that reaches a mail header or an IMAP/SMTP command line would end
    the line early and let the rest be read as a new header or command.
    """
    if any(c in value for c in _FORBIDDEN_CHARS):
        raise ValueError("must not contain a line break (CR or LF) or NUL character")
    return value


def _no_line_breaks_secret(value: SecretStr | None) -> SecretStr | None:
    """Return ``value`` unchanged; raise ValueError (never quoting it) if it has CR, LF or NUL."""
    if value is not None and any(c in value.get_secret_value() for c in _FORBIDDEN_CHARS):
        raise ValueError("must not contain a line break (CR or LF) or NUL character")
    return value


def _hostname(value: str) -> str:
    """Return ``value`` if it is usable as a host name or IP address, else raise ValueError."""
    if not value or any(c.isspace() for c in value) or "\0" in value:
        raise ValueError("must be a host name or IP address, without spaces")
    if value.startswith("["):
        raise ValueError('write an IPv6 address without brackets, e.g. host = "::1"')
    return value


SafeStr = Annotated[str, AfterValidator(_no_line_breaks)]
"""A string that may end up in a mail header or a protocol line: no CR, LF or NUL."""
NonEmptySafeStr = Annotated[str, Field(min_length=1), AfterValidator(_no_line_breaks)]
HostName = Annotated[str, AfterValidator(_hostname)]


def _is_loopback(host: str) -> bool:
    """Return True if ``host`` is ``localhost`` or a loopback IP (127.0.0.0/8, ::1)."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Limits(_Model):
    """``[server.limits]``: sizes the API accepts, all in bytes except ``max_recipients``."""

    max_request_bytes: int = Field(default=40 * MiB, gt=0)
    """Largest HTTP request body (JSON with base64 attachments is ~4/3 of the raw size)."""
    max_body_bytes: int = Field(default=5 * MiB, gt=0)
    """Largest text + html body of one draft."""
    max_attachment_bytes: int = Field(default=25 * MiB, gt=0)
    """Largest single attachment (decoded size)."""
    max_draft_attachments_bytes: int = Field(default=30 * MiB, gt=0)
    """Largest total of all attachments of one draft (decoded size)."""
    max_recipients: int = Field(default=100, gt=0)
    """Most recipients of one draft, to + cc + bcc."""
    max_attachments: int = Field(default=100, gt=0)
    """Most attachments of one draft."""
    max_header_chars: int = Field(default=2000, gt=0)
    """Longest subject, display name, file name, context type or id, in characters."""
    max_json_depth: int = Field(default=16, ge=4, le=1000)
    """Deepest nesting of arrays and objects in a JSON request body."""
    request_timeout_seconds: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    """How long a client may take to send a whole request (headers and body) before its
    connection is closed; also how long an idle keep-alive connection is kept."""


class ServerConfig(_Model):
    """``[server]``: where the HTTP API listens."""

    host: HostName = "127.0.0.1"
    port: int = Field(default=8025, ge=0, le=65535)
    """0 picks a free port (tests)."""
    limits: Limits = Field(default_factory=Limits)
    public_url: SafeStr | None = None
    """The URL callers use to reach this service (behind a proxy), without a trailing slash."""
    allow_private_webhooks: bool = False
    """Webhook URLs may name loopback and private addresses (the dev stack's receivers)."""
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    """How long one webhook delivery may take before it counts as failed (and is retried)."""
    webhook_retry_seconds: float = Field(default=3600.0, ge=0, le=7 * 86400)
    """How long a delivery that fails for a timeout, a lost connection or a 5xx is retried."""
    watch_mailboxes: bool = True
    """Watch INBOX and Drafts of every account for what mail clients and arriving mail do, and
    report it to webhooks (mailbridge.watching): two IMAP connections per account."""
    watch_poll_seconds: float = Field(default=2.0, gt=0, le=60)
    """How often a watched folder is asked for changes (NOOP) on a server without IDLE."""

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        """Return the URL without trailing slashes; raise ValueError unless it is http(s)."""
        if value is None:
            return None
        if not value.startswith(("http://", "https://")) or len(value) <= len("https://"):
            raise ValueError("must be an absolute http:// or https:// URL")
        return value.rstrip("/")


class Endpoint(_Model):
    """Connection settings common to ``[accounts.imap]`` and ``[accounts.smtp]``."""

    host: HostName
    port: int = Field(ge=1, le=65535)
    security: Security
    """``tls``: TLS from the first byte (IMAP 993, SMTP 465); ``starttls``: plain connection
    upgraded with STARTTLS (IMAP 143, SMTP 587); ``none``: no encryption (loopback only)."""
    username: NonEmptySafeStr
    password: Annotated[SecretStr | None, AfterValidator(_no_line_breaks_secret)] = None
    password_env: str | None = None
    """Name of an environment variable holding the password, read by :meth:`password_value`."""
    tls_verify: bool = True
    """False accepts any certificate (self-signed); the connection is then open to interception."""
    ca_file: Path | None = None
    """PEM file of extra CA certificates to trust; a relative path is relative to the config file."""
    timeout_seconds: float = Field(default=10.0, gt=0, allow_inf_nan=False)
    allow_plaintext: bool = False
    """Permit ``security = "none"`` to a host that is not loopback."""

    @field_validator("password_env")
    @classmethod
    def _check_password_env(cls, value: str | None) -> str | None:
        """Return the variable name; raise ValueError unless it looks like one (never quoting it)."""
        if value is not None and not _ENV_NAME.fullmatch(value):
            raise ValueError(
                "must be the name of an environment variable (letters, digits and _, "
                "not starting with a digit), not the password itself"
            )
        return value

    @field_validator("ca_file")
    @classmethod
    def _check_ca_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        """Return the CA file path, made absolute against the config file's directory if relative.

        Raises ValueError if the file does not exist, so ``check-config`` catches it.
        """
        if value is None:
            return None
        context = info.context if isinstance(info.context, Mapping) else {}
        base_dir = context.get("base_dir")
        if not value.is_absolute() and isinstance(base_dir, Path):
            value = base_dir / value
        if not value.is_file():
            raise ValueError(f"file not found: {value}")
        return value

    @model_validator(mode="after")
    def _check_combinations(self) -> Self:
        """Return self; raise ValueError for a missing/doubled password or unsafe plaintext."""
        if (self.password is None) == (self.password_env is None):
            given = "both were given" if self.password is not None else "neither was given"
            raise ValueError(
                "give exactly one of password or password_env "
                f"(password_env names an environment variable holding the password); {given}"
            )
        if self.security == "none" and not self.allow_plaintext and not _is_loopback(self.host):
            raise ValueError(
                'security = "none" to a host that is not loopback (127.0.0.0/8, ::1, localhost) '
                'would send the password across the network in clear; use "tls" or "starttls", '
                "or set allow_plaintext = true if that network path is trusted"
            )
        return self

    def password_value(self) -> str:
        """Return the password: the inline ``password``, or the ``password_env`` variable read now.

        Raises ConfigError, naming the variable (never a value), if it is unset or empty.
        """
        if self.password is not None:
            return self.password.get_secret_value()
        name = self.password_env
        if name is None:  # excluded by validation; kept for type narrowing, not as a check
            raise ConfigError(f"{self.username}@{self.host}: no password configured")
        value = os.environ.get(name, "")
        if not value:
            raise ConfigError(
                f"environment variable {name} (password_env for user {self.username} at "
                f"{self.host}:{self.port}) is unset or empty; set it to the password"
            )
        return value


class ImapConfig(Endpoint):
    """``[accounts.imap]``: the account's IMAP server."""


class SmtpConfig(Endpoint):
    """``[accounts.smtp]``: the account's SMTP submission server."""


class Folders(_Model):
    """``[accounts.folders]``: mailbox names overriding special-use (RFC 6154) discovery."""

    drafts: NonEmptySafeStr | None = None
    sent: NonEmptySafeStr | None = None
    trash: NonEmptySafeStr | None = None
    junk: NonEmptySafeStr | None = None
    archive: NonEmptySafeStr | None = None
    mailbridge: NonEmptySafeStr | None = None
    """mailbridge's own mailbox (the label registry); default ``Mailbridge`` in the account's
    personal namespace (``INBOX.Mailbridge`` on Courier and Cyrus)."""


def _email(value: str) -> str:
    """Return the normalized form of the address ``value``; raise ValueError if it is invalid.

    ``test_environment=True`` accepts the ``.test`` domain (RFC 2606) the dev stack uses; no DNS
    lookups are made.
    """
    try:
        return validate_email(value, check_deliverability=False, test_environment=True).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None


class AccountConfig(_Model):
    """``[[accounts]]``: one mailbox mailbridge manages drafts in."""

    id: UUID
    email: Annotated[str, AfterValidator(_email)]
    display_name: SafeStr = ""
    imap: ImapConfig
    smtp: SmtpConfig
    folders: Folders = Field(default_factory=Folders)
    sent_copy: SentCopy = "auto"
    """``auto``: append to Sent unless the server is known to do it itself; ``append``: always;
    ``none``: never."""
    delete: DeleteMode = "permanent"
    """What DELETE of a draft does: expunge it, or move it to Trash."""
    pool_size: int = Field(default=4, ge=1, le=64)
    """IMAP connections kept open for this account."""
    created_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    """When the account was added (RFC 3339 with an offset), as the accounts list shows it;
    without it, when this configuration was read."""
    require_approval: bool = False
    """Every send of this account, the scheduler's included, waits for a token with the
    ``approve`` scope to approve the draft (mailbridge.approvals)."""


class TokenConfig(_Model):
    """``[[tokens]]``: a bearer token, stored as the SHA-256 of its value."""

    name: NonEmptySafeStr
    sha256: str = Field(repr=False)
    accounts: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    """Accounts the token may use: ``*`` (all), account ids or account emails."""
    scopes: list[Scope] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        """Return the name; raise ValueError if it is blank."""
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("sha256")
    @classmethod
    def _check_sha256(cls, value: str) -> str:
        """Return the hash in lower case; raise ValueError (never quoting it) unless 64 hex digits."""
        if not _SHA256_HEX.fullmatch(value):
            raise ValueError(
                "must be the SHA-256 of the token as 64 hexadecimal characters, not the token "
                "itself; make one with: printf %s 'TOKEN' | sha256sum"
            )
        return value.lower()

    @field_validator("scopes")
    @classmethod
    def _check_scopes(cls, value: list[Scope]) -> list[Scope]:
        """Return the scopes; raise ValueError if one is listed twice."""
        doubled = sorted({s for s in value if value.count(s) > 1})
        if doubled:
            raise ValueError(f"listed more than once: {', '.join(doubled)}")
        return value


def _section_label(kind: str, index: int, label: str | None) -> str:
    """Return e.g. ``[[accounts]] #2 (bob@example.test)`` for the 0-based ``index``."""
    text = f"[[{kind}]] #{index + 1}"
    return f"{text} ({label})" if label else text


class LoggingConfig(_Model):
    """``[logging]``: how the service writes its log (to stderr)."""

    format: Literal["text", "json"] = "text"
    """``json``: one JSON object per line (time, level, logger, message, request_id)."""


class SchedulerConfig(_Model):
    """``[scheduler]``: scheduled sends, retries and the recovery of interrupted sends."""

    enabled: bool = True
    """Run the scheduler in every `serve` instance (`python -m mailbridge worker` runs it alone)."""
    interval_seconds: float = Field(default=1.0, gt=0, le=60, allow_inf_nan=False)
    """How often each instance looks for due drafts; a draft is sent within about this much of
    its planned_send_at (plus the send itself)."""
    concurrency: int = Field(default=8, ge=1, le=256)
    """Sends in flight at once per instance."""
    max_attempts: int = Field(default=5, ge=1, le=100)
    """Attempts of a scheduled send that meets temporary failures (4xx, no connection) before
    it is marked failed."""
    retry_base_seconds: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    """Backoff after the first temporary failure; doubled after each further one."""
    retry_max_seconds: float = Field(default=3600.0, gt=0, allow_inf_nan=False)
    lease_seconds: float = Field(default=300.0, ge=1, allow_inf_nan=False)
    """How long a claim to send a draft holds. A draft still claimed after that (its sender
    died) is taken over: filed into Sent if the SMTP server had accepted it, else marked failed
    with an unknown outcome, never sent again automatically. Keep it well above the SMTP
    timeouts."""


class DraftsConfig(_Model):
    """``[drafts]``: how drafts are written and what a writer that died leaves behind."""

    orphan_seconds: float = Field(default=5.0, ge=1, le=3600, allow_inf_nan=False)
    """How long one write of a draft may take (plus 1 s per MB of the message) before it gives
    up. A copy that a writer left half-written (it died, or lost its connection) is resolved by
    any instance about this long after the write began (plus 1 s of grace for clocks)."""


def _context_link(value: str) -> str:
    if not value.startswith(("https://", "http://")) or "{id}" not in value \
            or any(c in value for c in "\r\n\t \"'<>"):
        raise ValueError("must be an http(s) URL with {id} in it (the draft's context_id)")
    return value


class ReviewConfig(_Model):
    """``[review]``: the review page at ``/review``."""

    context_links: dict[Annotated[str, Field(min_length=1, max_length=256)],
                        Annotated[str, AfterValidator(_context_link)]] = Field(
        default_factory=dict)
    """Per ``context_type``, the URL of the entity a draft is about, ``{id}`` standing for its
    ``context_id`` (URL-encoded): ``{ticket = "https://crm.example.com/tickets/{id}"}``. The
    page then shows the context as a link; without an entry, as text."""


class WebhookConfig(_Model):
    """``[[webhooks]]``: a subscription of the operator's, not managed over the API."""

    url: NonEmptySafeStr
    events: list[str] = Field(min_length=1)
    secret: str = Field(min_length=16, repr=False)
    """What deliveries are signed with; for ``standard``, ``whsec_`` and base64."""
    scheme: Literal["jasni", "standard"] = "standard"
    """``jasni``: X-Jasni-Signature; ``standard``: Standard Webhooks."""
    accounts: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    """The accounts whose events it gets: ``*`` (all), account ids or emails."""
    description: SafeStr | None = None


class Config(_Model):
    """The whole configuration file."""

    server: ServerConfig = Field(default_factory=ServerConfig)
    drafts: DraftsConfig = Field(default_factory=DraftsConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    accounts: list[AccountConfig] = Field(min_length=1)
    tokens: list[TokenConfig] = Field(default_factory=list)
    webhooks: list[WebhookConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_webhooks(self) -> Self:
        """Return self; raise ValueError naming the webhook whose URL, events, secret or
        accounts cannot be used."""
        # the rules are the API's (subscriptions.py, which needs this module: a late import)
        from mailbridge.errors import InvalidInput
        from mailbridge.subscriptions import check_events, check_secret, check_url

        problems = []
        for i, hook in enumerate(self.webhooks):
            where = _section_label("webhooks", i, None)
            try:
                check_url(hook.url, allow_private=self.server.allow_private_webhooks)
                check_events(hook.events, hook.scheme)
                check_secret(hook.secret, hook.scheme)
            except InvalidInput as exc:
                problems.append(f"{where} {exc.field}: {exc.message}")
            problems += [f"{where} accounts: no account {ref!r}" for ref in hook.accounts
                         if ref != "*" and self.account(ref) is None]
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @model_validator(mode="after")
    def _check_references(self) -> Self:
        """Return self; raise ValueError listing every duplicate and dangling reference.

        Each line of the message already names its section, since these checks span entries.
        """
        problems: list[str] = []
        seen_ids: dict[UUID, int] = {}
        seen_emails: dict[str, int] = {}
        for i, account in enumerate(self.accounts):
            where = _section_label("accounts", i, account.email)
            if account.id in seen_ids:
                first = seen_ids[account.id]
                problems.append(
                    f"{where} id: same id as {_section_label('accounts', first, self.accounts[first].email)}"
                    "; every account needs its own (make one with: "
                    "python3 -c 'import uuid; print(uuid.uuid4())')"
                )
            seen_ids.setdefault(account.id, i)
            key = account.email.casefold()
            if key in seen_emails:
                first = seen_emails[key]
                problems.append(
                    f"{where} email: same address as "
                    f"{_section_label('accounts', first, self.accounts[first].email)} "
                    "(addresses are compared ignoring case)"
                )
            seen_emails.setdefault(key, i)
        seen_names: dict[str, int] = {}
        seen_hashes: dict[str, int] = {}
        for i, token in enumerate(self.tokens):
            where = _section_label("tokens", i, token.name)
            if token.name in seen_names:
                first = seen_names[token.name]
                problems.append(f"{where} name: same name as [[tokens]] #{first + 1}")
            seen_names.setdefault(token.name, i)
            if token.sha256 in seen_hashes:
                first = seen_hashes[token.sha256]
                problems.append(
                    f"{where} sha256: same hash as {_section_label('tokens', first, self.tokens[first].name)}"
                    "; every token needs its own secret"
                )
            seen_hashes.setdefault(token.sha256, i)
            for ref in token.accounts:
                if ref != "*" and self.account(ref) is None:
                    problems.append(
                        f"{where} accounts: {ref!r} is not the id or email of any [[accounts]] entry "
                        '(use "*" for all accounts)'
                    )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def account(self, ref: str) -> AccountConfig | None:
        """Return the account whose id (any UUID spelling) or email (ignoring case) is ``ref``.

        Returns None if no account matches.
        """
        try:
            wanted_id: UUID | None = UUID(ref)
        except ValueError:
            wanted_id = None
        wanted_email = ref.casefold()
        for account in self.accounts:
            if account.id == wanted_id or account.email.casefold() == wanted_email:
                return account
        return None


# --- turning pydantic errors into messages ------------------------------------------------------


def _unwrap_model(annotation: Any, index_step: bool) -> type[BaseModel] | None:
    """Return the model class inside ``annotation``, or None if there is none.

    Looks through ``Annotated`` and ``X | None``; if ``index_step``, the annotation must be
    ``list[X]`` and X is examined instead.
    """
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _unwrap_model(args[0], index_step)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            found = _unwrap_model(arg, index_step)
            if found is not None:
                return found
        return None
    if index_step:
        return _unwrap_model(args[0], False) if origin is list and args else None
    if origin is None and isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _model_at(path: Iterable[int | str]) -> type[BaseModel] | None:
    """Return the model class that validates the table at ``path`` (a pydantic loc prefix)."""
    model: type[BaseModel] | None = Config
    pending_list: Any = None
    for step in path:
        if isinstance(step, int):
            if pending_list is None:
                return None
            model = _unwrap_model(pending_list, index_step=True)
            pending_list = None
            continue
        if model is None or step not in model.model_fields:
            return None
        annotation = model.model_fields[step].annotation
        inner = _unwrap_model(annotation, index_step=False)
        if inner is None and _unwrap_model(annotation, index_step=True) is not None:
            pending_list, model = annotation, None
        else:
            model = inner
    return model


def _entry_label(data: Mapping[str, Any], kind: str, index: int) -> str | None:
    """Return the email (accounts) or name (tokens) of raw entry ``index``, if it looks like one."""
    entries = data.get(kind)
    if not isinstance(entries, list) or not 0 <= index < len(entries):
        return None
    entry = entries[index]
    if not isinstance(entry, Mapping):
        return None
    value = entry.get("email" if kind == "accounts" else "name")
    if not isinstance(value, str) or not value or len(value) > 100:
        return None
    if any(c.isspace() or not c.isprintable() for c in value):
        return None
    if kind == "accounts" and "@" not in value:
        return None
    return value


def _key_path(steps: Iterable[int | str]) -> str:
    """Return ``imap.port`` or ``scopes #2`` style text for the steps below a section."""
    text = ""
    for step in steps:
        if isinstance(step, int):
            text += f" #{step + 1}"
        else:
            text += f".{step}" if text else str(step)
    return text


def format_location(loc: tuple[int | str, ...], data: Mapping[str, Any]) -> str:
    """Return the section and key a pydantic ``loc`` points at, as a person reads the file.

    ``('accounts', 1, 'imap', 'port')`` -> ``[[accounts]] #2 (bob@example.test) imap.port`` (the
    label comes from the raw ``data``); ``('server', 'limits', 'x')`` -> ``[server.limits] x``;
    ``('server', 'prot')`` -> ``[server] prot``; ``('accounts',)`` -> ``[[accounts]]``; a
    top-level key -> the key itself. Returns ``""`` for the empty loc (the whole file).
    """
    if not loc:
        return ""
    head, rest = loc[0], loc[1:]
    if head in ("accounts", "tokens"):
        if rest and isinstance(rest[0], int):
            section = _section_label(str(head), rest[0], _entry_label(data, str(head), rest[0]))
            rest = rest[1:]
        else:
            section = f"[[{head}]]"
    elif head == "server":
        if rest and rest[0] == "limits":
            section, rest = "[server.limits]", rest[1:]
        else:
            section = "[server]"
    else:
        return _key_path(loc)
    key = _key_path(rest)
    return f"{section} {key}" if key else section


def _error_text(error: Mapping[str, Any]) -> str:
    """Return the message for one pydantic error, reworded where pydantic's is unclear.

    Never includes the error's input value.
    """
    kind = error["type"]
    loc: tuple[int | str, ...] = tuple(error["loc"])
    msg = str(error["msg"])
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        if model is not None:
            return f"unknown key (expected one of: {', '.join(model.model_fields)})"
        return "unknown key"
    if kind == "missing":
        if loc == ("accounts",):
            return "required: the file must define at least one [[accounts]] table"
        return "required key is missing"
    if kind == "model_type":
        return "must be a table"
    if kind == "list_type":
        if len(loc) == 1 and loc[0] in ("accounts", "tokens"):
            return f"must be an array of tables: write [[{loc[0]}]], not [{loc[0]}]"
        return "must be an array"
    if kind == "path_type":
        return "must be a file path (a string)"
    if kind == "uuid_parsing" or kind == "uuid_type":
        return f"{msg} (make one with: python3 -c 'import uuid; print(uuid.uuid4())')"
    if kind == "too_short" and loc == ("accounts",):
        return "the file must define at least one [[accounts]] table"
    return msg.removeprefix("Value error, ")


def _secret_strings(data: Any) -> set[str]:
    """Return every string given as a ``password`` anywhere in the raw ``data``."""
    found: set[str] = set()
    if isinstance(data, Mapping):
        for key, value in data.items():
            if key == "password" and isinstance(value, str) and len(value) >= _MIN_MASKED_SECRET:
                found.add(value)
            else:
                found |= _secret_strings(value)
    elif isinstance(data, list):
        for item in data:
            found |= _secret_strings(item)
    return found


def _mask(text: str, secrets: Iterable[str]) -> str:
    """Return ``text`` with every secret replaced by ``**********``, longest first."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "**********")
    return text


def _validation_message(exc: ValidationError, data: Mapping[str, Any], source: str) -> str:
    """Return one line per problem in ``exc``, each ``source: section key: message``."""
    lines: list[str] = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        where = format_location(tuple(error["loc"]), data)
        for text in _error_text(error).splitlines():
            lines.append(f"{source}: {where}: {text}" if where else f"{source}: {text}")
    return _mask("\n".join(lines), _secret_strings(data))


# --- entry points --------------------------------------------------------------------------------


def parse_config(data: Mapping[str, Any], source: str, *, base_dir: Path | None = None) -> Config:
    """Return the validated Config built from ``data`` (a parsed TOML document or a dict in code).

    ``source`` names the origin in messages (the file name); a relative ``ca_file`` is taken
    relative to ``base_dir`` if given, else the working directory. Raises ConfigError listing
    every problem, one per line.
    """
    try:
        return Config.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(_validation_message(exc, data, source)) from None


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_TOML_END = re.compile(r"\s*\(at end of document\)$")


def _toml_error_message(exc: tomllib.TOMLDecodeError, text: str, source: str) -> str:
    """Return ``source: line N: TOML syntax error: ...`` for a tomllib error."""
    msg = str(exc)
    position = _TOML_POSITION.search(msg)
    if position is not None:
        line, column = position.group(1), position.group(2)
        return f"{source}: line {line}: TOML syntax error: {msg[: position.start()]} (column {column})"
    end = _TOML_END.search(msg)
    if end is not None:
        line = str(text.count("\n") + 1)
        return f"{source}: line {line}: TOML syntax error: {msg[: end.start()]} (at end of file)"
    return f"{source}: TOML syntax error: {msg}"


def load_config(path: str | os.PathLike[str]) -> Config:
    """Return the Config read from the TOML file at ``path``.

    Raises ConfigError if the file is missing, unreadable, not UTF-8, not valid TOML (message gives
    the line) or not a valid configuration (one line per problem naming section and key). The
    environment variables named by ``password_env`` are not read here; see
    :meth:`Endpoint.password_value`.
    """
    source = os.fspath(path)
    file = Path(source)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{source}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{source}: is a directory, not a file") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{source}: line {line}: not valid UTF-8 (TOML files must be UTF-8)") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_toml_error_message(exc, text, source)) from None
    return parse_config(data, source, base_dir=file.resolve().parent)


# --- summary -------------------------------------------------------------------------------------


def _size(n: int) -> str:
    """Return ``n`` bytes as ``40 MiB`` when a whole number of MiB, else ``n bytes``."""
    return f"{n // MiB} MiB" if n % MiB == 0 else f"{n} bytes"


def _endpoint_line(kind: str, endpoint: Endpoint) -> str:
    """Return one summary line for an IMAP/SMTP endpoint, without any secret."""
    password = f"password from ${endpoint.password_env}" if endpoint.password_env else "password inline"
    extras = [f"user {endpoint.username}", password, f"timeout {endpoint.timeout_seconds:g}s"]
    if not endpoint.tls_verify:
        extras.append("certificate NOT verified")
    if endpoint.ca_file is not None:
        extras.append(f"CA file {endpoint.ca_file}")
    if endpoint.allow_plaintext:
        extras.append("plaintext allowed")
    return f"    {kind}: {endpoint.host}:{endpoint.port} {endpoint.security} ({', '.join(extras)})"


def describe(config: Config) -> str:
    """Return a few human-readable lines summarising ``config``, with no passwords or token hashes."""
    server, limits = config.server, config.server.limits
    host = f"[{server.host}]" if ":" in server.host else server.host
    lines = [
        f"server: http://{host}:{server.port}"
        + (f" (public URL {server.public_url})" if server.public_url else ""),
        f"  limits: request {_size(limits.max_request_bytes)}, body {_size(limits.max_body_bytes)}, "
        f"attachment {_size(limits.max_attachment_bytes)}, "
        f"attachments per draft {_size(limits.max_draft_attachments_bytes)}, "
        f"{limits.max_recipients} recipients",
        f"accounts ({len(config.accounts)}):",
    ]
    for account in config.accounts:
        name = f' "{account.display_name}"' if account.display_name else ""
        lines.append(f"  {account.email}{name} id {account.id}")
        lines.append(_endpoint_line("imap", account.imap))
        lines.append(_endpoint_line("smtp", account.smtp))
        folders = account.folders
        overrides = [
            f"{role}={value!r}"
            for role, value in (("drafts", folders.drafts), ("sent", folders.sent), ("trash", folders.trash))
            if value is not None
        ]
        lines.append(
            "    folders: "
            + (", ".join(overrides) if overrides else "special-use discovery")
            + f"; sent_copy {account.sent_copy}; delete {account.delete}; pool_size {account.pool_size}"
        )
    lines.append(f"tokens ({len(config.tokens)}):" if config.tokens else "tokens: none")
    for token in config.tokens:
        accounts, scopes = ", ".join(token.accounts), ", ".join(token.scopes)
        lines.append(f"  {token.name}: accounts {accounts}; scopes {scopes}")
    if config.webhooks:
        lines.append(f"webhooks ({len(config.webhooks)}):")
        for hook in config.webhooks:
            lines.append(f"  {hook.url}: {', '.join(hook.events)}; {hook.scheme}; "
                         f"accounts {', '.join(hook.accounts)}")
    return "\n".join(lines)
