"""The scheduler: sends scheduled drafts when they are due, and sweeps up after the dead.

Every ``[scheduler] interval_seconds`` each instance looks at every account's Drafts (one
connection, mostly no search at all: see :func:`_folder_state`):

- **due drafts**: scheduled ones whose planned (or retry) time has come, not held, are sent by
  :class:`mailbridge.sending.SendService` (claimed first, so of several instances one sends);
- **the sweeper**: claims whose lease expired (their sender died) are finished: a delivered draft
  is filed, an undelivered one marked failed with an unknown outcome; copies that dead writers
  left are settled (:mod:`mailbridge.versions`); drafts a mail client saved without any id are
  given theirs (:meth:`mailbridge.drafts.DraftService.adopt`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar
from uuid import UUID

from mailbridge.config import AccountConfig
from mailbridge.drafts import HEADER_LEASE, HEADER_RETRY_AT
from mailbridge.errors import Conflict, MailbridgeError, NotFound
from mailbridge.imap import ImapConnection
from mailbridge.mime import (
    HEADER_ID,
    HEADER_PLANNED_SEND_AT,
    HEADER_UPDATED_AT,
    header_time,
    parse_header_time,
)
from mailbridge.model import Status
from mailbridge.reading import fetch_whole
from mailbridge.sending import (
    OUTCOME_UNKNOWN,
    SendFailed,
    SendService,
)
from mailbridge.store import CURRENT_ONLY, KEYWORD_DELIVERED, header_fields
from mailbridge.versions import HEADER_WRITE, KEYWORD_PENDING, KEYWORD_REPLACED, Copy
from mailbridge.views import HEADER_APPROVAL, HEADER_SEND_STATE, StoredMessage, is_held, utcnow

log = logging.getLogger("mailbridge.scheduler")


@dataclass(frozen=True)
class DueDraft:
    """A scheduled draft whose time has come (or a retry whose time has come): to be sent."""

    account: AccountConfig
    id: UUID
    uid: int
    when: datetime


@dataclass(frozen=True)
class _ScheduledDraft:
    """A scheduled draft as the scheduler's search found it: due at ``when`` or not yet."""

    id: UUID
    uid: int
    when: datetime


_FolderState = tuple[int, int, int, int]
_STATE_ITEMS = ("UIDVALIDITY", "UIDNEXT", "MESSAGES", "HIGHESTMODSEQ")


async def _folder_state(conn: ImapConnection, folder: str) -> _FolderState | None:
    """Selects ``folder`` on ``conn``, up to date, and returns its (UIDVALIDITY, UIDNEXT,
    MESSAGES, HIGHESTMODSEQ) now; None without mod-sequences (no CONDSTORE, or NOMODSEQ).

    While these four are unchanged, so is everything a search of the folder can find: a new
    message raises UIDNEXT, an expunge alone lowers MESSAGES, any flag change ($MailbridgePending
    cleared, \\Deleted set) raises HIGHESTMODSEQ, and a message's headers never change without a
    new UID. So what a search found may be kept for as long as the state read before it stays
    the same.

    A SELECT reports the state itself. When ``folder`` is selected already: NOOP, then STATUS.
    Dovecot (2.3) answers STATUS of the selected mailbox from the session's own view, which only
    a command such as NOOP brings up to date; a STATUS of a mailbox not selected costs a sync of
    its own (about half a SELECT), and leaves the connection where it was.
    """
    if conn.selected != folder:
        info = await conn.select(folder)
        if not conn.modseq_available or not info.highestmodseq or info.uidnext is None:
            return None
        return (info.uidvalidity, info.uidnext, info.exists, info.highestmodseq)
    await conn.noop()
    if not conn.modseq_available:
        return None
    status = await conn.status(folder, _STATE_ITEMS)
    if not status.get("HIGHESTMODSEQ") or any(item not in status for item in _STATE_ITEMS):
        return None  # HIGHESTMODSEQ 0: the mailbox keeps no mod-sequences (RFC 7162 3.1.2.1)
    return (status["UIDVALIDITY"], status["UIDNEXT"], status["MESSAGES"], status["HIGHESTMODSEQ"])


_Found = TypeVar("_Found")


class _WhileUnchanged(Generic[_Found]):
    """What a search of a folder found, kept per (account id, folder) for as long as the
    folder's state (see :func:`_folder_state`) stays the one read before the search."""

    def __init__(self) -> None:
        self._kept: dict[tuple[UUID, str], tuple[_FolderState, _Found]] = {}

    async def get(self, key: tuple[UUID, str], state: _FolderState | None,
                  search: Callable[[], Awaitable[_Found]]) -> _Found:
        kept = self._kept.get(key)
        if state is not None and kept is not None and kept[0] == state:
            return kept[1]
        found = await search()
        if state is not None:
            self._kept[key] = (state, found)
        else:  # no mod-sequences: nothing tells a change, search every time
            self._kept.pop(key, None)
        return found


