"""What real mail clients and sync tools do to a Drafts folder, done here with imaplib (neomutt,
mbsync and others leave out \\Draft, re-save messages with new UIDs, mark drafts unread), and
what mailbridge must make of it."""

from __future__ import annotations

import asyncio
import email
import email.policy
import imaplib
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from conftest import MailUser
from mailbridge.accounts import Accounts
from mailbridge.config import AccountConfig
from mailbridge.devstack.stack import DevStack
from mailbridge.drafts import DraftService
from mailbridge.model import Address, Attachment, DraftContent, Status
from mailbridge.scheduler import Scheduler
from mailbridge.sending import SendService
from mailbridge.smtp import Sender
from mailbridge.views import DraftQuery


@pytest.fixture
async def service(devstack: DevStack, user: MailUser
                  ) -> AsyncIterator[tuple[DraftService, AccountConfig]]:
    config = devstack.config(accounts=[devstack.account_entry(user.id, user.email, "Account Name")])
    accounts = Accounts(config)
    yield DraftService(accounts), config.accounts[0]
    await accounts.close()


class Client:
    """A mail client on the user's Drafts folder."""

    def __init__(self, devstack: DevStack, user: MailUser) -> None:
        self.imap = imaplib.IMAP4("127.0.0.1", devstack.ports.imap)
        self.imap.login(user.email, user.password)
        self.imap.select("Drafts")

    def save(self, raw: bytes, flags: str = "", when: datetime | None = None) -> int:
        typ, data = self.imap.append("Drafts", f"({flags})" if flags else None,
                                     imaplib.Time2Internaldate(when) if when else None, raw)
        assert typ == "OK", data
        m = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
        assert m
        return int(m.group(1))

    def fetch(self, uid: int) -> tuple[str, bytes]:
        self.imap.noop()
        _, data = self.imap.uid("FETCH", str(uid), "(FLAGS BODY.PEEK[])")
        meta, body = data[0]  # type: ignore[misc]
        flags = re.search(rb"FLAGS \(([^)]*)\)", meta)
        assert flags
        return flags.group(1).decode(), body

    def store(self, uid: int, action: str, flags: str) -> None:
        self.imap.noop()  # a UID this session has not seen yet would be skipped silently
        typ, data = self.imap.uid("STORE", str(uid), action, f"({flags})")
        assert typ == "OK", data

    def delete(self, uid: int) -> None:
        self.store(uid, "+FLAGS", "\\Deleted")
        self.imap.expunge()

    def close(self) -> None:
        self.imap.logout()


Scheduled = tuple[DraftService, Scheduler, AccountConfig]


@pytest.fixture
async def scheduled(devstack: DevStack, user: MailUser) -> AsyncIterator[Scheduled]:
    """The draft service and the scheduler (not running) on the user's account."""
    config = devstack.config(accounts=[devstack.account_entry(user.id, user.email)])
    accounts = Accounts(config)
    drafts = DraftService(accounts)
    sending = SendService(drafts, Sender(), config)
    try:
        yield drafts, Scheduler(sending), config.accounts[0]
    finally:
        await sending.sender.close()
        await accounts.close()


@pytest.fixture
def client(devstack: DevStack, user: MailUser) -> Client:
    c = Client(devstack, user)
    yield c  # type: ignore[misc]
    c.close()


def neomutt_draft(user: MailUser, subject: str, extra: str = "") -> bytes:
    """What neomutt postpones: no Message-ID, no \\Draft flag set by mbsync-style syncs."""
    return (f"Date: Fri, 27 Nov 2026 10:00:00 +0100\r\nFrom: Mutt User <{user.email}>\r\n"
            f"To: bob@example.test\r\nSubject: {subject}\r\n{extra}"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n"
            "\r\nWritten in neomutt.\r\n").encode()


