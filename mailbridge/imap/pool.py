"""A pool of IMAP connections per account.

Concurrency comes from several connections, never from overlapping commands on one (which
aioimaplib cannot do safely). A connection that timed out, dropped or saw a protocol error is
discarded; the next operation opens a fresh one, so a mail server restart heals by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from mailbridge.errors import ImapNotFound, ImapUnavailable
from mailbridge.imap.connection import ConnectionPolicy, ImapConnection, ImapEndpoint
from mailbridge.imap.folders import SpecialFolders, discover

T = TypeVar("T")


class ImapPool:
    """Up to ``size`` logged-in connections to one account.

    Use :meth:`connection` for a block of commands on one connection, or :meth:`run` for one
    operation with a retry when a reused connection turns out to have been dropped.
    """

    def __init__(self, endpoint: ImapEndpoint, size: int = 4,
                 folder_overrides: dict[str, str | None] | None = None) -> None:
        if size < 1:
            raise ValueError("pool size must be at least 1")
        self.endpoint = endpoint
        self.size = size
        self.folder_overrides = dict(folder_overrides or {})
        self._idle: list[ImapConnection] = []
        self._slots = asyncio.Semaphore(size)
        self._open = 0
        self._waiting = 0
        self._closed = False
        self._folders: SpecialFolders | None = None
        self._folders_lock = asyncio.Lock()
        self.capabilities: frozenset[str] = frozenset()
        self.policy = ConnectionPolicy()

    @property
    def label(self) -> str:
        return self.endpoint.label

    @property
    def open_connections(self) -> int:
        """How many connections are open now (idle + in use)."""
        return self._open

    @property
    def in_use(self) -> int:
        """How many connections are lent out now."""
        return self._open - len(self._idle)

    @property
    def waiting(self) -> int:
        """How many operations wait for a connection now."""
        return self._waiting

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[ImapConnection]:
        """Lends a connection for a block of commands; returns it to the pool afterwards.

        Waiting for a free connection and opening a new one together take at most the
        endpoint's timeout (then ImapUnavailable). A connection left broken is discarded.
        """
        conn, _ = await self._acquire()
        try:
            yield conn
        finally:
            self._release(conn)

    async def run(self, op: Callable[[ImapConnection], Awaitable[T]], *, retry: bool = True) -> T:
        """Runs ``op`` on a pooled connection and returns its result.

        When ``retry`` is true and ``op`` fails with ImapUnavailable on a connection that had
        been sitting idle (the server may have dropped it meanwhile), runs it once more on a
        fresh connection. Pass ``retry=False`` for operations that must not run twice.
        """
        conn, reused = await self._acquire()
        try:
            return await op(conn)
        except ImapUnavailable:
            if not (retry and reused):
                raise
        finally:
            self._release(conn)
        conn, _ = await self._acquire(fresh=True)
        try:
            return await op(conn)
        finally:
            self._release(conn)

    async def _acquire(self, fresh: bool = False) -> tuple[ImapConnection, bool]:
        if self._closed:
            raise ImapUnavailable(f"the IMAP pool of {self.label} is closed", account=self.label)
        self._waiting += 1
        try:
            async with asyncio.timeout(self.endpoint.timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise ImapUnavailable(
                f"no IMAP connection of {self.label} became free within {self.endpoint.timeout:g}s "
                f"(pool_size = {self.size})", account=self.label) from None
        finally:
            self._waiting -= 1
        try:
            while self._idle and not fresh:
                conn = self._idle.pop()
                if not conn.broken:
                    return conn, True
                self._open -= 1
            conn = await ImapConnection.open(self.endpoint, self.policy)
        except BaseException:
            self._slots.release()
            raise
        self._open += 1
        self.capabilities = conn.capabilities
        return conn, False

    def _release(self, conn: ImapConnection) -> None:
        if conn.broken or self._closed:
            conn.close()
            self._open -= 1
        else:
            self._idle.append(conn)
        self._slots.release()

    async def check(self) -> None:
        """Proves the account is reachable and logged in: NOOP on a (possibly new) connection.

        Raises ImapAuthError, ImapUnavailable... as an operation would.
        """
        async def noop(conn: ImapConnection) -> None:
            await conn.noop()

        await self.run(noop)

    async def folders(self, *, refresh: bool = False,
                      conn: ImapConnection | None = None) -> SpecialFolders:
        """The account's Drafts/Sent/Trash names, discovered once (LIST) and then cached.

        Pass ``conn`` when calling with a pooled connection in hand: discovery then runs on it
        instead of waiting for another connection of the same pool (which, with every
        connection held by such callers, would never come).
        """
        if self._folders is not None and not refresh:
            return self._folders
        async with self._folders_lock:
            if self._folders is None or refresh:
                if conn is not None:
                    mailboxes = await conn.list_mailboxes()
                else:
                    mailboxes = await self.run(lambda c: c.list_mailboxes())
                self._folders = discover(mailboxes, self.folder_overrides)
            return self._folders

    async def folder(self, role: str, conn: ImapConnection | None = None) -> str:
        """The name of the ``role`` folder (see folders.ROLES); ImapNotFound when it has none."""
        name = (await self.folders(conn=conn)).get(role)
        if name is None:
            raise ImapNotFound(f"the account {self.label} has no {role} folder (none is marked "
                               f"\\{role.capitalize()} and none has a usual name); set "
                               f"folders.{role} in its configuration", account=self.label)
        return name

    async def close(self) -> None:
        """Logs every idle connection out and refuses new work; in-use ones close on release."""
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(c.logout() for c in idle), return_exceptions=True)
        self._open -= len(idle)
