"""Sending drafts through the API against the real Dovecot and the dev SMTP server.

What recipients, Drafts and Sent hold is checked with stdlib ``imaplib``; what reached the SMTP
server with :attr:`DevSmtpServer.delivered` (filtered by the sending account's login, since the
server is shared by the whole session). Faults come from ``devstack.smtp.fail_next``. Asynchronous
outcomes (the scheduler) are awaited by polling with a deadline.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from api_helpers import FULL_TOKEN, Api, Reply, ServerMessage, new_user, token_entry

from conftest import MailUser
from imap_proxy import CapabilityHidingProxy
from mailbridge.api import create_app
from mailbridge.api.exante import render_draft
from mailbridge.api.keys import DRAFTS, SENDING
from mailbridge.config import Config, parse_config
from mailbridge.devstack.dovecot import free_port
from mailbridge.devstack.smtp import DeliveredMessage
from mailbridge.devstack.stack import DevStack
from mailbridge.imap import ImapConnection
from mailbridge.model import Status
from mailbridge.scheduler import Scheduler

T = TypeVar("T")

FAST_SCHEDULER = {"interval_seconds": 0.2, "retry_base_seconds": 0.2}


# ----------------------------------------------------------------------------- helpers

@pytest.fixture(autouse=True)
def no_fault_left_behind(devstack: DevStack) -> Iterator[None]:
    """The dev SMTP server is shared by the session: a test that fails before its injected
    fault is used must not hand it to the next test."""
    yield
    devstack.smtp.fail_next.clear()


def make_config(devstack: DevStack, user: MailUser, *, scheduler: dict[str, Any] | None = None,
                limits: dict[str, int] | None = None, smtp_port: int | None = None,
                imap_port: int | None = None) -> Config:
    """A config with ``user`` as the one account and FULL_TOKEN (read, write, send) on it."""
    entry = devstack.account_entry(user.id, user.email, "Sender Person")
    if smtp_port is not None:
        entry["smtp"]["port"] = smtp_port
    if imap_port is not None:
        entry["imap"]["port"] = imap_port
    data = devstack.config_data(
        accounts=[entry],
        tokens=[token_entry("full", FULL_TOKEN, [str(user.id)], ["read", "write", "send"])])
    if limits:
        data["server"]["limits"] = dict(limits)
    data["server"]["watch_mailboxes"] = False  # its commands would mix with the scheduler's
    if scheduler is not None:
        data = data | {"scheduler": dict(scheduler)}
    return parse_config(data, source="test")


@asynccontextmanager
async def app_for(devstack: DevStack, user: MailUser, config: Config, *,
                  scheduler: bool = False) -> AsyncIterator[Api]:
    """A running app (its own pools, caches, Sender and, if asked, scheduler) for ``config``."""
    client = TestClient(TestServer(create_app(config, scheduler=scheduler)))
    await client.start_server()
    try:
        yield Api(client=client, devstack=devstack, user=user, other=user)
    finally:
        await client.close()


def app_of(api: Api) -> web.Application:
    server = api.client.server
    assert isinstance(server, TestServer)
    return server.app


def delivered_by(devstack: DevStack, user: MailUser) -> list[DeliveredMessage]:
    """What the dev SMTP server accepted from ``user``'s login, oldest first."""
    return [m for m in devstack.smtp.delivered if m.login == user.email]


def with_subject(messages: list[DeliveredMessage], subject: str) -> list[DeliveredMessage]:
    needle = f"\r\nSubject: {subject}\r\n".encode()
    return [m for m in messages if needle in b"\r\n" + m.data]


def folder_messages(api: Api, folder: str, who: MailUser | None = None) -> list[ServerMessage]:
    """(uid, flags, raw) of every message of ``folder`` not marked \\Deleted, oldest first, read
    with one UID FETCH: unlike ``Api.messages`` it copes with a scheduler replacing drafts
    between a SEARCH and a FETCH."""
    with api.imap(who) as client:
        typ, data = client.select(folder, readonly=True)
        assert typ == "OK", data
        if int(data[0] or 0) == 0:
            return []
        typ, fetched = client.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
        assert typ == "OK", fetched
    result = []
    for part in fetched:
        if not isinstance(part, tuple):
            continue  # the closing ")" and unsolicited FETCHes (flag changes)
        meta, raw = part
        uid = re.search(rb"UID (\d+)", meta)
        flags = re.search(rb"FLAGS \(([^)]*)\)", meta)
        assert uid is not None and flags is not None, meta
        names = tuple(flags.group(1).decode().split())
        if "\\Deleted" not in names:
            result.append(ServerMessage(int(uid.group(1)), names, raw))
    return sorted(result, key=lambda m: m.uid)


async def messages(api: Api, folder: str, who: MailUser | None = None) -> list[ServerMessage]:
    """imaplib (blocking) in a thread, so the app's scheduler keeps running meanwhile."""
    return await asyncio.to_thread(folder_messages, api, folder, who)


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float, what: str) -> T:
    """Polls ``probe`` until it returns something truthy; fails naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.05)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def internal_headers(msg: ServerMessage) -> list[str]:
    return [k for k in msg.message.keys() if k.lower().startswith("x-mailbridge-")]


def without_fields(raw: bytes, names: tuple[str, ...]) -> bytes:
    """``raw`` without the header fields whose name starts with one of ``names`` (lowercase),
    continuation lines included: an independent check of what Sent holds versus the wire."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    kept: list[bytes] = []
    dropping = False
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        name = line.split(b":", 1)[0].decode("ascii", "replace").lower()
        dropping = name.startswith(names)
        if not dropping:
            kept.append(line)
    return b"\r\n".join(kept) + sep + body