async def test_every_message_in_drafts_is_a_draft(service, client, user) -> None:  # type: ignore[no-untyped-def]
    """mbsync and neomutt do not always set \\Draft: such a message is listed, read, updated
    and deleted like any other draft."""
    svc, account = service
    uid = client.save(neomutt_draft(user, "No draft flag")
                      .replace(b"Subject:", b"Message-ID: <nf@example.test>\r\nSubject:"), "\\Seen")
    page = await svc.list(account, DraftQuery())
    assert [m.uid for m in page.items] == [uid]
    got = await svc.get(account, uid)
    assert got.content.subject == "No draft flag"
    updated = await svc.replace(account, got.id, {"subject": "Edited by the API"})
    flags, _ = client.fetch(updated.uid)
    assert "\\Draft" not in flags and "\\Seen" in flags  # its own flags, kept
    await svc.delete(account, updated.id)
    assert (await svc.list(account, DraftQuery())).items == []


async def test_a_draft_keeps_its_flags_and_its_from_name_through_api_edits(
        service, client, user) -> None:  # type: ignore[no-untyped-def]
    svc, account = service
    draft, _ = await svc.create(account, DraftContent(to=(Address("bob@example.test"),),
                                                      subject="Mine", text="x\n"))
    client.store(draft.uid, "-FLAGS", "\\Seen")  # "mark as unread" in a mail client
    client.store(draft.uid, "+FLAGS", "$label1")
    updated = await svc.replace(account, draft.id, {"subject": "Edited"})
    flags, raw = client.fetch(updated.uid)
    assert "\\Seen" not in flags.split() and "$label1" in flags.split() and "\\Draft" in flags
    assert updated.seen is False

    # a draft whose From carries its own display name keeps it
    uid = client.save(neomutt_draft(user, "Named").replace(
        b"Subject:", b"Message-ID: <named@example.test>\r\nSubject:"), "\\Draft \\Seen")
    got = await svc.get(account, uid)
    edited = await svc.replace(account, got.id, {"subject": "Named, edited"})
    _, raw = client.fetch(edited.uid)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["From"] == f"Mutt User <{user.email}>"
    assert edited.parsed.sender == Address(user.email, "Mutt User")


async def test_attachment_parameters_survive_every_rewrite(service, client, user) -> None:  # type: ignore[no-untyped-def]
    """A text attachment's charset (and format, name) must not be lost when the API rewrites
    the draft: its bytes would arrive garbled."""
    svc, account = service
    latin1 = "Grüße, café\r\n".encode("iso-8859-1")
    raw = (f"From: {user.email}\r\nTo: bob@example.test\r\nSubject: With a text file\r\n"
           "Message-ID: <att@example.test>\r\nMIME-Version: 1.0\r\n"
           'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
           "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBody\r\n"
           '--b1\r\nContent-Type: text/plain; charset="iso-8859-1"; format=flowed;\r\n'
           ' name="notes.txt"\r\n'
           'Content-Disposition: attachment; filename="notes.txt"\r\n'
           "Content-Transfer-Encoding: 8bit\r\n\r\n").encode() + latin1 + b"--b1--\r\n"
    uid = client.save(raw, "\\Draft \\Seen")
    got = await svc.get(account, uid)
    current = got
    for i in range(2):
        current = await svc.replace(account, current.id, {"subject": f"Rewritten {i}"})
    _, stored = client.fetch(current.uid)
    assert (b'Content-Type: text/plain; charset="iso-8859-1"; format=flowed;\r\n'
            b' name="notes.txt"\r\n') in stored
    assert b'Content-Disposition: attachment; filename="notes.txt"\r\n' in stored
    again = await svc.get(account, current.id)
    [attachment] = again.content.attachments
    # (the CRLF before the closing boundary belongs to the boundary, RFC 2046 5.1.1)
    assert attachment.data == latin1[:-2] and attachment.filename == "notes.txt"
    # an attachment the caller replaces is written anew
    fresh = await svc.replace(account, current.id, {"attachments": (
        Attachment("new.txt", "text/plain", b"plain ascii"),)})
    _, stored = client.fetch(fresh.uid)
    assert b"iso-8859-1" not in stored and b'filename="new.txt"' in stored


