"""The dev SMTP submission server of `make run` and the test suite (RFC 5321 + RFC 4954 AUTH).

It listens on loopback only, requires AUTH PLAIN or LOGIN with a dev user's password before
MAIL FROM, and delivers every accepted message into the private Dovecot through LMTP (RFC 2033):

- a recipient that is a dev user gets the message in its own INBOX, byte for byte as submitted;
- every other recipient's copy goes to the INBOX of the catch-all user: one copy per message for
  all the non-local recipients together, with one prepended ``X-Mailbridge-Dev-Original-Recipient:
  addr`` header line per such recipient (like Postfix's ``X-Original-To``).

Nothing ever leaves the machine. Decisions a reader might look for:

- MAIL FROM is not checked against the authenticated login (any sender is accepted, the null
  sender too); the login is recorded with each message in :attr:`DevSmtpServer.delivered` and in the
  log line, so a test can assert on it.
- The two LMTP transactions of a message (local recipients; catch-all copy) each run on their own
  connection, and both get every RCPT accepted before either sends DATA: an LMTP RCPT rejection
  means nothing is delivered. A failure in the DATA phase (rare: quota, disk) can still leave the
  copies already accepted in place; the client then sees the error anyway.
- LMTP unreachable, or a temporary (4xx) LMTP reply: ``451`` to the client, quoting LMTP's reply.
  A permanent (5xx) LMTP reply: ``550``, quoting it.
- Plaintext AUTH without TLS is deliberate (loopback only). aiosmtpd warns about it with
  ``warnings.warn`` on every connection; that warning is avoided rather than filtered, because
  the warnings filters are process-wide and not thread-safe (see :class:`_DevSMTP`).
- aiosmtpd's own logger (``mail.log``) masks the argument of ``AUTH <mech> <secret>`` lines and does
  not log the answers to AUTH challenges; this module never logs a password. aiosmtpd logs every
  command line at INFO on ``mail.log``: a dev runner may want that logger at WARNING.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import ipaddress
import logging
import smtplib
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

log = logging.getLogger("mailbridge.devsmtp")

ORIGINAL_RECIPIENT_HEADER = "X-Mailbridge-Dev-Original-Recipient"
"""Prepended to the catch-all copy, once per non-local recipient it stands for."""

DEFAULT_HISTORY = 1000
"""How many accepted messages :attr:`DevSmtpServer.delivered` keeps."""

UsersSource = Mapping[str, str] | Callable[[], Mapping[str, str]]
"""email -> password; a mapping read on each use (it may change), or a callable returning one."""


@dataclass(frozen=True)
class DeliveredMessage:
    """One message the dev server accepted (answered 250) and delivered."""

    mail_from: str
    """The envelope sender (MAIL FROM), ``""`` for the null sender."""
    rcpt_tos: tuple[str, ...]
    """The envelope recipients as the client gave them (RCPT TO), in order."""
    data: bytes
    """The message exactly as received after DATA (dot-unstuffed, CRLF line ends)."""
    login: str
    """The user that authenticated the SMTP session."""
    received_at: float = field(default_factory=time.time, compare=False)
    """When the message was accepted (time.time())."""


class _DeliveryError(Exception):
    """LMTP delivery failed; ``reply`` is the SMTP reply line to give the submitting client."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