async def create_exante(api: Api, **fields: Any) -> dict[str, Any]:
    body = {"from_account_id": str(api.user.id), "subject": "A subject", "body_text": "Hello"}
    body.update(fields)
    reply = await api.call("POST", "/api/email/drafts", json_body=body)
    assert reply.status == 201, reply.body
    record: dict[str, Any] = reply.body
    return record


async def get_exante(api: Api, draft_id: str) -> dict[str, Any]:
    reply = await api.call("GET", f"/api/email/drafts/{draft_id}")
    assert reply.status == 200, reply.body
    record: dict[str, Any] = reply.body
    return record


async def create_jasni(api: Api, **fields: Any) -> dict[str, Any]:
    reply = await api.call("POST", "/api/v1/emails/drafts",
                           json_body={"account": api.user.email, **fields})
    assert reply.status == 201, reply.body
    data: dict[str, Any] = reply.body["data"]
    return data


async def send_jasni(api: Api, ref: int | str, headers: dict[str, str] | None = None) -> Reply:
    return await api.call("POST", f"/api/v1/emails/drafts/{ref}/send",
                          json_body={"account": api.user.email}, headers=headers)


def raw_draft(sender: str, to: str, subject: str) -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@example.test>\r\n"
            "Date: Mon, 02 Mar 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nWritten elsewhere.\r\n").encode()


# ----------------------------------------------------------------------------- 1. the happy path

async def test_send_moves_the_draft_to_sent_and_delivers_without_bcc(
        devstack: DevStack, user: MailUser) -> None:
    to_user, bcc_user = new_user(devstack), new_user(devstack)
    async with app_for(devstack, user, make_config(devstack, user)) as api:
        created = await create_jasni(api, to=f"To Person <{to_user.email}>", bcc=[bcc_user.email],
                                     subject="Delivered for real", text="Hello,\nline two\n")
        got = await api.call("GET", f"/api/v1/emails/drafts/{created['uid']}",
                             params={"account": user.email})
        assert got.status == 200, got.body
        message_id = got.body["data"]["draft"]["messageId"]
        assert message_id.startswith("<") and message_id.endswith(">")

        before = time.time()
        reply = await send_jasni(api, created["uid"])
        after = time.time()
        assert reply.status == 200, reply.body
        data = reply.body["data"]
        assert reply.body["success"] is True
        assert data["messageId"] == message_id and data["account"] == user.email

        assert await messages(api, "Drafts") == []
        [sent] = await messages(api, "Sent")
        assert data["uid"] == sent.uid
        assert sent.message["Bcc"] == bcc_user.email
        assert sent.message["Message-ID"] == message_id

        [wire] = delivered_by(devstack, user)
        assert wire.mail_from == user.email
        assert sorted(wire.rcpt_tos) == sorted([to_user.email, bcc_user.email])
        assert b"\nBcc:" not in wire.data and b"X-Mailbridge" not in wire.data
        # Sent holds exactly what was delivered, plus Bcc and mailbridge's own bookkeeping
        assert without_fields(sent.raw, ("bcc", "x-mailbridge-")) == wire.data

        for who in (to_user, bcc_user):
            [got_it] = await messages(api, "INBOX", who)
            msg = got_it.message
            assert msg["Message-ID"] == message_id
            assert msg["Subject"] == "Delivered for real"
            assert msg["To"] == f"To Person <{to_user.email}>"
            assert msg["Bcc"] is None and internal_headers(got_it) == []
            assert got_it.raw.endswith(wire.data)  # byte for byte, after the LMTP trace fields
            dated = email.utils.parsedate_to_datetime(msg["Date"]).timestamp()
            assert before - 1 <= dated <= after + 1, msg["Date"]  # set at send time
            assert msg["Date"] == sent.message["Date"]
            assert msg.get_content().replace("\r\n", "\n") == "Hello,\nline two\n"

        # by its stable id the draft now answers as sent, in both dialects
        again = await api.call("GET", f"/api/v1/emails/drafts/{created['id']}",
                               params={"account": user.email})
        assert again.status == 200 and again.body["data"]["draft"]["status"] == "sent"
        record = await get_exante(api, created["id"])
        assert record["status"] == "sent" and record["message_id"] == message_id
        assert record["bcc"] == [bcc_user.email]


# ----------------------------------------------------------------------------- 2. concurrency

async def test_concurrent_sends_through_two_instances_deliver_once(
        devstack: DevStack, user: MailUser) -> None:
    config = make_config(devstack, user)
    async with app_for(devstack, user, config) as one, app_for(devstack, user, config) as two:
        record = await create_exante(one, to=["Rita <rita@elsewhere.test>"], subject="Only once")
        # the second instance knows the draft too (warms its caches) before the race
        assert (await get_exante(two, record["uid"]))["status"] == "draft"
        replies = await asyncio.gather(*(
            api.call("POST", f"/api/email/drafts/{record['uid']}/send")
            for api in [one, two] * 10))
        statuses = [r.status for r in replies]
        assert set(statuses) <= {200, 409}, [(r.status, r.body) for r in replies]
        ok = [r.body for r in replies if r.status == 200]
        assert ok, statuses
        assert all(body == ok[0] for body in ok), ok
        assert ok[0]["status"] == "sent" and ok[0]["uid"] == record["uid"]
        assert ok[0]["message_id"] == record["message_id"]
        for r in replies:
            if r.status == 409:
                assert r.body["error"]["code"] == "conflict", r.body

        # once it is over, either instance answers a send of it with the same result
        for api in (one, two):
            later = await api.call("POST", f"/api/email/drafts/{record['uid']}/send")
            assert later.status == 200 and later.body == ok[0], later.body

        assert len(delivered_by(devstack, user)) == 1
        assert len(await messages(one, "Sent")) == 1
        assert await messages(one, "Drafts") == []


