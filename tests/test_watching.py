"""Events from outside the API: two mailbridge instances watch one Dovecot; what a mail client
does over IMAP (APPEND, STORE, EXPUNGE) and mail that arrives over SMTP reach a real receiver
once, within 5 s, signed in both schemes; what the API does is reported once too (by the
instance that did it), never again as a mail client's."""

from __future__ import annotations

import asyncio
import smtplib
import time
from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import pytest
from api_helpers import Api, new_user, start_api
from jasni.webhooks import verify_signature
from receivers import Receiver
from standardwebhooks.webhooks import Webhook

from conftest import MailUser
from mailbridge.api.keys import WATCHER
from mailbridge.api.schemas import JasniEventBody, StandardEventBody
from mailbridge.devstack.stack import DevStack

WITHIN = 5.0
"""The issue's bound: a change is delivered within this many seconds."""
QUIET = 0.5
"""How long the tests wait after the last expected delivery for one too many: a second
instance's duplicate would come at about the same time as the first delivery."""

DRAFT_EVENTS = ["draft.created", "draft.updated", "draft.deleted", "draft.scheduled",
                "draft.sent", "draft.failed"]
EMAIL_EVENTS = ["email.received", "email.sent", "email.deleted", "email.bounced"]


@pytest.fixture
async def pair(devstack: DevStack, user: MailUser) -> AsyncIterator[tuple[Api, Api]]:
    """Two instances of one configuration, both watching."""
    other = new_user(devstack)
    watching = {"watch_mailboxes": True}
    first = await start_api(devstack, user, other, server=watching)
    second = await start_api(devstack, user, other, server=watching)
    try:
        await asyncio.gather(first.client.app[WATCHER].ready(),
                             second.client.app[WATCHER].ready())
        yield first, second
    finally:
        await first.client.close()
        await second.client.close()


async def subscribe(api: Api, receiver: Receiver) -> tuple[str, str]:
    """A dialect 2 subscription to everything (/d2) and a dialect 1 one to email.* (/d1);
    returns their secrets."""
    d2 = await api.call("POST", "/api/email/webhooks", json_body={
        "url": receiver.url("/d2"), "events": DRAFT_EVENTS + EMAIL_EVENTS})
    d1 = await api.call("POST", "/api/v1/webhooks", json_body={
        "url": receiver.url("/d1"), "events": EMAIL_EVENTS})
    assert (d2.status, d1.status) == (201, 201), (d2.body, d1.body)
    return d2.body["secret"], d1.body["data"]["webhook"]["secret"]


class Since:
    """A point to expect deliveries from: the time, and what each path had got by then."""

    def __init__(self, receiver: Receiver) -> None:
        self.at = time.monotonic()
        self.had = {path: len(receiver.events(path)) for path in ("/d1", "/d2")}


async def expect(receiver: Receiver, path: str, kinds: list[str], *,
                 since: Since) -> list[dict[str, Any]]:
    """Waits until ``kinds`` arrived at ``path`` after ``since`` (within WITHIN seconds), then a
    while for any extra; returns the events of those kinds, checking that each came once."""
    key = "type" if path == "/d2" else "event"

    def arrived() -> list[dict[str, Any]]:
        return [e for e in receiver.events(path)[since.had[path]:] if e[key] in kinds]

    deadline = since.at + WITHIN
    while sorted(e[key] for e in arrived()) != sorted(kinds):
        assert len(arrived()) <= len(kinds), arrived()
        if time.monotonic() > deadline:
            pytest.fail(f"expected {kinds} within {WITHIN}s, got "
                        f"{[(e[key], e['data'].get('origin')) for e in arrived()]}")
        await asyncio.sleep(0.05)
    await asyncio.sleep(QUIET)
    got = arrived()
    assert sorted(e[key] for e in got) == sorted(kinds), got
    return got