def _one_line(text: str | bytes) -> str:
    """Returns ``text`` as one printable line, fit to be quoted in an SMTP reply."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return " ".join(text.split())


def _lmtp_failure(what: str, code: int, text: str | bytes) -> _DeliveryError:
    """Returns the error for an LMTP reply ``code text``: 550 when permanent, else 451."""
    quoted = f"{what}: LMTP said {code} {_one_line(text)}"
    if 500 <= code < 600:
        return _DeliveryError(f"550 5.3.0 Dev delivery rejected, {quoted}")
    return _DeliveryError(f"451 4.3.0 Dev delivery failed, {quoted}")


@dataclass(frozen=True)
class _Transaction:
    """One LMTP transaction: these recipients get these bytes."""

    recipients: tuple[str, ...]
    data: bytes


class _LmtpDelivery:
    """Delivers a set of LMTP transactions, blocking (it runs in a worker thread)."""

    def __init__(self, host: str, port: int, timeout: float, local_hostname: str) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.local_hostname = local_hostname

    def deliver(self, mail_from: str, smtputf8: bool, transactions: Iterable[_Transaction]) -> None:
        """Delivers every transaction, each on its own connection; returns None, raises
        :class:`_DeliveryError` on the first failure.

        All connections get MAIL and every RCPT accepted before any DATA is sent, so an LMTP
        recipient rejection leaves nothing delivered.
        """
        opened: list[tuple[smtplib.LMTP, _Transaction]] = []
        try:
            for tx in transactions:
                conn = self._connect()
                opened.append((conn, tx))
                self._envelope(conn, mail_from, smtputf8, tx)
            for conn, tx in opened:
                self._data(conn, tx)
        except smtplib.SMTPResponseException as error:  # e.g. a greeting other than 220
            raise _lmtp_failure("connect", error.smtp_code, error.smtp_error) from error
        except OSError as error:  # SMTPServerDisconnected too: LMTP is unreachable or broke off
            raise _DeliveryError(
                f"451 4.4.1 Dev delivery failed, LMTP {self.host}:{self.port} unreachable: "
                f"{_one_line(str(error) or type(error).__name__)}"
            ) from error
        except (smtplib.SMTPException, UnicodeError) as error:
            # e.g. a non-ASCII address while LMTP lacks SMTPUTF8: smtplib refuses to send it
            raise _DeliveryError(
                f"451 4.3.0 Dev delivery failed: {type(error).__name__}: {_one_line(str(error))}"
            ) from error
        finally:
            for conn, _ in opened:
                self._close(conn)

    def _connect(self) -> smtplib.LMTP:
        """Returns an LMTP connection that has been greeted with LHLO."""
        conn = smtplib.LMTP(self.host, self.port, local_hostname=self.local_hostname,
                            timeout=self.timeout)
        try:
            code, text = conn.ehlo()  # smtplib.LMTP sends LHLO here
            if code != 250:
                raise _lmtp_failure("LHLO", code, text)
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _envelope(conn: smtplib.LMTP, mail_from: str, smtputf8: bool, tx: _Transaction) -> None:
        """Sends MAIL and one RCPT per recipient; returns None, raises on any rejection."""
        options: list[str] = []
        if smtputf8 and conn.has_extn("smtputf8"):
            options.append("SMTPUTF8")
        if conn.has_extn("8bitmime") and not tx.data.isascii():
            options.append("BODY=8BITMIME")
        code, text = conn.mail(mail_from, options)
        if code != 250:
            raise _lmtp_failure(f"MAIL FROM:<{mail_from}>", code, text)
        for rcpt in tx.recipients:
            code, text = conn.rcpt(rcpt)
            if code not in (250, 251):
                raise _lmtp_failure(f"RCPT TO:<{rcpt}>", code, text)

    @staticmethod
    def _data(conn: smtplib.LMTP, tx: _Transaction) -> None:
        """Sends DATA and reads LMTP's one reply per recipient (RFC 2033 section 4.2); returns None,
        raises on the first failed recipient (permanent failures win over temporary ones)."""
        try:
            first = conn.data(tx.data)  # dot-stuffs; bytes are sent as they are
        except smtplib.SMTPDataError as error:  # the DATA command itself was refused
            raise _lmtp_failure("DATA", error.smtp_code, error.smtp_error) from error
        replies = [first] + [conn.getreply() for _ in tx.recipients[1:]]
        failures = [
            _lmtp_failure(f"<{rcpt}>", code, text)
            for rcpt, (code, text) in zip(tx.recipients, replies, strict=True)
            if code != 250
        ]
        if failures:
            failures.sort(key=lambda f: not f.reply.startswith("5"))
            raise failures[0]

    @staticmethod
    def _close(conn: smtplib.LMTP) -> None:
        """Says QUIT if the connection still works, and closes it; returns None, never raises."""
        try:
            if conn.sock is not None:
                conn.quit()
        except (smtplib.SMTPException, OSError):
            pass
        finally:
            conn.close()


class _QuietSession(Session):
    """A Session whose legacy ``login_data`` does not log a deprecation WARNING on every AUTH.

    aiosmtpd 1.4 sets ``login_data`` itself after each successful AUTH and its property logs
    "Session.login_data is deprecated" each time; nothing here reads it.
    """

    @property
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class _DevSMTP(SMTP):
    """aiosmtpd's SMTP protocol with AUTH required but allowed without TLS, and no warnings.

    ``SMTP(auth_required=True, auth_require_tls=False)`` calls ``warnings.warn`` for each new
    connection. Under pytest's ``filterwarnings = error`` that exception would break every
    connection, and ``warnings.catch_warnings`` cannot scope a filter to this thread. So the
    protocol is built with ``auth_required=False`` and the flag, which aiosmtpd reads only in
    ``check_auth_needed`` (MAIL, RCPT, DATA answer 530 until AUTH succeeds), is set afterwards.
    """

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        kwargs["auth_required"] = False
        kwargs["auth_require_tls"] = False
        super().__init__(handler, **kwargs)
        self._auth_required = True

    def _create_session(self) -> Session:
        return _QuietSession(self.loop)


class _DevController(Controller):
    """aiosmtpd's threaded Controller, made to work with port 0 and to stop gracefully."""

    def __init__(self, handler: _Handler, *, host: str, port: int, **kwargs: Any) -> None:
        super().__init__(handler, hostname=host, port=port, **kwargs)
        self.dev_handler = handler
        self.bound_port: int | None = None
        self._protocols: weakref.WeakSet[SMTP] = weakref.WeakSet()

    def factory(self) -> SMTP:
        protocol = _DevSMTP(self.handler, **self.SMTP_kwargs)
        self._protocols.add(protocol)
        return protocol

    def _trigger_server(self) -> None:
        # aiosmtpd connects to self.port to check that factory() works; with port 0 that is not
        # the bound port, so read the real one from the listening socket first.
        if not isinstance(self.server, asyncio.Server) or not self.server.sockets:
            raise RuntimeError("dev SMTP server: the listener is not bound")
        self.bound_port = int(self.server.sockets[0].getsockname()[1])
        self.port = self.bound_port
        # The check itself, as aiosmtpd's: read the greeting (no AUTH needed for that).
        with socket.create_connection((self.hostname, self.bound_port), timeout=1.0) as probe:
            probe.recv(1024)

    async def drain(self, grace: float) -> None:
        """Stops listening, lets deliveries in progress finish (up to ``grace`` seconds), then drops
        every client connection and waits for its task; returns None. Runs on the server's loop."""
        if self.server is not None:
            self.server.close()
        in_flight = set(self.dev_handler.in_flight)
        if in_flight:
            await asyncio.wait(in_flight, timeout=grace)
        # A delivery still running after the grace keeps its worker thread busy until LMTP's timeout.
        threads_busy = any(not f.done() for f in in_flight)
        for protocol in list(self._protocols):
            transport = protocol.transport
            if isinstance(transport, asyncio.Transport):
                transport.abort()
            elif transport is not None:
                transport.close()
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0)  # let the aborted transports' connection_lost callbacks run
        if not threads_busy:
            # Joins the worker threads, so stop() leaves no thread behind.
            await asyncio.get_running_loop().shutdown_default_executor()


