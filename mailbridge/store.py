"""DraftStore: where each draft's current version is in the mail server, and the one way to
change it.

A draft is one message in Drafts with ``\\Draft \\Seen`` (see :mod:`mailbridge.views`). This
module finds a draft's current version (UID SEARCH on its id, a location cache checked against
the server before use), loads it (:mod:`mailbridge.reading`), writes a new version by the four
steps of :mod:`mailbridge.versions` with arbitration between writers, removes a draft with every
copy of it, and resolves whatever a dead writer left behind, so that any instance can.

It knows messages and IMAP; what goes into a version is the business of
:class:`mailbridge.drafts.DraftService`.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import logging
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID

from mailbridge.accounts import Accounts
from mailbridge.config import AccountConfig
from mailbridge.errors import (
    Conflict,
    ImapCapabilityMissing,
    ImapNotFound,
    ImapUnavailable,
    InvalidInput,
    NotFound,
    PreconditionFailed,
)
from mailbridge.imap import ImapConnection, ImapPool
from mailbridge.imap.utf7 import quote_astring
from mailbridge.mime import HEADER_ID, set_header
from mailbridge.model import DraftContent, DraftState
from mailbridge.reading import fetch_whole, lasting_flags, written
from mailbridge.versions import (
    HEADER_REPLACES,
    HEADER_WRITE,
    KEYWORD_PENDING,
    KEYWORD_REPLACED,
    Copy,
    Resolution,
    replaces_header,
    resolve,
    rivals,
    write_header,
)
from mailbridge.views import StoredMessage, foreign_id, has_flag

KEYWORD_DELIVERED = "$MailbridgeDelivered"
KEYWORD_WRITTEN = "$MailbridgeWritten"
"""On every message mailbridge writes to Drafts: the watcher (mailbridge.watching) reports as a
mail client's only what lacks it (a client that saves a draft appends a message of its own,
which carries no keyword of mailbridge's)."""
"""Set on a claimed draft the moment the SMTP server accepted it: a crash after that point must
lead to filing, never to a second delivery."""
CURRENT_ONLY = ("NOT", "KEYWORD", KEYWORD_PENDING, "NOT", "KEYWORD", KEYWORD_REPLACED)
"""SEARCH keys that leave out copies being written and versions being replaced (see
mailbridge.versions): what is left is each draft's current version."""
OWN_KEYWORDS = (KEYWORD_PENDING, KEYWORD_REPLACED, KEYWORD_DELIVERED)
"""The keywords mailbridge keeps its state in: a Drafts folder that cannot keep them (its
PERMANENTFLAGS say so) is read, but drafts are not changed there."""
DRAFT_FLAGS = ("\\Draft", "\\Seen")

log = logging.getLogger("mailbridge.store")
_header_parser = email.parser.BytesHeaderParser(policy=email.policy.default)
_FAMILY_FIELDS = f"HEADER.FIELDS ({HEADER_REPLACES} {HEADER_WRITE})".upper()


def search_string(value: str) -> str:
    """A SEARCH argument: quoted; RFC 3501 strings are sent as UTF-8 with CHARSET UTF-8."""
    try:
        return quote_astring(value)
    except ValueError:
        raise InvalidInput("line breaks are not allowed in a filter", field="filter") from None


