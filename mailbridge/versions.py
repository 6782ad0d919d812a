"""Which copy of a draft is its current version, and what to do with what a dead writer left.

Pure: no I/O. DraftStore (mailbridge.store) reads the copies from the server, asks
:func:`resolve`, and carries out the answer.

A draft's versions are messages in Drafts that carry the same ``X-Mailbridge-Id``. A new version
is written in four steps (DraftStore.write):

1. APPEND the new copy flagged ``$MailbridgePending``. It names the version it replaces
   (``X-Mailbridge-Replaces: <uidvalidity.uid>``) and carries ``X-Mailbridge-Write: <token>;
   commit-by=<time>``: a token unique to this write, by which the writer finds its own copy
   with or without UIDPLUS, and the time after which the writer will no longer commit it.
2. Arbitrate: of the live pending copies that replace the same version, the lowest UID wins
   (UID order is the one total order the server guarantees). A copy whose ``commit-by`` is past
   (plus :data:`CLOCK_GRACE`) was abandoned by a writer that is gone: it is no rival.
3. **Commit**: flag the replaced version ``$MailbridgeReplaced``, only if nobody touched it since
   it was read (a conditional STORE, RFC 7162). That one STORE is the commit point.
4. Clear ``$MailbridgePending`` on the new copy, then remove the replaced version.

So the folder alone tells, whatever step a writer died in:

- a pending copy whose replaced version is flagged ``$MailbridgeReplaced`` was committed: it is
  adopted (step 4 is finished for it) -- unless another committed copy came after that
  version, which means the version's winner has been replaced and removed already and the
  pending copy came too late (it lost at its own commit): then it is removed;
- a pending copy whose replaced version is gone (deleted by a person, by DELETE, or replaced by
  a rival) was never committed: it is removed;
- a pending copy whose replaced version is still there, unflagged, is a write in flight until
  its ``commit-by`` has passed, then an orphan: it is removed;
- a committed version flagged ``$MailbridgeReplaced`` or named as replaced by a committed copy
  has a successor: it is removed.

Copies marked ``\\Deleted`` are never a current version and never come back (without UIDPLUS
they stay in the folder, marked, until a mail client expunges them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailbridge.mime.headers import header_time, parse_header_time

KEYWORD_PENDING = "$MailbridgePending"
"""On a new version between its APPEND and its commit. Never shown as the draft."""
KEYWORD_REPLACED = "$MailbridgeReplaced"
"""On a version that a committed new version replaces, until it is removed."""
HEADER_REPLACES = "X-Mailbridge-Replaces"
"""On a version: which version (``<uidvalidity.uid>``) it was written to replace."""
HEADER_WRITE = "X-Mailbridge-Write"
"""On a version: ``<token>; commit-by=<RFC 3339 time>`` of the write that stored it."""

CLOCK_GRACE = timedelta(seconds=1)
"""How long past its ``commit-by`` a pending copy still counts as in flight: room for clocks of
two instances that differ a little, and for a commit command still on the wire. A wider gap
still loses nothing (the writer and the resolver each check the other's mark after their own
step), it only makes the check's undo path likelier."""

_WRITE = re.compile(r"\s*([0-9A-Za-z-]+)\s*(?:;\s*commit-by=(\S+))?\s*\Z")
_REPLACES = re.compile(r"\s*<(\d+)\.(\d+)>\s*\Z")


def write_header(token: str, commit_by: datetime) -> str:
    """The X-Mailbridge-Write value of a write (``commit_by`` aware)."""
    return f"{token}; commit-by={header_time(commit_by, 'milliseconds')}"


def replaces_header(uidvalidity: int, uid: int) -> str:
    return f"<{uidvalidity}.{uid}>"


