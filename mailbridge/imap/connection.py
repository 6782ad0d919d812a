"""One IMAP connection, made safe: the only module that imports aioimaplib.

aioimaplib corrupts a connection when two commands of the same kind overlap, never fails pending
commands when the connection drops, has no STARTTLS, and leaves replies raw (see
``shared/mail-stack-notes.md``). This module contains all of that:

- exactly one command in flight per connection (a lock);
- every command raced against a timeout and against the loss of the connection; after a timeout,
  a drop or a protocol error the connection is marked broken and closed, never reused;
- STARTTLS by upgrading the transport in place after the server's OK (RFC 3501 section 6.2.1);
- every reply checked in one place (:meth:`ImapConnection._check`) and parsed by
  :mod:`mailbridge.imap.responses` into typed results;
- FETCH and STORE over many UIDs sent in bounded chunks (aioimaplib recurses once per reply line
  and hits RecursionError near 1,000 messages).
"""

from __future__ import annotations

import asyncio
import imaplib
import logging
import re
import ssl
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import aioimaplib

from mailbridge.errors import (
    ImapAuthError,
    ImapCapabilityMissing,
    ImapError,
    ImapNotFound,
    ImapProtocolError,
    ImapUnavailable,
)
from mailbridge.imap.responses import (
    AppendUid,
    CopyUid,
    FetchItem,
    MailboxInfo,
    SearchResult,
    SelectInfo,
    parse_appenduid,
    parse_capabilities,
    parse_copyuid,
    parse_fetch,
    parse_list,
    parse_modified,
    parse_namespace,
    parse_response_code,
    parse_search,
    parse_select,
    parse_status,
    parse_thread,
    uid_set,
)
from mailbridge.imap.utf7 import mailbox_arg, quote_astring

log = logging.getLogger("mailbridge.imap")
# aioimaplib logs every line sent and received at DEBUG; that would put message bodies (and,
# with a password containing quotes, the password) into logs. Never let it below INFO.
logging.getLogger("aioimaplib").setLevel(logging.INFO)

Security = Literal["tls", "starttls", "none"]
IdleOutcome = Literal["pushed", "held", "quiet"]

# aioimaplib checks every command against its table of known commands; teach it the RFC 3691
# UNSELECT, which leaves a mailbox without the implicit expunge of CLOSE.
aioimaplib.Commands.setdefault(
    "UNSELECT", aioimaplib.Cmd("UNSELECT", (aioimaplib.SELECTED,), aioimaplib.Exec.is_sync))



