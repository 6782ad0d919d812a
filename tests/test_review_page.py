"""The review page at /review (issue 13), in a real headless Chromium (Debian's package, driven
by Playwright pointed at it), against the dev stack's own accounts and tokens: alice and bob,
``agent-token`` (read and write, no send) and ``dev-token`` (which approves).

An agent's draft awaits approval with nothing delivered; the page, with dev-token and the
keyboard, finds it (awaiting drafts first), shows its recipients (Bcc too), attachments and
context, edits it and approves it; bob receives exactly the approved version once, and the
record and the Sent copy say who approved it. Two reviewers at once: the stale page says so and
overwrites nothing; a reload keeps the token and the open draft; a rejection keeps the draft
with its reason; an agent's token is offered no approval and is refused one. An approved draft
edited on the page goes back to review. A draft's HTML is shown sandboxed and loads nothing
remote. The screenshot is written to the test output folder (``test-output/`` at the repository's
root, or ``$MAILBRIDGE_TEST_OUTPUT``).
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import imaplib
import json
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from playwright.async_api import Browser, Page, async_playwright, expect

from mailbridge.api.app import create_app
from mailbridge.config import parse_config
from mailbridge.devstack.stack import AGENT_TOKEN, CATCHALL, DEV_TOKEN, DEV_USERS, DevStack

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = Path(os.environ.get("MAILBRIDGE_TEST_OUTPUT", ROOT / "test-output"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = os.path.exists(CHROMIUM)
# As root, without a sandbox; no background connections (this machine's network is closed)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]
ALICE, BOB = "alice@example.test", "bob@example.test"
CRM = "https://crm.example.test/tickets/{id}"
REVIEWER_TOKEN = "reviewer-token"
"""A person who approves and rejects but does not edit (read and approve, no write)."""


@dataclass
class Dev:
    """mailbridge on the dev stack's configuration (alice, bob, dev-token, agent-token)."""

    client: TestClient  # type: ignore[type-arg]
    devstack: DevStack

    def url(self, path: str) -> str:
        return str(self.client.make_url(path))

    async def call(self, method: str, path: str, token: str,
                   body: dict[str, Any] | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        async with self.client.request(method, path, json=body, headers=headers) as resp:
            text = await resp.text()
            return resp.status, json.loads(text) if text else None

    async def agent_asks(self, subject: str, **extra: Any) -> str:
        """agent-token writes a draft from alice to bob and asks for its send: 202, awaiting."""
        status, made = await self.call("POST", "/api/email/drafts", AGENT_TOKEN, {
            "from_account_id": ALICE, "to": [f"Bob <{BOB}>"], "subject": subject,
            "body_text": "v1 by the agent", **extra})
        assert status == 201, made
        status, asked = await self.call("POST", f"/api/email/drafts/{made['uid']}/send",
                                        AGENT_TOKEN)
        assert status == 202, asked
        assert asked["status"] == "awaiting_approval"
        return str(made["uid"])

    def delivered(self, subject: str) -> list[bytes]:
        return [m.data for m in self.devstack.smtp.delivered
                if f"Subject: {subject}".encode() in m.data]


@pytest.fixture
async def dev(devstack: DevStack) -> AsyncIterator[Dev]:
    data = devstack.config_data()  # exactly the dev stack's accounts and tokens
    data["server"]["watch_mailboxes"] = False
    data["review"] = {"context_links": {"ticket": CRM}}
    data["tokens"].append({"name": "reviewer", "accounts": ["*"], "scopes": ["read", "approve"],
                           "sha256": hashlib.sha256(REVIEWER_TOKEN.encode()).hexdigest()})
    client = TestClient(TestServer(create_app(parse_config(data, source="test"),
                                              scheduler=False)))
    await client.start_server()
    try:
        yield Dev(client, devstack)
    finally:
        await client.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        message = "Debian's chromium is not installed (make test installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def signed_in(browser: Browser, dev: Dev, token: str) -> Page:
    """A new tab (its own session) on /review, the token typed into "Token" and Enter."""
    page = await (await browser.new_context(viewport={"width": 1360, "height": 1000})).new_page()
    await page.goto(dev.url("/review"))
    await expect(page.get_by_label("Token", exact=True)).to_be_focused()
    await page.keyboard.type(token)
    await page.keyboard.press("Enter")
    await expect(page.locator("#queue table")).to_be_visible()
    # the keyboard lands on the list: its first draft, the most waiting one
    await expect(page.locator("#queue tbody a").first).to_be_focused()
    return page


async def open_by_keyboard(page: Page, subject: str) -> None:
    link = page.get_by_role("link", name=subject, exact=True)
    await link.focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#draft-title")).to_have_text(subject)
    await expect(page.locator("#draft-title")).to_be_focused()


async def press(page: Page, button: str) -> None:
    """Activates a button with the keyboard: focus, Enter."""
    await page.get_by_role("button", name=button, exact=True).focus()
    await page.keyboard.press("Enter")


def sent_copies(devstack: DevStack, subject: str) -> list[email.message.EmailMessage]:
    """alice's Sent messages with ``subject``, parsed."""
    client = imaplib.IMAP4("127.0.0.1", devstack.ports.imap)
    try:
        client.login(ALICE, DEV_USERS[ALICE])
        client.select("Sent", readonly=True)
        _, found = client.uid("SEARCH", "CHARSET", "UTF-8", "SUBJECT", f'"{subject}"')
        result = []
        for uid in found[0].split():
            _, fetched = client.uid("FETCH", uid, "(BODY.PEEK[])")
            result.append(email.message_from_bytes(fetched[0][1],  # type: ignore[index]
                                                   policy=email.policy.default))
        return result  # type: ignore[return-value]
    finally:
        client.logout()


async def test_an_agents_draft_is_found_edited_and_approved_on_the_page(
        dev: Dev, browser: Browser) -> None:
    subject = f"Offer {uuid.uuid4().hex[:8]}"
    draft = await dev.agent_asks(subject, bcc=[CATCHALL], context_type="ticket",
                                 context_id="T 42/b", attachments=[{
                                     "filename": "terms.txt", "content_type": "text/plain",
                                     "data_base64": base64.b64encode(b"Terms").decode()}])
    assert dev.delivered(subject) == []  # the agent's send delivered nothing

    page = await signed_in(browser, dev, DEV_TOKEN)
    # drafts awaiting approval come first
    rows = await page.locator("#queue tbody tr").evaluate_all("rows => rows.map(r => r.className)")
    waiting = [("status-awaiting_approval" in r) for r in rows]
    assert True in waiting and waiting == sorted(waiting, reverse=True), rows
    row = page.locator("#queue tbody tr", has=page.get_by_role("link", name=subject))
    await expect(row).to_contain_text(f"Bob <{BOB}>, Bcc: {CATCHALL}")
    await expect(row).to_contain_text(ALICE)
    await expect(row).to_contain_text("awaiting approval")
    await expect(row.get_by_role("link", name="ticket T 42/b")).to_have_attribute(
        "href", "https://crm.example.test/tickets/T%2042%2Fb")

    await open_by_keyboard(page, subject)
    assert page.url.endswith(f"#draft={draft}")
    view = page.locator("#draft-view")
    await expect(page.get_by_label("To", exact=True)).to_have_value(f"Bob <{BOB}>")
    await expect(page.get_by_label("Bcc", exact=True)).to_have_value(CATCHALL)
    await expect(view.locator("#envelope")).to_have_text(f"{BOB}, {CATCHALL}")
    await expect(view.locator("#attachments")).to_contain_text("terms.txt (text/plain, 5 Bytes)")
    async with page.expect_download() as downloading:
        await press(page, "Download terms.txt")
    downloaded = await downloading.value
    assert downloaded.suggested_filename == "terms.txt"
    with open(await downloaded.path(), "rb") as saved:  # noqa: ASYNC230 (a 5-byte file)
        assert saved.read() == b"Terms"
    await expect(page.locator("#status")).to_have_text("Downloaded terms.txt.")
    await expect(view).to_contain_text("asked for by agent")
    await expect(page.get_by_label("Text", exact=True)).to_have_value("v1 by the agent")
    os.makedirs(OUTPUT, exist_ok=True)
    await page.screenshot(path=OUTPUT / "review-page.png", full_page=True)

    # the reviewer edits the subject and the text, saves, then approves: all with the keyboard
    await page.get_by_label("Subject", exact=True).focus()
    await page.keyboard.press("End")
    await page.keyboard.type(" (revised)")
    await page.get_by_label("Text", exact=True).focus()
    await page.keyboard.press("Control+A")
    await page.keyboard.type("v2, as the reviewer wrote it")
    await press(page, "Save")
    await expect(page.locator("#status")).to_have_text("Saved.")
    await expect(page.locator("#draft-title")).to_have_text(f"{subject} (revised)")
    await press(page, "Approve and send")
    await expect(page.locator("#status")).to_have_text(f"Approved and sent to Bob <{BOB}>, {CATCHALL}.")
    await expect(page.get_by_role("link", name=f"{subject} (revised)")).to_have_count(0)

    # bob received exactly the approved version, once; the Bcc got it, unnamed in the message
    submitted = [m for m in dev.devstack.smtp.delivered
                 if f"Subject: {subject}".encode() in m.data]
    assert len(submitted) == 1
    assert sorted(submitted[0].rcpt_tos) == sorted([BOB, CATCHALL])
    message = email.message_from_bytes(submitted[0].data, policy=email.policy.default)
    assert message["Subject"] == f"{subject} (revised)"
    assert message["To"] == f"Bob <{BOB}>" and message["Bcc"] is None
    assert "v2, as the reviewer wrote it" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert not any(k.lower().startswith("x-mailbridge") for k in message.keys())

    # the record and the Sent copy say who asked and who approved
    status, record = await dev.call("GET", f"/api/email/drafts/{draft}", DEV_TOKEN)
    assert status == 200, record
    assert record["status"] == "sent"
    assert (record["approval"]["requested_by"], record["approval"]["decided_by"]) == ("agent",
                                                                                      "dev")
    (copy,) = sent_copies(dev.devstack, f"{subject} (revised)")
    assert copy["X-Mailbridge-Approval"] == "approved"
    assert copy["X-Mailbridge-Approval-Decided-By"] == "dev"
    assert copy["X-Mailbridge-Approval-Requested-By"] == "agent"


async def test_an_mcp_agent_drafts_and_a_person_approves_on_the_page(
        dev: Dev, browser: Browser) -> None:
    """The whole loop: an agent on MCP with agent-token writes and revises a draft and asks
    for its send; the page shows it awaiting approval; dev-token approves; bob gets it once."""
    subject = f"Agent over MCP {uuid.uuid4().hex[:8]}"
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {AGENT_TOKEN}"}) as http:
        async with Client(streamable_http_client(dev.url("/mcp"), http_client=http)) as agent:
            made = await agent.call_tool("create_draft", {
                "account": ALICE, "to": [BOB], "subject": subject, "body_text": "draft 1"})
            uid = made.structured_content["uid"]  # type: ignore[index]
            await agent.call_tool("update_draft", {"draft_id": uid, "body_text": "draft 2"})
            asked = await agent.call_tool("send_draft", {"draft_id": uid})
    assert asked.structured_content["status"] == "awaiting_approval"  # type: ignore[index]
    assert dev.delivered(subject) == []

    page = await signed_in(browser, dev, DEV_TOKEN)
    await open_by_keyboard(page, subject)
    await expect(page.get_by_label("Text", exact=True)).to_have_value("draft 2")
    await press(page, "Approve and send")
    await expect(page.locator("#status")).to_have_text(f"Approved and sent to {BOB}.")
    (sent,) = dev.delivered(subject)
    assert b"draft 2" in sent and b"draft 1" not in sent


async def test_two_reviewers_a_reload_a_rejection_and_an_agent(dev: Dev, browser: Browser) -> None:
    subject = f"Quote {uuid.uuid4().hex[:8]}"
    draft = await dev.agent_asks(subject)
    first = await signed_in(browser, dev, DEV_TOKEN)
    second = await signed_in(browser, dev, DEV_TOKEN)
    for page in (first, second):
        await open_by_keyboard(page, subject)

    # the second reviewer saves first; the first one's page is stale and says so
    await second.get_by_label("Text", exact=True).fill("The second reviewer's words")
    await press(second, "Save")
    await expect(second.locator("#status")).to_have_text("Saved.")
    await first.get_by_label("Subject", exact=True).fill("The first reviewer's subject")
    await press(first, "Save")
    alert = first.get_by_role("alert")
    await expect(alert).to_contain_text("This draft changed since you opened it")
    await expect(first.locator("#status")).to_have_text(
        "Not saved: the draft changed since you opened it.")
    _, record = await dev.call("GET", f"/api/email/drafts/{draft}", DEV_TOKEN)
    assert (record["subject"], record["body_text"]) == (subject, "The second reviewer's words")
    await expect(alert.get_by_role("button")).to_be_focused()
    await first.keyboard.press("Enter")  # show the current version
    await expect(first.locator("#status")).to_have_text("This is the current version.")
    await expect(first.get_by_label("Text", exact=True)).to_have_value("The second reviewer's words")

    # a reload keeps the token (the tab's session) and the open draft
    await first.reload()
    await expect(first.locator("#draft-title")).to_have_text(subject)
    await expect(first.get_by_label("Text", exact=True)).to_have_value("The second reviewer's words")

    # a stale approval approves nothing
    await second.get_by_label("Text", exact=True).fill("Changed once more")
    await press(second, "Save")
    await expect(second.locator("#status")).to_have_text("Saved.")
    await press(first, "Approve and send")
    await expect(first.locator("#status")).to_have_text(
        "Not approved: the draft changed since you opened it.")
    assert dev.delivered(subject) == []
    await first.get_by_role("alert").get_by_role("button").press("Enter")
    await expect(first.locator("#status")).to_have_text("This is the current version.")
    await expect(first.get_by_role("alert")).to_have_count(0)

    # a rejection keeps the draft with its reason
    await first.get_by_label("Reason for rejecting", exact=True).fill("The price is wrong")
    await first.keyboard.press("Enter")
    await expect(first.locator("#status")).to_have_text(
        "Rejected. The draft stays, with your reason.")
    await expect(first.locator("#draft-view")).to_contain_text("rejected by dev")
    await expect(first.locator("#draft-view q.reason")).to_have_text("The price is wrong")
    _, record = await dev.call("GET", f"/api/email/drafts/{draft}", DEV_TOKEN)
    assert record["status"] == "rejected"
    assert (record["approval"]["reason"], record["approval"]["decided_by"]) == (
        "The price is wrong", "dev")

    # an agent's token sees the draft, may edit it, but is offered no approval and gets none
    agent = await signed_in(browser, dev, AGENT_TOKEN)
    await open_by_keyboard(agent, subject)
    await expect(agent.get_by_role("button", name="Save")).to_have_count(1)
    await expect(agent.get_by_role("button", name="Approve and send")).to_have_count(0)
    await expect(agent.get_by_label("Reason for rejecting", exact=True)).to_have_count(0)
    status, refused = await dev.call("POST", f"/api/email/drafts/{draft}/approve", AGENT_TOKEN)
    assert status == 403, refused
    assert dev.delivered(subject) == []

    # a reviewer who may approve but not edit: the fields are read-only, no Save
    reviewer = await signed_in(browser, dev, REVIEWER_TOKEN)
    await open_by_keyboard(reviewer, subject)
    await expect(reviewer.get_by_role("button", name="Save")).to_have_count(0)
    await expect(reviewer.get_by_label("Text", exact=True)).not_to_be_editable()
    await expect(reviewer.get_by_role("button", name="Approve and send")).to_have_count(1)
    await expect(reviewer.get_by_label("Reason for rejecting", exact=True)).to_have_count(1)


async def test_an_attachment_of_a_version_that_is_gone_is_not_downloaded(
        dev: Dev, browser: Browser) -> None:
    subject = f"Attached {uuid.uuid4().hex[:8]}"
    draft = await dev.agent_asks(subject, attachments=[{
        "filename": "old.txt", "content_type": "text/plain",
        "data_base64": base64.b64encode(b"Old").decode()}])
    page = await signed_in(browser, dev, DEV_TOKEN)
    await open_by_keyboard(page, subject)
    # the agent replaces the draft (and its attachment) while the page shows the old version
    status, _ = await dev.call("POST", "/api/email/drafts", AGENT_TOKEN, {
        "uid": draft, "attachments": [{"filename": "new.txt", "content_type": "text/plain",
                                       "data_base64": base64.b64encode(b"New").decode()}]})
    assert status == 200
    downloads: list[Any] = []
    page.on("download", lambda d: downloads.append(d))
    await press(page, "Download old.txt")
    await expect(page.locator("#status")).to_have_text(
        "Not downloaded: the draft changed since you opened it.")
    await expect(page.get_by_role("alert")).to_contain_text("Nothing was downloaded")
    assert downloads == []
    await page.get_by_role("alert").get_by_role("button").press("Enter")
    await expect(page.locator("#attachments")).to_contain_text("new.txt")


async def test_an_approved_draft_edited_on_the_page_goes_back_to_review(
        dev: Dev, browser: Browser) -> None:
    subject = f"Later {uuid.uuid4().hex[:8]}"
    planned = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    draft = await dev.agent_asks(subject, planned_send_at=planned)
    page = await signed_in(browser, dev, DEV_TOKEN)
    await open_by_keyboard(page, subject)
    await press(page, "Approve and send")
    await expect(page.locator("#status")).to_contain_text("Approved; it will be sent at")
    _, record = await dev.call("GET", f"/api/email/drafts/{draft}", DEV_TOKEN)
    assert record["approval"]["status"] == "approved"

    await open_by_keyboard(page, subject)
    await page.get_by_label("Text", exact=True).fill("Changed after the approval")
    await press(page, "Save")
    await expect(page.locator("#status")).to_have_text("Saved.")
    await expect(page.locator("#draft-view .badge")).to_have_text("awaiting approval")
    _, record = await dev.call("GET", f"/api/email/drafts/{draft}", DEV_TOKEN)
    assert record["status"] == "awaiting_approval"
    assert record["approval"]["status"] == "requested"
    assert dev.delivered(subject) == []


async def test_html_is_sandboxed_and_loads_nothing_remote(dev: Dev, browser: Browser) -> None:
    seen: list[str] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(body=b"", content_type="image/png")

    outside = web.Application()
    outside.router.add_route("*", "/{tail:.*}", record)
    tracker = TestServer(outside)
    await tracker.start_server()
    try:
        here = str(tracker.make_url("")).rstrip("/")
        subject = f"<img src=x onerror=alert(1)> {uuid.uuid4().hex[:8]}"
        await dev.agent_asks(subject, body_html=(
            f'<link rel="stylesheet" href="{here}/style.css">'
            f'<p id="hello">Hello <b>in HTML</b></p><img src="{here}/pixel.png">'
            f'<script>fetch("{here}/script")</script>'
            f'<p style="background:url({here}/background.png)">styled</p>'))
        page = await signed_in(browser, dev, DEV_TOKEN)
        # the subject is text, not markup
        await open_by_keyboard(page, subject)
        frame = page.locator("#html-view")
        await expect(frame).to_have_attribute("sandbox", "")
        await expect(page.frame_locator("#html-view").locator("#hello")).to_have_text(
            "Hello in HTML")
        await expect(page.locator("#html-note")).to_contain_text("removes the HTML version")
        await page.wait_for_timeout(1000)
        assert seen == []
    finally:
        await tracker.close()


async def test_the_fragments_need_a_token_and_the_page_none(dev: Dev) -> None:
    async with dev.client.get("/review") as page:
        assert page.status == 200
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        text = await page.text()
        assert '<label for="token">Token</label>' in text and "<script>" not in text
    async with dev.client.get("/review/page.js") as script:
        assert "sessionStorage" in await script.text()
    for path in ("/review/drafts", f"/review/drafts/{uuid.uuid4()}"):
        async with dev.client.get(path) as refused:
            assert refused.status == 401
            assert (await refused.json())["error"]["code"] == "unauthorized"
    status, _ = await dev.call("GET", "/review/drafts/not-an-id", DEV_TOKEN)
    assert status == 400
    async with dev.client.get(f"/review/drafts/{uuid.uuid4()}",
                              headers={"Authorization": f"Bearer {DEV_TOKEN}"}) as missing:
        assert missing.status == 404
    async with dev.client.get("/review/drafts",
                              headers={"Authorization": f"Bearer {AGENT_TOKEN}"}) as listed:
        assert listed.status == 200 and listed.content_type == "text/html"
        assert re.search(r"\d+ awaiting approval", await listed.text())


async def test_an_account_that_cannot_be_read_does_not_hide_the_others(
        devstack: DevStack) -> None:
    data = devstack.config_data()
    data["server"]["watch_mailboxes"] = False
    broken = json.loads(json.dumps(data["accounts"][0]))  # alice's, elsewhere
    broken.update({"id": str(uuid.uuid4()), "email": "gone@example.test"})
    broken["imap"]["port"] = 1  # nothing listens there: the connection is refused
    data["accounts"].append(broken)
    subject = f"Still shown {uuid.uuid4().hex[:8]}"
    client = TestClient(TestServer(create_app(parse_config(data, source="test"),
                                              scheduler=False)))
    await client.start_server()
    try:
        dev = Dev(client, devstack)
        await dev.agent_asks(subject)
        async with client.get("/review/drafts",
                              headers={"Authorization": f"Bearer {DEV_TOKEN}"}) as listed:
            assert listed.status == 200
            page = await listed.text()
    finally:
        await client.close()
    assert re.search(r'<p class="problem" role="alert">gone@example.test could not be read: '
                     r"[^<]+</p>", page), page
    assert subject in page
