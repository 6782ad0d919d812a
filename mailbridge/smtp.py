"""Message submission over SMTP: the only module that imports aiosmtplib.

Follows RFC 5321 (SMTP) and RFC 6409 (message submission), with RFC 4954 AUTH, RFC 3207 STARTTLS,
RFC 8314 implicit TLS, RFC 1870 SIZE, RFC 6152 8BITMIME and RFC 6531 SMTPUTF8.

What a caller must know, and why the code looks the way it does:

- **Which phase failed decides whether a retry is safe.** The transaction is driven step by step
  on an ``aiosmtplib.SMTP`` object (connect, EHLO, STARTTLS, AUTH, then MAIL, RCPT and DATA as raw
  commands), and the message data is written and its final reply awaited here rather than in
  ``SMTP.data()``, which does the ``DATA`` command and the data in one call and so cannot tell a
  timeout waiting for ``354`` (nothing sent) from a timeout waiting for the final ``250`` (the
  server may have the message). Up to and including the ``354``, a failure means nothing was
  delivered (:class:`~mailbridge.errors.SmtpUnavailable`, ``SmtpTemporaryFailure``,
  ``SmtpRejected``, ``SmtpAuthFailed``). Once the data has been handed to the network, a dropped
  connection or a missing final reply is :class:`~mailbridge.errors.SmtpOutcomeUnknown`: the
  caller must not resend automatically.
- **The data phase times out on lack of progress, not on total time.** A 25 MiB message on a slow
  uplink may take longer than the endpoint's timeout to upload. While the bytes buffered for
  sending keep shrinking the clock restarts; the timeout counts from the last progress (in the
  end: from the moment all bytes left the buffer). If the data stalls while part of it is still
  buffered, the server never saw the end-of-data line, so it cannot have accepted the message:
  that is ``SmtpUnavailable`` (safe to retry), not ``SmtpOutcomeUnknown``.
- **Every reply becomes an error in one place** (:func:`_reply_error`): 4xx -> temporary, 5xx ->
  rejected; 530 to MAIL (authentication required) -> auth failed.
- **Connection reuse.** After a successful message the connection (authenticated, EHLO done) is
  kept idle for :attr:`Sender.idle_seconds` (30 s), at most one per (host, port, username), and
  used by one message at a time. Before reuse it gets ``RSET``; if that fails, or the endpoint's
  settings changed (password, TLS options), a fresh connection is opened instead. A connection
  that saw any error is closed, never reused.
- **AUTH is tried once**, with the first of PLAIN, LOGIN, CRAM-MD5 the server offers (aiosmtplib's
  ``login()`` tries every mechanism in turn, which turns one wrong password into several failed
  logins on the server and can trigger its lockout).
- **The message bytes are sent as given** except what SMTP itself requires: line ends become CRLF
  (a bare CR or LF is not allowed in SMTP data and is the stuff of "SMTP smuggling"), a final CRLF
  is added if missing, and lines starting with ``.`` are dot-stuffed (the server removes the dot
  again). The caller prepares the bytes: no Bcc header, no internal headers.
- Nothing here logs or raises the password; every error message built from a server reply has it
  masked as well, in case a server echoes it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiosmtplib

from mailbridge.config import AccountConfig, Security
from mailbridge.errors import (
    SmtpAuthFailed,
    SmtpError,
    SmtpOutcomeUnknown,
    SmtpRejected,
    SmtpTemporaryFailure,
    SmtpUnavailable,
)

__all__ = ["IDLE_SECONDS", "SendResult", "Sender", "SmtpEndpoint", "smtp_endpoint"]

log = logging.getLogger("mailbridge.smtp")

IDLE_SECONDS = 30.0
"""How long an idle authenticated connection is kept for the next message (RFC 5321 servers wait
at least 5 minutes before dropping an idle client, so this stays well inside their patience)."""

_PROGRESS_POLL = 0.25
"""Seconds between looks at the send buffer while the message data is being uploaded."""

_LINE_END = re.compile(rb"\r\n|\r|\n")
_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)
# Envelope addresses go into a command line between < and >: no controls, spaces or brackets.
_BAD_ADDRESS_CHAR = re.compile(r"[\x00-\x20\x7f<>]")
_EHLO_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?")
_MASK = "**********"
_MIN_MASKED_SECRET = 4  # as in config: masking a 1-3 character password would mangle ordinary words

_Key = tuple[str, int, str | None]


@dataclass(frozen=True, repr=False)
class SmtpEndpoint:
    """Where and how to submit: everything a connection needs, nothing else.

    ``username`` None means no AUTH. ``timeout`` bounds every step (connect, TLS handshake, each
    command's reply, and the data upload as explained in the module docstring). ``ca_file`` adds
    trusted CA certificates to the system's; ``tls_verify`` False accepts any certificate.
    """

    host: str
    port: int
    security: Security
    username: str | None = None
    password: str | None = None
    timeout: float = 10.0
    tls_verify: bool = True
    ca_file: Path | None = None
    label: str = ""
    """Names the account in errors and logs (its email address)."""

    def __repr__(self) -> str:  # never the password
        user = f"{self.username}@" if self.username is not None else ""
        return f"SmtpEndpoint({user}{self.host}:{self.port}, {self.security}, timeout={self.timeout:g})"


def smtp_endpoint(account: AccountConfig) -> SmtpEndpoint:
    """Return the SMTP endpoint of ``account``; the password is read now (``password_env`` too).

    Raises ConfigError if ``password_env`` names an unset or empty variable.
    """
    smtp = account.smtp
    return SmtpEndpoint(
        host=smtp.host,
        port=smtp.port,
        security=smtp.security,
        username=smtp.username,
        password=smtp.password_value(),
        timeout=smtp.timeout_seconds,
        tls_verify=smtp.tls_verify,
        ca_file=smtp.ca_file,
        label=account.email,
    )


@dataclass(frozen=True)
class SendResult:
    """What the server said to a message it accepted (its final reply to DATA).

    ``accepted`` are the recipients the server took (RCPT answered 250/251), in the order given;
    ``refused`` maps each other recipient to its RCPT reply ``(code, text)``. The message was
    delivered to the accepted ones only.
    """

    reply_code: int
    reply_message: str
    accepted: tuple[str, ...]
    refused: dict[str, tuple[int, str]]


class _Connection:
    """One SMTP session past EHLO/STARTTLS/AUTH, owned by one message at a time."""

    def __init__(self, endpoint: SmtpEndpoint, smtp: aiosmtplib.SMTP) -> None:
        self.endpoint = endpoint
        self.smtp = smtp
        self.lock = asyncio.Lock()
        self.expiry: asyncio.TimerHandle | None = None

    def cancel_expiry(self) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None

    def close(self, *, say_quit: bool = False) -> None:
        """Closes the connection now; with ``say_quit`` QUIT is written first, without waiting for
        the reply. Returns None, never raises."""
        self.cancel_expiry()
        protocol = self.smtp.protocol
        if say_quit and protocol is not None and self.smtp.is_connected:
            try:
                protocol.write(b"QUIT\r\n")
            except (aiosmtplib.SMTPException, OSError, RuntimeError):
                pass
        self.smtp.close()

    async def quit(self) -> None:
        """Says QUIT and waits (briefly) for the reply, then closes; returns None, never raises."""
        self.cancel_expiry()
        try:
            if self.smtp.is_connected:
                await self.smtp.quit(timeout=min(self.endpoint.timeout, 5.0))
        except (aiosmtplib.SMTPException, OSError):
            pass
        finally:
            self.smtp.close()


class Sender:
    """Submits messages to SMTP servers, keeping one idle connection per endpoint for reuse.

    Use from one event loop; call :meth:`close` when done (it closes the idle connections; the
    Sender stays usable afterwards). ``local_hostname`` is the name given in EHLO, by default
    this machine's fully qualified name.
    """

    def __init__(self, *, idle_seconds: float = IDLE_SECONDS, local_hostname: str | None = None,
                 observe: Callable[[str, float], None] | None = None) -> None:
        self.idle_seconds = idle_seconds
        self.observe = observe
        """Told each submission's outcome (``sent`` or the error's code) and duration."""
        self._local_hostname = local_hostname
        self._idle: dict[_Key, _Connection] = {}
        self._tls_contexts: dict[tuple[Path | None, bool], ssl.SSLContext] = {}

    async def send(
        self, endpoint: SmtpEndpoint, message: bytes, *, mail_from: str, recipients: Sequence[str]
    ) -> SendResult:
        """Submit ``message`` to ``endpoint``: envelope sender ``mail_from`` (``""`` for the null
        sender), one RCPT TO per recipient (exact duplicates sent once), DATA ``message``.

        Returns the SendResult once the server accepted the message for at least one recipient
        (recipients it refused are listed in ``refused``). Raises:

        - SmtpUnavailable: no connection, TLS failure, STARTTLS not offered, timeout or drop
          before the end of the data was sent; nothing was delivered, retrying later is safe;
        - SmtpAuthFailed: login refused (535...) or AUTH required/impossible; fix the settings;
        - SmtpTemporaryFailure: a 4xx reply; nothing was delivered, retrying later is safe;
        - SmtpRejected: a 5xx reply to MAIL or DATA, or every recipient refused; nothing was
          delivered;
        - SmtpOutcomeUnknown: the data was sent but no final reply came; do not retry
          automatically;
        - ValueError: no recipient, or an address with a space, control character, < or >.
        """
        rcpts = _check_envelope(mail_from, recipients)
        started = time.perf_counter()
        try:
            conn = await self._take(endpoint)
            finished = False
            try:
                async with conn.lock:
                    result = await self._transaction(conn, message, mail_from, rcpts)
                finished = True
            finally:
                if finished:
                    self._put_back(conn)
                else:
                    conn.close()
        except SmtpError as exc:
            log.warning("SMTP send for %s via %s:%d failed (%s): %s", endpoint.label or "?",
                        endpoint.host, endpoint.port, exc.code, exc.message)
            if self.observe is not None:
                self.observe(exc.code, time.perf_counter() - started)
            raise
        if self.observe is not None:
            self.observe("sent", time.perf_counter() - started)
        log.info("SMTP sent message for %s via %s:%d: %d recipient(s) accepted, %d refused, reply %d",
                 endpoint.label or "?", endpoint.host, endpoint.port, len(result.accepted),
                 len(result.refused), result.reply_code)
        return result

    async def close(self) -> None:
        """Says QUIT on every idle connection and closes it; returns None, never raises.

        A message still being sent keeps its connection and puts it back when done: call this
        after the senders have finished (on shutdown: after cancelling the scheduler).
        """
        idle, self._idle = list(self._idle.values()), {}
        await asyncio.gather(*(conn.quit() for conn in idle))

    # ------------------------------------------------------------------ connections

    async def _take(self, endpoint: SmtpEndpoint) -> _Connection:
        """Returns the idle connection for ``endpoint`` if it still answers RSET, else a new one."""
        idle = self._idle.pop(_key(endpoint), None)
        if idle is not None:
            idle.cancel_expiry()
            try:
                if idle.endpoint == endpoint and await _still_usable(idle):
                    return idle
            except BaseException:
                idle.close()
                raise
            idle.close(say_quit=True)
        return await self._open(endpoint)

    def _put_back(self, conn: _Connection) -> None:
        """Keeps ``conn`` as its endpoint's idle connection, or closes it if one is already kept."""
        key = _key(conn.endpoint)
        if self.idle_seconds <= 0 or not conn.smtp.is_connected or key in self._idle:
            conn.close(say_quit=True)
            return
        self._idle[key] = conn
        conn.expiry = asyncio.get_running_loop().call_later(self.idle_seconds, self._expire, key, conn)

    def _expire(self, key: _Key, conn: _Connection) -> None:
        if self._idle.get(key) is conn:
            del self._idle[key]
        conn.expiry = None
        conn.close(say_quit=True)

    async def _open(self, ep: SmtpEndpoint) -> _Connection:
        """Returns a new connection: connected, secured as configured, EHLO done, logged in."""
        ctx = await self._tls_context(ep) if ep.security != "none" else None
        smtp = aiosmtplib.SMTP(
            hostname=ep.host, port=ep.port, timeout=ep.timeout, use_tls=ep.security == "tls",
            start_tls=False, tls_context=ctx, local_hostname=await self._ehlo_name(),
        )
        step = "connect"
        try:
            try:
                await smtp.connect()
                step = "EHLO"
                await _ehlo(smtp, ep)
                if ep.security == "starttls":
                    step = "STARTTLS"
                    await _starttls(smtp, ep)
                    step = "EHLO after STARTTLS"
                    await _ehlo(smtp, ep)
                if ep.username is not None:
                    step = "AUTH"
                    await _login(smtp, ep, ep.username)
            except SmtpError:
                raise
            except aiosmtplib.SMTPConnectResponseError as exc:  # a greeting other than 220
                raise _error(SmtpUnavailable, ep, f"SMTP server {_where(ep)} refused the session: it "
                             f"greeted with {_quote(exc.code, exc.message)}; nothing was sent",
                             exc.code, exc.message) from None
            except (aiosmtplib.SMTPTimeoutError, TimeoutError):
                raise _error(SmtpUnavailable, ep, f"SMTP server {_where(ep)} did not answer within "
                             f"{ep.timeout:g}s ({step}); nothing was sent (timeout_seconds sets "
                             "the limit)") from None
            except aiosmtplib.SMTPConnectError as exc:
                raise _connect_error(ep, exc.__cause__ or exc) from None
            except ssl.SSLError as exc:
                raise _connect_error(ep, exc) from None
            except (aiosmtplib.SMTPException, OSError) as exc:
                raise _error(SmtpUnavailable, ep, f"SMTP connection to {_where(ep)} failed during "
                             f"{step}: {_describe(exc)}; nothing was sent") from None
        except BaseException:
            smtp.close()
            raise
        return _Connection(ep, smtp)

    async def _ehlo_name(self) -> str:
        if self._local_hostname is None:
            name = await asyncio.to_thread(socket.getfqdn)
            self._local_hostname = name if name.isascii() and _EHLO_NAME.fullmatch(name) else "localhost"
        return self._local_hostname

    async def _tls_context(self, ep: SmtpEndpoint) -> ssl.SSLContext:
        """Returns the client TLS context for the endpoint's ``ca_file``/``tls_verify`` (cached)."""
        key = (ep.ca_file, ep.tls_verify)
        ctx = self._tls_contexts.get(key)
        if ctx is None:
            try:
                ctx = await asyncio.to_thread(_make_tls_context, ep.ca_file, ep.tls_verify)
            except (OSError, ssl.SSLError) as exc:
                raise _error(SmtpUnavailable, ep, f"cannot load the CA certificates of ca_file "
                             f"{ep.ca_file} for {_where(ep)}: {_describe(exc)}") from None
            self._tls_contexts[key] = ctx
        return ctx

    # ------------------------------------------------------------------ one message

    async def _transaction(self, conn: _Connection, message: bytes, mail_from: str,
                           rcpts: tuple[str, ...]) -> SendResult:
        smtp, ep = conn.smtp, conn.endpoint
        payload = _data_payload(message)
        utf8_envelope = not (mail_from.isascii() and all(r.isascii() for r in rcpts))
        options: list[bytes] = []
        if smtp.supports_extension("size"):
            options.append(f"SIZE={len(payload)}".encode())
        if not message.isascii() and smtp.supports_extension("8bitmime"):
            options.append(b"BODY=8BITMIME")
        if utf8_envelope or not _header_block(message).isascii():
            if smtp.supports_extension("smtputf8"):
                options.append(b"SMTPUTF8")
            elif utf8_envelope:
                raise _error(SmtpRejected, ep, f"SMTP server {_where(ep)} does not support SMTPUTF8 "
                             "(RFC 6531), which an envelope address with non-ASCII characters needs; "
                             "nothing was sent")
        encoding = "utf-8" if utf8_envelope else "ascii"

        what = f"MAIL FROM:<{mail_from}>"
        reply = await _command(conn, what, b"MAIL", b"FROM:<" + mail_from.encode(encoding) + b">",
                               *options)
        if reply.code != 250:
            raise _reply_error(ep, what, reply, mail=True)

        accepted: list[str] = []
        refused: dict[str, tuple[int, str]] = {}
        for rcpt in rcpts:
            reply = await _command(conn, f"RCPT TO:<{rcpt}>", b"RCPT",
                                   b"TO:<" + rcpt.encode(encoding) + b">")
            if reply.code in (250, 251):
                accepted.append(rcpt)
            else:
                refused[rcpt] = (reply.code, reply.message)
        if not accepted:
            raise _all_refused(ep, refused)

        reply = await _command(conn, "DATA", b"DATA")
        if reply.code != 354:
            raise _reply_error(ep, "DATA", reply)
        final = await _send_data(conn, payload)
        if 200 <= final.code < 300:
            return SendResult(final.code, final.message, tuple(accepted), refused)
        if 400 <= final.code < 600:
            raise _reply_error(ep, "the message data", final)
        raise _error(SmtpOutcomeUnknown, ep, f"SMTP server {_where(ep)} answered the message data "
                     f"with the unexpected {_quote(final.code, final.message)}: it may or may not "
                     "have accepted the message; do not resend it automatically",
                     final.code, final.message)


