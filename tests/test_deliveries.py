"""Webhook deliveries to a real HTTP receiver: the events the API causes, each delivered once to
each subscription that wants it, signed in its dialect's scheme (checked with the Jasni SDK's
verify_signature and the standardwebhooks library), retried after a 5xx, and never holding up
the API when the receiver hangs."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from api_helpers import OTHER_TOKEN, Api, running_api
from jasni.webhooks import verify_signature
from receivers import Receiver
from standardwebhooks.webhooks import Webhook

from conftest import MailUser
from mailbridge.api.keys import CONFIG, WEBHOOKS
from mailbridge.api.schemas import JasniEventBody, StandardEventBody
from mailbridge.devstack.stack import DevStack
from mailbridge.subscriptions import Subscription, is_private_host
from mailbridge.views import utcnow


@pytest.fixture
async def api(devstack: DevStack, user: MailUser) -> AsyncIterator[Api]:
    async with running_api(devstack, user) as running:
        yield running


async def test_each_event_once_signed_in_each_scheme(api: Api, receiver: Receiver) -> None:
    d2 = await api.call("POST", "/api/email/webhooks", json_body={
        "url": receiver.url("/d2"), "events": ["draft.created", "draft.updated", "draft.sent",
                                               "draft.deleted", "email.sent"]})
    d1 = await api.call("POST", "/api/v1/webhooks", json_body={
        "url": receiver.url("/d1"), "events": ["email.sent", "email.deleted"]})
    other = await api.call("POST", "/api/email/webhooks", token=OTHER_TOKEN, json_body={
        "url": receiver.url("/other"), "events": ["draft.created", "email.sent"]})
    assert (d2.status, d1.status, other.status) == (201, 201, 201)

    made = await api.call("POST", "/api/email/drafts", json_body={
        "to": ["bob@example.test"], "subject": "Hooked", "body_text": "x"})
    draft = made.body["uid"]
    await api.call("POST", "/api/email/drafts", json_body={"uid": draft, "subject": "Hooked 2"})
    assert (await api.call("POST", f"/api/email/drafts/{draft}/send")).status == 200
    doomed = await api.call("POST", "/api/email/drafts", json_body={"subject": "Doomed"})
    assert (await api.call("DELETE", f"/api/email/drafts/{doomed.body['uid']}")).status == 204
    inbox = await asyncio.to_thread(api.append, b"Subject: Old\r\nMessage-ID: <old@x>\r\n\r\nx\r\n")
    assert (await api.call("DELETE", f"/api/v1/emails/{inbox}")).status == 200

    await receiver.wait_for("/d2", 6)
    await receiver.wait_for("/d1", 2)
    d2_events = receiver.events("/d2")
    assert sorted(e["type"] for e in d2_events) == sorted([
        "draft.created", "draft.updated", "draft.sent", "email.sent", "draft.created",
        "draft.deleted"])
    assert receiver.events("/other") == []  # another token's, and another account
    by_type = {e["type"]: e["data"] for e in d2_events}
    assert by_type["draft.updated"]["draft"]["subject"] == "Hooked 2"
    assert by_type["draft.sent"]["draft"]["status"] == "sent"
    assert by_type["email.sent"]["email"]["to"] == ["bob@example.test"]
    assert {e["data"]["origin"] for e in d2_events} == {"api"}
    d1_events = receiver.events("/d1")
    assert sorted((e["event"], e["data"]["subject"]) for e in d1_events) == [
        ("email.deleted", "Old"), ("email.sent", "Hooked 2")]

    # signatures: each scheme with its own verifier; an event's id is the same for every
    # subscription it goes to, and no subscription gets one twice
    standard = Webhook(d2.body["secret"])
    ids: dict[str, list[tuple[str, str]]] = {"/d1": [], "/d2": []}
    for path, headers, body in receiver.got:
        if path == "/d2":
            event = standard.verify(body, headers)
            ids[path].append((event["type"], headers["webhook-id"]))
            assert headers["webhook-id"] == event["data"]["event_id"]
        elif path == "/d1":
            assert verify_signature(body, headers["X-Jasni-Signature"],
                                    d1.body["data"]["webhook"]["secret"])
            event = json.loads(body)
            ids[path].append((event["event"], event["data"]["eventId"]))
    for got in ids.values():
        assert len({i for _, i in got}) == len(got)
    # the bodies are what /openapi.json's webhooks say (their schemas are of these models)
    for body in receiver.events("/d2"):
        StandardEventBody.model_validate(body)
    for body in receiver.events("/d1"):
        JasniEventBody.model_validate(body)
    document = (await api.call("GET", "/openapi.json")).body
    assert set(document["webhooks"]) == {"jasniEvent", "standardEvent"}
    assert dict(ids["/d1"])["email.sent"] == dict(ids["/d2"])["email.sent"]
    log = await api.call("GET", f"/api/email/webhooks/{d2.body['id']}/deliveries")
    assert len(log.body["items"]) == 6
    assert {(a["outcome"], a["status"], a["attempt"]) for a in log.body["items"]} == {
        ("delivered", 204, 1)}


async def test_a_5xx_is_tried_again(api: Api, receiver: Receiver) -> None:
    receiver.fail = 1
    hook = await api.call("POST", "/api/v1/webhooks", json_body={
        "url": receiver.url("/flaky"), "events": ["email.sent"]})
    made = await api.call("POST", "/api/email/drafts", json_body={
        "to": ["bob@example.test"], "subject": "Again", "body_text": "x"})
    assert (await api.call("POST", f"/api/email/drafts/{made.body['uid']}/send")).status == 200
    await receiver.wait_for("/flaky", 2, seconds=6)
    first, second = receiver.events("/flaky")
    assert first == second  # the same event, the same id
    log = await api.call("GET", f"/api/v1/webhooks/{hook.body['data']['webhook']['id']}/deliveries")
    assert [(a["attempt"], a["status"], a["outcome"]) for a in log.body["data"]["deliveries"]] == [
        (2, 204, "delivered"), (1, 500, "retrying")]


async def test_a_hanging_receiver_does_not_slow_the_api(devstack: DevStack, user: MailUser,
                                                       receiver: Receiver) -> None:
    receiver.hang = True
    async with running_api(devstack, user, server={"webhook_timeout_seconds": 0.5,
                                                   "webhook_retry_seconds": 0}) as api:
        hook = await api.call("POST", "/api/email/webhooks", json_body={
            "url": receiver.url("/slow"), "events": ["draft.created"]})
        took = await three_creates(api)
        assert max(took) < 0.4, took  # a delivery waits 0.5 s for its answer, the API does not
        await asyncio.sleep(1.0)
        log = await api.call("GET", f"/api/email/webhooks/{hook.body['id']}/deliveries")
        assert [(a["status"], a["outcome"]) for a in log.body["items"]] == [(None, "failed")] * 3
        assert all("no answer within 0.5s" in a["error"] for a in log.body["items"])


async def test_a_static_webhook_of_the_configuration(devstack: DevStack, user: MailUser,
                                                     receiver: Receiver) -> None:
    """[[webhooks]]: no token owns it; it hears of the accounts it names, signed with the
    configured secret."""
    secret = "whsec_" + base64.b64encode(b"s" * 32).decode()
    hook = {"url": receiver.url("/static"), "events": ["draft.created"], "secret": secret,
            "accounts": [user.email]}
    async with running_api(devstack, user, webhooks=[hook]) as api:
        made = await api.call("POST", "/api/email/drafts", json_body={"subject": "Mine"})
        assert made.status == 201
        theirs = await api.call("POST", "/api/email/drafts", token=OTHER_TOKEN,
                                json_body={"subject": "Theirs"})
        assert theirs.status == 201
        await receiver.wait_for("/static", 1)
        [(_, headers, body)] = [g for g in receiver.got if g[0] == "/static"]
        event = Webhook(secret).verify(body, headers)
        assert (event["type"], event["data"]["draft"]["subject"]) == ("draft.created", "Mine")
        assert (await api.call("GET", "/api/email/webhooks")).body["items"] == []  # not the API's


async def test_a_name_that_resolves_to_a_private_address_is_not_called(
        devstack: DevStack, user: MailUser, receiver: Receiver) -> None:
    """Without allow_private_webhooks a URL naming a private address is refused when it is
    given; one whose name only resolves to such an address (here a record written into the
    mailbox by hand, as a person could) is refused when a delivery would connect."""
    host = socket.gethostname()  # /etc/hosts: a loopback or the container's private address
    try:
        resolved = {info[4][0] for info in socket.getaddrinfo(host, 80)}
    except OSError:
        resolved = set()
    if not resolved or not all(is_private_host(str(a)) for a in resolved):
        pytest.skip(f"this machine's name {host!r} does not resolve to a private address")
    async with running_api(devstack, user, server={"allow_private_webhooks": False}) as api:
        port = receiver.url("/x").split(":")[2].split("/")[0]
        made = await api.call("POST", "/api/email/webhooks", json_body={
            "url": f"http://localhost:{port}/x", "events": ["draft.created"]})
        assert made.status == 400 and made.body["error"]["field"] == "url"
        sub = Subscription(
            id=uuid.uuid4(), owner="full", url=f"http://{host}:{port}/sneaky",
            events=("draft.created",), active=True, description=None, scheme="standard",
            secret="whsec_" + base64.b64encode(b"k" * 32).decode(), created_at=utcnow(),
            updated_at=None)
        await api.client.app[WEBHOOKS].records.add(api.client.app[CONFIG].accounts[0],
                                                   "webhook", str(sub.id), sub.data())
        assert (await api.call("POST", "/api/email/drafts", json_body={"subject": "x"})
                ).status == 201
        for _ in range(50):
            log = await api.call("GET", f"/api/email/webhooks/{sub.id}/deliveries")
            if log.body["items"]:
                break
            await asyncio.sleep(0.1)
        [attempt] = log.body["items"]
        assert (attempt["outcome"], attempt["status"]) == ("failed", None)
        assert "resolves to a private address" in attempt["error"]
        assert receiver.got == []


async def test_a_dead_receiver_does_not_slow_the_api(api: Api) -> None:
    """Nothing listens at the URL: every attempt fails at once (connection refused) and is
    tried again later, in its own task; the API answers as fast as without webhooks."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # closed again before it is used: refused
    hook = await api.call("POST", "/api/email/webhooks", json_body={
        "url": f"http://127.0.0.1:{port}/gone", "events": ["draft.created"]})
    took = await three_creates(api)
    assert max(took) < 0.4, took
    await asyncio.sleep(0.5)
    log = await api.call("GET", f"/api/email/webhooks/{hook.body['id']}/deliveries")
    assert [(a["status"], a["outcome"]) for a in log.body["items"]] == [(None, "retrying")] * 3
    assert all("ClientConnectorError" in a["error"] for a in log.body["items"])