# ----------------------------------------------------------------------------- 3. idempotency

async def test_idempotency_key_retry_returns_the_first_result(
        devstack: DevStack, user: MailUser) -> None:
    async with app_for(devstack, user, make_config(devstack, user)) as api:
        # dialect 1, by the IMAP UID: the retry repeats the very same request
        created = await create_jasni(api, to="sam@elsewhere.test", subject="Keyed send")
        key = {"Idempotency-Key": f"send-{uuid.uuid4()}"}
        first = await send_jasni(api, created["uid"], key)
        assert first.status == 200, first.body
        retry = await send_jasni(api, created["uid"], key)
        assert retry.status == 200, retry.body
        assert retry.body == first.body
        assert len(delivered_by(devstack, user)) == 1

        # dialect 2, by the stable id
        record = await create_exante(api, to=["sam@elsewhere.test"], subject="Keyed send 2")
        key = {"Idempotency-Key": f"send-{uuid.uuid4()}"}
        path = f"/api/email/drafts/{record['uid']}/send"
        first = await api.call("POST", path, headers=key)
        assert first.status == 200, first.body
        retry = await api.call("POST", path, headers=key)
        assert retry.status == 200 and retry.body == first.body
        assert len(delivered_by(devstack, user)) == 2
        assert len(await messages(api, "Sent")) == 2


# ----------------------------------------------------------------------------- 4. SMTP failures

async def test_permanent_rejection_keeps_the_draft_failed(devstack: DevStack, user: MailUser) -> None:
    async with app_for(devstack, user, make_config(devstack, user)) as api:
        created = await create_jasni(api, to="pat@elsewhere.test", subject="Will bounce")
        devstack.smtp.fail_next.append((554, "5.7.1 Rejected on purpose"))
        key = {"Idempotency-Key": f"bounce-{uuid.uuid4()}"}
        reply = await send_jasni(api, created["uid"], key)
        assert reply.status == 502, reply.body
        assert reply.body["success"] is False and reply.body["code"] == "smtp_rejected"
        assert "554 5.7.1 Rejected on purpose" in reply.body["error"]
        assert devstack.smtp.fail_next == []  # the fault was used by this send
        assert delivered_by(devstack, user) == []

        [kept] = await messages(api, "Drafts")
        assert "\\Draft" in kept.flags
        record = await get_exante(api, created["id"])
        assert record["status"] == "failed"
        assert "554 5.7.1 Rejected on purpose" in (record["last_error"] or "")

        # the same request again (same key, same path although the draft's UID changed), by
        # the UID and by the stable id: the first result, nothing sent, although the server
        # would take it now
        for ref in (created["uid"], created["id"]):
            retry = await send_jasni(api, ref, key)
            assert retry.status == 502, retry.body
            assert retry.body["error"] == reply.body["error"]
        assert delivered_by(devstack, user) == []
        assert (await get_exante(api, created["id"]))["status"] == "failed"

        # sending it again on purpose delivers it
        again = await api.call("POST", f"/api/email/drafts/{created['id']}/send")
        assert again.status == 200, again.body
        assert again.body["status"] == "sent" and again.body["last_error"] is None
        assert len(delivered_by(devstack, user)) == 1
        assert await messages(api, "Drafts") == []
        assert len(await messages(api, "Sent")) == 1


async def test_temporary_failure_of_a_direct_send_leaves_the_draft(
        devstack: DevStack, user: MailUser) -> None:
    async with app_for(devstack, user, make_config(devstack, user)) as api:
        record = await create_exante(api, to=["kim@elsewhere.test"], subject="Busy server")
        devstack.smtp.fail_next.append((450, "4.2.0 Busy on purpose"))
        reply = await api.call("POST", f"/api/email/drafts/{record['uid']}/send")
        assert reply.status == 503, reply.body
        assert reply.body["error"]["code"] == "smtp_temporary_failure"
        assert "450 4.2.0 Busy on purpose" in reply.body["error"]["message"]
        assert devstack.smtp.fail_next == []
        assert delivered_by(devstack, user) == []
        after = await get_exante(api, record["uid"])
        assert after["status"] == "draft" and after["last_error"] is None
        assert {k: after[k] for k in ("to", "subject", "body_text", "message_id")} == \
               {k: record[k] for k in ("to", "subject", "body_text", "message_id")}
        [kept] = await messages(api, "Drafts")
        assert "\\Draft" in kept.flags