# ---------------------------------------------------------------------------- steps


async def _ehlo(smtp: aiosmtplib.SMTP, ep: SmtpEndpoint) -> None:
    try:
        await smtp.ehlo(timeout=ep.timeout)
    except aiosmtplib.SMTPHeloError as exc:
        raise _error(SmtpUnavailable, ep, f"SMTP server {_where(ep)} refused EHLO: "
                     f"{_quote(exc.code, exc.message)}; nothing was sent", exc.code, exc.message) from None


async def _starttls(smtp: aiosmtplib.SMTP, ep: SmtpEndpoint) -> None:
    """Upgrades to TLS (RFC 3207); refuses to go on in clear when the server does not offer it."""
    if not smtp.supports_extension("starttls"):
        raise _error(SmtpUnavailable, ep, f"SMTP server {_where(ep)} does not offer STARTTLS, which "
                     'the configuration requires (security = "starttls"); not continuing without '
                     "encryption, nothing was sent. If this port expects TLS from the first byte "
                     '(usually 465), set security = "tls"')
    try:
        await smtp.starttls(server_hostname=ep.host, timeout=ep.timeout)
    except aiosmtplib.SMTPResponseException as exc:
        raise _error(SmtpUnavailable, ep, f"SMTP server {_where(ep)} refused STARTTLS: "
                     f"{_quote(exc.code, exc.message)}; nothing was sent", exc.code, exc.message) from None


