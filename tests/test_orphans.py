"""What a writer that died leaves in Drafts never freezes, resurrects or doubles a draft.

The copies a dead writer leaves are made here by hand with imaplib (a client that shares no code
with mailbridge), exactly as the write protocol of mailbridge.versions leaves them at each step.
"""

from __future__ import annotations

import asyncio
import dataclasses
import imaplib
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import mailbridge.listing
from conftest import MailUser
from imap_proxy import CapabilityHidingProxy
from mailbridge.accounts import Accounts
from mailbridge.config import AccountConfig, Config, parse_config
from mailbridge.devstack.stack import DevStack
from mailbridge.drafts import DraftService
from mailbridge.errors import Conflict, ImapUnavailable, NotFound
from mailbridge.mime import set_header
from mailbridge.model import Address, DraftContent, Status
from mailbridge.scheduler import Scheduler
from mailbridge.sending import SendService
from mailbridge.smtp import Sender
from mailbridge.versions import write_header
from mailbridge.views import DraftQuery, StoredMessage

ORPHAN_SECONDS = 1.0
SETTLE = ORPHAN_SECONDS + 1.0 + 1.2  # commit-by, the clock grace, INTERNALDATE's whole seconds


def config_for(devstack: DevStack, user: MailUser, port: int | None = None) -> Config:
    entry = devstack.account_entry(user.id, user.email, "Orphan Tester")
    if port is not None:
        entry["imap"]["port"] = port
    data = devstack.config_data(accounts=[entry])
    data["drafts"] = {"orphan_seconds": ORPHAN_SECONDS}
    return parse_config(data, source="test")


@pytest.fixture
async def scheduler(devstack: DevStack, user: MailUser) -> AsyncIterator[Scheduler]:
    """The Scheduler (its SendService and DraftService) of one instance, not running."""
    config = config_for(devstack, user)
    accounts = Accounts(config)
    service = SendService(DraftService(accounts), Sender(), config)
    yield Scheduler(service)
    await service.sender.close()
    await accounts.close()


@pytest.fixture
async def service(devstack: DevStack, user: MailUser
                  ) -> AsyncIterator[tuple[DraftService, AccountConfig]]:
    accounts = Accounts(config_for(devstack, user))
    yield DraftService(accounts), accounts.config.accounts[0]
    await accounts.close()


class Mailbox:
    """The user's Drafts as a plain imaplib client sees it."""

    def __init__(self, devstack: DevStack, user: MailUser) -> None:
        self.devstack, self.user = devstack, user

    def _client(self) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.devstack.ports.imap)
        client.login(self.user.email, self.user.password)
        client.select("Drafts")
        return client

    def uidvalidity(self) -> int:
        client = self._client()
        try:
            _, data = client.status("Drafts", "(UIDVALIDITY)")
            m = re.search(rb"UIDVALIDITY (\d+)", data[0] or b"")
            assert m
            return int(m.group(1))
        finally:
            client.logout()

    def append(self, raw: bytes, flags: str, when: datetime | None = None) -> int:
        client = self._client()
        try:
            typ, data = client.append("Drafts", f"({flags})",
                                      imaplib.Time2Internaldate(when or datetime.now(UTC)), raw)
            assert typ == "OK", data
            m = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
            assert m, data
            return int(m.group(1))
        finally:
            client.logout()

    def store(self, uid: int, action: str, flags: str) -> None:
        client = self._client()
        try:
            typ, data = client.uid("STORE", str(uid), action, f"({flags})")
            assert typ == "OK", data
        finally:
            client.logout()

    def copies(self, draft_id: uuid.UUID) -> list[tuple[int, str, bytes]]:
        """(uid, flags, message) of every message carrying ``draft_id``, \\Deleted or not."""
        client = self._client()
        try:
            _, data = client.uid("SEARCH", "HEADER", "X-Mailbridge-Id", str(draft_id))
            result = []
            for uid in (data[0] or b"").split():
                _, fetched = client.uid("FETCH", uid.decode(), "(FLAGS BODY.PEEK[])")
                meta, body = fetched[0]  # type: ignore[misc]
                flags = re.search(rb"FLAGS \(([^)]*)\)", meta)
                assert flags
                result.append((int(uid), flags.group(1).decode(), body))
            return result
        finally:
            client.logout()

    def live(self, draft_id: uuid.UUID) -> list[tuple[int, str, bytes]]:
        return [c for c in self.copies(draft_id) if "\\Deleted" not in c[1]]


