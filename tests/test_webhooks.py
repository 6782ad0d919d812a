"""Webhook subscriptions over dialect 2 (dialect 1's go through the Jasni SDK in
tests/test_jasni_sdk.py): each token sees only its own, they live in the mail server (a second
instance knows them), URLs that could reach the internal network are refused unless the operator
allows them, and bad input names the field."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from api_helpers import BOTH_TOKEN, OTHER_TOKEN, Api, running_api, start_api

from conftest import MailUser
from mailbridge.api import create_app
from mailbridge.config import parse_config
from mailbridge.devstack.stack import DevStack

HOOKS = "/api/email/webhooks"


@pytest.fixture
async def api(devstack: DevStack, user: MailUser) -> AsyncIterator[Api]:
    async with running_api(devstack, user) as running:
        yield running


async def test_crud_and_ownership(api: Api, devstack: DevStack) -> None:
    made = await api.call("POST", HOOKS, json_body={
        "url": "http://127.0.0.1:9/in", "events": ["draft.created", "draft.sent"]})
    assert made.status == 201, made.body
    hook = made.body
    assert hook["secret"].startswith("whsec_") and hook["active"] is True
    assert (hook["events"], hook["description"], hook["updated_at"]) == (
        ["draft.created", "draft.sent"], None, None)
    listed = await api.call("GET", HOOKS)
    assert [(h["id"], h["secret"]) for h in listed.body["items"]] == [(hook["id"], None)]
    patched = await api.call("PATCH", f"{HOOKS}/{hook['id']}",
                             json_body={"description": "CRM", "active": False})
    assert (patched.body["description"], patched.body["active"], patched.body["events"]) == (
        "CRM", False, ["draft.created", "draft.sent"])

    # another token, even one that may use the same account, sees none of it
    for token in (OTHER_TOKEN, BOTH_TOKEN):
        assert (await api.call("GET", HOOKS, token=token)).body["items"] == []
        assert (await api.call("GET", f"{HOOKS}/{hook['id']}", token=token)).status == 404
        assert (await api.call("DELETE", f"{HOOKS}/{hook['id']}", token=token)).status == 404

    # a second instance on the same mail server knows it: the record is in the mailbox
    second = await start_api(devstack, api.user, api.other)
    try:
        got = await second.call("GET", f"{HOOKS}/{hook['id']}")
        assert got.status == 200 and got.body["description"] == "CRM"
    finally:
        await second.client.close()

    def mailbox() -> list[bytes]:
        with api.imap() as client:
            client.select("Mailbridge", readonly=True)
            return client.uid("SEARCH", "HEADER", "X-Mailbridge-Record", "webhook")[1][0].split()

    assert len(await asyncio.to_thread(mailbox)) == 1  # the update replaced the record
    assert (await api.call("DELETE", f"{HOOKS}/{hook['id']}")).status == 204
    assert (await api.call("GET", f"{HOOKS}/{hook['id']}")).status == 404
    assert await asyncio.to_thread(mailbox) == []


async def test_bad_input_names_the_field(api: Api) -> None:
    cases = [
        ({"url": "ftp://example.com/x", "events": ["draft.sent"]}, 400, "url"),
        ({"url": "https://user:pw@example.com/x", "events": ["draft.sent"]}, 400, "url"),
        ({"url": "https://example.com/ x", "events": ["draft.sent"]}, 400, "url"),
        ({"url": "https://example.com/x", "events": []}, 422, "events"),
        ({"url": "https://example.com/x", "events": ["email.spam"]}, 400, "events[0]"),
        ({"url": "https://example.com/x"}, 422, "events"),
        ({"url": "https://example.com/x", "events": ["draft.sent"], "secret": "mine"}, 400,
         "secret"),
    ]
    for body, status, field in cases:
        answer = await api.call("POST", HOOKS, json_body=body)
        assert (answer.status, answer.body["error"]["field"]) == (status, field), (body, answer.body)
    assert (await api.call("GET", f"{HOOKS}/not-a-uuid")).status == 400
    assert (await api.call("PATCH", f"{HOOKS}/{'0' * 8}-0000-4000-8000-{'0' * 12}",
                           json_body={"active": True})).status == 404
    assert (await api.call("GET", HOOKS)).body["items"] == []


async def test_private_targets_need_the_operators_yes(devstack: DevStack, user: MailUser) -> None:
    data = devstack.config_data(accounts=[devstack.account_entry(user.id, user.email)])
    data["server"]["allow_private_webhooks"] = False
    data["server"]["watch_mailboxes"] = False  # not this test's subject (it would cost 3 s)
    client = TestClient(TestServer(create_app(parse_config(data, source="test"),
                                              scheduler=False)))
    await client.start_server()
    try:
        headers = {"Authorization": "Bearer dev-token"}
        for url in ("http://127.0.0.1:8080/x", "http://localhost/x", "http://10.1.2.3/x",
                    "http://192.168.0.9/x", "http://[::1]/x", "http://169.254.169.254/latest",
                    "http://printer.local/x"):
            answer = await client.post(HOOKS, json={"url": url, "events": ["draft.sent"]},
                                       headers=headers)
            body = await answer.json()
            assert (answer.status, body["error"]["field"]) == (400, "url"), (url, body)
            assert "allow_private_webhooks" in body["error"]["message"]
        public = await client.post(HOOKS, json={"url": "https://hooks.example.com/x",
                                                "events": ["draft.sent"]}, headers=headers)
        assert public.status == 201
    finally:
        await client.close()