def verify_all(receiver: Receiver, d2_secret: str, d1_secret: str) -> None:
    """Every delivery so far carries a valid signature of its scheme, and a body as the
    OpenAPI document describes it."""
    for path, headers, body in receiver.got:
        if path == "/d2":
            Webhook(d2_secret).verify(body, headers)
            StandardEventBody.model_validate_json(body)
        elif path == "/d1":
            assert verify_signature(body.decode(), headers["X-Jasni-Signature"], d1_secret)
            JasniEventBody.model_validate_json(body)


def foreign_draft(subject: str, message_id: str, text: str = "hello") -> bytes:
    """A draft as a mail client saves it: no mailbridge header."""
    return (f"From: Test <t@example.test>\r\nTo: bob@example.test\r\nSubject: {subject}\r\n"
            f"Message-ID: {message_id}\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n").encode()


def client_removes(api: Api, uid: int, folder: str, *, expunge: bool = True) -> None:
    with api.imap() as client:
        client.select(folder)
        client.uid("STORE", str(uid), "+FLAGS", "(\\Deleted)")
        if expunge:
            client.uid("EXPUNGE", str(uid))


async def test_a_mail_client_editing_drafts(pair: tuple[Api, Api], receiver: Receiver) -> None:
    first, _ = pair
    d2_secret, d1_secret = await subscribe(first, receiver)
    mid = make_msgid(domain="client.test")

    started = Since(receiver)
    uid = await asyncio.to_thread(first.append, foreign_draft("From a client", mid), "Drafts",
                                  "(\\Draft \\Seen)")
    created, = await expect(receiver, "/d2", ["draft.created"], since=started)
    assert created["data"]["origin"] == "mailbox"
    assert created["data"]["draft"]["subject"] == "From a client"
    assert created["data"]["draft"]["body_text"].strip() == "hello"

    # a re-save, as Thunderbird does it: the new copy first, then the old one goes
    started = Since(receiver)
    new_uid = await asyncio.to_thread(first.append, foreign_draft("Edited", mid, "hello 2"),
                                      "Drafts", "(\\Draft \\Seen)")
    await asyncio.to_thread(client_removes, first, uid, "Drafts")
    updated, = await expect(receiver, "/d2", ["draft.updated"], since=started)
    assert updated["data"]["draft"]["subject"] == "Edited"
    assert updated["data"]["draft"]["uid"] == created["data"]["draft"]["uid"]

    # a re-save the other way round (the old copy goes first, as mutt does on recall)
    started = Since(receiver)
    await asyncio.to_thread(client_removes, first, new_uid, "Drafts")
    last_uid = await asyncio.to_thread(first.append, foreign_draft("Again", mid), "Drafts",
                                       "(\\Draft)")
    again, = await expect(receiver, "/d2", ["draft.updated"], since=started)
    assert again["data"]["draft"]["subject"] == "Again"

    # marked \Deleted, not expunged: deleted for every client
    started = Since(receiver)
    await asyncio.to_thread(client_removes, first, last_uid, "Drafts", expunge=False)
    deleted, = await expect(receiver, "/d2", ["draft.deleted"], since=started)
    assert deleted["data"]["origin"] == "mailbox"
    assert deleted["data"]["draft"]["subject"] == "Again"

    events = receiver.events("/d2")
    assert [e["type"] for e in events] == ["draft.created", "draft.updated", "draft.updated",
                                           "draft.deleted"]
    assert len({e["data"]["event_id"] for e in events}) == 4
    verify_all(receiver, d2_secret, d1_secret)


