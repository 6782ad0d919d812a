"""The preview of a send (issue 13): exactly what the SMTP server then receives, Date aside,
with the envelope in the answer's headers (dialect 2, and dialect 1 when JSON is not
accepted) or in dialect 1's JSON."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import unquote

import pytest
from api_helpers import FULL_TOKEN, Api, b64, running_api

from conftest import MailUser
from mailbridge.devstack.stack import DevStack


@pytest.fixture
async def api(devstack: DevStack, user: MailUser) -> AsyncIterator[Api]:
    async with running_api(devstack, user) as running:
        yield running


def without_date(raw: bytes) -> bytes:
    return re.sub(rb"^Date: [^\r\n]*\r\n", b"", raw, count=1, flags=re.MULTILINE)


async def preview(api: Api, path: str, accept: str = "*/*") -> tuple[bytes, str, list[str]]:
    async with api.client.get(path, headers={"Authorization": f"Bearer {FULL_TOKEN}",
                                             "Accept": accept}) as reply:
        assert reply.status == 200, await reply.text()
        assert reply.content_type == "message/rfc822"
        return (await reply.read(), unquote(reply.headers["X-Envelope-From"]),
                [unquote(r) for r in reply.headers["X-Envelope-To"].split(", ")])


async def test_the_preview_is_what_smtp_receives(api: Api, devstack: DevStack) -> None:
    made = await api.call("POST", "/api/email/drafts", json_body={
        "to": ["Bob <bob@example.test>", "zoë@exämple.test"], "cc": ["carol@example.test"],
        "bcc": ["hidden@example.test"], "subject": "Préview ✓", "body_text": "Hello\n.\nend",
        "body_html": "<p>Hello</p>", "context_type": "invoice", "context_id": "42",
        "attachments": [{"filename": "a.pdf", "content_type": "application/pdf",
                         "data_base64": b64(b"%PDF-1.4 preview\x00\xff")}]})
    assert made.status == 201, made.body
    uid = made.body["uid"]
    shown, mail_from, rcpt = await preview(api, f"/api/email/drafts/{uid}/preview")
    assert mail_from == api.user.email
    assert rcpt == ["bob@example.test", "zoë@exämple.test", "carol@example.test",
                    "hidden@example.test"]
    assert b"\r\nBcc:" not in shown and not shown.startswith(b"Bcc:")
    assert b"X-Mailbridge-" not in shown and b"hidden@example.test" not in shown
    [listed] = (await api.call("GET", "/api/v1/emails/drafts",
                               params={"account": api.user.email})).body["data"]["drafts"]
    by_uid, _, _ = await preview(
        api, f"/api/v1/emails/drafts/{listed['uid']}/preview?account={api.user.email}",
        accept="message/rfc822")
    assert without_date(by_uid) == without_date(shown)
    as_json = await api.call("GET", f"/api/v1/emails/drafts/{listed['uid']}/preview",
                             params={"account": api.user.email})
    assert as_json.status == 200 and as_json.body["success"] is True
    data = as_json.body["data"]
    assert without_date(data["raw"].encode()) == without_date(shown)
    assert (data["envelopeFrom"], data["envelopeTo"]) == (mail_from, rcpt)

    before = len(devstack.smtp.delivered)
    sent = await api.call("POST", f"/api/email/drafts/{uid}/send")
    assert sent.status == 200, sent.body
    [delivered] = [m for m in devstack.smtp.delivered[before:] if m.login == api.user.email]
    assert without_date(delivered.data) == without_date(shown)
    assert re.search(rb"^Date: ", delivered.data, re.MULTILINE)
    assert list(delivered.rcpt_tos) == rcpt and delivered.mail_from == mail_from


async def test_a_draft_a_send_would_refuse_is_refused_alike(api: Api) -> None:
    made = await api.call("POST", "/api/email/drafts", json_body={"subject": "Nobody"})
    status = (await api.call("GET", f"/api/email/drafts/{made.body['uid']}/preview")).status
    sent = await api.call("POST", f"/api/email/drafts/{made.body['uid']}/send")
    assert status == sent.status == 422
    missing = await api.call("GET", "/api/email/drafts/00000000-0000-4000-8000-000000000000"
                                    "/preview")
    assert missing.status == 404
    assert (await api.call("GET", f"/api/email/drafts/{made.body['uid']}/preview",
                           token=None)).status == 401