async def test_scheduled_send_retries_after_a_temporary_failure(
        devstack: DevStack, user: MailUser) -> None:
    # retry_base_seconds 2: the draft can be seen between the attempts for at least a second
    # (the retry time is counted from the failure's whole second)
    config = make_config(devstack, user, scheduler={"interval_seconds": 0.2,
                                                    "retry_base_seconds": 2.0})
    async with app_for(devstack, user, config, scheduler=True) as api:
        devstack.smtp.fail_next.append((451, "4.3.0 Try later on purpose"))
        planned = datetime.now(UTC) - timedelta(seconds=1)
        record = await create_exante(api, to=["lee@elsewhere.test"], subject="Retried",
                                     planned_send_at=rfc3339(planned))

        async def failed_once() -> ServerMessage | None:
            drafts = await messages(api, "Drafts")
            if len(drafts) == 1 and drafts[0].message["X-Mailbridge-Attempts"] == "1":
                return drafts[0]
            return None

        between = await eventually(failed_once, 5, "the first attempt fails and is recorded")
        assert devstack.smtp.fail_next == []
        assert delivered_by(devstack, user) == []
        retry_at = datetime.fromisoformat(between.message["X-Mailbridge-Retry-At"])
        state = await get_exante(api, record["uid"])
        assert state["status"] == "scheduled"
        assert "451 4.3.0 Try later on purpose" in (state["last_error"] or "")

        async def sent() -> list[DeliveredMessage]:
            return delivered_by(devstack, user)

        [wire] = await eventually(sent, 6, "the retry delivers it")
        assert wire.received_at >= retry_at.timestamp() - 0.05  # not before the backoff

        async def filed() -> dict[str, Any] | None:
            state = await get_exante(api, record["uid"])
            return state if state["status"] == "sent" else None

        await eventually(filed, 3, "the draft answers status sent")
        assert await messages(api, "Drafts") == []
        assert len(await messages(api, "Sent")) == 1
        assert len(delivered_by(devstack, user)) == 1


async def test_unreachable_smtp_server(devstack: DevStack, user: MailUser) -> None:
    config = make_config(devstack, user, smtp_port=free_port(),
                         scheduler={**FAST_SCHEDULER, "max_attempts": 2})
    async with app_for(devstack, user, config, scheduler=True) as api:
        direct = await create_exante(api, to=["max@elsewhere.test"], subject="Direct")
        reply = await api.call("POST", f"/api/email/drafts/{direct['uid']}/send")
        assert reply.status == 503, reply.body
        assert reply.body["error"]["code"] == "smtp_unavailable"
        assert "cannot connect" in reply.body["error"]["message"]
        state = await get_exante(api, direct["uid"])
        assert state["status"] == "draft" and state["last_error"] is None

        scheduled = await create_exante(api, to=["max@elsewhere.test"], subject="Scheduled",
                                        planned_send_at=rfc3339(datetime.now(UTC)))

        async def given_up() -> dict[str, Any] | None:
            state = await get_exante(api, scheduled["uid"])
            return state if state["status"] == "failed" else None

        failed = await eventually(given_up, 8, "the scheduled draft is marked failed")
        error = failed["last_error"] or ""
        assert "gave up after 2 attempts" in error
        assert "cannot connect" in error and "Connection refused" in error, error

        async def two_drafts() -> bool:  # (the failed version's predecessor goes right after
            return len(await messages(api, "Drafts")) == 2  # it shows: step 5 of the write)

        await eventually(two_drafts, 5, "one copy of each draft")
        assert (await get_exante(api, direct["uid"]))["status"] == "draft"
        assert delivered_by(devstack, user) == []


# ----------------------------------------------------------------------------- 5. refusals

async def test_drafts_that_cannot_be_sent_are_refused(devstack: DevStack, user: MailUser) -> None:
    async with app_for(devstack, user, make_config(devstack, user,
                                                   limits={"max_recipients": 3})) as api:
        nobody = await create_jasni(api, subject="To nobody")
        reply = await send_jasni(api, nobody["uid"])
        assert reply.status == 422, reply.body
        assert reply.body["code"] == "invalid_input" and reply.body["field"] == "to"
        assert "no recipient" in reply.body["error"]
        reply = await api.call("POST", f"/api/email/drafts/{nobody['id']}/send")
        assert reply.status == 422 and reply.body["error"]["field"] == "to", reply.body
        assert "no recipient" in reply.body["error"]["message"]

        crowd = ", ".join(f"p{i}@elsewhere.test" for i in range(4))
        too_many = await asyncio.to_thread(api.append, raw_draft(user.email, crowd, "Crowd"),
                                           "Drafts", "\\Draft \\Seen")
        reply = await send_jasni(api, too_many)
        assert reply.status == 422, reply.body
        assert "4 recipients" in reply.body["error"] and "limit of 3" in reply.body["error"]

        broken = await asyncio.to_thread(
            api.append, raw_draft(user.email, "not an address@@example", "Broken"),
            "Drafts", "\\Draft \\Seen")
        reply = await send_jasni(api, broken)
        assert reply.status == 422, reply.body
        assert reply.body["field"] == "to[0]" and "not a valid address" in reply.body["error"]

        assert delivered_by(devstack, user) == []
        drafts = await messages(api, "Drafts")
        assert len(drafts) == 3 and {too_many, broken} < {m.uid for m in drafts}  # untouched
        assert await messages(api, "Sent") == []


# ----------------------------------------------------------------------------- 6. scheduling

async def test_a_time_already_past_sends_at_the_next_tick(devstack: DevStack, user: MailUser) -> None:
    config = make_config(devstack, user, scheduler=FAST_SCHEDULER)
    async with app_for(devstack, user, config, scheduler=True) as api:
        planned = datetime.now(UTC) - timedelta(minutes=10)
        record = await create_exante(api, to=["ann@elsewhere.test"], subject="Overdue",
                                     planned_send_at=rfc3339(planned))
        # the scheduler may have claimed it already, even before the create answered
        assert record["status"] in ("scheduled", "sending", "sent")
        created = time.time()

        async def sent() -> list[DeliveredMessage]:
            return delivered_by(devstack, user)

        [wire] = await eventually(sent, 3, "the overdue draft is sent")
        assert wire.received_at - created < 2.5

        async def filed() -> dict[str, Any] | None:
            state = await get_exante(api, record["uid"])
            return state if state["status"] == "sent" else None

        state = await eventually(filed, 3, "GET by the stable id answers status sent")
        assert state["uid"] == record["uid"] and state["message_id"] == record["message_id"]
        assert len(delivered_by(devstack, user)) == 1