def parse_replaces(value: str | None) -> tuple[int, int] | None:
    """(uidvalidity, uid) of an X-Mailbridge-Replaces value, None if absent or malformed."""
    m = _REPLACES.match(value or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def parse_write(value: str | None) -> tuple[str, datetime | None] | None:
    """(token, commit-by) of an X-Mailbridge-Write value, None if absent or malformed."""
    m = _WRITE.match(value or "")
    if not m:
        return None
    commit_by = None
    if m.group(2):
        commit_by = parse_header_time(m.group(2))
    return m.group(1), commit_by


@dataclass(frozen=True)
class Copy:
    """One message of a draft's family as the server holds it now."""

    uid: int
    flags: frozenset[str]
    """Lower-cased."""
    replaces: int | None = None
    """UID of the version this one was written to replace (in the same UIDVALIDITY)."""
    token: str | None = None
    """The write token; None on copies written before tokens existed (or by hand)."""
    commit_by: datetime | None = None
    internaldate: datetime | None = None

    @classmethod
    def of(cls, uid: int, flags: Iterable[str], *, uidvalidity: int, replaces: str | None = None,
           write: str | None = None, internaldate: datetime | None = None) -> Copy:
        """A Copy from what a FETCH returned: flags, and the two header values (raw)."""
        target = parse_replaces(replaces)
        parsed = parse_write(write)
        return cls(uid=uid, flags=frozenset(f.lower() for f in flags),
                   replaces=target[1] if target and target[0] == uidvalidity else None,
                   token=parsed[0] if parsed else None, commit_by=parsed[1] if parsed else None,
                   internaldate=internaldate)

    @property
    def deleted(self) -> bool:
        return "\\deleted" in self.flags

    @property
    def pending(self) -> bool:
        return KEYWORD_PENDING.lower() in self.flags

    @property
    def replaced(self) -> bool:
        return KEYWORD_REPLACED.lower() in self.flags

    def abandoned_at(self, orphan_after: timedelta) -> datetime | None:
        """When this pending copy counts as abandoned by its writer: its commit-by (or, for a
        copy without one, its INTERNALDATE plus ``orphan_after``) plus CLOCK_GRACE. None when
        nothing tells (then it counts as abandoned)."""
        deadline = self.commit_by
        if deadline is None:
            if self.internaldate is None:
                return None
            deadline = self.internaldate + orphan_after
        return deadline + CLOCK_GRACE

    def abandoned(self, now: datetime, orphan_after: timedelta) -> bool:
        """True when this pending copy's writer will never commit it (see abandoned_at)."""
        at = self.abandoned_at(orphan_after)
        return at is None or now > at


@dataclass(frozen=True)
class Resolution:
    """What a family of copies means, and what to do so that one current version is left."""

    current: int | None
    """The UID of the current version, None when the draft has none (deleted)."""
    adopt: tuple[int, ...] = ()
    """Committed pending copies: clear $MailbridgePending."""
    discard: tuple[int, ...] = ()
    """Abandoned pending copies whose replaced version is still there: remove them, checking
    that the version they replace is not flagged $MailbridgeReplaced meanwhile."""
    remove: tuple[int, ...] = ()
    """Copies that are settled and superseded: remove them."""
    in_flight: bool = False
    """A write to this draft is under way (a pending copy younger than its commit-by)."""

    @property
    def settled(self) -> bool:
        """True when nothing needs doing."""
        return not (self.adopt or self.discard or self.remove)


def resolve(family: Sequence[Copy], *, now: datetime, orphan_after: timedelta) -> Resolution:
    """Decides which copy of ``family`` is the draft's current version.

    ``family``: every message carrying the draft's id, plus every message a pending one names
    as replaced (a version written by another client has no id). Missing UIDs are gone.
    """
    by_uid = {c.uid: c for c in family}
    live = [c for c in family if not c.deleted]
    adopt: list[int] = []
    discard: list[int] = []
    remove: list[int] = []
    in_flight = False

    groups: dict[int | None, list[Copy]] = {}  # the live copies naming each replaced version
    for c in sorted(live, key=lambda c: c.uid):
        if c.pending or c.replaces is not None:
            groups.setdefault(c.replaces, []).append(c)
    for target_uid, group in groups.items():
        pending = [c for c in group if c.pending]
        if not pending:
            continue
        target = by_uid.get(target_uid) if target_uid is not None else None
        if target is not None and target.replaced:  # committed: the lowest UID won
            winner = group[0]
            if winner.pending and any(not c.pending and c.uid > target.uid
                                      and c.replaces != target.uid for c in live):
                # the version's line goes on in another committed copy: its winner has been
                # replaced and removed already, and these came too late (they lose at their
                # own commit); none of them committed
                remove.extend(c.uid for c in pending)
                continue
            if winner.pending:
                adopt.append(winner.uid)
            remove.extend(c.uid for c in pending if c is not winner)
            continue
        if target is None or target.deleted:  # what it replaces is gone: never committed
            for c in pending:
                if c.token is not None:
                    # marked \Deleted: removed by someone else, so no commit can come. Not
                    # seen at all: the same, unless this view of the folder lags behind the
                    # commit (then the copy is committed already); so only once abandoned.
                    if (target is not None and target.deleted) or c.abandoned(now, orphan_after):
                        remove.append(c.uid)
                    else:
                        in_flight = True
                elif c.abandoned(now, orphan_after) and not _settled_copies(live, pending):
                    adopt.append(c.uid)  # written before write tokens: it removed the old
                    break                # version first, so it may hold the only content
                else:
                    in_flight = True
            continue
        for c in pending:  # what it replaces is there: a write in flight, or an orphan
            if c.abandoned(now, orphan_after):
                discard.append(c.uid)
            else:
                in_flight = True

    gone = set(discard) | set(remove)
    committed = [c for c in live if (not c.pending or c.uid in adopt) and c.uid not in gone]
    named = {c.replaces for c in committed if c.replaces is not None}
    superseded = sorted(c.uid for c in committed if c.uid in named)
    rest = [c for c in committed if c.uid not in named]
    plain = [c for c in rest if not c.replaced]
    # A version flagged replaced whose successor cannot be seen is still the draft, but it is
    # never restored here: this view may lag behind (a successor written and replaced in turn
    # between this reader's SEARCH and its FETCH), and restoring would let a stale writer fork
    # the draft. The next write of it clears the flag under its own conditional STORE.
    current = max((c.uid for c in plain or rest), default=None)
    remove.extend(superseded)
    return Resolution(current=current, adopt=tuple(adopt), discard=tuple(discard),
                      remove=tuple(dict.fromkeys(remove)), in_flight=in_flight)


def _settled_copies(live: Sequence[Copy], group: Sequence[Copy]) -> bool:
    mine = {c.uid for c in group}
    return any(not c.pending and c.uid not in mine for c in live)


def rivals(candidates: Sequence[Copy], own_uid: int, *, now: datetime,
           orphan_after: timedelta) -> tuple[list[int], list[int]]:
    """Of the copies replacing the same version as the writer's own (``own_uid``), returns the
    (live rivals that beat it, abandoned ones that don't count). A committed rival (not
    pending) beats it too: it means the version was replaced already."""
    beating: list[int] = []
    abandoned: list[int] = []
    for c in candidates:
        if c.uid >= own_uid or c.deleted:
            continue
        if c.pending and c.abandoned(now, orphan_after):
            abandoned.append(c.uid)
        else:
            beating.append(c.uid)
    return beating, abandoned