_AuthMethod = Callable[..., Awaitable[aiosmtplib.SMTPResponse]]


async def _login(smtp: aiosmtplib.SMTP, ep: SmtpEndpoint, username: str) -> None:
    """AUTH (RFC 4954) once, with the first of PLAIN, LOGIN, CRAM-MD5 the server offers."""
    offered = smtp.server_auth_methods if smtp.supports_extension("auth") else []
    methods: dict[str, _AuthMethod] = {
        "plain": smtp.auth_plain, "login": smtp.auth_login, "cram-md5": smtp.auth_crammd5,
    }
    name = next((m for m in methods if m in offered), None)
    if name is None:
        hint = (" (many servers offer AUTH only over TLS: use security = \"starttls\" or \"tls\")"
                if ep.security == "none" else "")
        listed = ", ".join(m.upper() for m in offered) or "none"
        raise _error(SmtpAuthFailed, ep, f"SMTP server {_where(ep)} offers no AUTH mechanism "
                     f"mailbridge can use on this connection (offered: {listed}; supported: PLAIN, "
                     f"LOGIN, CRAM-MD5){hint}")
    try:
        await methods[name](username, ep.password or "", timeout=ep.timeout)
    except aiosmtplib.SMTPAuthenticationError as exc:
        if 400 <= exc.code < 500:
            raise _error(SmtpTemporaryFailure, ep, f"SMTP server {_where(ep)} could not check the "
                         f"login of user {username!r} for now: {_quote(exc.code, exc.message)}; "
                         "nothing was sent, try again later", exc.code, exc.message) from None
        raise _error(SmtpAuthFailed, ep, f"SMTP authentication ({name.upper()}) failed for user "
                     f"{username!r} on {_where(ep)}: the server said {_quote(exc.code, exc.message)}; "
                     "check the account's smtp username and password", exc.code, exc.message) from None


