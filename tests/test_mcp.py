"""MCP tools at /mcp (issue 13), driven by the official `mcp` SDK's own client over the
streamable HTTP transport, against a real Dovecot and SMTP server.

The client lists the tools (each with its schemas), an agent's token creates and updates a
draft and asks for its send, which waits for approval with nothing delivered; a token that may
send sends exactly once; a reply draft answers a received message; failures are MCP tool errors
with the API's own texts; a request without a valid token is refused before MCP sees it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
from api_helpers import APPROVE_TOKEN, FULL_TOKEN, READ_TOKEN, WRITE_TOKEN, Api, running_api
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from conftest import MailUser
from mailbridge.devstack.stack import DevStack

TOOLS = {"list_drafts", "get_draft", "create_draft", "update_draft", "delete_draft",
         "send_draft", "reply_draft", "list_emails", "get_email"}


@pytest.fixture
async def api(devstack: DevStack, user: MailUser) -> AsyncIterator[Api]:
    async with running_api(devstack, user) as running:
        yield running


@asynccontextmanager
async def mcp_client(api: Api, token: str) -> AsyncIterator[Client]:
    url = str(api.client.make_url("/mcp"))
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            yield client


async def call(client: Client, tool: str, **arguments: Any) -> CallToolResult:
    result = await client.call_tool(tool, arguments)
    assert isinstance(result, CallToolResult)
    return result


def data(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert result.structured_content is not None
    assert result.structured_content["error"]["message"] == text
    return text


def delivered(api: Api, subject: str) -> list[bytes]:
    return [m.data for m in api.devstack.smtp.delivered
            if m.login == api.user.email and f"Subject: {subject}\r\n".encode() in m.data]


async def test_the_tools_are_listed_with_their_schemas(api: Api) -> None:
    async with mcp_client(api, WRITE_TOKEN) as client:
        listed = await client.list_tools()
    tools = {t.name: t for t in listed.tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description and len(tool.description) > 40, tool.name
        assert "\n" not in tool.description and "  " not in tool.description
        assert tool.input_schema["type"] == "object"
        assert tool.output_schema is not None, tool.name
        assert "ctx" not in tool.input_schema.get("properties", {})
    assert tools["get_draft"].input_schema["required"] == ["draft_id"]
    assert "approval" in tools["send_draft"].description
    assert tools["get_draft"].annotations.read_only_hint is True  # type: ignore[union-attr]
    assert tools["delete_draft"].annotations.destructive_hint is True  # type: ignore[union-attr]
    created = tools["create_draft"].input_schema["properties"]
    assert {"to", "cc", "bcc", "subject", "body_text", "body_html", "planned_send_at",
            "context_type", "context_id", "account"} <= set(created)


async def test_an_agent_drafts_and_its_send_waits_for_approval(api: Api) -> None:
    async with mcp_client(api, WRITE_TOKEN) as agent:
        made = data(await call(agent, "create_draft", to=["Bob <bob@example.test>"],
                               subject="From the agent", body_text="First words",
                               context_type="ticket", context_id="T-7"))
        assert made["status"] == "draft" and made["to"] == ["Bob <bob@example.test>"]
        draft = made["uid"]
        changed = data(await call(agent, "update_draft", draft_id=draft,
                                  body_text="Better words", cc=["carol@example.test"]))
        assert changed["uid"] == draft
        assert (changed["body_text"], changed["subject"]) == ("Better words", "From the agent")
        assert changed["cc"] == ["carol@example.test"]

        asked = data(await call(agent, "send_draft", draft_id=draft))
        assert asked["status"] == "awaiting_approval"
        assert asked["approval"]["status"] == "requested"
        assert asked["approval"]["requested_by"] == "write"
        listed = data(await call(agent, "list_drafts", status="awaiting_approval"))
        assert [d["uid"] for d in listed["items"]] == [draft]
        assert listed["next_cursor"] is None
        shown = data(await call(agent, "get_draft", draft_id=draft))
        assert shown["status"] == "awaiting_approval" and shown["context_id"] == "T-7"
    assert delivered(api, "From the agent") == []

    # the API sees the same draft; the agent's token cannot approve it, a reviewer's can
    record = await api.call("GET", f"/api/email/drafts/{draft}")
    assert record.body["status"] == "awaiting_approval"
    assert (await api.call("POST", f"/api/email/drafts/{draft}/approve",
                           token=WRITE_TOKEN)).status == 403
    approved = await api.call("POST", f"/api/email/drafts/{draft}/approve", token=APPROVE_TOKEN)
    assert approved.body["status"] == "sent", approved.body
    sent = delivered(api, "From the agent")
    assert len(sent) == 1 and b"Better words" in sent[0]


async def test_a_token_that_may_send_sends_once(api: Api) -> None:
    async with mcp_client(api, FULL_TOKEN) as client:
        made = data(await call(client, "create_draft", to=["bob@example.test"],
                               subject="Sent over MCP", body_text="Hello"))
        first = data(await call(client, "send_draft", draft_id=made["uid"]))
        again = data(await call(client, "send_draft", draft_id=made["uid"]))
    assert first["status"] == again["status"] == "sent"
    assert len(delivered(api, "Sent over MCP")) == 1


async def test_a_retried_create_with_its_key_makes_one_draft(api: Api) -> None:
    async with mcp_client(api, WRITE_TOKEN) as agent:
        args = {"to": ["bob@example.test"], "subject": "Retried", "idempotency_key": "k-1"}
        first = data(await call(agent, "create_draft", **args))
        again = data(await call(agent, "create_draft", **args))
        assert again["uid"] == first["uid"]
        other = await call(agent, "create_draft", **{**args, "subject": "Something else"})
        assert other.structured_content["error"]["code"] == "idempotency_key_reused"  # type: ignore[index]
        bad = await call(agent, "create_draft", **{**args, "idempotency_key": "é"})
        assert error_text(bad) == "idempotency_key must be 1-200 printable ASCII characters"
        listed = data(await call(agent, "list_drafts"))
    assert [d["uid"] for d in listed["items"]] == [first["uid"]]


async def test_a_reply_draft_answers_a_received_message(api: Api) -> None:
    mid = f"<{uuid.uuid4().hex}@example.test>"
    uid = api.append((f"From: Carol <carol@example.test>\r\nTo: {api.user.email}\r\n"
                      f"Subject: Invoice 12\r\nMessage-ID: {mid}\r\n"
                      "Date: Mon, 02 Mar 2026 10:00:00 +0100\r\n\r\nWhere is it?\r\n").encode())
    async with mcp_client(api, WRITE_TOKEN) as agent:
        inbox = data(await call(agent, "list_emails", limit=5))
        assert inbox["folder"] == "INBOX" and inbox["total"] >= 1
        entry = next(e for e in inbox["emails"] if e["uid"] == uid)
        assert entry["from"] == "Carol <carol@example.test>" and entry["subject"] == "Invoice 12"
        whole = data(await call(agent, "get_email", uid=uid))
        assert whole["body_text"].startswith("Where is it?") and whole["bcc"] is None
        reply = data(await call(agent, "reply_draft", message_uid=uid,
                                body_text="It is on its way."))
        assert reply["to"] == ["Carol <carol@example.test>"]
        assert reply["subject"] == "Re: Invoice 12"
        assert reply["body_text"].startswith("It is on its way.")
        gone = data(await call(agent, "delete_draft", draft_id=reply["uid"]))
        assert gone == {"uid": reply["uid"], "deleted": True}
        missing = await call(agent, "get_draft", draft_id=reply["uid"])
    api_answer = await api.call("GET", f"/api/email/drafts/{reply['uid']}", token=WRITE_TOKEN)
    assert api_answer.status == 404
    assert error_text(missing) == api_answer.body["error"]["message"]
    assert missing.structured_content["error"]["code"] == api_answer.body["error"]["code"]


async def test_failures_are_tool_errors_with_the_api_texts(api: Api) -> None:
    bad = {"to": ["not an address"], "subject": "x"}
    api_answer = await api.call("POST", "/api/email/drafts", token=WRITE_TOKEN, json_body=bad)
    assert api_answer.status == 400, api_answer.body
    async with mcp_client(api, WRITE_TOKEN) as agent:
        result = await call(agent, "create_draft", **bad)
        assert error_text(result) == api_answer.body["error"]["message"]
        assert result.structured_content["error"]["field"] == "to[0]"  # type: ignore[index]
        unknown = await call(agent, "get_email", uid=999999)
        assert "999999" in error_text(unknown) or "no message" in error_text(unknown).lower()
        foreign = await call(agent, "list_drafts", account="nobody@example.test")
        assert error_text(foreign) == "no account 'nobody@example.test'"
        # ids, numbers and states are checked by the API's own parsers, with its texts
        assert error_text(await call(agent, "get_draft", draft_id="x")) \
            == "draft_id must be a draft id (UUID)"
        too_many = await api.call("GET", "/api/email/drafts", token=WRITE_TOKEN,
                                  params={"limit": "500"})
        assert error_text(await call(agent, "list_drafts", limit=500)) \
            == too_many.body["error"]["message"]
        odd = await api.call("GET", "/api/email/drafts", token=WRITE_TOKEN,
                             params={"status": "nope"})
        assert error_text(await call(agent, "list_drafts", status="nope")) \
            == odd.body["error"]["message"]
        naive = {"to": ["bob@example.test"], "planned_send_at": "2030-01-01T10:00:00"}
        api_naive = await api.call("POST", "/api/email/drafts", token=WRITE_TOKEN,
                                   json_body=naive)
        assert api_naive.status == 422, api_naive.body
        assert error_text(await call(agent, "create_draft", **naive)) \
            == api_naive.body["error"]["message"]
        planned = data(await call(agent, "create_draft", to=["bob@example.test"],
                                  planned_send_at="2030-01-01T10:00:00+01:00"))
        assert (planned["status"], planned["planned_send_at"]) == ("scheduled",
                                                                   "2030-01-01T10:00:00+01:00")
        unplanned = data(await call(agent, "update_draft", draft_id=planned["uid"],
                                    planned_send_at=""))
        assert (unplanned["status"], unplanned["planned_send_at"]) == ("draft", None)
        injected = await call(agent, "create_draft", subject="Hi\r\nBcc: eve@example.test")
        assert injected.structured_content["error"]["code"] == "header_injection"  # type: ignore[index]
    async with mcp_client(api, READ_TOKEN) as reader:
        refused = await call(reader, "create_draft", to=["bob@example.test"])
        assert error_text(refused) == "this token lacks the 'write' scope"
        assert [d["uid"] for d in data(await call(reader, "list_drafts"))["items"]] \
            == [planned["uid"]]
    async with mcp_client(api, APPROVE_TOKEN) as approver:  # read and approve only
        assert error_text(await call(approver, "send_draft", draft_id=str(uuid.uuid4()))) \
            == "this token lacks the 'write' scope"


async def test_the_endpoint_needs_a_valid_token(api: Api) -> None:
    url = str(api.client.make_url("/mcp"))
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2025-06-18"}
    async with httpx2.AsyncClient() as http:
        none = await http.post(url, json=message, headers=headers)
        wrong = await http.post(url, json=message,
                                headers={**headers, "Authorization": "Bearer nope"})
        fine = await http.post(url, json=message,
                               headers={**headers, "Authorization": f"Bearer {READ_TOKEN}"})
    assert none.status_code == wrong.status_code == 401
    assert none.headers["WWW-Authenticate"].startswith("Bearer")
    assert none.json()["error"]["code"] == "unauthorized"
    assert fine.status_code == 200, fine.text
    assert {t["name"] for t in fine.json()["result"]["tools"]} == TOOLS


@pytest.mark.parametrize("version", ["2025-06-18", "2025-11-25", "2026-07-28", None])
async def test_a_bare_json_rpc_call_of_each_protocol_era(api: Api, version: str | None) -> None:
    """What clients other than the SDK's send: one POST per call, in the protocol versions
    they speak (the SDK serves handshake-era and later versions on different paths)."""
    url = str(api.client.make_url("/mcp"))
    headers = {"Accept": "application/json, text/event-stream",
               "Authorization": f"Bearer {WRITE_TOKEN}"}
    if version is not None:
        headers["MCP-Protocol-Version"] = version
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "create_draft", "arguments": {"to": ["bob@example.test"],
                                                             "subject": "Bare JSON-RPC"}}}
    if version == "2026-07-28":  # the stateless era: every request carries its envelope
        headers.update({"Mcp-Method": "tools/call", "Mcp-Name": "create_draft"})
        call["params"]["_meta"] = {"io.modelcontextprotocol/protocolVersion": version,  # type: ignore[index]
                                   "io.modelcontextprotocol/clientCapabilities": {}}
    async with httpx2.AsyncClient() as http:
        answer = await http.post(url, json=call, headers=headers)
    assert answer.status_code == 200, answer.text
    result = answer.json()["result"]
    assert result.get("isError") in (None, False), result
    made = result["structuredContent"]
    assert (made["subject"], made["status"]) == ("Bare JSON-RPC", "draft")
    record = await api.call("GET", f"/api/email/drafts/{made['uid']}", token=WRITE_TOKEN)
    assert record.body["subject"] == "Bare JSON-RPC"
