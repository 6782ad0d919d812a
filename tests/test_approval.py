"""Human in the loop (issue 13): an agent's token (write, no send) asks for a send and nothing
is delivered; a reviewer's token (approve) approves it, and bob receives exactly the approved
version once, the record and the Sent copy naming who asked and who approved; a rejection keeps
the draft with its reason; a change after an approval sends the draft back to review, whether
it comes through the API or from a mail client; an account that requires approval holds every
send, the scheduler's included."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from api_helpers import APPROVE_TOKEN, FULL_TOKEN, WRITE_TOKEN, Api, running_api
from receivers import Receiver

from conftest import MailUser
from mailbridge.api.keys import SENDING
from mailbridge.devstack.stack import DevStack
from mailbridge.scheduler import Scheduler


@pytest.fixture
async def api(devstack: DevStack, user: MailUser) -> AsyncIterator[Api]:
    async with running_api(devstack, user) as running:
        yield running


def delivered(devstack: DevStack, user: MailUser, subject: str) -> list[bytes]:
    return [m.data for m in devstack.smtp.delivered
            if m.login == user.email and f"Subject: {subject}\r\n".encode() in m.data]


async def agent_asks(api: Api, subject: str, **extra: object) -> str:
    made = await api.call("POST", "/api/email/drafts", token=WRITE_TOKEN, json_body={
        "to": ["bob@example.test"], "subject": subject, "body_text": "v1", **extra})
    assert made.status == 201, made.body
    asked = await api.call("POST", f"/api/email/drafts/{made.body['uid']}/send",
                           token=WRITE_TOKEN)
    assert asked.status == 202, asked.body
    assert asked.body["status"] == "awaiting_approval"
    assert asked.body["approval"]["status"] == "requested"
    assert asked.body["approval"]["requested_by"] == "write"
    return str(made.body["uid"])


async def test_an_agent_asks_a_person_approves(api: Api, devstack: DevStack) -> None:
    draft = await agent_asks(api, "Needs a yes")
    assert delivered(devstack, api.user, "Needs a yes") == []
    listed = await api.call("GET", "/api/email/drafts", params={"status": "awaiting_approval"})
    assert [d["uid"] for d in listed.body["items"]] == [draft]

    # the agent cannot approve; the reviewer edits nothing and approves
    assert (await api.call("POST", f"/api/email/drafts/{draft}/approve",
                           token=WRITE_TOKEN)).status == 403
    approved = await api.call("POST", f"/api/email/drafts/{draft}/approve", token=APPROVE_TOKEN)
    assert approved.status == 200, approved.body
    assert approved.body["status"] == "sent"
    assert approved.body["approval"]["decided_by"] == "approver"
    assert approved.body["approval"]["requested_by"] == "write"
    [got] = delivered(devstack, api.user, "Needs a yes")
    assert b"v1" in got and b"X-Mailbridge" not in got
    [copy] = [m for m in api.messages("Sent") if b"Needs a yes" in m.raw]
    assert copy.message["X-Mailbridge-Approval"] == "approved"
    assert copy.message["X-Mailbridge-Approval-Decided-By"] == "approver"
    assert copy.message["X-Mailbridge-Approval-Requested-By"] == "write"
    again = await api.call("POST", f"/api/email/drafts/{draft}/approve", token=APPROVE_TOKEN)
    assert again.status in (404, 409)
    assert len(delivered(devstack, api.user, "Needs a yes")) == 1


async def test_a_rejection_keeps_the_draft_and_its_reason(api: Api, devstack: DevStack) -> None:
    draft = await agent_asks(api, "Not like this")
    rejected = await api.call("POST", f"/api/email/drafts/{draft}/reject", token=APPROVE_TOKEN,
                              json_body={"reason": "Wrong amount"})
    assert rejected.status == 200, rejected.body
    assert rejected.body["status"] == "rejected"
    assert rejected.body["approval"]["reason"] == "Wrong amount"
    assert rejected.body["approval"]["decided_by"] == "approver"
    bad = await api.call("POST", f"/api/email/drafts/{draft}/reject", token=APPROVE_TOKEN,
                         json_body={"reason": "a\r\nBcc: evil@example.test"})
    assert bad.status == 400 and bad.body["error"]["field"] == "reason"
    # a send token cannot send it past the rejection either
    refused = await api.call("POST", f"/api/email/drafts/{draft}/send", token=FULL_TOKEN)
    assert refused.status == 409 and refused.body["error"]["code"] == "approval_required"
    assert delivered(devstack, api.user, "Not like this") == []
    # the agent revises and asks again
    revised = await api.call("POST", "/api/email/drafts", token=WRITE_TOKEN,
                             json_body={"uid": draft, "body_text": "v2"})
    assert revised.body["status"] == "rejected"
    asked = await api.call("POST", f"/api/email/drafts/{draft}/send", token=WRITE_TOKEN)
    assert asked.status == 202 and asked.body["approval"]["reason"] is None


async def test_a_change_after_approval_goes_back_to_review(api: Api, devstack: DevStack) -> None:
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    draft = await agent_asks(api, "Approved then changed", planned_send_at=later)
    approved = await api.call("POST", f"/api/email/drafts/{draft}/approve", token=APPROVE_TOKEN)
    assert approved.status == 200 and approved.body["status"] == "scheduled", approved.body
    changed = await api.call("POST", "/api/email/drafts", token=WRITE_TOKEN,
                             json_body={"uid": draft, "body_text": "v2, not approved"})
    assert changed.body["status"] == "awaiting_approval"
    assert changed.body["approval"]["decided_by"] is None


async def test_a_mail_client_change_after_approval_is_not_sent(api: Api, devstack: DevStack,
                                                               user: MailUser) -> None:
    """The approval approves one message: a person's edit in a mail client (which keeps
    mailbridge's headers, as mutt does) is caught by the send, which puts the draft up for
    approval again instead of delivering what nobody approved."""
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    draft = await agent_asks(api, "Edited in mutt", planned_send_at=soon)
    assert (await api.call("POST", f"/api/email/drafts/{draft}/approve",
                           token=APPROVE_TOKEN)).status == 200
    [stored] = [m for m in api.messages("Drafts") if b"Edited in mutt" in m.raw]
    edited = stored.raw.replace(b"v1", b"v1 and a line nobody approved")
    await asyncio.to_thread(api.append, edited, "Drafts", "(\\Draft \\Seen)")
    with api.imap() as client:
        client.select("Drafts")
        client.uid("STORE", str(stored.uid), "+FLAGS", "(\\Deleted)")
        client.uid("EXPUNGE", str(stored.uid))
    await asyncio.sleep(1.2)
    scheduler = Scheduler(api.client.app[SENDING])
    account = api.client.app[SENDING].drafts.accounts.find(user.email)
    assert account is not None
    for due in await scheduler.due(account, datetime.now(UTC)):
        await scheduler.send_due(due)
    assert delivered(devstack, user, "Edited in mutt") == []
    now = await api.call("GET", f"/api/email/drafts/{draft}")
    assert now.body["status"] == "awaiting_approval", now.body


async def test_an_account_that_requires_approval(devstack: DevStack, user: MailUser) -> None:
    async with running_api(devstack, user, accounts={"require_approval": True}) as api:
        made = await api.call("POST", "/api/email/drafts", json_body={
            "to": ["bob@example.test"], "subject": "Even mine", "body_text": "x"})
        asked = await api.call("POST", f"/api/email/drafts/{made.body['uid']}/send")
        assert asked.status == 202 and asked.body["approval"]["requested_by"] == "full"
        jasni = await api.call("POST", "/api/v1/emails/drafts", json_body={
            "to": "bob@example.test", "subject": "Also mine", "text": "x"})
        asked_1 = await api.call("POST", f"/api/v1/emails/drafts/{jasni.body['data']['uid']}/send",
                                 json_body={})
        assert asked_1.status == 202 and asked_1.body["data"]["status"] == "awaiting_approval"
        assert delivered(devstack, user, "Even mine") == delivered(devstack, user, "Also mine") == []
        sent = await api.call("POST", f"/api/email/drafts/{made.body['uid']}/approve",
                              token=APPROVE_TOKEN)
        assert sent.status == 200 and sent.body["status"] == "sent"
        assert len(delivered(devstack, user, "Even mine")) == 1


async def test_the_approval_events(api: Api, receiver: Receiver) -> None:
    hook = await api.call("POST", "/api/email/webhooks", json_body={
        "url": receiver.url("/review"),
        "events": ["draft.approval_requested", "draft.approved", "draft.rejected", "draft.sent"]})
    assert hook.status == 201, hook.body
    first = await agent_asks(api, "Event one")
    second = await agent_asks(api, "Event two")
    await api.call("POST", f"/api/email/drafts/{first}/approve", token=APPROVE_TOKEN)
    await api.call("POST", f"/api/email/drafts/{second}/reject", token=APPROVE_TOKEN,
                   json_body={"reason": "No"})
    await receiver.wait_for("/review", 5)
    got = [(e["type"], e["data"]["draft"]["subject"]) for e in receiver.events("/review")]
    assert sorted(got) == sorted([
        ("draft.approval_requested", "Event one"), ("draft.approval_requested", "Event two"),
        ("draft.approved", "Event one"), ("draft.sent", "Event one"),
        ("draft.rejected", "Event two")])
