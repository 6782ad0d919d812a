"""Dialect 1 through its reference client, the official Jasni SDK (``jasni-sdk`` on PyPI), sync and
async, against the real stack: every answer must parse in the SDK's own models, with the values
mailbridge stored.

The SDK's synchronous client blocks, so its calls run in a thread while the app serves them on
the test's event loop. Issue 11 grows this module to every mailbox method of the SDK.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest
from api_helpers import FULL_TOKEN, Api, running_api
from jasni import AsyncJasni, Jasni
from jasni.errors import (
    AuthenticationError,
    ConflictError,
    JasniError,
    NotFoundError,
    ValidationError,
)

from conftest import MailUser
from mailbridge.devstack.stack import DevStack
from mailbridge.labels import keyword_of

T = TypeVar("T")


class Client:
    """One SDK client, sync or async, with one awaitable way to call either."""

    def __init__(self, base_url: str, mode: str, key: str = FULL_TOKEN) -> None:
        self.mode = mode
        self.sdk: Any = (Jasni(key, base_url=base_url) if mode == "sync"
                         else AsyncJasni(key, base_url=base_url))

    async def __call__(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.mode == "sync":
            return await asyncio.to_thread(functools.partial(method, *args, **kwargs))
        result = method(*args, **kwargs)
        assert isinstance(result, Awaitable)
        return await result

    async def close(self) -> None:
        if self.mode == "sync":
            self.sdk.close()
        else:
            await self.sdk.close()


@pytest.fixture
async def api(devstack: DevStack, user: MailUser) -> AsyncIterator[Api]:
    async with running_api(devstack, user) as running:
        yield running


@pytest.fixture(params=["sync", "async"])
async def sdk(request: pytest.FixtureRequest, api: Api) -> AsyncIterator[Client]:
    client = Client(str(api.client.make_url("")).rstrip("/"), request.param)
    try:
        yield client
    finally:
        await client.close()


async def test_accounts_list(sdk: Client, api: Api) -> None:
    listed = await sdk(sdk.sdk.accounts.list)
    assert listed.total == 1
    [account] = listed.accounts
    assert (account.id, account.email, account.name) == (str(api.user.id), api.user.email,
                                                         "Test User")
    assert account.created_at  # a time, as a string


async def test_accounts_are_the_operators(sdk: Client, api: Api) -> None:
    """accounts.create, update and delete provision mailboxes on a hosted service: here each is
    a 403 accounts_from_configuration (a plain JasniError in the SDK, not a ServerError that
    a retry policy would repeat), and nothing changes."""
    accounts = sdk.sdk.accounts
    for call, kwargs in ((accounts.create, {"username": "new", "name": "New"}),
                         (accounts.update, {"email": api.user.email, "name": "Renamed"}),
                         (accounts.delete, {"email": api.user.email})):
        args = (kwargs.pop("email"),) if "email" in kwargs else ()
        with pytest.raises(JasniError) as caught:
            await sdk(call, *args, **kwargs)
        assert type(caught.value) is JasniError and caught.value.status == 403
        assert "operator's configuration" in caught.value.message
    assert [a.name for a in (await sdk(accounts.list)).accounts] == ["Test User"]


async def test_errors_are_the_sdks_classes(sdk: Client, api: Api) -> None:
    """400 ValidationError for a request whose values cannot be used (here: a forward to
    something that is no address, a send without recipients), 404 NotFoundError, 401
    AuthenticationError; nothing is sent."""
    me = api.user.email
    uid = await asyncio.to_thread(api.append, b"From: ann@example.test\r\nSubject: Hi\r\n\r\nx\r\n")
    with pytest.raises(ValidationError):
        await sdk(sdk.sdk.emails.forward, uid, account=me, to="nobody")
    with pytest.raises(ValidationError):
        await sdk(sdk.sdk.emails.send, from_=me, to=[], subject="To no one", text="x")
    with pytest.raises(NotFoundError):
        await sdk(sdk.sdk.emails.get, uid + 1000, account=me)
    stranger = Client(str(api.client.make_url("")).rstrip("/"), sdk.mode, key="jsk_" + "0" * 40)
    try:
        with pytest.raises(AuthenticationError):
            await stranger(stranger.sdk.accounts.list)
    finally:
        await stranger.close()
    assert [m for m in api.devstack.smtp.delivered if m.login == me] == []


async def test_a_draft_through_its_whole_life(sdk: Client, api: Api) -> None:
    """create -> list -> get -> update -> send, then the draft is in Sent and gone from Drafts;
    and create -> delete."""
    me = api.user.email
    drafts = sdk.sdk.drafts
    created = await sdk(drafts.create, account=me, to="Bob <bob@example.test>",
                        subject="From the SDK", text="First words", cc=["carol@example.test"])
    assert created.account == me and created.uid > 0 and created.message

    listed = await sdk(drafts.list, account=me)
    assert listed.total == 1 and listed.account == me
    [item] = listed.drafts
    assert (item.uid, item.subject, item.text) == (created.uid, "From the SDK", "First words")
    assert item.message_id and isinstance(item.from_, object) and item.date

    got = await sdk(drafts.get, created.uid, account=me)
    assert (got.email.uid, got.email.subject, got.email.text) == (created.uid, "From the SDK",
                                                                  "First words")
    assert [getattr(a, "address", a) for a in got.email.cc or []] == ["carol@example.test"]

    updated = await sdk(drafts.update, account=me, uid=created.uid, subject="From the SDK, v2")
    assert updated.uid != created.uid and updated.account == me
    got = await sdk(drafts.get, updated.uid, account=me)
    assert (got.email.subject, got.email.text) == ("From the SDK, v2", "First words")
    with pytest.raises(NotFoundError):  # the old version is gone
        await sdk(drafts.get, created.uid, account=me)

    sent = await sdk(drafts.send, account=me, uid=updated.uid)
    assert sent.from_ == me and sent.to == ["bob@example.test"]
    assert sent.subject == "From the SDK, v2" and sent.saved_to_sent is True and sent.message_id
    assert (await sdk(drafts.list, account=me)).total == 0
    delivered = [m for m in api.devstack.smtp.delivered if m.login == me]
    assert len(delivered) == 1 and b"Subject: From the SDK, v2" in delivered[0].data

    doomed = await sdk(drafts.create, account=me, to="x@example.test", subject="Doomed")
    await sdk(drafts.delete, account=me, uid=doomed.uid)
    assert (await sdk(drafts.list, account=me)).total == 0
    with pytest.raises(NotFoundError):
        await sdk(drafts.get, doomed.uid, account=me)


async def test_reading_mail(sdk: Client, api: Api) -> None:
    """emails.list and emails.get parse whatever is in a folder: a message without From,
    Message-ID or Date among ordinary ones; drafts.get finds a draft in Drafts."""
    me = api.user.email
    ordinary = await asyncio.to_thread(
        api.append, b"From: Ann <ann@example.test>\r\nTo: " + me.encode()
        + b"\r\nSubject: Ordinary\r\nMessage-ID: <o@example.test>\r\n"
        b"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n\r\nHello.\r\n")
    bare = await asyncio.to_thread(api.append, b"Subject: Bare\r\n\r\nNo headers at all.\r\n")
    listed = await sdk(sdk.sdk.emails.list, account=me, folder="INBOX")
    assert (listed.folder, listed.total, listed.account) == ("INBOX", 2, me)
    by_uid = {e.uid: e for e in listed.emails}
    assert by_uid[ordinary].subject == "Ordinary" and by_uid[ordinary].message_id == "<o@example.test>"
    assert getattr(by_uid[ordinary].from_, "address", None) == "ann@example.test"
    assert (by_uid[bare].subject, by_uid[bare].message_id, by_uid[bare].from_) == ("Bare", "", "")
    assert by_uid[bare].date  # the arrival time
    got = await sdk(sdk.sdk.emails.get, bare, account=me)
    assert got.email.text == "No headers at all.\n" and got.email.subject == "Bare"


REPORT_PDF = b"%PDF-1.4 " + bytes(range(256)) * 40


async def test_attachments(sdk: Client, api: Api) -> None:
    """emails.get lists a message's attachments; get_attachments gives every one with its bytes,
    get_attachment one by file name or by index; a name or index that is not there is a
    NotFoundError."""
    me = api.user.email
    pdf = base64.encodebytes(REPORT_PDF).replace(b"\n", b"\r\n")
    source = (b"From: Ann <ann@example.test>\r\nTo: " + me.encode() + b"\r\n"
              b"Subject: Two files\r\nMIME-Version: 1.0\r\n"
              b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
              b"--b\r\nContent-Type: text/plain\r\n\r\nSee both.\r\n"
              b'--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; '
              b'filename="report.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n' + pdf
              + b'--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Disposition: attachment;'
              b" filename*=utf-8''notes%20%C3%A9t%C3%A9.txt\r\n"
              b"Content-Transfer-Encoding: quoted-printable\r\n\r\nl=C3=A9t=C3=A9 =\r\nlong\r\n"
              b"--b--\r\n")
    uid = await asyncio.to_thread(api.append, source)
    emails = sdk.sdk.emails
    got = (await sdk(emails.get, uid, account=me)).email
    assert [(a.filename, a.content_type) for a in got.attachments or []] == [
        ("report.pdf", "application/pdf"), ("notes été.txt", "text/plain")]

    every = await sdk(emails.get_attachments, uid, account=me)
    assert (every.uid, every.account) == (uid, me)
    assert [(a.filename, a.size, base64.b64decode(a.content)) for a in every.attachments] == [
        ("report.pdf", len(REPORT_PDF), REPORT_PDF), ("notes été.txt", 11, "l\u00e9t\u00e9 long".encode())]

    by_name = await sdk(emails.get_attachment, uid, account=me, attachment="report.pdf")
    assert base64.b64decode(by_name.attachment.content) == REPORT_PDF
    by_index = await sdk(emails.get_attachment, uid, account=me, attachment=1, folder="INBOX")
    assert by_index.attachment.filename == "notes été.txt"
    assert by_index.attachment.content_type == "text/plain"
    for missing in ("nothing.txt", 2):
        with pytest.raises(NotFoundError):
            await sdk(emails.get_attachment, uid, account=me, attachment=missing)


async def test_threads(sdk: Client, api: Api) -> None:
    """list_threads groups a conversation (the server's THREAD=REFERENCES); get_thread takes the
    SDK's id, the root's Message-ID, and answers every message of it, oldest first."""
    me = api.user.email

    def message(mid: str, subject: str, day: int, refs: str = "") -> bytes:
        return (f"From: Ann <ann@example.test>\r\nTo: {me}\r\nCc: Carl <carl@example.test>\r\n"
                f"Subject: {subject}\r\nMessage-ID: <{mid}>\r\nDate: {day:02d} Mar 2026 10:00:00 +0000"
                f"\r\n{'References: ' + refs + chr(13) + chr(10) if refs else ''}\r\nSay {mid}.\r\n"
                ).encode()

    root = await asyncio.to_thread(api.append, message("r@x", "Plan", 1))
    await asyncio.to_thread(api.append, message("other@x", "Unrelated", 2), "INBOX", "\\Seen")
    reply = await asyncio.to_thread(api.append, message("s@x", "Re: Plan", 3, "<r@x>"))
    listed = await sdk(sdk.sdk.emails.list_threads, account=me, folder="INBOX", limit=10)
    assert (listed.folder, listed.total_threads, listed.total_emails) == ("INBOX", 2, 3)
    first = listed.threads[0]
    assert (first.thread_id, first.subject, first.message_count, first.unread_count) == (
        "r@x", "Plan", 2, 2)
    assert first.email_uids == [root, reply] and first.snippet == "Say s@x."
    assert [p.address for p in first.participants] == ["ann@example.test", me, "carl@example.test"]
    assert first.last_message_date.startswith("2026-03-03")
    assert listed.threads[1].unread_count == 0

    for thread_id in ("<r@x>", "r@x", "<s@x>"):
        thread = await sdk(sdk.sdk.emails.get_thread, thread_id, account=me)
        assert (thread.thread_id, thread.subject, thread.message_count) == ("r@x", "Plan", 2)
        assert [(e.uid, e.text) for e in thread.emails] == [(root, "Say r@x.\n"),
                                                            (reply, "Say s@x.\n")]
    for nothing in ("<nothing@x>", "<>", "uid:999"):
        with pytest.raises(NotFoundError):
            await sdk(sdk.sdk.emails.get_thread, nothing, account=me)


async def test_labels(sdk: Client, api: Api) -> None:
    """The registry (list, create, delete) and labels on a message (assign by name and id, list,
    remove), as IMAP keywords: a name that is no valid keyword works too, and the registry
    lives in the account's Mailbridge folder, which is not subscribed."""
    me = api.user.email
    labels, on_email = sdk.sdk.labels, sdk.sdk.emails.labels
    assert (await sdk(labels.list)).total == 0
    made = await sdk(labels.create, name="Important", color="#FF0000", description="Today")
    assert (made.label.id, made.label.name, made.label.color, made.label.description) == (
        "Important", "Important", "#ff0000", "Today")
    with pytest.raises(ConflictError):
        await sdk(labels.create, name="important")
    with pytest.raises(ValidationError):
        await sdk(labels.create, name="Red", color="red")

    uid = await asyncio.to_thread(api.append, b"Subject: Sort me\r\nMessage-ID: <sort@x>\r\n\r\nHi.\r\n")
    odd = "Nächste Woche (bald) $1 & \"2\""
    assigned = await sdk(on_email.assign, uid, account=me, labels=["Important", odd],
                         agent_name="sorter", metadata={"why": "test"})
    assert assigned.message_id == "<sort@x>" and assigned.account == me
    [created] = assigned.created_labels
    assert created.name == odd and created.id == keyword_of(odd)
    assert re.fullmatch("mb_[a-z2-7]{26}", created.id)
    assert {(lb.name, lb.applied_by, lb.metadata is not None) for lb in assigned.labels} == {
        ("Important", "sorter", True), (odd, "sorter", True)}
    flags = (await api.call("GET", f"/api/v1/emails/{uid}")).body["data"]["email"]["flags"]
    assert {"Important", created.id} <= set(flags)

    listed = await sdk(on_email.list, uid, account=me)
    assert sorted(lb.name for lb in listed.labels) == sorted(["Important", odd])
    assert all(lb.applied_by == "" for lb in listed.labels)
    counted = await sdk(labels.list, include_count=True)
    assert {(lb.name, lb.email_count) for lb in counted.labels} == {("Important", 1), (odd, 1)}
    assert (await sdk(labels.list)).labels[0].email_count is None

    removed = await sdk(on_email.remove, uid, account=me, label_ids=["Important", "Other"])
    assert (removed.removed_count, removed.message_id) == (1, "<sort@x>")
    assert [lb.name for lb in (await sdk(on_email.list, uid, account=me)).labels] == [odd]
    by_id = await sdk(on_email.assign, uid, account=me, label_ids=["Important"])
    assert by_id.created_labels == [] and len(by_id.labels) == 2
    with pytest.raises(NotFoundError):
        await sdk(on_email.assign, uid, account=me, label_ids=["Nope"])

    gone = await sdk(labels.delete, created.id)
    assert (gone.deleted_id, gone.deleted_name) == (created.id, odd)
    flags = (await api.call("GET", f"/api/v1/emails/{uid}")).body["data"]["email"]["flags"]
    assert created.id not in flags and "Important" in flags
    assert [lb.name for lb in (await sdk(labels.list)).labels] == ["Important"]
    with pytest.raises(NotFoundError):
        await sdk(labels.delete, created.id)

    def folders() -> tuple[list[bytes], list[bytes]]:
        with api.imap() as client:
            return client.list()[1], client.lsub()[1]  # type: ignore[return-value]

    every, subscribed = await asyncio.to_thread(folders)
    assert any(b'"Mailbridge"' in f or f.endswith(b" Mailbridge") for f in every), every
    assert not any(b"Mailbridge" in f for f in subscribed if f)


async def test_the_agents_reply_flow(sdk: Client, api: Api) -> None:
    """reply draft (POST /emails/{uid}/reply/draft: not an SDK method) -> drafts.list ->
    drafts.get -> drafts.update -> drafts.send; the reply is delivered once, found in Sent, and
    get_thread of the original's Message-ID there shows it threaded under the original; the
    original gets \\Answered only once the reply is sent."""
    me = api.user.email
    original = await asyncio.to_thread(
        api.append, b"From: Ann <ann@example.test>\r\nTo: " + me.encode()
        + b"\r\nCc: Carl <carl@example.test>\r\nSubject: Budget\r\nMessage-ID: <budget@x>\r\n"
        b"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n\r\nCan we spend 5k?\r\n")
    made = await api.call("POST", f"/api/v1/emails/{original}/reply/draft",
                          json_body={"text": "Yes.", "replyAll": True})
    assert made.status == 201 and made.headers["ETag"], made.body
    drafts = sdk.sdk.drafts
    [listed] = (await sdk(drafts.list, account=me)).drafts
    assert (listed.uid, listed.subject) == (made.body["data"]["uid"], "Re: Budget")
    got = (await sdk(drafts.get, listed.uid, account=me)).email
    assert got.text.startswith("Yes.\n\nOn Mon, 02 Mar 2026 10:00, Ann wrote:\n> Can we spend 5k?")
    assert [getattr(a, "address", a) for a in got.to] == ["ann@example.test"]
    assert [getattr(a, "address", a) for a in got.cc or []] == ["carl@example.test"]
    assert (got.in_reply_to, got.references) == ("<budget@x>", "<budget@x>")
    flags = (await api.call("GET", f"/api/v1/emails/{original}")).body["data"]["email"]["flags"]
    assert "\\Answered" not in flags  # not before it is sent
    updated = await sdk(drafts.update, account=me, uid=listed.uid,
                        text="Yes, up to 5k.\n\n> Can we spend 5k?\n")
    sent = await sdk(drafts.send, account=me, uid=updated.uid)
    assert sent.subject == "Re: Budget" and sent.to == ["ann@example.test"]
    [wire] = [m for m in api.devstack.smtp.delivered if m.login == me]
    assert b"In-Reply-To: <budget@x>" in wire.data and b"Yes, up to 5k." in wire.data
    flags = (await api.call("GET", f"/api/v1/emails/{original}")).body["data"]["email"]["flags"]
    assert "\\Answered" in flags
    thread = await sdk(sdk.sdk.emails.get_thread, "<budget@x>", account=me, folder="Sent")
    assert thread.thread_id == "budget@x" and [e.subject for e in thread.emails] == ["Re: Budget"]


async def test_webhooks(sdk: Client, api: Api) -> None:
    """webhooks.create (the secret once), list, get, update (id in the body), delete (id in the
    query): every answer parses in the SDK's models, events are its enum."""
    hooks = sdk.sdk.webhooks
    made = (await sdk(hooks.create, url="http://127.0.0.1:9/hook", events=["email.received"],
                      description="Inbox")).webhook
    assert made.secret and made.secret.startswith("whsec_") and made.active
    assert [e.value for e in made.events] == ["email.received"] and made.description == "Inbox"
    listed = (await sdk(hooks.list)).webhooks
    assert [(w.id, w.secret) for w in listed] == [(made.id, None)]  # never shown again
    assert (await sdk(hooks.get, made.id)).webhook.url == "http://127.0.0.1:9/hook"
    changed = (await sdk(hooks.update, id=made.id, events=["email.sent", "email.bounced"],
                         active=False)).webhook
    assert ([e.value for e in changed.events], changed.active, changed.description) == (
        ["email.sent", "email.bounced"], False, "Inbox")  # a null keeps a field
    assert changed.updated_at
    with pytest.raises(ValidationError):
        await sdk(hooks.create, url="ftp://example.com/x", events=["email.sent"])
    with pytest.raises(ValidationError):
        await sdk(hooks.create, url="https://example.com/x", events=["draft.created"])
    gone = await sdk(hooks.delete, made.id)
    assert gone["id"] == made.id
    assert (await sdk(hooks.list)).webhooks == []
    with pytest.raises(NotFoundError):
        await sdk(hooks.get, made.id)


async def test_acting_on_mail(sdk: Client, api: Api) -> None:
    """mark_as_read / mark_as_unread, get_raw, delete (INBOX -> Trash -> gone for good)."""
    me = api.user.email
    source = (b"From: Ann <ann@example.test>\r\nTo: " + me.encode()
              + b"\r\nSubject: Act on me\r\nMessage-ID: <act@example.test>\r\n\r\nBody \xc3\xa9.\r\n")
    uid = await asyncio.to_thread(api.append, source)
    emails = sdk.sdk.emails

    async def seen() -> bool:
        return bool((await sdk(emails.get, uid, account=me)).email.seen)

    assert not await seen()
    await sdk(emails.mark_as_read, uid, account=me)
    assert await seen()
    await sdk(emails.mark_as_unread, uid, account=me, folder="INBOX")
    assert not await seen()

    raw = await sdk(emails.get_raw, uid, account=me)
    assert (raw.uid, raw.account) == (uid, me) and raw.raw.encode() == source

    moved = await sdk(emails.delete, uid, account=me)
    assert moved["movedTo"] == "Trash"
    with pytest.raises(NotFoundError):
        await sdk(emails.get, uid, account=me)
    [in_trash] = (await sdk(emails.list, account=me, folder="trash")).emails
    assert in_trash.subject == "Act on me"
    gone = await sdk(emails.delete, in_trash.uid, account=me, folder="Trash")
    assert gone["movedTo"] is None
    assert (await sdk(emails.list, account=me, folder="Trash")).total == 0
    with pytest.raises(NotFoundError):
        await sdk(emails.mark_as_read, uid, account=me)


async def test_direct_send(sdk: Client, api: Api) -> None:
    """emails.send: delivered once with its Reply-To and Bcc kept off the wire, filed in Sent,
    nothing left in Drafts; a retry with the same Idempotency-Key (not an SDK option: through
    the API) delivers nothing again and answers the same."""
    me = api.user.email
    sent = await sdk(sdk.sdk.emails.send, from_=me, to=["Bob <bob@example.test>"],
                     subject="Sent at once", text="Hi Bob", bcc="hidden@example.test",
                     reply_to="Replies <replies@example.test>")
    assert (sent.from_, sent.to, sent.subject, sent.saved_to_sent) == (
        me, ["bob@example.test"], "Sent at once", True)
    [wire] = [m for m in api.devstack.smtp.delivered if m.login == me]
    assert b"\r\nReply-To: Replies <replies@example.test>\r\n" in b"\r\n" + wire.data
    assert b"hidden@example.test" not in wire.data and "hidden@example.test" in wire.rcpt_tos
    [filed] = (await sdk(sdk.sdk.emails.list, account=me, folder="Sent")).emails
    assert filed.subject == "Sent at once" and filed.message_id == sent.message_id
    assert (await sdk(sdk.sdk.drafts.list, account=me)).total == 0

    body = {"from": me, "to": "carol@example.test", "subject": "Once", "text": "x"}
    first = await api.call("POST", "/api/v1/emails/send", json_body=body,
                           headers={"Idempotency-Key": "direct-1"})
    again = await api.call("POST", "/api/v1/emails/send", json_body=body,
                           headers={"Idempotency-Key": "direct-1"})
    assert first.status == again.status == 200, (first.body, again.body)
    assert again.body["data"]["messageId"] == first.body["data"]["messageId"]
    assert len([m for m in api.devstack.smtp.delivered
                if m.login == me and b"Subject: Once" in m.data]) == 1


async def test_reply(sdk: Client, api: Api) -> None:
    """emails.reply: to the original's Reply-To, to all with reply_all (the account left out),
    Re: once, threaded by In-Reply-To and References, the original quoted; the original is
    flagged \\Answered and the reply filed in Sent."""
    me = api.user.email
    original = (b"From: Ann <ann@example.test>\r\nReply-To: Ann Desk <desk@example.test>\r\n"
                b"To: " + me.encode() + b", Dan <dan@example.test>\r\nCc: eve@example.test\r\n"
                b"Subject: Re: Quarterly figures\r\nMessage-ID: <orig@example.test>\r\n"
                b"References: <first@example.test>\r\nDate: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
                b"\r\nAre the figures final?\r\nThanks\r\n")
    uid = await asyncio.to_thread(api.append, original)
    replied = await sdk(sdk.sdk.emails.reply, uid, account=me, text="Yes, final.",
                        reply_all=True)
    assert replied.to == ["desk@example.test"]
    assert replied.cc == ["dan@example.test", "eve@example.test"]
    assert replied.subject == "Re: Quarterly figures" and replied.from_ == me
    assert replied.in_reply_to == "<orig@example.test>"
    assert replied.references == "<first@example.test> <orig@example.test>"
    assert replied.saved_to_sent is True
    [wire] = [m for m in api.devstack.smtp.delivered if m.login == me]
    data = wire.data.decode()
    assert "In-Reply-To: <orig@example.test>" in data
    assert sorted(wire.rcpt_tos) == ["dan@example.test", "desk@example.test", "eve@example.test"]
    got = await sdk(sdk.sdk.emails.get, uid, account=me)
    assert got.email.seen is False
    flags = (await api.call("GET", f"/api/v1/emails/{uid}")).body["data"]["email"]["flags"]
    assert "\\Answered" in flags
    [filed] = (await sdk(sdk.sdk.emails.list, account=me, folder="Sent")).emails
    sent_copy = await sdk(sdk.sdk.emails.get, filed.uid, account=me, folder="Sent")
    assert sent_copy.email.text is not None
    assert sent_copy.email.text.startswith("Yes, final.\n\nOn Mon, 02 Mar 2026 10:00, Ann wrote:")
    assert "> Are the figures final?\n> Thanks" in sent_copy.email.text

    plain = await sdk(sdk.sdk.emails.reply, uid, account=me, text="Only to Ann's desk.",
                      include_original=False)
    assert plain.cc in ([], None) and plain.to == ["desk@example.test"]


async def test_forward(sdk: Client, api: Api) -> None:
    """emails.forward: Fwd: once, the original's details and text below the forwarder's words,
    its attachment along, the original flagged $Forwarded, the forward filed in Sent."""
    me = api.user.email
    original = (b"From: Ann <ann@example.test>\r\nTo: " + me.encode() + b"\r\n"
                b"Subject: Figures\r\nMessage-ID: <fig@example.test>\r\n"
                b"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
                b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
                b"--b\r\nContent-Type: text/plain\r\n\r\nThe figures are attached.\r\n"
                b'--b\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename="q3.csv"\r\n'
                b"Content-Transfer-Encoding: base64\r\n\r\ncTMsMQo=\r\n--b--\r\n")
    uid = await asyncio.to_thread(api.append, original)
    forwarded = await sdk(sdk.sdk.emails.forward, uid, account=me, to="Bob <bob@example.test>",
                          text="FYI", bcc=["boss@example.test"])
    assert (forwarded.to, forwarded.subject, forwarded.saved_to_sent) == (
        ["bob@example.test"], "Fwd: Figures", True)
    assert forwarded.forwarded_from.uid == uid and forwarded.forwarded_from.subject == "Figures"
    assert getattr(forwarded.forwarded_from.from_, "address", None) == "ann@example.test"
    [wire] = [m for m in api.devstack.smtp.delivered if m.login == me]
    assert sorted(wire.rcpt_tos) == ["bob@example.test", "boss@example.test"]
    [filed] = (await sdk(sdk.sdk.emails.list, account=me, folder="Sent")).emails
    copy = (await sdk(sdk.sdk.emails.get, filed.uid, account=me, folder="Sent")).email
    assert copy.text is not None and copy.text.startswith("FYI\n\n---------- Forwarded message")
    assert "From: Ann <ann@example.test>" in copy.text and "The figures are attached." in copy.text
    assert [(a.filename, a.content_type) for a in copy.attachments or []] == [("q3.csv", "text/csv")]
    flags = (await api.call("GET", f"/api/v1/emails/{uid}")).body["data"]["email"]["flags"]
    assert "$Forwarded" in flags