async def test_a_mail_client_changing_an_api_draft(pair: tuple[Api, Api],
                                                   receiver: Receiver) -> None:
    """A draft the API wrote, then edited and deleted in a mail client: the API's event once,
    then the client's."""
    first, second = pair
    await subscribe(first, receiver)
    started = Since(receiver)
    made = await second.call("POST", "/api/email/drafts", json_body={
        "to": ["bob@example.test"], "subject": "By the API", "body_text": "x"})
    assert made.status == 201
    created, = await expect(receiver, "/d2", ["draft.created"], since=started)
    assert created["data"]["origin"] == "api"

    [draft] = [m for m in first.messages("Drafts") if b"By the API" in m.raw]
    started = Since(receiver)
    edited = draft.raw.replace(b"Subject: By the API", b"Subject: By a person")
    await asyncio.to_thread(first.append, edited, "Drafts", "(\\Draft \\Seen)")
    await asyncio.to_thread(client_removes, first, draft.uid, "Drafts")
    updated, = await expect(receiver, "/d2", ["draft.updated"], since=started)
    assert updated["data"]["origin"] == "mailbox"
    assert updated["data"]["draft"]["uid"] == made.body["uid"]
    assert updated["data"]["draft"]["subject"] == "By a person"


async def test_the_api_is_reported_once_by_the_instance_that_acted(
        pair: tuple[Api, Api], receiver: Receiver) -> None:
    """Changes through either instance: each event once, origin api, and no watcher reports the
    same change again as a mail client's (a deletion, a send, an update's old version)."""
    first, second = pair
    d2_secret, d1_secret = await subscribe(second, receiver)
    started = Since(receiver)
    made = await first.call("POST", "/api/email/drafts", json_body={
        "to": ["bob@example.test"], "subject": "Twice?", "body_text": "x"})
    uid = made.body["uid"]
    assert (await second.call("POST", "/api/email/drafts", json_body={
        "uid": uid, "subject": "Twice? 2"})).status == 200
    doomed = await second.call("POST", "/api/email/drafts", json_body={"subject": "Doomed"})
    assert (await first.call("DELETE", f"/api/email/drafts/{doomed.body['uid']}")).status == 204
    sent = await second.call("POST", f"/api/email/drafts/{made.body['uid']}/send")
    assert sent.status == 200, sent.body
    inbox_uid = await asyncio.to_thread(first.append, b"Subject: In\r\n\r\nx\r\n")
    events = await expect(receiver, "/d2", [
        "draft.created", "draft.updated", "draft.created", "draft.deleted", "draft.sent",
        "email.sent", "email.received"], since=started)
    deleting = Since(receiver)
    assert (await first.call("DELETE", f"/api/v1/emails/{inbox_uid}")).status == 200
    events += await expect(receiver, "/d2", ["email.deleted"], since=deleting)
    by_origin = sorted((e["type"], e["data"]["origin"]) for e in events)
    assert by_origin == sorted([
        ("draft.created", "api"), ("draft.updated", "api"), ("draft.created", "api"),
        ("draft.deleted", "api"), ("draft.sent", "api"), ("email.sent", "api"),
        ("email.received", "mailbox"), ("email.deleted", "api")])
    assert uid  # the draft's first UID; gone now, and not reported as deleted
    verify_all(receiver, d2_secret, d1_secret)