class DraftStore:
    """The drafts of the configured accounts as the mail server holds them."""

    def __init__(self, accounts: Accounts, *, cache_size: int = 10_000) -> None:
        self.accounts = accounts
        self.orphan_after = timedelta(seconds=accounts.config.drafts.orphan_seconds)
        self._locations: OrderedDict[tuple[UUID, UUID], tuple[int, int]] = OrderedDict()
        self._cache_size = cache_size

    def pool(self, account: AccountConfig) -> ImapPool:
        return self.accounts.pool(account)

    def remember(self, account: AccountConfig, draft_id: UUID, uidvalidity: int, uid: int) -> None:
        key = (account.id, draft_id)
        self._locations[key] = (uidvalidity, uid)
        self._locations.move_to_end(key)
        while len(self._locations) > self._cache_size:
            self._locations.popitem(last=False)

    def cached_holder(self, accounts: Iterable[AccountConfig], draft_id: UUID
                      ) -> AccountConfig | None:
        """Which of ``accounts`` this instance last saw the draft ``draft_id`` in, if any: a
        hint to ask that account first (the server has the last word)."""
        for account in accounts:
            if (account.id, draft_id) in self._locations:
                return account
        return None

    def forget(self, account: AccountConfig, draft_id: UUID) -> None:
        self._locations.pop((account.id, draft_id), None)

    async def folder(self, account: AccountConfig, role: str = "drafts",
                      conn: ImapConnection | None = None) -> str:
        return await self.pool(account).folder(role, conn)


    async def locate(self, conn: ImapConnection, account: AccountConfig, folder: str,
                      ref: UUID | int) -> int | None:
        """The UID in ``folder`` of the live draft ``ref`` (a stable id or a UID), else None.

        By UID: that message, if it is a draft and not deleted. By stable id: UID SEARCH on
        X-Mailbridge-Id, else (drafts other clients wrote, whose ids are uuid5) the Message-ID
        derived ids. (:meth:`_load` tries the location cache before it comes here.)
        """
        info = await conn.select(folder)
        if isinstance(ref, int):
            found = await conn.uid_search("UID", str(ref), "UNDELETED", *CURRENT_ONLY)
            return ref if ref in found.uids else None
        self.forget(account, ref)
        uid = await self._locate_by_id(conn, ref)
        if uid is not None:
            self.remember(account, ref, info.uidvalidity, uid)
            return uid
        if ref.version != 5:  # mailbridge's own ids are uuid4; derived ones (foreign_id) uuid5
            return None
        foreign = await conn.uid_search("UNDELETED", *CURRENT_ONLY, "NOT", "HEADER", HEADER_ID,
                                        '""')
        if foreign.uids:
            items = await conn.uid_fetch(foreign.uids, "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            for it in sorted(items, key=lambda i: -(i.uid or 0)):
                mid = _message_id_of(it.sections.get("HEADER.FIELDS (MESSAGE-ID)", b""))
                if it.uid and foreign_id(mid, info.uidvalidity, it.uid) == ref:
                    self.remember(account, ref, info.uidvalidity, it.uid)
                    return it.uid
        return None

    async def _locate_by_id(self, conn: ImapConnection, ref: UUID) -> int | None:
        """The UID of the current version of the draft ``ref`` (X-Mailbridge-Id), else None.

        One SEARCH finds every copy and one FETCH of their flags tells the usual case, a single
        settled copy. Anything else (a write in flight, or what a dead writer left) is resolved
        as :mod:`mailbridge.versions` says, here and now.
        """
        seen: tuple[int, ...] | None = None
        for _ in range(3):
            found = await conn.uid_search("HEADER", HEADER_ID, search_string(str(ref)))
            if not found.uids:
                if seen == ():
                    return None
                # twice before it counts: pymap's maildir misses a message in a HEADER search
                # while another session changes its flags (5 of 1,117 searches measured)
                seen = ()
                await conn.noop()
                continue
            items = await conn.uid_fetch(found.uids, "(UID FLAGS)")
            live = [i for i in items if i.uid and not has_flag(i.flags or (), "\\Deleted")]
            if len(live) == 1 and not any(has_flag(live[0].flags or (), k)
                                          for k in (KEYWORD_PENDING, KEYWORD_REPLACED)):
                return live[0].uid
            if live:
                return await self.settle(conn, ref)
            if found.uids == seen:
                return None  # only deleted copies, twice: it was deleted
            # the FETCH may see a newer state than the SEARCH did (a replace finished in
            # between, its new version not among the UIDs found): look again
            seen = found.uids
            await conn.noop()
        return None

    async def settle_id(self, conn: ImapConnection, folder: str, draft_id: UUID) -> int | None:
        """Resolves every copy of the draft ``draft_id`` in ``folder`` (see :meth:`settle`);
        returns the UID of its current version, None when it has none."""
        await conn.select(folder)
        return await self._locate_by_id(conn, draft_id)

    async def _family(self, conn: ImapConnection, uids: Sequence[int]) -> list[Copy]:
        """The copies ``uids`` of one draft, and the versions their pending ones replace, as
        they stand now in the selected (and synced) folder."""
        info = conn.select_info
        uidvalidity = info.uidvalidity if info is not None else 0
        items = await conn.uid_fetch(uids, f"(UID FLAGS INTERNALDATE BODY.PEEK[{_FAMILY_FIELDS}])")
        family = []
        for item in items:
            fields = header_fields(item.sections.get(_FAMILY_FIELDS, b""))
            family.append(Copy.of(item.uid or 0, item.flags or (), uidvalidity=uidvalidity,
                                  replaces=fields.get(HEADER_REPLACES.lower()),
                                  write=fields.get(HEADER_WRITE.lower()),
                                  internaldate=item.internaldate))
        have = {c.uid for c in family}
        targets = {c.replaces for c in family if c.pending and c.replaces is not None} - have
        if targets:
            for item in await conn.uid_fetch(sorted(targets), "(UID FLAGS)"):
                family.append(Copy.of(item.uid or 0, item.flags or (), uidvalidity=uidvalidity))
        return family

    async def settle(self, conn: ImapConnection, draft_id: UUID) -> int | None:
        """Resolves the copies of the draft ``draft_id`` (in the selected, synced folder) down
        to its current version, carrying out what :func:`mailbridge.versions.resolve` says:
        adopts a committed copy, removes abandoned and superseded ones. Returns the current
        UID, or None when the draft has none. Safe to run from any number of instances at once.
        """
        gone_before = False
        for attempt in range(6):
            found = await conn.uid_search("HEADER", HEADER_ID, search_string(str(draft_id)))
            if not found.uids:
                return None
            family = await self._family(conn, found.uids)
            if set(found.uids) - {c.uid for c in family}:
                # expunged between SEARCH and FETCH: a write finished meanwhile, and its new
                # version is not among the UIDs found; look again
                await conn.noop()
                continue
            decision = resolve(family, now=datetime.now(UTC), orphan_after=self.orphan_after)
            if not decision.settled:
                if await self._carry_out(conn, family, decision):
                    return decision.current
            elif decision.current is not None:
                return decision.current
            elif not decision.in_flight:
                if gone_before:
                    return None
                # none is current and none is being written: deleted, unless this view missed
                # the newest version (pymap leaves a message whose flags change meanwhile out
                # of another session's view): look once more
                gone_before = True
            # no current version but a write in flight: it is being removed by its writer
            # right now, or this session's view lags behind its commit; look again
            await asyncio.sleep(0.01 * attempt)
            await conn.noop()
        raise Conflict("the draft is being changed by someone else right now; retry")

    async def _carry_out(self, conn: ImapConnection, family: Sequence[Copy],
                         decision: Resolution) -> bool:
        """Does what ``decision`` says. False when an abandoned copy turned out to be committed
        just now (its writer was late, not gone): then nothing of it was removed."""
        by_uid = {c.uid: c for c in family}
        if decision.adopt:
            log.warning("adopting committed version(s) %s left pending by their writer",
                        list(decision.adopt))
            await conn.uid_store(decision.adopt, "-FLAGS.SILENT", [KEYWORD_PENDING])
        if decision.discard:
            log.warning("removing copies %s abandoned by writers that are gone",
                        list(decision.discard))
            targets = {t for u in decision.discard if (t := by_uid[u].replaces) is not None}
            if not await self._discard(conn, decision.discard, targets):
                return False
        if decision.remove:
            log.info("removing copies %s: superseded, or versions that lost", list(decision.remove))
            await self.remove(conn, decision.remove)
        return True

    async def _discard(self, conn: ImapConnection, uids: Sequence[int],
                       targets: Iterable[int]) -> bool:
        """Removes the abandoned pending copies ``uids`` unless one of the versions they replace
        (``targets``) is flagged $MailbridgeReplaced by now: then their writer committed after
        all, the mark is taken back and False returned. (The writer checks its own copy after
        its commit in the same way, so whichever of the two came second sees the other.)"""
        await conn.uid_store(uids, "+FLAGS.SILENT", ["\\Deleted"])
        items = await conn.uid_fetch(sorted(set(targets)), "(UID FLAGS)")
        if any(has_flag(i.flags or (), KEYWORD_REPLACED) for i in items):
            await conn.uid_store(uids, "-FLAGS.SILENT", ["\\Deleted"])
            return False
        await self._expunge(conn, uids)
        return True

    async def _load_cached(self, conn: ImapConnection, account: AccountConfig, folder: str,
                           ref: UUID) -> StoredMessage | None:
        """The draft ``ref`` at the UID the location cache holds, checked on what one FETCH of
        it returns (same UIDVALIDITY, still there, committed, same id); None on any doubt."""
        cached = self._locations.get((account.id, ref))
        if cached is None:
            return None
        info = await conn.select(folder)  # sync first: the cache may be stale
        if cached[0] != info.uidvalidity:
            return None
        draft = await fetch_whole(conn, account, folder, cached[1])
        if draft is None or draft.id != ref or has_flag(draft.flags, KEYWORD_PENDING) \
                or has_flag(draft.flags, KEYWORD_REPLACED):
            self.forget(account, ref)
            return None
        self.remember(account, ref, draft.uidvalidity, draft.uid)
        return draft

    async def load(self, conn: ImapConnection, account: AccountConfig, ref: UUID | int,
                    folder: str | None = None) -> StoredMessage:
        folder = folder or await self.folder(account, conn=conn)
        if isinstance(ref, UUID):
            cached = await self._load_cached(conn, account, folder, ref)
            if cached is not None:
                return cached
        vanished = False
        for _ in range(5):
            uid = await self.locate(conn, account, folder, ref)
            if uid is None:
                break
            draft = await fetch_whole(conn, account, folder, uid)
            if draft is not None:
                self.remember(account, draft.id, draft.uidvalidity, draft.uid)
                return draft
            # replaced or removed between SEARCH and FETCH (a concurrent update): look again
            vanished = True
            if isinstance(ref, UUID):
                self.forget(account, ref)
            else:
                break
        if vanished and isinstance(ref, UUID):
            raise Conflict(f"draft {ref} is being changed by someone else right now; retry")
        raise NotFound(f"no draft {ref} in {account.email}", field="uid")

    # ------------------------------------------------------------ public API

    async def get(self, account: AccountConfig, ref: UUID | int) -> StoredMessage:
        """The draft ``ref`` (stable id or IMAP UID) loaded whole. NotFound if there is none.

        A draft that was sent is found by its stable id in Sent (status sent).
        """
        async with self.pool(account).connection() as conn:
            try:
                return await self.load(conn, account, ref)
            except (NotFound, Conflict):  # Conflict: it left Drafts while read (filed into Sent?)
                if isinstance(ref, UUID):
                    sent = await self.find_sent(conn, account, ref)
                    if sent is not None:
                        return sent
                raise

    async def find_sent(self, conn: ImapConnection, account: AccountConfig,
                        draft_id: UUID) -> StoredMessage | None:
        """The Sent copy of the sent draft ``draft_id`` (by its X-Mailbridge-Id), else None."""
        sent = (await self.pool(account).folders(conn=conn)).sent
        if sent is None:
            return None
        try:
            await conn.select(sent)
        except ImapNotFound:
            return None
        found = await conn.uid_search("UNDELETED", "HEADER", HEADER_ID, search_string(str(draft_id)))
        if not found.uids:
            return None
        return await fetch_whole(conn, account, sent, min(found.uids))

    async def add(self, account: AccountConfig, raw: bytes, content: DraftContent,
                  state: DraftState, *, unique: tuple[str, str] | None = None) -> StoredMessage:
        """Stores the new draft ``raw`` (built from ``content`` and ``state``) in Drafts.

        ``unique`` = (header, value): at most one draft may carry that header value. Another
        instance may have raced this one with the same value: the lowest UID wins, the others
        remove their copy, and the winner is returned.
        """
        folder = await self.folder(account)
        async with self.pool(account).connection() as conn:
            appended = await conn.append(folder, raw, flags=(*DRAFT_FLAGS, KEYWORD_WRITTEN),
                                          date=state.updated_at)
            # a search follows only without APPENDUID or with a unique header
            await conn.select(folder, sync=appended is None or unique is not None)
            if appended is not None:
                uid = appended.uid
            else:  # no UIDPLUS: find it by its id
                found = await conn.uid_search("HEADER", HEADER_ID, search_string(str(state.id)))
                uid = max(found.uids)
            own_uid = uid
            if unique is not None:
                same = await conn.uid_search("UNDELETED", "HEADER", unique[0],
                                             search_string(unique[1]))
                winner = min(same.uids) if same.uids else uid
                if winner != uid:
                    await self.remove(conn, [uid])
                    uid = winner
            if uid == own_uid:  # ours: we know its bytes, read back only flags and MODSEQ
                draft = await written(conn, account, folder, uid, raw, content, state)
            else:
                draft = await fetch_whole(conn, account, folder, uid)
            if draft is None and uid == own_uid:
                # replaced at once by a send (the scheduler claims a draft that is due already):
                # it was stored all the same; answer its current version, or its Sent copy
                try:
                    draft = await self.load(conn, account, state.id, folder)
                except NotFound:
                    sent = await self.find_sent(conn, account, state.id)
                    if sent is not None:
                        return sent
        if draft is None:
            raise Conflict("the new draft vanished right after it was stored; retry")
        self.remember(account, draft.id, draft.uidvalidity, draft.uid)
        return draft

    async def find_current(self, account: AccountConfig, header: str,
                           value: str) -> StoredMessage | None:
        """The current version of the draft in Drafts whose ``header`` contains ``value`` (the
        oldest, if several do), else None."""
        folder = await self.folder(account)
        async with self.pool(account).connection() as conn:
            await conn.select(folder)
            found = await conn.uid_search("UNDELETED", *CURRENT_ONLY, "HEADER", header,
                                          search_string(value))
            if not found.uids:
                return None
            return await fetch_whole(conn, account, folder, min(found.uids))

    async def write(self, conn: ImapConnection, current: StoredMessage, raw: bytes,
                     content: DraftContent, state: DraftState, *, strict: bool = False,
                     add_flags: Sequence[str] = (), drop_flags: Sequence[str] = ()
                     ) -> StoredMessage:
        """Stores ``raw`` (``content`` and ``state``) as the version after ``current``: the
        four steps described at :meth:`write_version`."""
        account = current.account
        info = await conn.select(current.folder, sync=False)
        if not info.keeps(OWN_KEYWORDS):
            log.error("%s: folder %r keeps no keywords (PERMANENTFLAGS %s); drafts cannot be "
                      "changed there", account.email, current.folder, info.permanentflags)
            raise ImapCapabilityMissing(
                f"the IMAP server keeps no keywords on messages in {current.folder!r}, and "
                f"mailbridge needs {', '.join(OWN_KEYWORDS)} to change a draft safely; allow "
                f"keywords there (see README, \"Any IMAP server\")", account=account.email)
        replaces = replaces_header(current.uidvalidity, current.uid)
        raw = set_header(raw, HEADER_REPLACES, replaces)
        token = uuid.uuid4().hex
        commit_by = datetime.now(UTC) + self.orphan_after + timedelta(seconds=len(raw) / 1e6)
        raw = set_header(raw, HEADER_WRITE, write_header(token, commit_by))
        # the draft's own flags, \Seen or not, \Draft or not (a person may have marked it)
        dropped = {f.lower() for f in ("\\Deleted", KEYWORD_PENDING, KEYWORD_REPLACED, *drop_flags)}
        keep = [f for f in current.flags if f.lower() not in dropped]
        flags = list(dict.fromkeys([*keep, *add_flags, KEYWORD_PENDING, KEYWORD_WRITTEN]))
        appended = await conn.append(current.folder, raw, flags=flags, date=state.updated_at)
        await conn.select(current.folder)  # sync: every lower UID is visible now
        new_uid = await self._own_copy(conn, appended.uid if appended else None, token)
        won = await self._arbitrate(conn, current, new_uid, replaces)
        if won and datetime.now(UTC) > commit_by:
            await self.remove(conn, [new_uid])
            raise ImapUnavailable(
                f"the IMAP server took longer than {self.orphan_after.total_seconds():g}s to store "
                f"the new version; nothing was changed, retry (or raise [drafts] orphan_seconds)",
                account=account.email)
        if won:
            committed = await self.store_if_unchanged(conn, current, KEYWORD_REPLACED)
            if committed is None:
                # ``current`` is gone: removed before our commit (then we lost), or right
                # after it by a reader that finished the commit for us, which clears our
                # pending flag before it removes the old version
                items = await conn.uid_fetch([new_uid], "(UID FLAGS)")
                committed = bool(items) and not any(
                    has_flag(items[0].flags or (), k) for k in (KEYWORD_PENDING, "\\Deleted"))
            won = committed
        if not won:
            await self.remove(conn, [new_uid])
            if strict:
                raise PreconditionFailed("the draft changed meanwhile; nothing was changed",
                                         field="If-Match")
            raise Conflict("the draft was changed by someone else meanwhile; fetch it and retry")
        # committed. Our copy must still be there: an instance that took it for abandoned (a
        # clock far off, a write far slower than its time) may have marked it meanwhile.
        cleared = await conn.uid_store([new_uid], "-FLAGS", [KEYWORD_PENDING])
        mine = cleared.flags.get(new_uid)
        if mine is None:  # no FETCH: unchanged (a reader adopted it already), or gone
            items = await conn.uid_fetch([new_uid], "(UID FLAGS)")
            mine = (items[0].flags or ()) if items else None
        if mine is None or has_flag(mine, "\\Deleted"):
            await conn.uid_store([current.uid], "-FLAGS.SILENT", [KEYWORD_REPLACED])
            raise Conflict("the new version was taken for abandoned and removed; the draft is "
                           "unchanged, retry")
        await self.remove(conn, [current.uid])
        fresh = await written(conn, account, current.folder, new_uid, raw, content, state)
        if fresh is None:
            raise Conflict("the draft was changed by someone else meanwhile; fetch it and retry")
        self.remember(account, fresh.id, fresh.uidvalidity, fresh.uid)
        return fresh

    async def unreplace(self, conn: ImapConnection, current: StoredMessage) -> StoredMessage:
        """``current`` without the $MailbridgeReplaced a writer left on it when its successor
        was lost (it is the draft still): cleared only if nobody touched it since it was read,
        then read again. Conflict when it changed.

        A successor may reappear meanwhile: :meth:`_discard` marks an abandoned copy \\Deleted,
        then takes the mark back if the version it replaces is flagged replaced (its writer did
        commit). So the flag is cleared first and later copies of the draft looked for after:
        if one is live (a successor, or a version further down its line), the flag goes back on
        and the caller gets Conflict. Whichever of the two came second sees the other, so two
        versions never both stand. (The look after also catches a copy this reader's view
        missed.)"""
        await conn.select(current.folder, sync=False)
        if conn.condstore_enabled and current.modseq is not None:
            result = await conn.uid_store([current.uid], "-FLAGS", [KEYWORD_REPLACED],
                                          unchangedsince=current.modseq)
            if current.uid in result.modified:
                raise Conflict("the draft was changed by someone else meanwhile; fetch it and retry")
        else:
            # nothing makes the STORE conditional, and while the flag is off another writer's
            # unconditional commit could go through: look before as well
            if await self._later_copies(conn, current):
                raise Conflict("the draft was changed by someone else meanwhile; fetch it and retry")
            await conn.uid_store([current.uid], "-FLAGS.SILENT", [KEYWORD_REPLACED])
        if await self._later_copies(conn, current):
            await conn.uid_store([current.uid], "+FLAGS.SILENT", [KEYWORD_REPLACED])
            raise Conflict("the draft was changed by someone else meanwhile; fetch it and retry")
        fresh = await fetch_whole(conn, current.account, current.folder, current.uid)
        if fresh is None or has_flag(fresh.flags, KEYWORD_REPLACED):
            raise Conflict("the draft was changed by someone else meanwhile; fetch it and retry")
        return fresh

    @staticmethod
    async def _later_copies(conn: ImapConnection, current: StoredMessage) -> bool:
        """Whether a live copy of the draft came after ``current`` (seen after a NOOP)."""
        await conn.noop()  # see what other sessions did meanwhile
        later = await conn.uid_search(
            "UID", f"{current.uid + 1}:*", "UNDELETED", "HEADER", HEADER_ID,
            search_string(str(current.id)))
        return any(uid > current.uid for uid in later.uids)

    @staticmethod
    async def _own_copy(conn: ImapConnection, appended: int | None, token: str) -> int:
        """The UID of the copy this write stored: APPENDUID's (UIDPLUS), else the one message
        carrying the write's token (some servers show a session its own APPEND only after a
        NOOP, which the caller's select has sent)."""
        if appended is not None:
            return appended
        found = await conn.uid_search("HEADER", HEADER_WRITE, search_string(token))
        if not found.uids:
            raise ImapUnavailable("the IMAP server does not show the version just stored; retry")
        return found.uids[0]

    async def _arbitrate(self, conn: ImapConnection, current: StoredMessage, new_uid: int,
                         replaces: str) -> bool:
        """True when the copy ``new_uid`` may go on to replace ``current``: no live copy with a
        lower UID replaces it too. Copies abandoned by dead writers are removed, not counted."""
        # Rivals replace ``current`` too, so they were appended after it: UIDs above
        # current.uid. Only those below new_uid can beat us; search just that range (a search
        # over the whole folder costs ~1 us per message in Dovecot, this one nearly nothing).
        # "a:b" with b < a would mean b:a in IMAP, so an empty range is no search at all.
        if current.uid + 1 > new_uid - 1:
            return True
        found = await conn.uid_search("UID", f"{current.uid + 1}:{new_uid - 1}",
                                      "HEADER", HEADER_REPLACES, search_string(replaces))
        if not found.uids:
            return True
        family = [c for c in await self._family(conn, found.uids) if c.uid in found.uids]
        beating, abandoned = rivals(family, new_uid, now=datetime.now(UTC),
                                    orphan_after=self.orphan_after)
        if beating:
            return False
        if abandoned:
            log.warning("removing copies %s abandoned by writers that are gone", abandoned)
            return await self._discard(conn, abandoned, [current.uid])
        return True

    async def store_if_unchanged(self, conn: ImapConnection, current: StoredMessage,
                                  flag: str) -> bool | None:
        """Adds ``flag`` to ``current`` only if nobody touched it since it was read (RFC 7162
        conditional STORE). Returns True when it did, False when ``current`` changed, None when
        it is gone: expunged before the STORE, or (the server then answers no FETCH either)
        just after it. Without mod-sequences the check is a FETCH of its flags just before the
        STORE: a change in between is missed (documented limitation)."""
        if conn.condstore_enabled and current.modseq is not None:
            result = await conn.uid_store([current.uid], "+FLAGS", [flag],
                                          unchangedsince=current.modseq)
            # MODIFIED wins: the reply may also carry an unsolicited FETCH for the same message
            # (another session's flag change)
            if current.uid in result.modified:
                return False
            return True if current.uid in result.changed else None
        items = await conn.uid_fetch([current.uid], "(UID FLAGS)")
        if not items:
            return None
        if has_flag(items[0].flags or (), "\\Deleted") \
                or set(lasting_flags(items[0])) != set(current.flags):
            return False
        await conn.uid_store([current.uid], "+FLAGS.SILENT", [flag])
        return True

    @staticmethod
    async def add_flag(conn: ImapConnection, uids: Sequence[int], flag: str) -> None:
        """Adds ``flag`` to the messages ``uids`` of the selected folder, also when another
        connection stored them just now: a session that has not synced since does not know
        their UIDs, and a STORE naming an unknown UID is a silent no-op (Courier, Cyrus, pymap,
        Dovecot without CONDSTORE; pymap even answers with the old flags). The STORE's answer
        tells: a message it does not report with ``flag`` is stored again after a NOOP, which
        brings the session up to date; one that is still not there is gone."""
        result = await conn.uid_store(uids, "+FLAGS", [flag])
        unseen = [u for u in uids if not has_flag(result.flags.get(u, ()), flag)]
        if unseen:
            await conn.noop()
            await conn.uid_store(unseen, "+FLAGS", [flag])

    async def remove(self, conn: ImapConnection, uids: Sequence[int]) -> None:
        """Removes the messages ``uids`` of the selected folder (see :meth:`add_flag`)."""
        await self.add_flag(conn, uids, "\\Deleted")
        await self._expunge(conn, uids)

    @staticmethod
    async def _expunge(conn: ImapConnection, uids: Sequence[int]) -> None:
        # Without UIDPLUS a plain EXPUNGE would also remove what other clients marked \Deleted;
        # then the message stays marked \Deleted (hidden by every client) instead.
        if conn.has("UIDPLUS"):
            await conn.uid_expunge(uids)

    async def delete(self, conn: ImapConnection, current: StoredMessage, *,
                     conditional: bool = False) -> None:
        """Deletes the draft ``current``: permanently, or into Trash when its account says
        ``delete = "trash"``. Every other copy of it goes too (a version being written, or one a
        dead writer left), so nothing of it can come back. ``conditional``: only if nobody
        touched ``current`` since it was read, else PreconditionFailed."""
        account = current.account
        await conn.select(current.folder, sync=False)
        if conditional and not await self.store_if_unchanged(conn, current, "\\Deleted"):
            raise PreconditionFailed("the draft changed meanwhile", field="If-Match")
        # the other copies a write may have left: pending ones and replaced versions,
        # anywhere, and anything appended after it; flags and UIDs are in the index, so
        # only those few messages are read for the header (a search of every message's
        # header costs ~3 us per message: 48 ms at 15,000 drafts)
        copies = await conn.uid_search(
            "OR", "UID", f"{current.uid}:*", "OR", "KEYWORD", KEYWORD_PENDING,
            "KEYWORD", KEYWORD_REPLACED, "HEADER", HEADER_ID, search_string(str(current.id)))
        others = [u for u in copies.uids if u != current.uid]
        if account.delete == "trash":
            trash = await self.folder(account, "trash", conn)
            if conditional:  # marked \Deleted above: the copy in Trash is not
                await conn.uid_store([current.uid], "-FLAGS.SILENT", ["\\Deleted"])
            if conn.has("MOVE"):
                await conn.uid_move([current.uid], trash)
            else:
                await conn.uid_copy([current.uid], trash)
                others.append(current.uid)
        else:
            others.append(current.uid)
        await self.remove(conn, others)
        self.forget(account, current.id)


def header_fields(block: bytes) -> dict[str, str]:
    """The header fields of ``block`` by lower-cased name (the first of each), unfolded."""
    msg = _header_parser.parsebytes(block)
    return {k.lower(): str(v).strip() for k, v in reversed(msg.items())}


def _message_id_of(header: bytes) -> str | None:
    msg = _header_parser.parsebytes(header)
    value = msg.get("Message-ID")
    return str(value).strip().strip("<>") if value else None