class _Handler:
    """The aiosmtpd handler: AUTH against the dev users, DATA -> LMTP delivery."""

    def __init__(self, owner: DevSmtpServer) -> None:
        self.owner = owner
        self.in_flight: set[asyncio.Future[None]] = set()
        self.handling = 0
        """Messages whose DATA is being handled: received, not yet answered (nor recorded)."""

    def _forget(self, future: asyncio.Future[None]) -> None:
        """Done callback of a delivery: drops it from ``in_flight``; returns None.

        Reading the outcome keeps asyncio from logging "exception was never retrieved" when the
        client hung up before the delivery ended (nobody awaits the shielded future then).
        """
        self.in_flight.discard(future)
        if not future.cancelled():
            future.exception()

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        """aiosmtpd's ``authenticator``: returns success for a dev user's login and password.

        The login is matched exactly, then ignoring case; the password exactly (constant time).
        On success ``session.auth_data`` becomes the user's email as the users mapping spells it.
        """
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        try:
            login = auth_data.login.decode("utf-8")
        except UnicodeDecodeError:
            return AuthResult(success=False, handled=False)
        users = self.owner.users_snapshot()
        user = _find_user(users, login)
        if user is None or not hmac.compare_digest(users[user].encode("utf-8"), auth_data.password):
            log.info("AUTH %s failed for %r", mechanism, login)
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=user)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Returns the SMTP reply for the message: 250 once delivered, else the injected or LMTP
        failure (451 temporary, 550 permanent)."""
        self.handling += 1
        try:
            return await self._handle_data(session, envelope)
        finally:
            self.handling -= 1

    async def _handle_data(self, session: Session, envelope: Envelope) -> str:
        owner = self.owner
        if owner.stall_data.is_set():
            # fault injection: announce that DATA arrived, then never answer (the client's
            # outcome is unknown); released by stop() or by clearing stall_data
            owner.data_stalled.set()
            while owner.stall_data.is_set() and owner.running:  # noqa: ASYNC110 (set from another thread)
                await asyncio.sleep(0.05)
            return "421 4.3.0 stalled on purpose (dev SMTP fault injection)"
        try:
            code, text = owner.fail_next.pop(0)  # one atomic step: a test thread may clear it
        except IndexError:
            pass
        else:
            log.info("dev SMTP: injected failure %d %s for a message from %s", code, text,
                     envelope.mail_from)
            return f"{code} {text}"
        data = envelope.original_content or b""
        # aiosmtpd spells the null sender (MAIL FROM:<>) "<>"; smtplib sends "" as <> again.
        mail_from = "" if envelope.mail_from in (None, "<>") else str(envelope.mail_from)
        rcpt_tos = tuple(envelope.rcpt_tos)
        login = str(session.auth_data)
        users = owner.users_snapshot()
        local: list[str] = []
        elsewhere: list[str] = []
        for rcpt in rcpt_tos:
            user = _find_user(users, rcpt)
            target, addr = (local, user) if user is not None else (elsewhere, rcpt)
            if addr not in target:
                target.append(addr)
        transactions = []
        if local:
            transactions.append(_Transaction(tuple(local), data))
        if elsewhere:
            header = b"".join(
                f"{ORIGINAL_RECIPIENT_HEADER}: {rcpt}\r\n".encode() for rcpt in elsewhere
            )
            transactions.append(_Transaction((owner.catchall,), header + data))
        future = asyncio.ensure_future(
            asyncio.to_thread(owner.lmtp.deliver, mail_from, envelope.smtp_utf8, transactions)
        )
        self.in_flight.add(future)
        future.add_done_callback(self._forget)
        try:
            # shield: a client that hangs up mid-delivery does not cut the delivery short
            await asyncio.shield(future)
        except _DeliveryError as error:
            log.warning("dev SMTP: message from %s to %s not delivered: %s",
                        mail_from, ", ".join(rcpt_tos), error.reply)
            return error.reply
        owner.record(DeliveredMessage(mail_from, rcpt_tos, data, login))
        where = [f"{u} (own INBOX)" for u in local]
        if elsewhere:
            where.append(f"{owner.catchall} (catch-all for {', '.join(elsewhere)})")
        log.info("dev SMTP: accepted from=%s login=%s rcpts=%s size=%d delivered to %s",
                 mail_from, login, ", ".join(rcpt_tos), len(data), "; ".join(where))
        return "250 2.0.0 OK delivered locally"


def _find_user(users: Mapping[str, str], address: str) -> str | None:
    """Returns the key of ``users`` naming ``address`` (exact, else ignoring case), or None."""
    if address in users:
        return address
    folded = address.casefold()
    for user in users:
        if user.casefold() == folded:
            return user
    return None


def _is_loopback(host: str) -> bool:
    """Returns True if ``host`` is ``localhost`` or a loopback IP address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class DevSmtpServer:
    """The dev SMTP submission server on ``host:port`` (loopback), run by aiosmtpd's Controller in a
    thread of its own, so sync code (pytest fixtures) and async code (the dev runner) can both use
    it. See the module docstring for what it does with each message.

    ``users`` maps email -> password and is consulted on every AUTH and every message: pass a
    mapping that may change while the server runs (a test adds users), or a callable returning
    the current mapping. ``catchall`` is the dev user that receives the copies for non-local
    recipients. ``fail_next`` is a public queue of ``(code, text)`` replies for fault injection:
    while it is not empty each message's DATA is answered with the first entry, which is removed,
    and nothing is delivered or recorded.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        users: UsersSource,
        lmtp_host: str,
        lmtp_port: int,
        catchall: str,
        hostname: str = "mailbridge-dev",
        history: int = DEFAULT_HISTORY,
        lmtp_timeout: float = 30.0,
        ready_timeout: float = 5.0,
    ) -> None:
        if not _is_loopback(host):
            raise ValueError(f"dev SMTP server: host {host!r} is not a loopback address; plaintext AUTH "
                             "is only acceptable on loopback (use 127.0.0.1)")
        self.host = host
        self.requested_port = port
        self.catchall = catchall
        self.hostname = hostname
        self.ready_timeout = ready_timeout
        self.lmtp = _LmtpDelivery(lmtp_host, lmtp_port, lmtp_timeout, hostname)
        self.fail_next: list[tuple[int, str]] = []
        self.stall_data = threading.Event()
        """Fault injection: while set, every DATA is swallowed and never answered."""
        self.data_stalled = threading.Event()
        """Set when a DATA was swallowed because of ``stall_data``."""
        self._users = users
        self._delivered: collections.deque[DeliveredMessage] = collections.deque(maxlen=history)
        self._lock = threading.Lock()
        self._controller: _DevController | None = None
        self._port: int | None = None

    def __repr__(self) -> str:
        state = f"listening on {self.host}:{self._port}" if self.running else "stopped"
        return f"<DevSmtpServer {state}, LMTP {self.lmtp.host}:{self.lmtp.port}>"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Binds, starts the server thread and waits until it answers; returns None.

        Raises RuntimeError if already running, OSError if the port cannot be bound, TimeoutError
        (naming ``ready_timeout``) if the server does not answer in time.
        """
        if self._controller is not None:
            raise RuntimeError("the dev SMTP server is already running")
        handler = _Handler(self)
        controller = _DevController(
            handler,
            host=self.host,
            port=self.requested_port,
            ready_timeout=self.ready_timeout,
            server_hostname=self.hostname,
            authenticator=handler.authenticate,
            decode_data=False,
            enable_SMTPUTF8=True,
        )
        try:
            controller.start()
        except BaseException:
            self._abandon(controller)
            raise
        if controller._thread is not None:
            controller._thread.name = f"mailbridge-devsmtp-{controller.bound_port}"
        self._controller = controller
        self._port = controller.bound_port
        log.info("dev SMTP server listening on %s:%s (AUTH required), delivering via LMTP %s:%d",
                 self.host, self._port, self.lmtp.host, self.lmtp.port)

    def stop(self, grace: float = 5.0) -> None:
        """Stops listening, waits up to ``grace`` seconds for deliveries in progress, closes the
        client connections and ends the thread; returns None. Does nothing when not running."""
        controller, self._controller = self._controller, None
        if controller is None:
            return
        if controller.loop.is_running():
            drained = asyncio.run_coroutine_threadsafe(controller.drain(grace), controller.loop)
            try:
                drained.result(timeout=grace + 5.0)
            except Exception:
                log.exception("dev SMTP server: unclean shutdown")
        controller.stop(no_assert=True)
        log.info("dev SMTP server on %s:%s stopped", self.host, self._port)

    @staticmethod
    def _abandon(controller: _DevController) -> None:
        """Cleans up after a failed start; returns None."""
        if controller.loop.is_running():
            controller.stop(no_assert=True)
            return
        thread = controller._thread
        if thread is not None:
            thread.join(timeout=5.0)
        if not controller.loop.is_running() and not controller.loop.is_closed():
            controller.loop.close()

    def __enter__(self) -> DevSmtpServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._controller is not None

    @property
    def idle(self) -> bool:
        """True while no message is between its DATA and its answer: every message a client
        has sent so far is in :attr:`delivered` or was refused (what a test waits for before it
        counts deliveries)."""
        controller = self._controller
        return controller is None or controller.dev_handler.handling == 0

    @property
    def port(self) -> int:
        """The bound TCP port (the real one when constructed with port 0); the last one after stop().

        Raises RuntimeError before the first start().
        """
        if self._port is None:
            raise RuntimeError("the dev SMTP server has not been started: call start() first")
        return self._port

    # ------------------------------------------------------------------ users and records

    def users_snapshot(self) -> dict[str, str]:
        """Returns a copy of the current users mapping (email -> password)."""
        source = self._users
        return dict(source() if callable(source) else source)

    @property
    def delivered(self) -> list[DeliveredMessage]:
        """Returns the accepted messages, oldest first (the last ``history`` of them), as a new list."""
        with self._lock:
            return list(self._delivered)

    def record(self, message: DeliveredMessage) -> None:
        """Appends ``message`` to :attr:`delivered`; returns None."""
        with self._lock:
            self._delivered.append(message)

    def clear(self) -> None:
        """Forgets the recorded messages and any pending ``fail_next`` entries; returns None."""
        with self._lock:
            self._delivered.clear()
        self.fail_next.clear()
        self.stall_data.clear()
        self.data_stalled.clear()