@pytest.fixture
def mailbox(devstack: DevStack, user: MailUser) -> Mailbox:
    return Mailbox(devstack, user)


CONTENT = DraftContent(to=(Address("bob@example.test"),), subject="Original", text="First\n")


def a_version_of(raw: bytes, subject: str, replaces: str, *, token: str | None = None,
                 commit_by: datetime | None = None) -> bytes:
    """A copy of the draft ``raw`` with another subject, as a writer stores it at step 1."""
    copy = set_header(raw, "Subject", subject)
    copy = set_header(copy, "X-Mailbridge-Replaces", replaces)
    if token is not None:
        copy = set_header(copy, "X-Mailbridge-Write",
                          write_header(token, commit_by or datetime.now(UTC)))
    return copy


def committed_by_a_dead_writer(mailbox: Mailbox, draft: StoredMessage) -> int:
    """What a writer that died right after its commit (step 3) leaves: its copy "Committed"
    still pending, ``draft`` flagged $MailbridgeReplaced. Returns the copy's UID."""
    new_uid = mailbox.append(a_version_of(draft.raw, "Committed", f"<{draft.uidvalidity}.{draft.uid}>",
                                          token=uuid.uuid4().hex,
                                          commit_by=datetime.now(UTC) + timedelta(seconds=30)),
                             "\\Draft \\Seen $MailbridgePending")
    mailbox.store(draft.uid, "+FLAGS", "$MailbridgeReplaced")
    return new_uid


async def test_an_orphan_naming_the_current_version_does_not_freeze_the_draft(
        service: tuple[DraftService, AccountConfig], mailbox: Mailbox) -> None:
    """The issue's case: a pending copy naming the current version, APPENDed by hand (as a
    writer that died between its APPEND and its commit leaves it). Before the fix every later
    update answered 409 forever."""
    svc, account = service
    draft, _ = await svc.create(account, CONTENT)
    orphan = a_version_of(draft.raw, "Never acknowledged", f"<{draft.uidvalidity}.{draft.uid}>")
    orphan_uid = mailbox.append(orphan, "\\Draft \\Seen $MailbridgePending")

    got = await svc.get(account, draft.id)
    assert got.uid == draft.uid and got.content.subject == "Original"
    with pytest.raises(Conflict):  # a write in flight, as far as anyone can tell yet
        await svc.replace(account, draft.id, {"subject": "Too early"})

    await asyncio.sleep(SETTLE)
    updated = await svc.replace(account, draft.id, {"subject": "Updated"})
    assert updated.content.subject == "Updated"
    live = mailbox.live(draft.id)
    assert [uid for uid, _, _ in live] == [updated.uid] and orphan_uid not in [u for u, *_ in live]
    assert b"Subject: Updated" in live[0][2] and "$MailbridgePending" not in live[0][1]
    assert (await svc.get(account, draft.id)).content.subject == "Updated"


async def test_delete_removes_every_copy_and_nothing_comes_back(
        service: tuple[DraftService, AccountConfig], mailbox: Mailbox) -> None:
    svc, account = service
    draft, _ = await svc.create(account, CONTENT)
    mailbox.append(a_version_of(draft.raw, "Never acknowledged",
                                f"<{draft.uidvalidity}.{draft.uid}>"),
                   "\\Draft \\Seen $MailbridgePending")
    await svc.delete(account, draft.id)
    assert mailbox.live(draft.id) == []
    await asyncio.sleep(SETTLE)
    with pytest.raises(NotFound):
        await svc.get(account, draft.id)
    with pytest.raises(NotFound):
        await svc.get(account, draft.uid)
    assert mailbox.live(draft.id) == []


async def test_an_orphan_whose_version_was_deleted_by_a_person_never_comes_back(
        service: tuple[DraftService, AccountConfig], mailbox: Mailbox) -> None:
    """A person deletes the draft in a mail client while a write of it is in flight, and the
    writer dies: the pending copy was never committed, so it goes (before: it was adopted)."""
    svc, account = service
    draft, _ = await svc.create(account, CONTENT)
    mailbox.append(a_version_of(draft.raw, "In flight", f"<{draft.uidvalidity}.{draft.uid}>",
                                token=uuid.uuid4().hex,
                                commit_by=datetime.now(UTC) + timedelta(seconds=30)),
                   "\\Draft \\Seen $MailbridgePending")
    mailbox.store(draft.uid, "+FLAGS", "\\Deleted")
    with pytest.raises(NotFound):
        await svc.get(account, draft.id)
    assert mailbox.live(draft.id) == []