class _Protocol(aioimaplib.IMAP4ClientProtocol):  # type: ignore[misc]
    """aioimaplib's protocol with repairs (methods copied from aioimaplib 2.0.3, GPL-3.0):

    - ``_handle_responses`` recursed once per reply line of a network read, so a read holding
      about 1,000 lines raised RecursionError inside the event loop and the command hung; it
      also copied the rest of the buffer for every line. Here it is the same state machine as
      a loop over a memoryview.
    - ``_untagged_response`` removed *every* ``* `` from an untagged line, also inside quoted
      strings (a filename "a * b" arrived as "a b"); here only the leading prefix goes.
    """

    # aioimaplib's state, as the methods below use it
    incomplete_line: bytes
    current_command: Any
    pending_sync_command: Any
    pending_async_commands: dict[str, Any]

    # - ``data_received`` and ``_response_done`` formatted a debug line (the repr of all data
    #   received, of every tagged reply) even with the debug log off; here they do not.

    def data_received(self, d: bytes) -> None:
        try:
            self._handle_responses(self.incomplete_line + d, self._handle_line, self.current_command)
            self.incomplete_line = b""
            self.current_command = None
        except aioimaplib.IncompleteRead as incomplete_read:
            self.current_command = incomplete_read.cmd
            self.incomplete_line = incomplete_read.data

    def _response_done(self, line: bytes) -> None:
        tag, _, response = line.partition(b" ")
        if self.pending_sync_command is not None:
            if self.pending_sync_command.tag != tag.decode():
                raise aioimaplib.Abort(f"unexpected tagged response with pending sync command "
                                       f"({self.pending_sync_command}) response: {response!r}")
            command = self.pending_sync_command
            self.pending_sync_command = None
        else:
            cmds = self._find_pending_async_cmd_by_tag(tag.decode())
            if len(cmds) == 0:
                raise aioimaplib.Abort(f"unexpected tagged ({tag!r}) response: {response!r}")
            if len(cmds) > 1:
                raise aioimaplib.Error(f"inconsistent state : two commands have the same tag ({cmds})")
            command = cmds.pop()
            self.pending_async_commands.pop(command.untagged_resp_name)
        response_result, _, response_text = response.partition(b" ")
        command.close(response_text, result=response_result.decode())

    def _handle_responses(self, data: bytes, line_handler: Any, current_cmd: Any = None) -> None:
        pos = 0
        while True:
            if pos >= len(data):
                if self.pending_sync_command is not None:
                    self.pending_sync_command.flush()
                if current_cmd is not None:
                    # a literal still to come, or (one of 0 bytes, complete at once) the rest
                    # of its line: the next read goes on with this reply, not a new one
                    raise aioimaplib.IncompleteRead(current_cmd)
                return
            if current_cmd is not None and current_cmd.wait_literal_data():
                rest = current_cmd.append_literal_data(memoryview(data)[pos:])
                pos = len(data) - len(rest)
                if current_cmd.wait_literal_data():
                    raise aioimaplib.IncompleteRead(current_cmd)
            end = data.find(b"\r\n", pos)
            if end < 0:
                raise aioimaplib.IncompleteRead(current_cmd, data[pos:])
            line = data[pos:end]
            pos = end + 2
            cmd = line_handler(line, current_cmd)
            # the regex (.*\{(\d+)\}$) runs over the whole line: only where it can match
            literal = (aioimaplib.literal_data_re.match(line)
                       if line.endswith((b"}", b"}\n")) else None)
            if literal:
                if cmd is None:
                    cmd = aioimaplib.Command("NIL", "unused")
                cmd.begin_literal_data(int(literal.group("size")))
                current_cmd = cmd
            elif cmd is not None and cmd.wait_data():
                current_cmd = cmd
            else:
                current_cmd = None

    # - ``_continuation`` wrote an APPEND's whole literal with one transport.write(); on
    #   Python 3.11 asyncio copies what the socket does not take at once into its own buffer,
    #   a second copy of a 27 MB message. Here a big literal goes out in chunks, with flow
    #   control; one up to _LITERAL_CHUNK goes out with its closing CRLF in one write, at once.
    # - ``send`` formatted a debug line of every command (a bytes repr) even with the debug log
    #   off; here it only writes, and writes a non-synchronizing APPEND literal (LITERAL+,
    #   RFC 7888) together with its command line.

    _LITERAL_CHUNK = 256 * 1024

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._writers: set[asyncio.Task[None]] = set()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    def send(self, line: str, scrub: str | None = None) -> None:
        command = self.pending_sync_command
        if isinstance(command, _NonSyncAppend) and command.literal is not None:
            # execute() made it the pending command just before sending its line
            self.transport.write(b"".join((line.encode(), b"\r\n", command.literal, b"\r\n")))
            command.literal = None
            return
        self.transport.write(line.encode() + b"\r\n")

    async def append_nonsync(self, message: bytes, mailbox: str, flags: str,
                             date: str | None) -> Any:
        """APPEND with a non-synchronizing literal ``{n+}`` (RFC 7888): command line, message and
        CRLF in one write, no wait for the server's continuation. Only for a server announcing
        LITERAL+ (or LITERAL- and at most 4,096 bytes) and a message small enough to copy."""
        args = [mailbox, flags]
        if date is not None:
            args.append(date)
        args.append(f"{{{len(message)}+}}")
        return await self.execute(_NonSyncAppend(self.new_tag(), *args, literal=message,
                                                 loop=self.loop))

    def _continuation(self, line: bytes) -> None:
        command = self.pending_sync_command
        if command is None or command.name != "APPEND":
            super()._continuation(line)
            return
        data: bytes | None = getattr(self, "literal_data", None)
        if data is None:  # a non-synchronizing literal was sent already; nothing is owed
            log.info("IMAP server sent a continuation for an APPEND that needs none: %r",
                     bytes(line[:100]))
            return
        self.literal_data = None
        if len(data) <= self._LITERAL_CHUNK:
            self.transport.write(data + b"\r\n")
            return
        task = asyncio.ensure_future(self._write_literal(data))
        self._writers.add(task)
        task.add_done_callback(self._writers.discard)

    async def _write_literal(self, data: bytes) -> None:
        view = memoryview(data)
        for start in range(0, len(view), self._LITERAL_CHUNK):
            await self._can_write.wait()
            if self.transport is None or self.transport.is_closing():
                return  # the connection dropped; the command fails through the lost future
            self.transport.write(view[start:start + self._LITERAL_CHUNK])
        self.transport.write(b"\r\n")

    def _untagged_response(self, line: bytes) -> Any:
        if line.startswith(b"* "):
            line = line[2:]
        if self.pending_sync_command is not None:
            self.pending_sync_command.append_to_resp(line)
            return self.pending_sync_command
        match = aioimaplib.message_data_re.match(line)
        if match:
            cmd_name, text = match.group(1), match.string
        else:
            cmd_name, _, text = line.partition(b" ")
        command = self.pending_async_commands.get(cmd_name.decode().upper())
        if command is not None:
            command.append_to_resp(text)
            return command
        command = self.pending_async_commands.get("NOOP")
        if command is not None:
            command.append_to_resp(line)
        return command


class _NonSyncAppend(aioimaplib.Command):  # type: ignore[misc]
    """An APPEND whose literal travels with its command line (see _Protocol.send)."""

    def __init__(self, tag: str, *args: str, literal: bytes, loop: Any) -> None:
        super().__init__("APPEND", tag, *args, loop=loop)
        self.literal: bytes | None = literal