async def test_scheduling_rescheduling_and_cancelling(devstack: DevStack, user: MailUser) -> None:
    config = make_config(devstack, user, scheduler=FAST_SCHEDULER)
    async with app_for(devstack, user, config, scheduler=True) as api:
        soon = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
        later = soon + timedelta(seconds=3)
        on_time = await create_exante(api, to=["a@elsewhere.test"], subject="On time",
                                      planned_send_at=rfc3339(soon))
        moved = await create_exante(api, to=["b@elsewhere.test"], subject="Moved",
                                    planned_send_at=rfc3339(soon))
        cancelled = await create_exante(api, to=["c@elsewhere.test"], subject="Cancelled",
                                        planned_send_at=rfc3339(soon))
        assert {on_time["status"], moved["status"], cancelled["status"]} == {"scheduled"}

        reply = await api.call("POST", "/api/email/drafts", json_body={
            "uid": moved["uid"], "planned_send_at": rfc3339(later)})
        assert reply.status == 200 and reply.body["status"] == "scheduled", reply.body
        assert reply.body["planned_send_at"] == rfc3339(later)
        reply = await api.call("POST", "/api/email/drafts", json_body={
            "uid": cancelled["uid"], "planned_send_at": None})
        assert reply.status == 200, reply.body
        assert reply.body["status"] == "draft" and reply.body["planned_send_at"] is None

        def sent(subject: str) -> Callable[[], Awaitable[list[DeliveredMessage]]]:
            async def probe() -> list[DeliveredMessage]:
                return with_subject(delivered_by(devstack, user), subject)
            return probe

        [first] = await eventually(sent("On time"), 3 + 5, "the draft is sent at its time")
        assert soon.timestamp() - 0.05 <= first.received_at <= soon.timestamp() + 5

        async def filed(draft_id: str) -> dict[str, Any] | None:
            state = await get_exante(api, draft_id)
            return state if state["status"] == "sent" else None

        await eventually(lambda: filed(on_time["uid"]), 3, "the first draft answers sent")
        # several ticks past the old time: the moved draft waits for its new time
        await asyncio.sleep(0.6)
        assert with_subject(delivered_by(devstack, user), "Moved") == []
        assert (await get_exante(api, moved["uid"]))["status"] == "scheduled"

        [second] = await eventually(sent("Moved"), 3 + 5, "the moved draft is sent at its new time")
        assert later.timestamp() - 0.05 <= second.received_at <= later.timestamp() + 5
        await eventually(lambda: filed(moved["uid"]), 3, "the moved draft answers sent")

        # a tick or two more: the cancelled one stays a plain draft, never sent
        await asyncio.sleep(0.5)
        state = await get_exante(api, cancelled["uid"])
        assert state["status"] == "draft" and state["planned_send_at"] is None
        assert with_subject(delivered_by(devstack, user), "Cancelled") == []
        assert len(delivered_by(devstack, user)) == 2
        [left] = await messages(api, "Drafts")
        assert left.message["Subject"] == "Cancelled"


# ----------------------------------------------------------------------------- races
# Two found while writing the tests above; each reproduced deterministically by letting a second
# instance act at the critical moment.