async def _still_usable(conn: _Connection) -> bool:
    """True if the idle connection answers RSET with 250 (within the endpoint's timeout)."""
    if not conn.smtp.is_connected:
        return False
    try:
        reply = await conn.smtp.execute_command(b"RSET", timeout=conn.endpoint.timeout)
    except (aiosmtplib.SMTPException, OSError):
        return False
    return reply.code == 250


async def _command(conn: _Connection, what: str, *args: bytes) -> aiosmtplib.SMTPResponse:
    """Sends one command of the envelope phase and returns the reply, whatever its code.

    Raises SmtpUnavailable on a timeout, a dropped connection or an unreadable reply: at this
    point no message data has been sent.
    """
    ep = conn.endpoint
    try:
        return await conn.smtp.execute_command(*args, timeout=ep.timeout)
    except (aiosmtplib.SMTPTimeoutError, TimeoutError):
        raise _error(SmtpUnavailable, ep, f"SMTP server {_where(ep)} did not answer {what} within "
                     f"{ep.timeout:g}s; nothing was delivered (timeout_seconds sets the limit)") from None
    except (aiosmtplib.SMTPServerDisconnected, OSError) as exc:
        raise _error(SmtpUnavailable, ep, f"SMTP connection to {_where(ep)} was lost at {what} "
                     f"({_describe(exc)}); nothing was delivered") from None
    except aiosmtplib.SMTPException as exc:  # e.g. a malformed reply line
        raise _error(SmtpUnavailable, ep, f"SMTP server {_where(ep)} gave an unusable reply to {what} "
                     f"({_describe(exc)}); nothing was delivered") from None