async def test_a_commit_whose_writer_died_is_adopted(
        service: tuple[DraftService, AccountConfig], mailbox: Mailbox) -> None:
    """The writer flagged the old version $MailbridgeReplaced (its commit) and died before it
    cleared its copy's pending flag: the update is in place for every reader at once."""
    svc, account = service
    draft, _ = await svc.create(account, CONTENT)
    new_uid = committed_by_a_dead_writer(mailbox, draft)
    got = await svc.get(account, draft.id)
    assert got.uid == new_uid and got.content.subject == "Committed"
    live = mailbox.live(draft.id)
    assert [(u, "$MailbridgePending" in f) for u, f, _ in live] == [(new_uid, False)]
    page = await svc.list(account, DraftQuery())
    assert [m.uid for m in page.items] == [new_uid]


async def test_an_abandoned_rival_is_removed_by_the_next_writer(
        service: tuple[DraftService, AccountConfig], mailbox: Mailbox) -> None:
    """An orphan with a write token whose commit-by is past is no rival: the next update goes
    through at once and removes it."""
    svc, account = service
    draft, _ = await svc.create(account, CONTENT)
    orphan_uid = mailbox.append(
        a_version_of(draft.raw, "Abandoned", f"<{draft.uidvalidity}.{draft.uid}>",
                     token=uuid.uuid4().hex, commit_by=datetime.now(UTC) - timedelta(seconds=5)),
        "\\Draft \\Seen $MailbridgePending")
    updated = await svc.replace(account, draft.id, {"subject": "Goes through"})
    assert [u for u, _, _ in mailbox.live(draft.id)] == [updated.uid]
    assert orphan_uid not in [u for u, _, _ in mailbox.copies(draft.id)] or \
        "\\Deleted" in dict((u, f) for u, f, _ in mailbox.copies(draft.id))[orphan_uid]


async def test_a_version_whose_successor_was_lost_stays_the_draft(
        service: tuple[DraftService, AccountConfig], mailbox: Mailbox) -> None:
    """A writer flagged the version $MailbridgeReplaced, then lost its own copy and died before
    taking the flag back. Readers don't take it back (their view may lag behind a successor);
    the draft still reads as that version, and the next update clears the flag and goes on."""
    svc, account = service
    draft, _ = await svc.create(account, CONTENT)
    mailbox.store(draft.uid, "+FLAGS", "$MailbridgeReplaced")
    got = await svc.get(account, draft.id)
    assert got.uid == draft.uid and got.content.subject == "Original"
    updated = await svc.replace(account, draft.id, {"subject": "Updated"})
    live = mailbox.live(draft.id)
    assert [u for u, _, _ in live] == [updated.uid] and b"Subject: Updated" in live[0][2]
    assert not {"$MailbridgePending", "$MailbridgeReplaced"} & set(live[0][1].split())


