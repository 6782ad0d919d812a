"""Watching the mail server for what others do: mail clients, and mail that arrives.

Each instance watches INBOX and Drafts of every account (``[server] watch_mailboxes``), each
folder on an IMAP connection of its own, outside the pool. It waits with IDLE (RFC 2177) where
the server offers it and reports changes during it, which costs no command while nothing
happens; elsewhere it says NOOP every ``[server] watch_poll_seconds`` and looks closer only
when the answer reports a change. Which kind of IDLE a server has (Dovecot reports at once;
Cyrus without idled and Courier without FAM only when the IDLE ends) is found out once per
server by a probe (:meth:`Watcher.prompt_idle`). Either way an unchanged folder is never
read again.

When the folder changed, one sync finds out how, against what the watcher remembers of every
message (its flags and :func:`~mailbridge.reading.fetch_headlines`): a UID SEARCH of the UIDs
(ESEARCH where offered), the flags that changed (FETCH CHANGEDSINCE with CONDSTORE, else the
flags of all), and the headlines of the new messages; the text of those it reports, as lists
read it, only when a subscription wants them. Then:

- **Drafts**: a new message that mailbridge did not write (no ``$MailbridgeWritten``) is
  ``draft.created``, or ``draft.updated`` when it carries the id (X-Mailbridge-Id) or the
  Message-ID of a draft it replaces; a draft that is expunged or marked ``\\Deleted`` with no
  successor of its id within :data:`HOLD_SECONDS` is ``draft.deleted`` (a client that removes
  the old copy before it saves the new one is seen as one update). Versions that mailbridge's
  own writes leave behind (``$MailbridgePending``, ``$MailbridgeReplaced``, a delivered draft)
  are not reported.
- **INBOX**: a new message is ``email.received``; a DSN for a message that mailbridge sent (its
  Sent copy found by Message-ID, :mod:`mailbridge.bounces`) is also ``email.bounced``; a
  message expunged or marked ``\\Deleted`` is ``email.deleted``.

Each is reported with ``origin: "mailbox"`` through :meth:`Dispatcher.report
<mailbridge.delivery.Dispatcher.report>`: only when some subscription wants it, and by the
one instance whose claim comes first (:mod:`mailbridge.ledger`). A removal made through the API
was claimed by the API before it happened, so it is never reported a second time. What changes
while no instance watches is not reported; a watcher that reconnects reports what changed
while it was away (same UIDVALIDITY).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid

from mailbridge.accounts import Accounts
from mailbridge.bounces import read_bounce
from mailbridge.config import AccountConfig
from mailbridge.delivery import Dispatcher
from mailbridge.errors import ImapError, ImapNotFound, ImapProtocolError
from mailbridge.events import Event
from mailbridge.imap import ImapConnection, SelectInfo, uid_set
from mailbridge.ledger import Change, Ledger, change_key, event_id
from mailbridge.reading import fetch_headlines, fetch_summaries, fetch_whole, lasting_flags
from mailbridge.store import KEYWORD_DELIVERED, KEYWORD_WRITTEN, search_string
from mailbridge.versions import KEYWORD_PENDING, KEYWORD_REPLACED
from mailbridge.views import StoredMessage, has_flag

__all__ = ["HOLD_SECONDS", "Watcher"]

log = logging.getLogger("mailbridge.watching")

IDLE_SECONDS = 25 * 60.0
"""How long one IDLE lasts before it is renewed (RFC 2177: at most 29 minutes)."""
HOLD_SECONDS = 1.0
"""How long a vanished draft waits for a successor before it counts as deleted."""
PRUNE_SECONDS = 300.0
"""How often an instance that claimed changes removes its claims older than the ledger keeps."""
RECONNECT_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
PROBE = "idle-probe"
"""The kind of the record :meth:`Watcher.prompt_idle` adds and removes."""
PROBE_SECONDS = 3.0
"""How long the probe waits for the server to report its record during IDLE."""
_LEFTOVERS = (KEYWORD_PENDING, KEYWORD_REPLACED, KEYWORD_DELIVERED)


class Watcher:
    """The folder watches of every account, started with :meth:`start`."""

    def __init__(self, accounts: Accounts, dispatcher: Dispatcher, ledger: Ledger, *,
                 poll_seconds: float) -> None:
        self.accounts = accounts
        self.dispatcher = dispatcher
        self.ledger = ledger
        self.poll_seconds = poll_seconds
        self.watches = [_FolderWatch(self, account, role)
                        for account in accounts for role in ("inbox", "drafts")]
        self._tasks: list[asyncio.Task[None]] = []
        self._prompt: dict[tuple[str, int], asyncio.Future[bool]] = {}

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(w.run(), name=f"watch {w.account.email} {w.role}")
                       for w in self.watches]

    async def prompt_idle(self, account: AccountConfig) -> bool:
        """Whether the IMAP server of ``account`` reports changes during IDLE as they happen
        (Dovecot), not only when the IDLE ends (Cyrus without idled, Courier without FAM),
        found out once per server: a probe record is added to the account's mailbridge
        mailbox while another connection IDLEs there, then removed."""
        key = key_of(account)
        if key not in self._prompt:
            self._prompt[key] = asyncio.ensure_future(self._probe(account))
        try:
            return await asyncio.shield(self._prompt[key])
        except ImapError:
            del self._prompt[key]  # not known: poll this time, ask again next time
            return False

    async def _probe(self, account: AccountConfig) -> bool:
        records = self.ledger.records
        pool = self.accounts.pool(account)
        conn = await ImapConnection.open(pool.endpoint, pool.policy)
        probe = uuid.uuid4().hex
        try:
            if not conn.has("IDLE"):
                return False
            folder = await records.folder(conn, account)
            try:
                await conn.select(folder)
            except ImapNotFound:
                with contextlib.suppress(ImapProtocolError):  # made meanwhile by another
                    await conn.create_mailbox(folder)
                await conn.select(folder)
            idling = asyncio.ensure_future(conn.idle(PROBE_SECONDS))
            await asyncio.sleep(0.2)  # the IDLE under way
            await records.add(account, PROBE, probe, {})
            prompt = await idling == "pushed"
            log.info("%s:%d %s changes during IDLE", *key_of(account),
                     "reports" if prompt else "does not report")
            return prompt
        finally:
            conn.close()
            with contextlib.suppress(ImapError):
                await records.remove(account, PROBE, probe)

    async def ready(self, timeout: float = 30.0) -> None:
        """Waits until every folder is watched (its messages known)."""
        async with asyncio.timeout(timeout):
            for watch in self.watches:
                await watch.ready.wait()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for probe in self._prompt.values():
            probe.cancel()
        await asyncio.gather(*self._tasks, *self._prompt.values(), return_exceptions=True)


class _FolderWatch:
    def __init__(self, watcher: Watcher, account: AccountConfig, role: str) -> None:
        self.watcher = watcher
        self.account = account
        self.role = role
        self.folder = ""
        self.uidvalidity: int | None = None
        self.modseq: int | None = None
        self.known: dict[int, StoredMessage] = {}
        self.held: dict[int, tuple[StoredMessage, float]] = {}
        """Drafts gone without a successor (yet), with the time they count as deleted."""
        self.ready = asyncio.Event()
        self._claimed = False
        self._pruned = time.monotonic()

    async def run(self) -> None:
        failures = 0
        while True:
            conn: ImapConnection | None = None
            try:
                pool = self.watcher.accounts.pool(self.account)
                conn = await ImapConnection.open(pool.endpoint, pool.policy)
                self.folder = "INBOX" if self.role == "inbox" \
                    else await pool.folder(self.role, conn)
                info = await conn.select(self.folder)
                if conn.has("IDLE"):
                    await self.watcher.prompt_idle(self.account)  # known before it is ready
                if info.uidvalidity != self.uidvalidity:
                    await self._baseline(conn, info)
                else:
                    await self._sync(conn)
                self.ready.set()
                failures = 0
                while True:
                    if await self._wait(conn) or self.held:
                        await self._sync(conn)
                    await self._prune()
            except ImapError as exc:
                log.warning("%s: watching %s: %s", self.account.email, self.role, exc)
            except Exception:
                log.exception("%s: watching %s failed", self.account.email, self.role)
            finally:
                if conn is not None:
                    conn.close()
            await asyncio.sleep(RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)])
            failures += 1

    async def _wait(self, conn: ImapConnection) -> bool:
        """Until the server reports a change (True), or a held draft is due (False): IDLE
        where the server reports changes during IDLE (:meth:`Watcher.prompt_idle`), else NOOP
        every ``poll_seconds``."""
        limit = IDLE_SECONDS
        if self.held:
            limit = max(0.05, min(due for _, due in self.held.values()) - time.monotonic())
        if conn.has("IDLE") and await self.watcher.prompt_idle(self.account):
            return await conn.idle(limit) != "quiet"
        await asyncio.sleep(min(self.watcher.poll_seconds, limit))
        return len(await conn.command("NOOP")) > 1

    async def _baseline(self, conn: ImapConnection, info: SelectInfo) -> None:
        self.uidvalidity = info.uidvalidity
        self.held.clear()
        uids = (await conn.uid_search("ALL", esearch=True)).uids
        self.known = {m.uid: m for m in await fetch_headlines(
            conn, self.account, self.folder, info.uidvalidity, uids)}
        self.modseq = info.highestmodseq if conn.modseq_available else None

    async def _sync(self, conn: ImapConnection) -> None:
        info = conn.select_info
        if info is None or self.uidvalidity is None:
            return
        present = set((await conn.uid_search("ALL", esearch=True)).uids)
        if conn.modseq_available and self.modseq is not None:
            changed = await conn.uid_fetch_changed(self.modseq)
        else:
            changed = await conn.uid_fetch([u for u in self.known if u in present], "(UID FLAGS)")
        removed: list[StoredMessage] = []
        for item in changed:
            if item.modseq is not None:
                self.modseq = max(self.modseq or 0, item.modseq)
            before = self.known.get(item.uid or 0)
            if before is None or item.flags is None:
                continue
            now = dataclasses.replace(before, flags=lasting_flags(item))
            self.known[before.uid] = now
            if has_flag(now.flags, "\\Deleted") and not has_flag(before.flags, "\\Deleted"):
                removed.append(now)
        for uid in sorted(self.known.keys() - present):
            removed.append(self.known.pop(uid))
        new = await fetch_headlines(conn, self.account, self.folder, self.uidvalidity,
                                    sorted(present - self.known.keys()))
        for message in new:
            self.known[message.uid] = message
            if message.modseq is not None and self.modseq is not None:
                self.modseq = max(self.modseq, message.modseq)
        if self.role == "drafts":
            await self._drafts(conn, new, removed)
        else:
            await self._inbox(conn, new, removed)

    async def _read(self, conn: ImapConnection, kind: str,
                    messages: list[StoredMessage]) -> list[StoredMessage]:
        """``messages`` as lists read them (text included), for the events that report them;
        none when no subscription wants ``kind`` (what a watcher remembers is their headlines)."""
        if not messages or not await self.watcher.dispatcher.wants(self.account, (kind,)):
            return []
        assert self.uidvalidity is not None
        return await fetch_summaries(conn, self.account, self.folder, self.uidvalidity,
                                     [m.uid for m in messages])

    # ------------------------------------------------------------------ what it means

    async def _drafts(self, conn: ImapConnection, new: list[StoredMessage],
                      removed: list[StoredMessage]) -> None:
        kinds: dict[int, str] = {}
        for message in new:
            if has_flag(message.flags, "\\Deleted"):
                continue
            mine = identity(message)
            successor_of = [uid for uid, (gone, _) in self.held.items() if identity(gone) & mine]
            for uid in successor_of:
                del self.held[uid]
            if has_flag(message.flags, KEYWORD_WRITTEN):
                continue  # written through the API, which reported it
            replaces = successor_of or [m.uid for m in (*self.known.values(), *removed)
                                        if m.uid != message.uid and identity(m) & mine]
            kinds[message.uid] = "draft.updated" if replaces else "draft.created"
        for kind in ("draft.created", "draft.updated"):
            for message in await self._read(conn, kind, [m for m in new
                                                         if kinds.get(m.uid) == kind]):
                await self._report(kind, message, "new")
        due = time.monotonic() + HOLD_SECONDS
        for message in removed:
            if not any(has_flag(message.flags, k) for k in _LEFTOVERS):
                self.held[message.uid] = (message, due)
        now = time.monotonic()
        for uid, (message, until) in list(self.held.items()):
            if self._successor(message) is not None:
                del self.held[uid]  # replaced: the new version was (or is) reported
            elif until <= now:
                del self.held[uid]
                await self._report("draft.deleted", message, "gone")

    def _successor(self, gone: StoredMessage) -> StoredMessage | None:
        mine = identity(gone)
        return next((m for m in self.known.values() if m.uid != gone.uid
                     and not has_flag(m.flags, "\\Deleted") and identity(m) & mine), None)

    async def _inbox(self, conn: ImapConnection, new: list[StoredMessage],
                     removed: list[StoredMessage]) -> None:
        arrived = [m for m in new if not has_flag(m.flags, "\\Deleted")]
        for message in await self._read(conn, "email.received", arrived):
            await self._report("email.received", message, "new")
        if new:
            await self._bounces(conn, [m.uid for m in new])
        for message in removed:
            await self._report("email.deleted", message, "gone")

    async def _bounces(self, conn: ImapConnection, uids: list[int]) -> None:
        if not await self.watcher.dispatcher.wants(self.account, ("email.bounced",)):
            return
        reports = (await conn.uid_search("UID", uid_set(uids), "HEADER",
                                         "Content-Type", search_string("report"))).uids
        for uid in reports:
            dsn = await fetch_whole(conn, self.account, self.folder, uid)
            bounce = read_bounce(dsn.raw) if dsn is not None else None
            if bounce is None:
                continue
            original = await self._sent_copy(bounce.message_id)
            if original is None:
                continue  # not a message that mailbridge sent
            await self._report("email.bounced", original, "new", uid=uid, detail={"bounce": {
                "dsn_uid": uid, "message_id": bounce.message_id,
                "recipients": [{"address": r.recipient, "status": r.status,
                                "diagnostic": r.diagnostic} for r in bounce.recipients]}})

    async def _sent_copy(self, message_id: str) -> StoredMessage | None:
        """The Sent copy of a message that mailbridge sent (it carries X-Mailbridge-Id)."""
        pool = self.watcher.accounts.pool(self.account)
        sent = (await pool.folders()).sent
        if sent is None:
            return None
        async with pool.connection() as conn:
            info = await conn.select(sent)
            found = await conn.uid_search("HEADER", "Message-ID", search_string(message_id))
            copies = await fetch_summaries(conn, self.account, sent, info.uidvalidity,
                                           found.uids[:1])
        return next((c for c in copies if c.parsed.state is not None), None)

    async def _report(self, kind: str, message: StoredMessage, change: Change, *,
                      uid: int | None = None, detail: dict[str, object] | None = None) -> None:
        assert self.uidvalidity is not None
        key = change_key(self.folder, self.uidvalidity, message.uid if uid is None else uid,
                         change)
        if kind == "email.bounced":
            key += "/bounce"
        event = Event(kind, self.account, message, origin="mailbox",
                      id=event_id(self.account, key), detail=detail or {})
        try:
            if await self.watcher.dispatcher.report(event, key):
                self._claimed = True
        except ImapError as exc:
            log.warning("%s: %s of %s %s not reported: %s", self.account.email, kind,
                        self.folder, message.uid, exc)

    async def _prune(self) -> None:
        if not self._claimed or time.monotonic() - self._pruned < PRUNE_SECONDS:
            return
        self._pruned = time.monotonic()
        self._claimed = False
        try:
            await self.watcher.ledger.prune(self.account)
        except ImapError as exc:
            log.warning("%s: old claims not pruned: %s", self.account.email, exc)


def identity(message: StoredMessage) -> frozenset[str]:
    """What tells two copies of one draft: its stable id, and its Message-ID."""
    marks = {f"id:{message.id}"}
    if message.parsed.message_id:
        marks.add("mid:" + message.parsed.message_id.strip().strip("<>").lower())
    return frozenset(marks)


def key_of(account: AccountConfig) -> tuple[str, int]:
    return account.imap.host, account.imap.port