class _Client(aioimaplib.IMAP4):  # type: ignore[misc]
    def create_client(self, host: str, port: int, loop: Any, conn_lost_cb: Any = None,
                      ssl_context: Any = None) -> None:
        local_loop = loop if loop is not None else asyncio.get_running_loop()
        self.protocol = _Protocol(local_loop, conn_lost_cb)
        self._client_task = local_loop.create_task(
            local_loop.create_connection(lambda: self.protocol, host, port, ssl=ssl_context))


FETCH_CHUNK = 500
"""UIDs per FETCH/STORE command: bounds the size and duration of one reply (and the time the
connection is held), not a library limit any more (see _Protocol)."""


@dataclass(frozen=True, repr=False)
class ImapEndpoint:
    """Where and how to log in: everything a connection needs, nothing else."""

    host: str
    port: int
    security: Security
    username: str
    password: str
    timeout: float = 10.0
    tls_verify: bool = True
    ca_file: Path | None = None
    label: str = ""
    """Names the account in errors and logs (its email address)."""
    observe: Callable[[str, float], None] | None = field(default=None, compare=False)
    """Told each command's name and duration in seconds (mailbridge.metrics)."""

    def __repr__(self) -> str:  # never the password
        return (f"ImapEndpoint({self.username}@{self.host}:{self.port}, {self.security}, "
                f"timeout={self.timeout})")

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if not self.tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


@dataclass
class ConnectionPolicy:
    """What the connections of one account learnt about its server, shared through the pool."""

    use_condstore: bool = True
    """False once a mailbox answered NOMODSEQ: Dovecot 2.3 then refuses every FETCH there on a
    session with CONDSTORE enabled, so this account's connections no longer enable it."""


@dataclass(frozen=True)
class StoreResult:
    """What a UID STORE did: ``modified`` = refused by UNCHANGEDSINCE (RFC 7162), ``changed`` =
    UIDs a FETCH was answered for (see ImapConnection.uid_store), ``flags`` = the flags that
    FETCH reported for each of them."""

    modified: tuple[int, ...]
    changed: tuple[int, ...]
    flags: Mapping[int, tuple[str, ...]] = field(default_factory=dict)