async def _send_data(conn: _Connection, payload: bytes) -> aiosmtplib.SMTPResponse:
    """Writes the dot-stuffed message data (after ``354``) and returns the server's final reply.

    Raises SmtpUnavailable if the end of the data never left the send buffer (the server cannot
    have accepted the message), SmtpOutcomeUnknown if all of it was sent and then the connection
    dropped or no reply came within the timeout.
    """
    smtp, ep = conn.smtp, conn.endpoint
    protocol, transport = smtp.protocol, smtp.transport
    if protocol is None or transport is None or not smtp.is_connected:
        raise _error(SmtpUnavailable, ep, f"SMTP connection to {_where(ep)} was lost after the server "
                     "said 354, before the message data was sent; nothing was delivered")
    try:
        protocol.write(payload)
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise _error(SmtpUnavailable, ep, f"SMTP connection to {_where(ep)} was lost before the "
                     f"message data was sent ({_describe(exc)}); nothing was delivered") from None
    # Start reading at once, with no await in between: aiosmtplib's protocol drops bytes that
    # arrive while no read is pending, and the task's first step runs before the loop next polls
    # the socket, so the final reply cannot slip through.
    reader = asyncio.ensure_future(protocol.read_response(timeout=None))
    try:
        return await _final_reply(reader, transport, ep)
    finally:
        if not reader.done():
            reader.cancel()
            await asyncio.wait((reader,))
        if not reader.cancelled():
            reader.exception()  # retrieved: no "exception was never retrieved" log at GC