async def test_mail_arriving_over_smtp_and_its_bounce(pair: tuple[Api, Api],
                                                      receiver: Receiver) -> None:
    first, _ = pair
    d2_secret, d1_secret = await subscribe(first, receiver)
    devstack = first.devstack
    user = first.user

    # a message from outside, over SMTP
    message = EmailMessage()
    message["From"] = "bob@example.test"
    message["To"] = user.email
    message["Bcc"] = "hidden@example.test"
    message["Subject"] = "Over SMTP"
    message.set_content("arrived")
    started = Since(receiver)
    await asyncio.to_thread(smtp_send, devstack, message, [user.email])
    received, = await expect(receiver, "/d1", ["email.received"], since=started)
    assert received["data"]["subject"] == "Over SMTP"
    assert received["data"]["origin"] == "mailbox"
    assert "hidden@example.test" not in str(received)

    # a message sent through mailbridge, and the DSN an MTA sends back for it
    started = Since(receiver)
    made = await first.call("POST", "/api/email/drafts", json_body={
        "to": ["nobody@nowhere.test"], "subject": "Will bounce", "body_text": "x"})
    sent = await first.call("POST", f"/api/email/drafts/{made.body['uid']}/send")
    assert sent.status == 200, sent.body
    await expect(receiver, "/d1", ["email.sent"], since=started)
    [copy] = [m for m in first.messages("Sent") if b"Will bounce" in m.raw]
    original_id = copy.message["Message-ID"]
    started = Since(receiver)
    await asyncio.to_thread(smtp_send, devstack, dsn(user.email, original_id), [user.email])
    got = await expect(receiver, "/d1", ["email.received", "email.bounced"], since=started)
    bounced, = [e for e in got if e["event"] == "email.bounced"]
    assert bounced["data"]["subject"] == "Will bounce"
    assert bounced["data"]["bounce"]["recipients"] == [{
        "address": "nobody@nowhere.test", "status": "5.1.1",
        "diagnostic": "smtp; 550 5.1.1 <nobody@nowhere.test>: Recipient address rejected"}]
    d2_bounce, = [e for e in receiver.events("/d2") if e["type"] == "email.bounced"]
    assert d2_bounce["data"]["email"]["subject"] == "Will bounce"
    assert d2_bounce["data"]["bounce"]["message_id"] == original_id.strip("<>")
    verify_all(receiver, d2_secret, d1_secret)


async def test_a_client_deleting_from_the_inbox(pair: tuple[Api, Api],
                                                receiver: Receiver) -> None:
    first, _ = pair
    await subscribe(first, receiver)
    started = Since(receiver)
    uid = await asyncio.to_thread(first.append, b"Subject: Read me\r\n\r\nx\r\n")
    await expect(receiver, "/d1", ["email.received"], since=started)
    started = Since(receiver)
    await asyncio.to_thread(client_removes, first, uid, "INBOX")
    deleted, = await expect(receiver, "/d1", ["email.deleted"], since=started)
    assert deleted["data"]["origin"] == "mailbox"
    assert deleted["data"]["subject"] == "Read me"


def smtp_send(devstack: DevStack, message: EmailMessage | bytes, to: list[str]) -> None:
    raw = message if isinstance(message, bytes) else message.as_bytes()
    with smtplib.SMTP("127.0.0.1", devstack.ports.smtp, timeout=10) as smtp:
        smtp.login("bob@example.test", "bob-dev-pass")
        smtp.sendmail("", to, raw)


def dsn(to: str, original_id: str) -> bytes:
    """A delivery status notification as Postfix writes one (RFC 3464)."""
    return f"""From: MAILER-DAEMON@mx.example.test (Mail Delivery System)\r
To: {to}\r
Subject: Undelivered Mail Returned to Sender\r
Message-ID: {make_msgid(domain="mx.example.test")}\r
Auto-Submitted: auto-replied\r
MIME-Version: 1.0\r
Content-Type: multipart/report; report-type=delivery-status;\r
\tboundary="B0UND"\r
\r
--B0UND\r
Content-Description: Notification\r
Content-Type: text/plain; charset=us-ascii\r
\r
I'm sorry to have to inform you that your message could not\r
be delivered to one or more recipients.\r
\r
--B0UND\r
Content-Description: Delivery report\r
Content-Type: message/delivery-status\r
\r
Reporting-MTA: dns; mx.example.test\r
Arrival-Date: Sat, 28 Nov 2026 03:00:00 +0000\r
\r
Final-Recipient: rfc822; nobody@nowhere.test\r
Original-Recipient: rfc822;nobody@nowhere.test\r
Action: failed\r
Status: 5.1.1\r
Remote-MTA: dns; nowhere.test\r
Diagnostic-Code: smtp; 550 5.1.1 <nobody@nowhere.test>: Recipient\r
    address rejected\r
\r
--B0UND\r
Content-Description: Undelivered Message Headers\r
Content-Type: text/rfc822-headers\r
\r
From: {to}\r
To: nobody@nowhere.test\r
Subject: Will bounce\r
Message-ID: {original_id}\r
\r
--B0UND--\r
""".encode()