class ImapConnection:
    """A logged-in IMAP connection that runs one command at a time.

    Create with :meth:`open`. Every public coroutine raises a subclass of
    :class:`mailbridge.errors.ImapError`; after :class:`ImapUnavailable` or
    :class:`ImapProtocolError` the connection is :attr:`broken` and must be discarded.
    """

    def __init__(self, endpoint: ImapEndpoint, policy: ConnectionPolicy | None = None) -> None:
        self.endpoint = endpoint
        self.policy = policy or ConnectionPolicy()
        self.capabilities: frozenset[str] = frozenset()
        self.selected: str | None = None
        self.select_info: SelectInfo | None = None
        self.broken = False
        self.condstore_enabled = False
        self._lock = asyncio.Lock()
        self._lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._client: _Client | None = None

    # ------------------------------------------------------------------ setup

    @classmethod
    async def open(cls, endpoint: ImapEndpoint,
                   policy: ConnectionPolicy | None = None) -> ImapConnection:
        """Connects, secures (TLS/STARTTLS), logs in and reads capabilities.

        Returns the ready connection. Raises ImapAuthError when the server refuses the login,
        ImapUnavailable when it cannot be reached in time, ImapCapabilityMissing when STARTTLS is
        configured but not offered. ``policy`` is shared by the connections of one account.
        """
        conn = cls(endpoint, policy)
        try:
            async with asyncio.timeout(endpoint.timeout):
                await conn._connect()
        except TimeoutError:
            conn.close()
            raise ImapUnavailable(
                f"IMAP server {endpoint.host}:{endpoint.port} did not complete connect and login "
                f"within {endpoint.timeout:g}s", account=endpoint.label) from None
        except ImapError:
            conn.close()
            raise
        except (OSError, aioimaplib.AioImapException, ssl.SSLError) as exc:
            conn.close()
            raise ImapUnavailable(
                f"cannot connect to IMAP server {endpoint.host}:{endpoint.port}: "
                f"{_describe_os_error(exc)}", account=endpoint.label) from None
        return conn

    async def _connect(self) -> None:
        ep = self.endpoint

        mine = self._lost  # a reconnect makes a new future; the old session's loss is old news

        def lost(exc: Exception | None) -> None:
            if mine is self._lost:
                self.broken = True
                self._end_library_tasks()
            if not mine.done():
                mine.set_result(None)

        ctx = ep.ssl_context() if ep.security == "tls" else None
        self._client = _Client(host=ep.host, port=ep.port, timeout=ep.timeout,
                                        conn_lost_cb=lost, ssl_context=ctx)
        await self._race(self._client.wait_hello_from_server(), "greeting")
        proto = self._client.protocol
        if ep.security == "starttls":
            await self._starttls()
        if proto.state != "NONAUTH":
            raise ImapProtocolError(f"unexpected IMAP state {proto.state} after greeting",
                                    account=ep.label)
        # LOGIN with the username quoted (aioimaplib sends it bare, which breaks on spaces);
        # aioimaplib quotes the password itself and scrubs it from its debug log.
        response = await self._race(proto.login(quote_astring(ep.username), ep.password), "LOGIN")
        if response.result != "OK":
            code = parse_response_code(_status_text(response.lines))
            if code is not None and code.name in ("UNAVAILABLE", "LIMIT"):
                raise ImapUnavailable(f"IMAP server refused login for now ({code.name}): "
                                      f"{_clean(_status_text(response.lines))}", account=ep.label)
            raise ImapAuthError(f"IMAP authentication failed for user {ep.username!r} on "
                                f"{ep.host}:{ep.port}: the server said "
                                f"{_clean(_status_text(response.lines))!r}", account=ep.label)
        await self._refresh_capabilities()

    async def _reconnect(self) -> None:
        """Replaces this session by a new one (same endpoint): login, capabilities, nothing
        selected, CONDSTORE off."""
        self.close()
        self._lost = asyncio.get_running_loop().create_future()
        self.broken = False
        self.condstore_enabled = False
        self.selected = None
        self.select_info = None
        try:
            async with asyncio.timeout(self.endpoint.timeout):
                await self._connect()
        except TimeoutError:
            self.close()
            raise ImapUnavailable(f"IMAP server {self._where()} did not complete a reconnect within "
                                  f"{self.endpoint.timeout:g}s", account=self.endpoint.label) from None
        except (OSError, aioimaplib.AioImapException, ssl.SSLError) as exc:
            self.close()
            raise ImapUnavailable(f"cannot reconnect to IMAP server {self._where()}: "
                                  f"{_describe_os_error(exc)}", account=self.endpoint.label) from None

    async def _starttls(self) -> None:
        assert self._client is not None
        proto = self._client.protocol
        if "STARTTLS" not in proto.capabilities:
            raise ImapCapabilityMissing(
                f"security = \"starttls\" but {self.endpoint.host}:{self.endpoint.port} does not offer "
                "STARTTLS", account=self.endpoint.label)
        response = await self._race(
            proto.execute(aioimaplib.Command("STARTTLS", proto.new_tag(), loop=proto.loop)), "STARTTLS")
        self._check(response, "STARTTLS")
        loop = asyncio.get_running_loop()
        transport = await self._race(
            loop.start_tls(proto.transport, proto, self.endpoint.ssl_context(),
                           server_hostname=self.endpoint.host),
            "TLS handshake")
        proto.transport = transport
        # RFC 3501 6.2.1: capabilities learnt before STARTTLS must be discarded.
        proto.capabilities = set()
        await self._race(proto.capability(), "CAPABILITY")

    async def _refresh_capabilities(self) -> None:
        lines = await self.command("CAPABILITY")
        self.capabilities = parse_capabilities(lines)

    # --------------------------------------------------------------- plumbing

    async def _race(self, aw: Any, what: str, timeout: float | None = None) -> Any:
        """Awaits ``aw`` unless the connection drops or ``timeout`` passes first; the endpoint's
        ``observe`` is told ``what`` and how long it took, however it ended.

        Returns its result. On a drop or timeout marks the connection broken, closes it and
        raises ImapUnavailable naming ``what``.
        """
        if self.endpoint.observe is None:
            return await self._race_unobserved(aw, what, timeout)
        started = time.perf_counter()
        try:
            return await self._race_unobserved(aw, what, timeout)
        finally:
            self.endpoint.observe(what, time.perf_counter() - started)

    async def _race_unobserved(self, aw: Any, what: str, timeout: float | None) -> Any:
        timeout = self.endpoint.timeout if timeout is None else timeout
        task = asyncio.ensure_future(aw)
        try:
            done, _ = await asyncio.wait({task, self._lost}, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            self.close()
            raise
        if task in done:
            exc = task.exception()
            if exc is None:
                return task.result()
            if isinstance(exc, ImapError):
                raise exc
            self.close()
            if isinstance(exc, OSError | ssl.SSLError | aioimaplib.Abort | aioimaplib.CommandTimeout):
                raise ImapUnavailable(f"IMAP {what} failed on {self._where()}: "
                                      f"{_describe_os_error(exc)}", account=self.endpoint.label) from None
            raise ImapProtocolError(f"IMAP {what} failed on {self._where()}: {type(exc).__name__}",
                                    account=self.endpoint.label) from None
        task.cancel()
        dropped = self._lost.done()  # before close(), which resolves it too
        self.close()
        if dropped:
            raise ImapUnavailable(f"IMAP connection to {self._where()} was dropped during {what}",
                                  account=self.endpoint.label)
        raise ImapUnavailable(f"IMAP {what} got no answer from {self._where()} within {timeout:g}s",
                              account=self.endpoint.label)

    def _where(self) -> str:
        return f"{self.endpoint.host}:{self.endpoint.port}"

    async def command(self, name: str, *args: str, prefix: str = "", untagged: str | None = None,
                      timeout: float | None = None) -> list[bytes]:
        """Sends one command and waits for its tagged reply, alone on this connection.

        ``untagged`` names the untagged replies to collect when they differ from ``name``
        (e.g. ESEARCH for a SEARCH with RETURN options). Returns the reply lines (untagged lines
        without ``* ``, literals as separate items, the tagged status text last). Raises per
        :meth:`_check` on NO/BAD.
        """
        if self.broken or self._client is None:
            raise ImapUnavailable(f"IMAP connection to {self._where()} is closed",
                                  account=self.endpoint.label)
        proto = self._client.protocol
        # A plain Command also for FETCH: aioimaplib's FetchCommand decides where a reply ends by
        # counting parentheses, which a quoted "(" in a subject or filename throws off.
        cmd = aioimaplib.Command(name, proto.new_tag(), *args, prefix=prefix,
                                 untagged_resp_name=untagged, loop=proto.loop)
        what = f"{prefix} {name}".strip()
        async with self._lock:
            response = await self._race(proto.execute(cmd), what, timeout)
        return self._check(response, what)

    def _check(self, response: Any, what: str) -> list[bytes]:
        """The one place where a server's reply becomes an error.

        Returns the reply lines on OK. Raises ImapNotFound for NO [NONEXISTENT]/[TRYCREATE],
        ImapUnavailable for NO [UNAVAILABLE]/[LIMIT]/[INUSE] (temporary), ImapProtocolError for
        BAD and any other NO.
        """
        lines: list[bytes] = list(response.lines)
        if response.result == "OK":
            return lines
        text = _status_text(lines)
        code = parse_response_code(text)
        name = code.name if code else ""
        msg = f"IMAP {what} answered {response.result}: {_clean(text)}"
        if response.result == "NO" and (
            name in ("NONEXISTENT", "TRYCREATE")
            # Dovecot 2.3 answers a SELECT of a missing mailbox with a bare NO "Mailbox doesn't
            # exist"; other servers say "not found" or "unknown mailbox".
            or (not name and what in _MAILBOX_COMMANDS and _MISSING_TEXT.search(text))
        ):
            raise ImapNotFound(msg, account=self.endpoint.label)
        if response.result == "NO" and name in ("UNAVAILABLE", "LIMIT", "INUSE", "SERVERBUG"):
            raise ImapUnavailable(msg, account=self.endpoint.label)
        if response.result == "BAD":
            self.broken = True  # we sent something it did not understand: start afresh
        raise ImapProtocolError(msg, account=self.endpoint.label)

    def require(self, capability: str) -> None:
        """Raises ImapCapabilityMissing unless the server announced ``capability``."""
        if capability.upper() not in self.capabilities:
            raise ImapCapabilityMissing(
                f"the IMAP server {self._where()} lacks {capability}", account=self.endpoint.label)

    @property
    def modseq_available(self) -> bool:
        """True when the selected mailbox keeps mod-sequences: CONDSTORE is on and SELECT did not
        answer NOMODSEQ (RFC 7162 3.1.2; Dovecot does so for in-memory indexes). Only then may
        FETCH ask for MODSEQ and STORE use UNCHANGEDSINCE."""
        info = self.select_info
        return self.condstore_enabled and info is not None and not info.nomodseq

    def has(self, capability: str) -> bool:
        return capability.upper() in self.capabilities

    def _size_timeout(self, nbytes: int) -> float:
        # A large message needs time on the wire: allow for 1 MB/s on top of the base timeout.
        return self.endpoint.timeout + nbytes / 1_000_000

    def close(self) -> None:
        """Drops the connection at once (no LOGOUT); the object is broken afterwards."""
        self.broken = True
        client = self._client
        if client is not None and client.protocol.transport is not None:
            client.protocol.transport.close()
        self._end_library_tasks()
        if not self._lost.done():
            self._lost.set_result(None)

    def _end_library_tasks(self) -> None:
        """Cancels aioimaplib's own tasks of this session: one that waits for an answer that
        will never come (the greeting's handler waits for CAPABILITY) would otherwise stay
        pending and be destroyed so when the session is dropped."""
        if self._client is not None:
            for task in list(getattr(self._client.protocol, "tasks", ())):
                task.cancel()

    async def logout(self) -> None:
        """Says LOGOUT politely when possible, then closes; never raises."""
        if not self.broken and self._client is not None:
            try:
                async with self._lock:
                    await self._race(self._client.protocol.logout(), "LOGOUT", timeout=2.0)
            except ImapError:
                pass
        self.close()

    # ---------------------------------------------------------------- commands

    async def noop(self) -> None:
        await self.command("NOOP")

    async def enable_condstore(self) -> bool:
        """ENABLE CONDSTORE (RFC 7162) where offered, so FETCH/STORE can carry MODSEQ.

        Returns whether CONDSTORE is in effect on this connection.
        """
        if not self.condstore_enabled and self.has("CONDSTORE"):
            if self.has("ENABLE"):
                await self.command("ENABLE", "CONDSTORE")
            self.condstore_enabled = True
        return self.condstore_enabled

    async def list_mailboxes(self, pattern: str = "*") -> list[MailboxInfo]:
        """LIST "" pattern; returns the mailboxes with their attributes (RFC 3501, RFC 6154)."""
        lines = await self.command("LIST", '""', quote_astring(pattern))
        return parse_list(lines)

    async def personal_namespace(self) -> tuple[str, str | None]:
        """The prefix and delimiter of the user's own mailboxes (RFC 2342 NAMESPACE), e.g.
        ``("INBOX.", ".")``; ``("", None)`` when the server has no NAMESPACE or names none."""
        if not self.has("NAMESPACE"):
            return "", None
        return parse_namespace(await self.command("NAMESPACE")) or ("", None)

    async def create_mailbox(self, name: str, special_use: str | None = None) -> None:
        """CREATE a mailbox, with a special-use attribute when the server has CREATE-SPECIAL-USE."""
        if special_use and self.has("CREATE-SPECIAL-USE"):
            await self.command("CREATE", mailbox_arg(name), f"(USE ({special_use}))")
        else:
            await self.command("CREATE", mailbox_arg(name))

    async def delete_mailbox(self, name: str) -> None:
        if self.selected == name:
            await self.unselect()
        await self.command("DELETE", mailbox_arg(name))

    async def status(self, name: str, items: Sequence[str] = ("MESSAGES", "UIDNEXT", "UIDVALIDITY")
                     ) -> dict[str, int]:
        lines = await self.command("STATUS", mailbox_arg(name), f"({' '.join(items)})")
        return parse_status(lines)

    async def select(self, name: str, *, force: bool = False, sync: bool = True) -> SelectInfo:
        """SELECT ``name`` (with CONDSTORE when the server has it) unless it is selected already.

        When it is, and ``sync`` is true, sends NOOP instead: Dovecot brings a session's view
        of the mailbox up to date with other sessions' changes (new messages, flags, expunges)
        only between commands, and a SEARCH runs on that view, so an operation that starts on a
        pooled connection must sync first or it may miss what another connection just did.
        Returns the mailbox's SelectInfo (UIDVALIDITY, EXISTS, HIGHESTMODSEQ...). Raises
        ImapNotFound when the mailbox does not exist.
        """
        if self.selected == name and self.select_info is not None and not force:
            if sync:
                await self.noop()
            return self.select_info
        self.selected = None
        self.select_info = None
        args = [mailbox_arg(name)]
        if self.policy.use_condstore and await self.enable_condstore() and not self.has("ENABLE"):
            args.append("(CONDSTORE)")
        assert self._client is not None
        try:
            lines = await self.command("SELECT", *args)
        except ImapError:
            # a failed SELECT leaves the server in the authenticated state (RFC 3501 6.3.1)
            self._client.protocol.state = "AUTH"
            raise
        self._client.protocol.state = "SELECTED"  # execute() bypasses aioimaplib's own select()
        info = parse_select(lines)
        if info.nomodseq and self.condstore_enabled:
            # this session can no longer FETCH here: start a new one that never enables
            # CONDSTORE, and tell the account's other connections through the policy
            self.policy.use_condstore = False
            await self._reconnect()
            return await self.select(name, force=True)
        self.selected, self.select_info = name, info
        return info

    async def unselect(self) -> None:
        """Leaves the selected mailbox without expunging anything (UNSELECT, RFC 3691).

        Where the server lacks UNSELECT the connection is closed instead (CLOSE would expunge
        every \\Deleted message, including other clients'), and the pool opens a new one.
        """
        if self.selected is None:
            return
        if not self.has("UNSELECT"):
            self.close()
            return
        await self.command("UNSELECT")
        assert self._client is not None
        self._client.protocol.state = "AUTH"
        self.selected = None
        self.select_info = None

    async def append(self, mailbox: str, message: bytes, flags: Iterable[str] = (),
                     date: datetime | None = None) -> AppendUid | None:
        """APPEND ``message`` to ``mailbox`` with ``flags`` (RFC 3501 6.3.11).

        Returns the new message's UIDVALIDITY and UID from APPENDUID (RFC 4315) when the server
        has UIDPLUS, else None (the caller finds the message another way). Raises ImapNotFound
        when the mailbox does not exist.
        """
        if self._client is None or self.broken:
            raise ImapUnavailable(f"IMAP connection to {self._where()} is closed",
                                  account=self.endpoint.label)
        proto = self._client.protocol
        flag_arg = "(" + " ".join(flags) + ")"
        size = len(message)
        # no continuation round trip and one write (RFC 7888); a bigger message waits for the
        # server's go-ahead, so that a refusal does not cost sending it whole
        nonsync = size <= proto._LITERAL_CHUNK and (
            "LITERAL+" in self.capabilities or (size <= 4096 and "LITERAL-" in self.capabilities))
        when = None if date is None else imaplib.Time2Internaldate(date)
        async with self._lock:
            if nonsync:
                sending = proto.append_nonsync(message, mailbox_arg(mailbox), flag_arg, when)
            else:  # aioimaplib passes a quoted date through as it is
                sending = proto.append(message, mailbox=mailbox_arg(mailbox), flags=flag_arg,
                                       date=when, timeout=None)
            response = await self._race(sending, "APPEND", timeout=self._size_timeout(size))
        lines = self._check(response, "APPEND")
        return parse_appenduid(lines)

    async def idle(self, seconds: float) -> IdleOutcome:
        """IDLE (RFC 2177) in the selected mailbox until the server reports a change or
        ``seconds`` pass, then DONE. Returns ``pushed`` when the server reported a change (new
        or expunged messages, flags) during the IDLE, ``held`` when it reported one only in
        answer to DONE (a server that looks for changes seldom while idling: Cyrus without
        idled, Courier without FAM), ``quiet`` when there was none. The caller looks for itself
        what changed. Needs IDLE."""
        self.require("IDLE")
        if self._client is None or self.broken:
            raise ImapUnavailable(f"IMAP connection to {self._where()} is closed",
                                  account=self.endpoint.label)
        proto = self._client.protocol
        queue: asyncio.Queue[list[bytes]] = asyncio.Queue()
        command = aioimaplib.IdleCommand(proto.new_tag(), queue, loop=proto.loop)
        async with self._lock:
            proto._idle_event.clear()
            running = asyncio.ensure_future(proto.execute(command))
            accepted = asyncio.ensure_future(proto._idle_event.wait())
            try:
                # the server's "+ idling", or its refusal (which ends the command)
                await self._race(asyncio.wait({running, accepted},
                                              return_when=asyncio.FIRST_COMPLETED), "IDLE")
                lines: list[bytes] = []
                deadline = time.monotonic() + seconds
                while not running.done() and not _news(lines):
                    pushed = asyncio.ensure_future(queue.get())
                    await asyncio.wait({pushed, running, self._lost},
                                       timeout=max(0.0, deadline - time.monotonic()),
                                       return_when=asyncio.FIRST_COMPLETED)
                    if pushed.done():
                        lines.extend(pushed.result())
                    else:
                        pushed.cancel()
                        if not self._lost.done():
                            break  # the time is up, or the server ended the IDLE
                    if self._lost.done():
                        running.cancel()
                        self.close()
                        raise ImapUnavailable(f"IMAP connection to {self._where()} was dropped "
                                              "during IDLE", account=self.endpoint.label)
                if not running.done():
                    proto.send("DONE")
                response = await self._race(running, "IDLE")
            finally:
                accepted.cancel()
                if not running.done():
                    running.cancel()
        self._check(response, "IDLE")
        if _news(lines):
            return "pushed"
        late = list(command.buffer)
        while not queue.empty():
            late.extend(queue.get_nowait())
        return "held" if _news(late) else "quiet"

    async def uid_thread(self, algorithm: str, *criteria: str) -> list[tuple[int, ...]]:
        """UID THREAD (RFC 5256) of the messages matching ``criteria`` in the selected mailbox,
        with UTF-8 search strings: each thread as its UIDs. Needs ``THREAD=<algorithm>``."""
        lines = await self.command("THREAD", algorithm, "UTF-8", *criteria, prefix="UID")
        return parse_thread(lines)

    async def uid_search(self, *criteria: str, esearch: bool = False) -> SearchResult:
        """UID SEARCH in the selected mailbox; criteria are sent as given (already quoted).

        With ``esearch`` (and the server's ESEARCH, RFC 4731) asks for RETURN (ALL COUNT MIN MAX),
        which answers large result sets compactly. Returns the UIDs ascending.
        """
        if esearch and self.has("ESEARCH"):
            lines = await self.command("SEARCH", "RETURN", "(ALL COUNT MIN MAX)", *criteria,
                                       prefix="UID", untagged="ESEARCH")
        else:
            lines = await self.command("SEARCH", *criteria, prefix="UID")
        return parse_search(lines)

    async def uid_fetch(self, uids: Iterable[int], items: str, *,
                        changedsince: int | None = None) -> list[FetchItem]:
        """UID FETCH ``items`` for ``uids`` in the selected mailbox, in chunks of FETCH_CHUNK.

        Returns one FetchItem per message that still exists, in UID order; unsolicited FETCH
        replies for other messages are left out. ``items`` is the parenthesised item list,
        e.g. ``(UID FLAGS BODY.PEEK[HEADER])``.
        """
        wanted = sorted(set(uids))
        result: list[FetchItem] = []
        for i in range(0, len(wanted), FETCH_CHUNK):
            chunk = wanted[i:i + FETCH_CHUNK]
            args = [uid_set(chunk), items]
            if changedsince is not None:
                args.append(f"(CHANGEDSINCE {changedsince})")
            lines = await self.command("FETCH", *args, prefix="UID")
            keep = set(chunk)
            result.extend(item for item in parse_fetch(lines) if item.uid in keep)
        result.sort(key=lambda item: item.uid or 0)
        return result

    async def uid_fetch_changed(self, since: int) -> list[FetchItem]:
        """UID FETCH 1:* (UID FLAGS MODSEQ) (CHANGEDSINCE ``since``) (RFC 7162): the messages
        of the selected mailbox changed or added after the mod-sequence ``since``, in UID
        order. Needs CONDSTORE enabled and a mailbox that keeps mod-sequences."""
        lines = await self.command("FETCH", "1:*", "(UID FLAGS MODSEQ)", f"(CHANGEDSINCE {since})",
                                   prefix="UID")
        return sorted((i for i in parse_fetch(lines) if i.uid is not None),
                      key=lambda item: item.uid or 0)

    async def uid_store(self, uids: Iterable[int], action: str, flags: Iterable[str], *,
                        unchangedsince: int | None = None) -> StoreResult:
        """UID STORE ``action`` (``+FLAGS``, ``-FLAGS``, ``FLAGS``, with or without ``.SILENT``).

        With ``unchangedsince`` (RFC 7162 conditional STORE) messages whose MODSEQ is higher are
        left alone and reported in ``modified``. ``changed`` lists the UIDs the server answered
        a FETCH for (only without ``.SILENT``); that may include unsolicited FETCHes reporting
        other sessions' changes, so a UID in ``modified`` was not changed whatever ``changed``
        says, and a UID in neither no longer exists.
        """
        wanted = sorted(set(uids))
        modified: list[int] = []
        flags_of: dict[int, tuple[str, ...]] = {}
        for i in range(0, len(wanted), FETCH_CHUNK):
            chunk = wanted[i:i + FETCH_CHUNK]
            args = [uid_set(chunk)]
            if unchangedsince is not None:
                self.require("CONDSTORE")
                args.append(f"(UNCHANGEDSINCE {unchangedsince})")
            args += [action, "(" + " ".join(flags) + ")"]
            lines = await self.command("STORE", *args, prefix="UID", untagged="FETCH")
            modified.extend(parse_modified(lines))
            keep = set(chunk)
            for it in parse_fetch(lines):
                if it.uid in keep:
                    flags_of[it.uid] = it.flags if it.flags is not None \
                        else flags_of.get(it.uid, ())
        return StoreResult(modified=tuple(modified), changed=tuple(sorted(flags_of)),
                           flags=flags_of)

    async def uid_expunge(self, uids: Iterable[int]) -> None:
        """UID EXPUNGE (RFC 4315): removes only these \\Deleted messages. Needs UIDPLUS."""
        self.require("UIDPLUS")
        wanted = sorted(set(uids))
        for i in range(0, len(wanted), FETCH_CHUNK):
            await self.command("EXPUNGE", uid_set(wanted[i:i + FETCH_CHUNK]), prefix="UID")

    async def uid_copy(self, uids: Iterable[int], dest: str) -> CopyUid | None:
        """UID COPY to ``dest``; returns COPYUID (RFC 4315) when the server sends it."""
        lines = await self.command("COPY", uid_set(uids), mailbox_arg(dest), prefix="UID")
        return parse_copyuid(lines)

    async def uid_move(self, uids: Iterable[int], dest: str) -> CopyUid | None:
        """UID MOVE to ``dest`` (RFC 6851). Needs MOVE. Returns COPYUID when sent."""
        self.require("MOVE")
        lines = await self.command("MOVE", uid_set(uids), mailbox_arg(dest), prefix="UID")
        return parse_copyuid(lines)


_MAILBOX_COMMANDS = frozenset({"SELECT", "EXAMINE", "STATUS", "DELETE", "RENAME"})
_MISSING_TEXT = re.compile(rb"doesn't exist|does not exist|not found|unknown mailbox|no such", re.I)


def _news(lines: Iterable[bytes]) -> bool:
    """Whether untagged replies say the mailbox changed (EXISTS, EXPUNGE, FETCH, VANISHED...);
    not an ``OK`` (Dovecot's "Still here" during IDLE) or a continuation."""
    return any(not line.startswith((b"OK", b"+", b"* OK")) for line in lines if line.strip())


def _status_text(lines: Sequence[bytes]) -> bytes:
    return bytes(lines[-1]) if lines else b""


def _clean(text: bytes | str, limit: int = 200) -> str:
    """A server's text made safe for a message: printable, short."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = "".join(c if c.isprintable() else " " for c in text).strip()
    return text[:limit]


def _describe_os_error(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error ({exc.reason or type(exc).__name__})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    if isinstance(exc, aioimaplib.CommandTimeout):
        return "command timed out"  # str(exc) would show the command, LOGIN's password included
    if isinstance(exc, aioimaplib.Abort):
        return f"connection error ({_clean(str(exc), 120)})"
    return f"connection error ({type(exc).__name__})"