async def _final_reply(reader: asyncio.Future[aiosmtplib.SMTPResponse], transport: asyncio.BaseTransport,
                       ep: SmtpEndpoint) -> aiosmtplib.SMTPResponse:
    loop = asyncio.get_running_loop()
    pending = _unsent(transport)
    deadline = loop.time() + ep.timeout
    while True:
        wait = deadline - loop.time()
        if pending > 0:
            wait = min(wait, _PROGRESS_POLL)
        if wait > 0:
            await asyncio.wait((reader,), timeout=wait)
        if reader.done():
            try:
                return reader.result()
            except (aiosmtplib.SMTPException, OSError) as exc:
                raise _error(SmtpOutcomeUnknown, ep, f"SMTP connection to {_where(ep)} failed after "
                             f"the message data was sent, before the server's final reply "
                             f"({_describe(exc)}): the server may or may not have accepted the "
                             "message; do not resend it automatically") from None
        now_pending = _unsent(transport)
        if now_pending < pending:  # progress: the upload goes on, restart the clock
            pending = now_pending
            deadline = loop.time() + ep.timeout
        elif loop.time() >= deadline:
            if now_pending > 0:
                raise _error(SmtpUnavailable, ep, f"SMTP server {_where(ep)} stopped taking the message "
                             f"data for {ep.timeout:g}s with {now_pending} bytes still unsent; it never "
                             "got the end of the message, so nothing was delivered")
            raise _error(SmtpOutcomeUnknown, ep, f"SMTP server {_where(ep)} did not answer within "
                         f"{ep.timeout:g}s after the whole message data was sent: it may or may not "
                         "have accepted the message; do not resend it automatically")