async def three_creates(api: Api) -> list[float]:
    """How long each of three draft creates took, in seconds (each emits draft.created)."""
    took = []
    for i in range(3):
        started = time.perf_counter()
        assert (await api.call("POST", "/api/email/drafts",
                               json_body={"subject": f"Timed {i}"})).status == 201
        took.append(time.perf_counter() - started)
    return took


async def test_one_connection_per_account_is_enough(devstack: DevStack, user: MailUser,
                                                    receiver: Receiver) -> None:
    """pool_size = 1 with a subscription to removals: a delete and a send claim their removal
    (mailbridge.ledger) while they hold the account's one connection; the claim goes through
    the connections of mailbridge's own mailbox, so neither waits for itself."""
    async with running_api(devstack, user, accounts={"pool_size": 1}) as api:
        hook = await api.call("POST", "/api/email/webhooks", json_body={
            "url": receiver.url("/one"), "events": ["draft.deleted", "draft.sent"]})
        assert hook.status == 201
        async with asyncio.timeout(15):
            doomed = await api.call("POST", "/api/email/drafts", json_body={"subject": "Gone"})
            assert (await api.call("DELETE", f"/api/email/drafts/{doomed.body['uid']}")).status \
                == 204
            sent = await api.call("POST", "/api/email/drafts", json_body={
                "to": ["bob@example.test"], "subject": "Sent", "body_text": "x"})
            assert (await api.call("POST", f"/api/email/drafts/{sent.body['uid']}/send")).status \
                == 200
            await receiver.wait_for("/one", 2)
        assert sorted(e["type"] for e in receiver.events("/one")) == ["draft.deleted",
                                                                      "draft.sent"]