class Scheduler:
    """Due drafts and the sweeper of one instance, over its :class:`SendService`."""

    def __init__(self, sending: SendService) -> None:
        self.sending = sending
        self.drafts = sending.drafts
        self.settings = sending.settings
        # what the last searches of each Drafts folder found
        self._planned: _WhileUnchanged[tuple[_ScheduledDraft, ...]] = _WhileUnchanged()
        self._claims: _WhileUnchanged[tuple[tuple[int, datetime | None], ...]] = _WhileUnchanged()
        self._leftovers: _WhileUnchanged[tuple[tuple[UUID, datetime | None], ...]] = \
            _WhileUnchanged()
        self._nameless: _WhileUnchanged[tuple[int, ...]] = _WhileUnchanged()
        self.lag = 0.0
        """Seconds the oldest draft due at the last look of :meth:`run` had been due then."""

    async def due(self, account: AccountConfig, now: datetime) -> list[DueDraft]:
        """Scheduled drafts of ``account`` whose time (or retry time) has come."""
        _, due = await self._tick(account, now, sweep=False)
        return due

    async def sweep(self, account: AccountConfig, now: datetime) -> None:
        """Finishes sends whose claim expired (their sender died): files the delivered ones,
        marks the others failed with an unknown outcome. Resolves what dead writers left (see
        mailbridge.versions) once their time is up."""
        stale, _ = await self._tick(account, now, due=False)
        await self._file_stale(account, stale)

    async def _tick(self, account: AccountConfig, now: datetime, *, sweep: bool = True,
                    due: bool = True) -> tuple[list[StoredMessage], list[DueDraft]]:
        """One look of the scheduler at ``account``'s Drafts, on one connection: takes over the
        expired claims (``sweep``; returns those delivered, to be filed) and lists what is due
        (``due``).

        Both searches of Drafts (claims, scheduled drafts) are skipped while the folder is
        unchanged since the last one (see :func:`_folder_state`): what they found is kept, and
        leases and times are compared with ``now`` anew at every tick.
        """
        pool = self.drafts.accounts.pool(account)
        async with pool.connection() as conn:
            folder = await pool.folder("drafts", conn)
            state = await _folder_state(conn, folder)
            if sweep and await self._settle_leftovers(conn, account, folder, state, now):
                state = await _folder_state(conn, folder)
            if sweep and await self._adopt_nameless(conn, account, folder, state):
                state = await _folder_state(conn, folder)
            stale = await self._take_expired(conn, account, folder, state, now) if sweep else []
            result = []
            if due:
                planned = await self._planned.get((account.id, folder), state,
                                                  lambda: self._search_planned(conn, folder))
                result = sorted((DueDraft(account, p.id, p.uid, p.when) for p in planned
                                 if p.when <= now), key=lambda d: d.when)
        return stale, result

    @staticmethod
    async def _search_planned(conn: ImapConnection, folder: str) -> tuple[_ScheduledDraft, ...]:
        """Every scheduled draft of ``folder`` (selected and synced) with its time (or retry
        time), due or not."""
        await conn.select(folder, sync=False)  # no command: it is (see _folder_state)
        found = await conn.uid_search("UNDELETED", *CURRENT_ONLY,
                                      "HEADER", HEADER_PLANNED_SEND_AT, '""',
                                      "NOT", "HEADER", HEADER_SEND_STATE, '""',
                                      # awaiting a person's decision: not the scheduler's
                                      "NOT", "HEADER", HEADER_APPROVAL, '"requested"',
                                      "NOT", "HEADER", HEADER_APPROVAL, '"rejected"')
        if not found.uids:
            return ()
        fields = (f"HEADER.FIELDS ({HEADER_ID} {HEADER_PLANNED_SEND_AT} {HEADER_RETRY_AT} "
                  f"{HEADER_UPDATED_AT})").upper()
        items = await conn.uid_fetch(found.uids, f"(UID INTERNALDATE BODY.PEEK[{fields}])")
        result = []
        for item in items:
            headers = header_fields(item.sections.get(fields, b""))
            planned = parse_header_time(headers.get(HEADER_PLANNED_SEND_AT.lower()))
            retry = parse_header_time(headers.get(HEADER_RETRY_AT.lower()))
            draft_id = headers.get(HEADER_ID.lower())
            if planned is None or draft_id is None or item.uid is None:
                continue
            if is_held(planned, parse_header_time(headers.get(HEADER_UPDATED_AT.lower())),
                       item.internaldate):
                continue  # saved by a mail client after its time: not sent unasked
            with contextlib.suppress(ValueError):
                result.append(_ScheduledDraft(UUID(draft_id), item.uid,
                                       max(planned, retry) if retry else planned))
        return tuple(result)

    async def _take_expired(self, conn: ImapConnection, account: AccountConfig, folder: str,
                            state: _FolderState | None, now: datetime) -> list[StoredMessage]:
        """Takes over the claims of ``folder`` whose lease expired: a delivered one gets a
        new lease (returned, to be filed), the others are marked failed, outcome unknown."""
        claims = await self._claims.get((account.id, folder), state,
                                        lambda: self._search_claims(conn, folder))
        stale = []
        for uid, lease_seen in claims:
            if lease_seen is not None and lease_seen > now:
                continue  # its sender still holds it (read whole once the lease has expired)
            draft = await fetch_whole(conn, account, folder, uid)
            if draft is None or draft.status is not Status.SENDING:
                continue
            lease = parse_header_time(draft.header(HEADER_LEASE))
            if lease is not None and lease > now:
                continue
            delivered = any(f.lower() == KEYWORD_DELIVERED.lower() for f in draft.flags)
            if not delivered:
                # a copy in Sent proves the delivery (only a sender that was accepted files one),
                # whatever became of the flag: finish the filing rather than mark it failed
                delivered = await self.drafts.store.find_sent(conn, account, draft.id) is not None
                await conn.select(folder, sync=False)
            own: dict[str, str | None]
            if delivered:  # take the claim over, then file it
                lease_until = datetime.now(UTC) + timedelta(seconds=self.settings.lease_seconds)
                own = {HEADER_LEASE: header_time(lease_until)}
                error = draft.last_error
            else:
                own = {HEADER_SEND_STATE: "failed", HEADER_LEASE: None}
                error = OUTCOME_UNKNOWN
            try:
                taken = await self.drafts.write_version(conn, draft, draft.content,
                                                        own_headers=own, last_error=error)
            except Conflict:
                continue  # another instance is on it
            if delivered:
                stale.append(taken)
            else:
                log.warning("draft %s: %s", draft.id, OUTCOME_UNKNOWN)
        return stale

    async def _settle_leftovers(self, conn: ImapConnection, account: AccountConfig, folder: str,
                                state: _FolderState | None, now: datetime) -> bool:
        """Resolves the drafts of ``folder`` with a copy that a writer left pending or flagged
        replaced, once that copy's writer counts as gone (a commit: at once). Returns whether
        it looked at any."""
        leftovers = await self._leftovers.get((account.id, folder), state,
                                              lambda: self._search_leftovers(conn, folder))
        acted = False
        for draft_id, ready in leftovers:
            if ready is not None and ready > now:
                continue  # a write in flight
            acted = True
            try:
                await self.drafts.store.settle_id(conn, folder, draft_id)
            except Conflict:
                continue  # changing right now: the next tick looks again
        return acted

    async def _adopt_nameless(self, conn: ImapConnection, account: AccountConfig, folder: str,
                              state: _FolderState | None) -> bool:
        """Writes its id into each draft of ``folder`` that has neither Message-ID nor
        X-Mailbridge-Id (see DraftService.adopt), so that a mail client's re-save keeps it.
        Returns whether there were any."""
        nameless = await self._nameless.get((account.id, folder), state,
                                            lambda: self._search_nameless(conn, folder))
        for uid in nameless:
            try:
                await self.drafts.adopt(conn, account, folder, uid)
            except Conflict:
                continue  # changed meanwhile: the next tick looks again
        return bool(nameless)

    @staticmethod
    async def _search_nameless(conn: ImapConnection, folder: str) -> tuple[int, ...]:
        """The UIDs of ``folder``'s (selected and synced) drafts without Message-ID and without
        X-Mailbridge-Id."""
        await conn.select(folder, sync=False)  # no command: it is (see _folder_state)
        found = await conn.uid_search("UNDELETED", *CURRENT_ONLY, "NOT", "HEADER", "Message-ID",
                                      '""', "NOT", "HEADER", HEADER_ID, '""')
        return found.uids

    async def _search_leftovers(self, conn: ImapConnection,
                                folder: str) -> tuple[tuple[UUID, datetime | None], ...]:
        """Each draft of ``folder`` (selected and synced) with a pending or replaced copy, with
        the time from which it may be resolved (None: now)."""
        await conn.select(folder, sync=False)  # no command: it is (see _folder_state)
        found = await conn.uid_search("UNDELETED", "OR", "KEYWORD", KEYWORD_PENDING,
                                      "KEYWORD", KEYWORD_REPLACED)
        if not found.uids:
            return ()
        info = conn.select_info
        fields = f"HEADER.FIELDS ({HEADER_ID} {HEADER_WRITE})".upper()
        items = await conn.uid_fetch(found.uids, f"(UID FLAGS INTERNALDATE BODY.PEEK[{fields}])")
        ready: dict[UUID, datetime | None] = {}
        for item in items:
            headers = header_fields(item.sections.get(fields, b""))
            try:
                draft_id = UUID(headers.get(HEADER_ID.lower(), ""))
            except ValueError:
                continue  # not one of mailbridge's drafts
            copy = Copy.of(item.uid or 0, item.flags or (), write=headers.get(HEADER_WRITE.lower()),
                           uidvalidity=info.uidvalidity if info else 0,
                           internaldate=item.internaldate)
            at = None if copy.replaced else copy.abandoned_at(self.drafts.store.orphan_after)
            if draft_id in ready:
                earlier = ready[draft_id]
                at = None if at is None or earlier is None else min(at, earlier)
            ready[draft_id] = at
        return tuple(ready.items())

    @staticmethod
    async def _search_claims(conn: ImapConnection,
                             folder: str) -> tuple[tuple[int, datetime | None], ...]:
        """The UIDs of ``folder`` (selected and synced) in send-state sending, each with the
        end of its lease."""
        await conn.select(folder, sync=False)  # no command: it is (see _folder_state)
        found = await conn.uid_search("UNDELETED", *CURRENT_ONLY,
                                      "HEADER", HEADER_SEND_STATE, '"sending"')
        if not found.uids:
            return ()
        fields = f"HEADER.FIELDS ({HEADER_LEASE})".upper()
        items = await conn.uid_fetch(found.uids, f"(UID BODY.PEEK[{fields}])")
        return tuple((item.uid, parse_header_time(header_fields(item.sections.get(fields, b""))
                                            .get(HEADER_LEASE.lower())))
                     for item in items if item.uid is not None)

    async def _file_stale(self, account: AccountConfig, stale: list[StoredMessage]) -> None:
        for taken in stale:
            log.warning("filing draft %s, delivered before its sender stopped", taken.id)
            await self.sending._file(account, taken, self.sending._wire(taken.raw))

    async def send_due(self, due: DueDraft) -> None:
        """Sends one due draft; losing the claim to another instance is normal and quiet."""
        try:
            async with self.sending._locks.hold((due.account.id, str(due.id))):
                await self.sending._send(due.account, due.id, expected=None, key=None, scheduled=True)
            late = (utcnow() - due.when).total_seconds()
            log.info("scheduled draft %s sent %.1fs after its time", due.id, late)
        except (Conflict, NotFound):
            pass
        except SendFailed as exc:
            log.warning("scheduled draft %s: %s", due.id, exc.message)
        except MailbridgeError as exc:
            log.warning("scheduled draft %s not sent now: %s", due.id, exc.message)

    async def run(self, accounts: list[AccountConfig], stop: asyncio.Event | None = None) -> None:
        """The scheduler loop: every interval, sweep expired claims and send what is due.

        Returns after the look in progress when ``stop`` is set (a shutdown then cuts no IMAP
        command or login short); sends already started go on in their own tasks."""
        stop = stop or asyncio.Event()
        gate = asyncio.Semaphore(self.settings.concurrency)
        running: set[asyncio.Task[None]] = set()
        in_flight: set[tuple[UUID, UUID]] = set()

        async def one(due: DueDraft) -> None:
            try:
                async with gate:
                    await self.send_due(due)
            finally:
                in_flight.discard((due.account.id, due.id))

        while True:
            now = utcnow()
            oldest: datetime | None = None
            for account in accounts:
                try:
                    stale, due_now = await self._tick(account, now)
                    await self._file_stale(account, stale)
                    for due in due_now:
                        oldest = due.when if oldest is None else min(oldest, due.when)
                        key = (account.id, due.id)
                        if key in in_flight:
                            continue
                        in_flight.add(key)
                        task = asyncio.create_task(one(due))
                        running.add(task)
                        task.add_done_callback(running.discard)
                except MailbridgeError as exc:
                    log.warning("scheduler: %s: %s", account.email, exc.message)
            self.lag = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.interval_seconds)
            if stop.is_set():
                return