def _unsent(transport: asyncio.BaseTransport) -> int:
    """Bytes written but not yet handed to the network (for TLS: not yet encrypted and sent)."""
    if not isinstance(transport, asyncio.WriteTransport):
        return 0
    try:
        return int(transport.get_write_buffer_size())
    except (AttributeError, RuntimeError, OSError):
        return 0


# ---------------------------------------------------------------------------- helpers


def _key(ep: SmtpEndpoint) -> _Key:
    return (ep.host, ep.port, ep.username)


def _where(ep: SmtpEndpoint) -> str:
    return f"[{ep.host}]:{ep.port}" if ":" in ep.host else f"{ep.host}:{ep.port}"


def _check_envelope(mail_from: str, recipients: Sequence[str]) -> tuple[str, ...]:
    """Returns the recipients without exact duplicates; raises ValueError for unusable input."""
    if isinstance(recipients, str):
        raise ValueError("recipients must be a sequence of addresses, not one string")
    rcpts = tuple(dict.fromkeys(recipients))
    if not rcpts:
        raise ValueError("a message needs at least one recipient")
    for role, address in [("mail_from", mail_from), *(("recipient", r) for r in rcpts)]:
        if _BAD_ADDRESS_CHAR.search(address):
            raise ValueError(f"{role} {address!r} is not a bare address (no spaces, control "
                             "characters, < or >)")
        if role == "recipient" and not address:
            raise ValueError("a recipient address is empty")
    return rcpts


def _data_payload(message: bytes) -> bytes:
    """Returns ``message`` as SMTP data (RFC 5321 section 4.5.2): CRLF line ends, leading dots
    doubled, ending with the ``.`` line."""
    data = _LINE_END.sub(b"\r\n", message)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return _LEADING_DOT.sub(b"..", data) + b".\r\n"


def _header_block(message: bytes) -> bytes:
    end = message.find(b"\r\n\r\n")
    if end < 0:
        end = message.find(b"\n\n")
    return message if end < 0 else message[:end]