async def test_updated_at_reflects_an_edit_made_in_a_mail_client(service, client, user) -> None:  # type: ignore[no-untyped-def]
    svc, account = service
    draft, _ = await svc.create(account, DraftContent(to=(Address("bob@example.test"),),
                                                      subject="Before", text="x\n"))
    # the client re-saves it (a new message with the same headers, the old one deleted)
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    uid = client.save(draft.raw.replace(b"Subject: Before", b"Subject: After"), "\\Draft \\Seen",
                      when=later)
    client.delete(draft.uid)
    got = await svc.get(account, draft.id)
    assert got.uid == uid and got.content.subject == "After"
    assert got.updated_at == later and got.created_at == draft.created_at


async def test_a_scheduled_draft_resaved_after_its_time_is_held_not_sent(
        scheduled: Scheduled, client: Client) -> None:
    """A person edits a scheduled draft in Thunderbird and saves it after its planned time:
    it must not go out a second later unasked. It is held until a new planned time or a send
    call releases it."""
    drafts, scheduler, account = scheduled
    planned = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    draft, _ = await drafts.create(account, DraftContent(
        to=(Address("held@elsewhere.test"),), subject="Planned", text="x\n",
        planned_send_at=planned))
    assert draft.status is Status.SCHEDULED
    await asyncio.sleep(3)  # the planned time passes while a person edits it ...
    uid = client.save(draft.raw.replace(b"Subject: Planned", b"Subject: Edited late"),
                      "\\Draft \\Seen", when=datetime.now(UTC))  # ... and saves it
    client.delete(draft.uid)
    held = await drafts.get(account, draft.id)
    assert held.uid == uid and held.status is Status.HELD
    assert await scheduler.due(account, datetime.now(UTC)) == []
    listed = await drafts.list(account, DraftQuery(status=Status.HELD))
    assert [m.id for m in listed.items] == [draft.id]
    # a new planned time releases it
    again = await drafts.replace(account, draft.id, {
        "planned_send_at": datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)})
    assert again.status is Status.SCHEDULED
    assert [d.id for d in await scheduler.due(account, datetime.now(UTC))] == [draft.id]


async def test_a_draft_without_message_id_keeps_its_id_across_a_client_resave(
        scheduled: Scheduled, user: MailUser, client: Client) -> None:
    """neomutt postpones drafts without a Message-ID. The id such a draft is shown under is
    written into it (X-Mailbridge-Id, and a Message-ID) by the next look of the scheduler, so
    when neomutt recalls it (deleting it) and postpones it again, keeping its headers as neomutt
    does, the id stays. Nothing else of the message changes."""
    drafts, scheduler, account = scheduled
    original = neomutt_draft(user, "Postponed", "X-Mutt-Fcc: =Sent\r\n")
    uid = client.save(original, "\\Seen", when=datetime(2026, 11, 27, 9, 0, tzinfo=UTC))
    [shown] = (await drafts.list(account, DraftQuery())).items
    assert shown.uid == uid and shown.parsed.message_id is None

    await scheduler.sweep(account, datetime.now(UTC))
    adopted = await drafts.get(account, shown.id)
    assert adopted.uid != uid
    assert (adopted.created_at, adopted.updated_at) == (shown.created_at, shown.updated_at)
    assert adopted.content == shown.content and adopted.status is Status.DRAFT
    flags, raw = client.fetch(adopted.uid)
    assert flags.split() == ["\\Seen", "$MailbridgeWritten"]  # the client's flag, and ours
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["X-Mailbridge-Id"] == str(shown.id) and msg["Message-ID"]
    kept, dropping = [], False
    for line in raw.splitlines(keepends=True):  # without the added fields (folded or not)
        if not line.startswith((b" ", b"\t")):
            dropping = line.lower().startswith((b"x-mailbridge-", b"message-id:"))
        if not dropping:
            kept.append(line)
    assert b"".join(kept) == original  # the rest byte for byte
    # a second look finds nothing more to do
    await scheduler.sweep(account, datetime.now(UTC))
    assert (await drafts.get(account, shown.id)).uid == adopted.uid

    # neomutt recalls it (deleting it) and postpones it again with its headers
    client.delete(adopted.uid)
    client.save(raw.replace(b"Written in neomutt.", b"Edited in neomutt."))
    again = await drafts.get(account, shown.id)
    assert again.content.text == "Edited in neomutt.\n"
    assert [m.id for m in (await drafts.list(account, DraftQuery())).items] == [shown.id]
