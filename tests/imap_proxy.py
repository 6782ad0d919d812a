"""A TCP proxy in front of an IMAP server that hides capabilities from its clients, and records
the commands they send (what the server receives, for tests of what a client asks of it).

It removes the named capabilities from CAPABILITY replies and greetings, and what comes with them
(APPENDUID and COPYUID for UIDPLUS; HIGHESTMODSEQ, NOMODSEQ and MODIFIED for CONDSTORE; the
special-use attributes of LIST replies for SPECIAL-USE), so the "server without X" paths run
against a server that otherwise has X. Literals are passed through untouched. A client that asks
for a hidden extension anyway (ENABLE, SELECT (CONDSTORE), UID EXPUNGE, UID MOVE, ESEARCH,
UNSELECT, LIST RETURN (SPECIAL-USE)) is refused with BAD, as a server without it would.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import Iterable

_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n\Z")
_CODES = {"UIDPLUS": (b"APPENDUID", b"COPYUID"),
          "CONDSTORE": (b"HIGHESTMODSEQ", b"NOMODSEQ", b"MODIFIED")}
_COMMANDS = {"UIDPLUS": re.compile(rb"^\S+ UID EXPUNGE ", re.I),
             "CONDSTORE": re.compile(rb"^\S+ (ENABLE .*CONDSTORE|SELECT .*\(CONDSTORE\)"
                                     rb"|.*UNCHANGEDSINCE|.*CHANGEDSINCE)", re.I),
             "MOVE": re.compile(rb"^\S+ UID MOVE ", re.I),
             "ESEARCH": re.compile(rb"^\S+ UID SEARCH RETURN ", re.I),
             "UNSELECT": re.compile(rb"^\S+ UNSELECT\b", re.I),
             "SPECIAL-USE": re.compile(rb"^\S+ (LIST .*RETURN \(.*SPECIAL-USE|CREATE .*\(USE )", re.I)}
_SPECIAL_USE_ATTRS = re.compile(rb"\\(?:Drafts|Sent|Trash|Junk|Archive|All|Flagged|Important)\b ?",
                                re.I)


class CapabilityHidingProxy:
    """Listens on 127.0.0.1:``port`` (0 picks one) and forwards to ``upstream_port``, hiding
    ``hidden`` (e.g. ``{"UIDPLUS", "CONDSTORE"}``). Runs in a thread of its own."""

    def __init__(self, upstream_port: int, hidden: Iterable[str]) -> None:
        self.upstream_port = upstream_port
        self.hidden = {h.upper() for h in hidden}
        if "CONDSTORE" in self.hidden:
            self.hidden.add("QRESYNC")
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self.commands: list[tuple[int, str]] = []
        """(session number, command line without its tag) of every command line clients sent,
        in order; literal data is not recorded."""
        self._opened = 0

    def start(self) -> CapabilityHidingProxy:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the IMAP proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
            server.close()
            await asyncio.sleep(0.1)  # sessions accepted just before: let them start, to end them
            for task in list(self._sessions):
                task.cancel()
            await asyncio.gather(*self._sessions, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = asyncio.current_task()
        assert session is not None
        self._sessions.add(session)
        self._opened += 1
        number = self._opened
        writers = [writer]
        tasks: list[asyncio.Task[None]] = []
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            writers.append(up_writer)
            tasks = [asyncio.create_task(self._pump(up_reader, writer, self._from_server)),
                     asyncio.create_task(self._pump(
                         reader, up_writer, lambda line: self._from_client(line, number),
                         answer=writer))]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except OSError:
            pass
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for w in writers:
                w.close()
                with contextlib.suppress(Exception):
                    await w.wait_closed()
            self._sessions.discard(session)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    rewrite: object, answer: asyncio.StreamWriter | None = None) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, OSError):
            while True:
                line = await reader.readline()
                if not line:
                    return
                out = rewrite(line)  # type: ignore[operator]
                if out is None and answer is not None:  # a refused command
                    tag = line.split(b" ", 1)[0]
                    answer.write(tag + b" BAD command unknown or arguments invalid\r\n")
                    await answer.drain()
                    continue
                writer.write(out)
                m = _LITERAL.search(line)
                if m:
                    writer.write(await reader.readexactly(int(m.group(1))))
                await writer.drain()

    def _from_server(self, line: bytes) -> bytes:
        if "SPECIAL-USE" in self.hidden and line[:7].upper() in (b"* LIST ", b"* LSUB "):
            line = _SPECIAL_USE_ATTRS.sub(b"", line).replace(b"( ", b"(").replace(b" )", b")")
        if b"CAPABILITY" in line.upper():
            for cap in self.hidden:
                line = re.sub(rb"(?i) " + re.escape(cap.encode()) + rb"(?=[ \]\r])", b"", line)
        for cap in self.hidden:
            for code in _CODES.get(cap, ()):
                line = re.sub(rb"\[" + code + rb"[^\]]*\] ?", b"", line, flags=re.I)
        return line

    def _from_client(self, line: bytes, session: int) -> bytes | None:
        parts = line.rstrip(b"\r\n").split(b" ", 1)
        if len(parts) == 2:
            self.commands.append((session, parts[1].decode("utf-8", "replace")))
        for cap in self.hidden:
            pattern = _COMMANDS.get(cap)
            if pattern is not None and pattern.search(line):
                return None
        return line