def _make_tls_context(ca_file: Path | None, verify: bool) -> ssl.SSLContext:
    """The system's trusted CAs plus ``ca_file``; with ``verify`` False, any certificate."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_file is not None:
        ctx.load_verify_locations(cafile=str(ca_file))
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _quote(code: int, text: str) -> str:
    return f'"{code} {_one_line(text)}"'


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verification failed: {exc.verify_message or exc.reason or exc}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror or exc})"
    if isinstance(exc, OSError) and exc.errno is not None and exc.errno > 0:
        return os.strerror(exc.errno)  # "Connection refused", not asyncio's "Connect call failed"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = getattr(exc, "message", None) or str(exc)
    return _one_line(str(text)) or type(exc).__name__


def _connect_error(ep: SmtpEndpoint, exc: BaseException) -> SmtpError:
    if isinstance(exc, ssl.SSLError):
        hint = ""
        if isinstance(exc, ssl.SSLCertVerificationError) and ep.tls_verify:
            hint = (" (for a self-signed or private-CA certificate set ca_file to the CA's PEM file; "
                    "tls_verify = false accepts any certificate)")
        return _error(SmtpUnavailable, ep, f"TLS with SMTP server {_where(ep)} failed: "
                      f"{_describe(exc)}{hint}; nothing was sent")
    return _error(SmtpUnavailable, ep, f"cannot connect to SMTP server {_where(ep)}: {_describe(exc)}; "
                  "nothing was sent")


def _reply_error(ep: SmtpEndpoint, what: str, reply: aiosmtplib.SMTPResponse, *,
                 mail: bool = False) -> SmtpError:
    """The one place a refusing reply becomes an error: 4xx temporary, 5xx permanent, and 530 to
    MAIL (authentication required) an authentication problem."""
    said = f"SMTP server {_where(ep)} answered {what} with {_quote(reply.code, reply.message)}"
    if mail and reply.code == 530:
        return _error(SmtpAuthFailed, ep, f"{said}: it requires AUTH; configure the account's smtp "
                      "username and password", reply.code, reply.message)
    if 400 <= reply.code < 500:
        return _error(SmtpTemporaryFailure, ep, f"{said} (temporary failure); nothing was delivered, "
                      "try again later", reply.code, reply.message)
    if 500 <= reply.code < 600:
        return _error(SmtpRejected, ep, f"{said}; the message was rejected, nothing was delivered",
                      reply.code, reply.message)
    return _error(SmtpUnavailable, ep, f"{said}, an unexpected reply; nothing was delivered",
                  reply.code, reply.message)


def _all_refused(ep: SmtpEndpoint, refused: dict[str, tuple[int, str]]) -> SmtpError:
    """The error when every RCPT was refused: temporary if any refusal was, else rejected."""
    listed = "; ".join(f"<{r}> {_quote(code, text)}" for r, (code, text) in refused.items())
    temporary = [(code, text) for code, text in refused.values() if 400 <= code < 500]
    if temporary:
        code, text = temporary[0]
        return _error(SmtpTemporaryFailure, ep, f"SMTP server {_where(ep)} refused every recipient, "
                      f"some temporarily: {listed}; nothing was delivered, try again later", code, text)
    code, text = next(iter(refused.values()))
    return _error(SmtpRejected, ep, f"SMTP server {_where(ep)} refused every recipient: {listed}; "
                  "nothing was delivered", code, text)


def _error(cls: type[SmtpError], ep: SmtpEndpoint, message: str, reply_code: int | None = None,
           reply: str = "") -> SmtpError:
    """Builds the error, with the password masked out of its message and reply."""
    secret = ep.password
    if secret and len(secret) >= _MIN_MASKED_SECRET:
        message, reply = message.replace(secret, _MASK), reply.replace(secret, _MASK)
    return cls(message, reply_code=reply_code, reply=reply, account=ep.label or None)