async def test_a_list_shows_the_draft_at_every_step_of_an_update(
        service: tuple[DraftService, AccountConfig], mailbox: Mailbox,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Between an update's commit (old version flagged replaced) and the end of its step 4, a
    list must still show the draft, once: the old version while the new one is pending, the
    new one once it is not. A version whose successor was lost is listed too."""
    svc, account = service
    draft, _ = await svc.create(account, CONTENT)
    new_uid = committed_by_a_dead_writer(mailbox, draft)
    page = await svc.list(account, DraftQuery())
    assert [m.uid for m in page.items] == [draft.uid]

    # the list's SEARCH sees the new version pending; step 4 clears it before the list's
    # check of the old version: the new one is listed in its place
    fetch = mailbridge.listing.fetch_summaries

    async def fetch_then_step_4(*args: Any) -> list[StoredMessage]:
        result = await fetch(*args)
        if mailbridge.listing.fetch_summaries is fetch_then_step_4:  # once
            monkeypatch.setattr(mailbridge.listing, "fetch_summaries", fetch)
            await asyncio.to_thread(mailbox.store, new_uid, "-FLAGS", "$MailbridgePending")
        return result

    monkeypatch.setattr(mailbridge.listing, "fetch_summaries", fetch_then_step_4)
    page = await svc.list(account, DraftQuery())
    assert [(m.uid, m.content.subject) for m in page.items] == [(new_uid, "Committed")]
    page = await svc.list(account, DraftQuery())  # step 4 half done
    assert [(m.uid, m.content.subject) for m in page.items] == [(new_uid, "Committed")]
    # a version flagged replaced whose successor is gone is the draft
    lost, _ = await svc.create(account, CONTENT)
    mailbox.store(lost.uid, "+FLAGS", "$MailbridgeReplaced")
    page = await svc.list(account, DraftQuery())
    assert [m.uid for m in page.items] == [lost.uid, new_uid]


async def test_clearing_a_replaced_flag_backs_off_when_a_later_copy_appears(
        service: tuple[DraftService, AccountConfig], mailbox: Mailbox) -> None:
    """A writer holds a version flagged replaced as the draft (its successor was not to be
    seen), and a later copy of the draft appears before it clears the flag (a discarded copy
    coming back, or one its view missed): it puts the flag back and answers 409, so two
    versions never both stand."""
    svc, account = service
    draft, _ = await svc.create(account, CONTENT)
    mailbox.store(draft.uid, "+FLAGS", "$MailbridgeReplaced")
    current = await svc.get(account, draft.id)  # the draft still, its successor lost
    later = mailbox.append(a_version_of(draft.raw, "Came back", f"<{draft.uidvalidity}.{draft.uid}>"),
                           "\\Draft \\Seen")
    async with svc.accounts.pool(account).connection() as conn:
        with pytest.raises(Conflict):
            await svc.write_version(conn, current, dataclasses.replace(current.content,
                                                                       subject="Mine"),
                                    own_headers={}, last_error=None)
    flags = {u: f for u, f, _ in mailbox.live(draft.id)}
    assert "$MailbridgeReplaced" in flags[draft.uid] and later in flags
    assert (await svc.get(account, draft.id)).content.subject == "Came back"


async def test_a_write_slower_than_its_time_gives_up_and_changes_nothing(
        service: tuple[DraftService, AccountConfig], mailbox: Mailbox) -> None:
    """A write that cannot commit by its commit-by (here: a time already past) removes its own
    copy and answers 503; the draft is as it was, with one copy."""
    svc, account = service
    draft, _ = await svc.create(account, CONTENT)
    svc.store.orphan_after = timedelta(seconds=-30)
    with pytest.raises(ImapUnavailable, match="orphan_seconds"):
        await svc.replace(account, draft.id, {"subject": "Too slow"})
    svc.store.orphan_after = timedelta(seconds=ORPHAN_SECONDS)
    live = mailbox.live(draft.id)
    assert [u for u, _, _ in live] == [draft.uid]
    assert not {"$MailbridgePending", "$MailbridgeReplaced"} & set(live[0][1].split())
    assert (await svc.get(account, draft.id)).content.subject == "Original"


async def test_a_scheduled_draft_with_an_orphan_is_sent_once(
        devstack: DevStack, user: MailUser, mailbox: Mailbox, scheduler: Scheduler) -> None:
    """Before the fix a scheduled draft with an orphan was never sent, and nothing was logged."""
    drafts = scheduler.drafts
    account = drafts.accounts.config.accounts[0]
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    draft, _ = await drafts.create(account, DraftContent(
        to=(Address("orphan-sched@elsewhere.test"),), subject="Scheduled with an orphan",
        text="Hi\n", planned_send_at=when))
    mailbox.append(a_version_of(draft.raw, "Never acknowledged",
                                f"<{draft.uidvalidity}.{draft.uid}>"),
                   "\\Draft \\Seen $MailbridgePending")
    due = await scheduler.due(account, datetime.now(UTC))
    assert [d.id for d in due] == [draft.id]
    await asyncio.sleep(SETTLE)
    for d in await scheduler.due(account, datetime.now(UTC)):
        await scheduler.send_due(d)
    sent = await drafts.get(account, draft.id)
    assert sent.status is Status.SENT
    assert mailbox.live(draft.id) == []
    delivered = [m for m in devstack.smtp.delivered if m.login == user.email
                 and b"Scheduled with an orphan" in m.data]
    assert len(delivered) == 1


async def test_the_scheduler_cleans_up_orphans_nobody_touches(
        devstack: DevStack, user: MailUser, mailbox: Mailbox, scheduler: Scheduler) -> None:
    """Any instance resolves what a dead writer left within a bounded time, also when no
    request ever touches that draft again: the scheduler's tick sweeps Drafts."""
    drafts = scheduler.drafts
    account = drafts.accounts.config.accounts[0]
    draft, _ = await drafts.create(account, CONTENT)
    other, _ = await drafts.create(account, CONTENT)
    mailbox.append(a_version_of(draft.raw, "Orphan", f"<{draft.uidvalidity}.{draft.uid}>"),
                   "\\Draft \\Seen $MailbridgePending")
    committed = mailbox.append(
        a_version_of(other.raw, "Committed", f"<{other.uidvalidity}.{other.uid}>",
                     token=uuid.uuid4().hex,
                     commit_by=datetime.now(UTC) + timedelta(seconds=30)),
        "\\Draft \\Seen $MailbridgePending")
    mailbox.store(other.uid, "+FLAGS", "$MailbridgeReplaced")
    await scheduler.sweep(account, datetime.now(UTC))  # the commit: at once
    assert [u for u, _, _ in mailbox.live(other.id)] == [committed]
    assert len(mailbox.live(draft.id)) == 2  # the orphan: not yet
    deadline = time.monotonic() + SETTLE + 2
    while len(mailbox.live(draft.id)) > 1 and time.monotonic() < deadline:
        await scheduler.sweep(account, datetime.now(UTC))
        await asyncio.sleep(0.2)
    assert [u for u, _, _ in mailbox.live(draft.id)] == [draft.uid]
    assert "$MailbridgePending" not in mailbox.live(other.id)[0][1]


# ------------------------------------------------------------------ without UIDPLUS, CONDSTORE

@pytest.fixture(params=[("UIDPLUS",), ("CONDSTORE",), ("UIDPLUS", "CONDSTORE")],
                ids=lambda p: "without-" + "-".join(p).lower())
def hidden(request: pytest.FixtureRequest, devstack: DevStack) -> Iterator[int]:
    proxy = CapabilityHidingProxy(devstack.ports.imap, request.param).start()
    try:
        yield proxy.port
    finally:
        proxy.stop()


async def test_concurrent_updates_leave_one_version(
        devstack: DevStack, user: MailUser, mailbox: Mailbox, hidden: int) -> None:
    """Two instances updating one draft at once, on a server that lacks UIDPLUS or CONDSTORE:
    every answer is the new version or 409, exactly one live version is left, and it is one
    that was acknowledged. (Before the fix, without UIDPLUS, a loser took the highest UID of the
    id for its own copy and removed someone else's.)"""
    config = config_for(devstack, user, port=hidden)
    one, two = Accounts(config), Accounts(config)
    account = config.accounts[0]
    first, second = DraftService(one), DraftService(two)
    try:
        draft, _ = await first.create(account, CONTENT)
        for round_ in range(3):
            async def update(svc: DraftService, subject: str) -> Any:
                try:
                    return await svc.replace(account, draft.id, {"subject": subject})
                except Conflict as exc:
                    return exc
            results = await asyncio.gather(*(update(first if i % 2 else second, f"R{round_} #{i}")
                                             for i in range(8)))
            acknowledged = {r.content.subject for r in results if not isinstance(r, Exception)}
            live = mailbox.live(draft.id)
            state = (round_, [r if isinstance(r, Exception) else r.uid for r in results],
                     [(u, f, re.findall(rb"X-Mailbridge-Replaces: [^\r]*|Subject: [^\r]*", b))
                      for u, f, b in mailbox.copies(draft.id)])
            assert acknowledged, state
            assert len(live) == 1, state
            subject = re.search(rb"Subject: (.*)\r\n", live[0][2])
            assert subject and subject.group(1).decode() in acknowledged, state
            assert "$MailbridgePending" not in live[0][1], state
            got = await first.get(account, draft.id)
            assert got.uid == live[0][0], state
    finally:
        await one.close()
        await two.close()