async def test_a_draft_replaced_right_after_its_create_is_still_created(
        devstack: DevStack, user: MailUser, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another instance may change or send a new draft between the create's APPEND and its
    read-back (a scheduler claims a draft that is due already). The create still answers 201
    with that draft (as stored, or as it stands after the other's change), never 409 (the
    caller would create and send it twice) nor an empty shell; afterwards the draft answers as
    it stands. Deterministic: the other instance acts right after the create's APPEND."""
    config = make_config(devstack, user)
    account = config.accounts[0]
    async with app_for(devstack, user, config) as api, app_for(devstack, user, config) as rival:
        real_append = ImapConnection.append
        meanwhile: list[Callable[[int], Awaitable[object]]] = []

        async def append_then_the_rival(conn: ImapConnection, mailbox: str, message: bytes,
                                        *args: Any, **kwargs: Any) -> Any:
            appended = await real_append(conn, mailbox, message, *args, **kwargs)
            if meanwhile and appended is not None:
                await meanwhile.pop(0)(appended.uid)  # the rival's own APPENDs come through here
            return appended

        monkeypatch.setattr(ImapConnection, "append", append_then_the_rival)

        async def rival_edits(uid: int) -> object:
            return await app_of(rival)[DRAFTS].replace(account, uid, {"subject": "Edited"})

        meanwhile.append(rival_edits)
        edited = await create_exante(api, to=["ed@elsewhere.test"], subject="Original")
        assert meanwhile == []
        assert edited["to"] == ["ed@elsewhere.test"] and edited["subject"] in ("Original", "Edited")
        assert edited["status"] == "draft" and edited["message_id"]
        now = await get_exante(api, edited["uid"])  # by the stable id the create answered
        assert now["subject"] == "Edited" and now["message_id"] == edited["message_id"]

        async def rival_sends(uid: int) -> object:
            return await app_of(rival)[SENDING].send(account, uid)

        meanwhile.append(rival_sends)
        sent = await create_exante(api, to=["ed@elsewhere.test"], subject="Sent at once")
        assert meanwhile == []
        assert sent["to"] == ["ed@elsewhere.test"] and sent["subject"] == "Sent at once"
        assert sent["status"] in ("draft", "sent") and sent["message_id"]
        assert (await get_exante(api, sent["uid"]))["status"] == "sent"
        assert len(with_subject(delivered_by(devstack, user), "Sent at once")) == 1
        assert [m.message["Subject"] for m in await messages(api, "Drafts")] == ["Edited"]


async def test_get_while_another_instance_finishes_the_send(
        devstack: DevStack, user: MailUser, monkeypatch: pytest.MonkeyPatch) -> None:
    """A GET by the stable id that found the draft in Drafts, which another instance then files
    into Sent before the GET reads it, answers the sent record (not 409). Deterministic: the
    other instance sends right before the GET's FETCH of the whole message."""
    config = make_config(devstack, user)
    account = config.accounts[0]
    async with app_for(devstack, user, config) as api, app_for(devstack, user, config) as rival:
        record = await create_exante(api, to=["gus@elsewhere.test"], subject="Read while sent")
        real_fetch = ImapConnection.uid_fetch
        meanwhile: list[Callable[[], Awaitable[object]]] = []

        async def rival_first(conn: ImapConnection, uids: Any, items: str,
                              **kwargs: Any) -> Any:
            if meanwhile and "BODY.PEEK[]" in items:
                await meanwhile.pop(0)()  # the rival's own FETCHes come through here
            return await real_fetch(conn, uids, items, **kwargs)

        monkeypatch.setattr(ImapConnection, "uid_fetch", rival_first)

        async def rival_sends() -> object:
            return await app_of(rival)[SENDING].send(account, uuid.UUID(record["uid"]))

        meanwhile.append(rival_sends)
        state = await get_exante(api, record["uid"])
        assert meanwhile == []
        assert state["status"] == "sent" and state["message_id"] == record["message_id"]
        assert len(delivered_by(devstack, user)) == 1


# ----------------------------------------------------------------------------- 7. replies

async def test_reply_marks_the_original_answered(devstack: DevStack, user: MailUser) -> None:
    async with app_for(devstack, user, make_config(devstack, user)) as api:
        original_id = f"<orig-{uuid.uuid4().hex}@elsewhere.test>"
        original = (f"From: Quinn <quinn@elsewhere.test>\r\nTo: {user.email}\r\n"
                    f"Subject: Question\r\nMessage-ID: {original_id}\r\n"
                    "Date: Mon, 02 Mar 2026 09:00:00 +0000\r\n\r\nA question?\r\n").encode()
        inbox_uid = await asyncio.to_thread(api.append, original, "INBOX")
        other_uid = await asyncio.to_thread(
            api.append, original.replace(original_id.encode(), b"<other@elsewhere.test>"), "INBOX")
        created = await create_jasni(api, to="quinn@elsewhere.test", subject="Re: Question",
                                     text="An answer.", inReplyTo=original_id,
                                     references=original_id)
        reply = await send_jasni(api, created["uid"])
        assert reply.status == 200, reply.body

        [wire] = delivered_by(devstack, user)
        assert f"\r\nIn-Reply-To: {original_id}\r\n".encode() in wire.data
        flags = {m.uid: m.flags for m in await messages(api, "INBOX")}
        assert "\\Answered" in flags[inbox_uid]
        assert "\\Answered" not in flags[other_uid]


# ----------------------------------------------------------------------------- 8. IMAP economy
# What a send and an idle scheduler tick ask of the IMAP server, as the server receives it: the
# account's IMAP connections go through a recording proxy (tests/imap_proxy.py) that hides
# nothing.

@pytest.fixture
def wire(devstack: DevStack) -> Iterator[CapabilityHidingProxy]:
    proxy = CapabilityHidingProxy(devstack.ports.imap, ()).start()
    try:
        yield proxy
    finally:
        proxy.stop()


class Received:
    """The commands the IMAP server received through ``proxy`` from now on, each as
    ``"<mailbox selected in that session> | <command>"``."""

    def __init__(self, proxy: CapabilityHidingProxy) -> None:
        self.proxy = proxy
        self.start = len(proxy.commands)

    def lines(self) -> list[str]:
        selected: dict[int, str] = {}
        out: list[str] = []
        for i, (session, command) in enumerate(list(self.proxy.commands)):
            if i >= self.start:
                out.append(f"{selected.get(session, '-')} | {command}")
            opened = re.match(r'(?i)(?:SELECT|EXAMINE) ("(?:[^"\\]|\\.)*"|\S+)', command)
            if opened:
                selected[session] = opened.group(1).strip('"')
            elif re.match(r"(?i)(?:UNSELECT|CLOSE)\b", command):
                selected.pop(session, None)
        return out

    def clear(self) -> None:
        self.start = len(self.proxy.commands)

    def __iter__(self) -> Iterator[str]:
        return iter(self.lines())

    def __bool__(self) -> bool:
        return bool(self.lines())

    def __repr__(self) -> str:
        return repr(self.lines())


def searches(commands: Received) -> list[str]:
    return [c for c in commands if " | UID SEARCH" in c]


async def test_a_send_files_without_reading_sent_back(
        devstack: DevStack, user: MailUser, wire: CapabilityHidingProxy) -> None:
    """After SMTP accepted, the direct send neither searches Sent for an earlier copy (it has
    just claimed the draft itself) nor fetches its copy back: the record it answers is built
    from what it appended, and is what Sent holds."""
    config = make_config(devstack, user, imap_port=wire.port)
    account = config.accounts[0]
    async with app_for(devstack, user, config) as api:
        record = await create_exante(api, to=["Uma <uma@elsewhere.test>"], cc=["vi@elsewhere.test"],
                                     bcc=["wes@elsewhere.test"], subject="Filed cheaply",
                                     context_type="invoice", context_id="inv-7")
        commands = Received(wire)
        sent = await app_of(api)[SENDING].send(account, uuid.UUID(record["uid"]),
                                               idempotency_key="cheap-1")
        # nothing ran in Sent: APPEND needs no SELECT, and the copy is not read back
        assert [c for c in commands if c.startswith("Sent") or ("SELECT" in c and "Sent" in c)
                ] == [], commands
        assert [c for c in searches(commands) if "X-Mailbridge-Id" in c] == [], commands

        [copy] = await messages(api, "Sent")
        assert (sent.folder, sent.uid, sent.raw) == ("Sent", copy.uid, copy.raw)
        assert sent.size == len(copy.raw) and sent.flags == ("\\Seen",)
        assert sent.status.value == "sent" and str(sent.id) == record["uid"]
        for name in ("Bcc", "X-Mailbridge-Id", "X-Mailbridge-Send-State", "X-Mailbridge-Send-Key",
                     "X-Mailbridge-Context-Type", "X-Mailbridge-Context-Id"):
            assert copy.message[name], name
        assert copy.message["X-Mailbridge-Send-Key"] == "cheap-1"
        # the record built from what was appended answers as the copy read back does
        read_back = await get_exante(api, record["uid"])
        assert render_draft(sent).model_dump(mode="json") == read_back
        assert read_back["bcc"] == ["wes@elsewhere.test"] and read_back["status"] == "sent"
        again = await api.call("POST", f"/api/email/drafts/{record['uid']}/send")
        assert again.status == 200 and again.body == read_back, again.body
        assert len(delivered_by(devstack, user)) == 1
        assert await messages(api, "Drafts") == []


async def test_idle_scheduler_ticks_skip_the_searches_but_miss_no_change(
        devstack: DevStack, user: MailUser, wire: CapabilityHidingProxy) -> None:
    """While Drafts is unchanged (UIDVALIDITY, UIDNEXT, MESSAGES, HIGHESTMODSEQ) a tick of the
    scheduler runs no SEARCH; any change shows at the next tick: a draft scheduled through
    another instance, a draft whose $MailbridgePending is cleared, one marked \\Deleted."""
    config = make_config(devstack, user, imap_port=wire.port)
    account = config.accounts[0]
    async with app_for(devstack, user, config) as api, app_for(devstack, user, config) as other:
        service = Scheduler(app_of(api)[SENDING])
        later = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
        waiting = await create_exante(api, to=["xan@elsewhere.test"], subject="Later",
                                      planned_send_at=rfc3339(later))
        now = datetime.now(UTC)
        assert await service.due(account, now) == []
        await service.sweep(account, now)

        commands = Received(wire)
        assert await service.due(account, now) == []
        await service.sweep(account, now)
        assert commands and searches(commands) == [], commands  # idle: STATUS (and NOOP) only
        # the remembered times still meet the clock at every tick
        [due] = await service.due(account, later)
        assert (str(due.id), due.when) == (waiting["uid"], later)
        assert searches(commands) == []

        # scheduled through another instance (its own pools): found at the next tick
        overdue = await create_exante(other, to=["yul@elsewhere.test"], subject="Overdue",
                                      planned_send_at=rfc3339(now - timedelta(minutes=1)))
        [due] = await service.due(account, datetime.now(UTC))
        assert str(due.id) == overdue["uid"]
        assert len(searches(commands)) == 1

        # a draft still being written (pending) is not due; the flag's removal alone (no new
        # message, no expunge) makes it due at the next tick
        pending_id = uuid.uuid4()
        raw = (f"X-Mailbridge-Id: {pending_id}\r\n"
               f"X-Mailbridge-Planned-Send-At: {rfc3339(now - timedelta(minutes=2))}\r\n"
               ).encode() + raw_draft(user.email, "zed@elsewhere.test", "Pending")
        pending_uid = await asyncio.to_thread(api.append, raw, "Drafts",
                                              "\\Draft $MailbridgePending")
        assert [str(d.id) for d in await service.due(account, datetime.now(UTC))] == \
               [overdue["uid"]]
        commands.clear()
        assert [str(d.id) for d in await service.due(account, datetime.now(UTC))] == \
               [overdue["uid"]]
        assert searches(commands) == []

        def store(uid: int, action: str, flag: str) -> None:
            with api.imap() as client:
                client.select("Drafts")
                typ, data = client.uid("STORE", str(uid), action, f"({flag})")
                assert typ == "OK", data

        await asyncio.to_thread(store, pending_uid, "-FLAGS.SILENT", "$MailbridgePending")
        assert [str(d.id) for d in await service.due(account, datetime.now(UTC))] == \
               [str(pending_id), overdue["uid"]]  # the earlier time first

        # and a flag set elsewhere (\Deleted, not expunged) takes it out again
        overdue_uid = next(m.uid for m in await messages(api, "Drafts")
                           if m.message["Subject"] == "Overdue")
        await asyncio.to_thread(store, overdue_uid, "+FLAGS.SILENT", "\\Deleted")
        assert [str(d.id) for d in await service.due(account, datetime.now(UTC))] == \
               [str(pending_id)]


async def test_without_mod_sequences_every_tick_searches(
        devstack: DevStack, wire: CapabilityHidingProxy) -> None:
    """A mailbox that keeps no mod-sequences (NOMODSEQ) cannot tell a flag change: every tick
    searches Drafts again, so a draft whose $MailbridgePending is cleared is due at the next."""
    user = MailUser(email=f"nomodseq{uuid.uuid4().hex[:8]}@example.test", password="pw",
                    id=uuid.uuid4())
    devstack.add_user(user.email, user.password, "userdb_mail=maildir:~/Maildir:INDEX=MEMORY")
    config = make_config(devstack, user, imap_port=wire.port)
    account = config.accounts[0]
    async with app_for(devstack, user, config) as api:
        service = Scheduler(app_of(api)[SENDING])
        now = datetime.now(UTC)
        draft_id = uuid.uuid4()
        raw = (f"X-Mailbridge-Id: {draft_id}\r\n"
               f"X-Mailbridge-Planned-Send-At: {rfc3339(now - timedelta(minutes=1))}\r\n"
               ).encode() + raw_draft(user.email, "ivo@elsewhere.test", "Pending")
        uid = await asyncio.to_thread(api.append, raw, "Drafts", "\\Draft $MailbridgePending")
        assert await service.due(account, now) == []
        await service.sweep(account, now)

        commands = Received(wire)
        assert await service.due(account, now) == []
        await service.sweep(account, now)
        # with nothing to tell an unchanged folder by, the tick searches Drafts anew
        assert searches(commands) and all(c.startswith("Drafts | ") for c in searches(commands)), \
            commands

        def clear_pending() -> None:
            with api.imap() as client:
                client.select("Drafts")
                typ, data = client.uid("STORE", str(uid), "-FLAGS.SILENT", "($MailbridgePending)")
                assert typ == "OK", data

        await asyncio.to_thread(clear_pending)
        [due] = await service.due(account, datetime.now(UTC))
        assert due.id == draft_id


async def test_the_sweeper_checks_remembered_leases_at_every_tick(
        devstack: DevStack, user: MailUser, wire: CapabilityHidingProxy) -> None:
    """A claim whose lease runs is remembered, not searched for nor read at every tick; once the
    lease has expired (the folder unchanged meanwhile) the sweeper files it, delivered already,
    without sending it again."""
    config = make_config(devstack, user, imap_port=wire.port)
    account = config.accounts[0]
    async with app_for(devstack, user, config) as api:
        service = Scheduler(app_of(api)[SENDING])
        lease = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
        draft_id = uuid.uuid4()
        raw = (f"X-Mailbridge-Id: {draft_id}\r\nX-Mailbridge-Send-State: sending\r\n"
               f"X-Mailbridge-Lease-Until: {rfc3339(lease)}\r\n").encode() \
            + raw_draft(user.email, "ada@elsewhere.test", "Its sender died")
        await asyncio.to_thread(api.append, raw, "Drafts", "\\Draft \\Seen $MailbridgeDelivered")
        now = datetime.now(UTC)
        await service.sweep(account, now)  # held: left alone
        assert len(await messages(api, "Drafts")) == 1

        commands = Received(wire)
        await service.sweep(account, now)
        assert searches(commands) == [] and not any("BODY.PEEK[]" in c for c in commands)
        await service.sweep(account, lease + timedelta(seconds=1))
        assert not any("X-Mailbridge-Send-State" in c for c in searches(commands))
        assert await messages(api, "Drafts") == []
        [copy] = await messages(api, "Sent")
        assert copy.message["Subject"] == "Its sender died"
        assert copy.message["X-Mailbridge-Id"] == str(draft_id)
        assert delivered_by(devstack, user) == []  # filed, never delivered (again)


async def test_an_expired_claim_already_filed_in_sent_is_finished_not_failed(
        devstack: DevStack, user: MailUser) -> None:
    """A claim whose lease expired, without $MailbridgeDelivered, while Sent holds the copy its
    sender filed: the copy proves the delivery, so the sweeper finishes the filing (status
    sent, one copy in Sent) instead of marking it failed with an unknown outcome. (The random
    worker-kill test saw such drafts about once in twelve runs.)"""
    config = make_config(devstack, user)
    account = config.accounts[0]
    async with app_for(devstack, user, config) as api:
        service = Scheduler(app_of(api)[SENDING])
        lease = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
        draft_id = uuid.uuid4()
        raw = (f"X-Mailbridge-Id: {draft_id}\r\nX-Mailbridge-Send-State: sending\r\n"
               f"X-Mailbridge-Lease-Until: {rfc3339(lease)}\r\n").encode() \
            + raw_draft(user.email, "ada@elsewhere.test", "Filed, flag lost")
        await asyncio.to_thread(api.append, raw, "Drafts", "\\Draft \\Seen")
        await asyncio.to_thread(api.append, raw.replace(b"sending", b"sent"), "Sent", "\\Seen")
        await service.sweep(account, datetime.now(UTC))
        assert await messages(api, "Drafts") == []
        [copy] = await messages(api, "Sent")
        assert copy.message["X-Mailbridge-Id"] == str(draft_id)
        got = await app_of(api)[DRAFTS].get(account, draft_id)
        assert got.status is Status.SENT
        assert delivered_by(devstack, user) == []