async def test_a_mailbox_event_answered_500_comes_again(pair: tuple[Api, Api],
                                                        receiver: Receiver) -> None:
    first, second = pair
    hook = await first.call("POST", "/api/email/webhooks", json_body={
        "url": receiver.url("/flaky"), "events": ["email.received"]})
    receiver.fail = 1
    await asyncio.to_thread(first.append, b"Subject: Retried\r\n\r\nx\r\n")
    await receiver.wait_for("/flaky", 2, seconds=WITHIN)
    failed, delivered = receiver.events("/flaky")
    assert failed == delivered and delivered["data"]["origin"] == "mailbox"
    # whichever instance claimed the change, both show its attempts (kept in the mail server)
    await asyncio.sleep(0.2)
    for api in (first, second):
        log = (await api.call("GET", f"/api/email/webhooks/{hook.body['id']}/deliveries")).body
        assert [(a["attempt"], a["status"], a["outcome"]) for a in log["items"]] == [
            (2, 204, "delivered"), (1, 500, "retrying")]


async def test_scheduled_and_failed_through_either_instance(pair: tuple[Api, Api],
                                                            receiver: Receiver) -> None:
    """draft.scheduled and draft.failed, from the API: once each, as the API's; the failed
    draft's rewrite is no mail client's draft.updated."""
    first, second = pair
    await subscribe(first, receiver)
    started = Since(receiver)
    made = await second.call("POST", "/api/email/drafts", json_body={
        "to": ["pat@elsewhere.test"], "subject": "Later", "body_text": "x",
        "planned_send_at": "2031-06-02T07:00:00Z"})
    assert made.status == 201
    events = await expect(receiver, "/d2", ["draft.created", "draft.scheduled"], since=started)
    assert {e["data"]["draft"]["status"] for e in events} == {"scheduled"}

    started = Since(receiver)
    first.devstack.smtp.fail_next.append((554, "5.7.1 Rejected on purpose"))
    failed = await first.call("POST", f"/api/email/drafts/{made.body['uid']}/send")
    assert failed.status == 502, failed.body
    event, = await expect(receiver, "/d2", ["draft.failed"], since=started)
    assert event["data"]["origin"] == "api"
    assert "5.7.1 Rejected on purpose" in event["data"]["draft"]["last_error"]
    assert not [e for e in receiver.events("/d2")[started.had["/d2"]:]
                if e["data"]["origin"] == "mailbox"]


async def test_every_instance_shows_every_instances_attempts(pair: tuple[Api, Api],
                                                             receiver: Receiver) -> None:
    """GET .../deliveries reads the attempts from the mail server: one instance shows what
    the other delivered."""
    first, second = pair
    hook = await first.call("POST", "/api/email/webhooks", json_body={
        "url": receiver.url("/log"), "events": ["draft.created"]})
    made = await second.call("POST", "/api/email/drafts", json_body={"subject": "Logged"})
    assert made.status == 201
    await receiver.wait_for("/log", 1, seconds=WITHIN)
    [delivered] = receiver.events("/log")
    for api in (first, second):
        log = await api.call("GET", f"/api/email/webhooks/{hook.body['id']}/deliveries")
        assert [(a["event_id"], a["attempt"], a["status"], a["outcome"])
                for a in log.body["items"]] == [
            (delivered["data"]["event_id"], 1, 204, "delivered")]
    one = await first.call("GET", f"/api/v1/webhooks/{hook.body['id']}/deliveries")
    assert [a["event_id"] for a in one.body["data"]["deliveries"]] == [
        delivered["data"]["event_id"]]
