"""Which copy of a draft is current, whatever a dead writer left: the pure decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailbridge.versions import Copy, parse_replaces, parse_write, resolve, rivals, write_header

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
AFTER = timedelta(seconds=5)
YOUNG = NOW + timedelta(seconds=3)  # a commit-by still ahead
OLD = NOW - timedelta(seconds=10)  # a commit-by long past


def c(uid: int, *flags: str, replaces: int | None = None, token: str | None = "t",
      commit_by: datetime | None = YOUNG, internaldate: datetime | None = NOW) -> Copy:
    return Copy(uid=uid, flags=frozenset(f.lower() for f in ("\\Draft", *flags)), replaces=replaces,
                token=token, commit_by=commit_by if token else None, internaldate=internaldate)


P, R, D = "$MailbridgePending", "$MailbridgeReplaced", "\\Deleted"


def decide(*family: Copy):  # type: ignore[no-untyped-def]
    return resolve(family, now=NOW, orphan_after=AFTER)


def test_one_settled_copy_is_current() -> None:
    r = decide(c(5, replaces=3))
    assert r.current == 5 and r.settled


def test_a_write_in_flight_leaves_the_old_version_current() -> None:
    r = decide(c(5), c(7, P, replaces=5))
    assert r.current == 5 and r.in_flight and r.settled


def test_an_abandoned_write_is_discarded() -> None:
    r = decide(c(5), c(7, P, replaces=5, commit_by=OLD))
    assert r.current == 5 and r.discard == (7,) and not r.in_flight


def test_a_copy_without_token_ages_by_its_internaldate() -> None:
    young = decide(c(5), c(7, P, replaces=5, token=None, internaldate=NOW - timedelta(seconds=2)))
    assert young.settled and young.in_flight
    old = decide(c(5), c(7, P, replaces=5, token=None, internaldate=NOW - timedelta(seconds=7)))
    assert old.discard == (7,)


def test_a_commit_left_pending_is_adopted_and_the_old_version_removed() -> None:
    r = decide(c(5, R), c(7, P, replaces=5))
    assert r.current == 7 and r.adopt == (7,) and r.remove == (5,)


def test_of_several_writes_of_a_committed_version_the_lowest_uid_won() -> None:
    r = decide(c(5, R), c(7, P, replaces=5), c(8, P, replaces=5))
    assert r.current == 7 and r.adopt == (7,) and set(r.remove) == {5, 8}


def test_a_committed_winner_beats_later_pending_copies() -> None:
    """The winner cleared its pending flag already: a later pending copy of the same version
    lost, even while the replaced version is still there (without UIDPLUS, or not yet removed)."""
    r = decide(c(4, R), c(5, replaces=4), c(7, P, replaces=4))
    assert r.current == 5 and set(r.remove) == {4, 7} and not r.adopt


def test_a_late_loser_is_not_adopted_when_the_winner_has_moved_on() -> None:
    """Found by check i on Dovecot without UIDPLUS and CONDSTORE: 17 committed over 15 (15
    flagged replaced), then 18 over 17, which went (\\Deleted). A writer of 15 appended 19
    after that, saw no live rival (17 was deleted), and would lose at its commit; meanwhile a
    reader took 19 for the commit of 15 and adopted it: two versions. The version's line goes
    on in 18, so 19 lost."""
    r = decide(c(15, R), c(17, R, D, replaces=15), c(18, replaces=17), c(19, P, replaces=15))
    assert r.current == 18 and not r.adopt and 19 in r.remove
    gone = decide(c(15, R), c(18, replaces=17), c(19, P, replaces=15))  # 17 expunged (UIDPLUS)
    assert gone.current == 18 and not gone.adopt and 19 in gone.remove


def test_a_write_whose_version_was_deleted_never_comes_back() -> None:
    gone = decide(c(7, P, replaces=5, commit_by=OLD))  # 5 expunged (by DELETE, or a person)
    assert gone.current is None and gone.remove == (7,)
    lagging = decide(c(7, P, replaces=5))  # or this view lags behind a commit: wait and see
    assert lagging.current is None and lagging.in_flight and lagging.settled
    marked = decide(c(5, D), c(7, P, replaces=5))  # without UIDPLUS it stays, \Deleted
    assert marked.current is None and marked.remove == (7,)


def test_a_write_whose_version_was_replaced_by_a_rival_is_removed() -> None:
    r = decide(c(8, replaces=5), c(7, P, replaces=5, commit_by=OLD))
    assert r.current == 8 and r.remove == (7,)


def test_a_writer_that_died_after_clearing_pending_leaves_the_old_version_to_remove() -> None:
    r = decide(c(5, R), c(7, replaces=5))
    assert r.current == 7 and r.remove == (5,)
    unflagged = decide(c(5), c(7, replaces=5))  # the same, had the flag been taken back
    assert unflagged.current == 7 and unflagged.remove == (5,)


def test_a_replaced_version_whose_successor_is_gone_is_still_the_draft() -> None:
    """Not restored by a reader (its view may lag); the next write clears the flag."""
    r = decide(c(5, R))
    assert r.current == 5 and r.settled


def test_deleted_copies_never_come_back() -> None:
    assert decide(c(5, D), c(3, D)).current is None
    r = decide(c(5, D, R), c(7, replaces=5))
    assert r.current == 7 and r.settled


def test_copies_written_before_write_tokens_keep_their_content() -> None:
    """Before write tokens the old version was removed before the commit: an old pending copy
    alone holds the draft's latest content."""
    r = decide(c(7, P, replaces=5, token=None, internaldate=NOW - timedelta(seconds=9)))
    assert r.current == 7 and r.adopt == (7,)
    young = decide(c(7, P, replaces=5, token=None, internaldate=NOW))
    assert young.current is None and young.in_flight and young.settled


def test_unrelated_duplicates_are_left_alone() -> None:
    r = decide(c(5), c(9))  # e.g. a mail client's copy of the message: nothing names the other
    assert r.current == 9 and r.settled


def test_rivals() -> None:
    family = [c(6, P, replaces=5), c(7, P, replaces=5, commit_by=OLD), c(8, P, D, replaces=5),
              c(9, replaces=5), c(10, P, replaces=5)]
    beating, abandoned = rivals(family, 10, now=NOW, orphan_after=AFTER)
    assert beating == [6, 9] and abandoned == [7]


@pytest.mark.parametrize("value", ["", "junk", "<1.2", "<a.b>"])
def test_malformed_headers(value: str) -> None:
    assert parse_replaces(value) is None


def test_write_header_round_trip() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert parse_write(write_header("abc123", moment)) == ("abc123", moment)
    assert parse_write("abc123") == ("abc123", None)
    assert parse_write("abc; commit-by=yesterday") == ("abc", None)
    assert parse_replaces(" <17.42> ") == (17, 42)
