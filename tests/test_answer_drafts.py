"""Replies and forwards as drafts, in both dialects: POST /api/v1/emails/{uid}/reply/draft and
/forward/draft, POST /api/email/drafts/reply and /forward. The draft is reviewed and sent like
any other; the original is flagged \\Answered or $Forwarded only when it is sent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from api_helpers import Api, running_api

from conftest import MailUser
from mailbridge.devstack.stack import DevStack

ORIGINAL = (b"From: Ann <ann@example.test>\r\nTo: {me}\r\nCc: Carl <carl@example.test>\r\n"
            b"Subject: Figures\r\nMessage-ID: <fig@example.test>\r\n"
            b"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
            b"--b\r\nContent-Type: text/plain\r\n\r\nThe figures are attached.\r\n"
            b'--b\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename="q3.csv"\r\n'
            b"\r\nq3,1\r\n--b--\r\n")


@pytest.fixture
async def api(devstack: DevStack, user: MailUser) -> AsyncIterator[Api]:
    async with running_api(devstack, user) as running:
        yield running


async def _original(api: Api) -> int:
    return await asyncio.to_thread(api.append, ORIGINAL.replace(b"{me}", api.user.email.encode()))


async def _flags(api: Api, uid: int) -> list[str]:
    return (await api.call("GET", f"/api/v1/emails/{uid}")).body["data"]["email"]["flags"]


async def test_exante_reply_draft_with_its_link_then_sent(api: Api) -> None:
    uid = await _original(api)
    made = await api.call("POST", "/api/email/drafts/reply", json_body={
        "message_uid": uid, "folder": "inbox", "body_text": "Thanks!", "reply_all": True,
        "context_type": "ticket", "context_id": "T-7"})
    assert made.status == 201 and made.headers["ETag"], made.body
    record = made.body
    assert (record["subject"], record["to"], record["cc"]) == (
        "Re: Figures", ["Ann <ann@example.test>"], ["Carl <carl@example.test>"])
    assert (record["context_type"], record["context_id"], record["status"]) == ("ticket", "T-7",
                                                                              "draft")
    assert record["body_text"].startswith("Thanks!\n\nOn Mon, 02 Mar 2026 10:00, Ann wrote:\n"
                                          "> The figures are attached.")
    assert record["attachments"] == []  # a reply leaves the files behind
    listed = await api.call("GET", "/api/email/drafts", params={"context_id": "T-7"})
    assert [d["uid"] for d in listed.body["items"]] == [record["uid"]]
    assert "\\Answered" not in await _flags(api, uid)
    sent = await api.call("POST", f"/api/email/drafts/{record['uid']}/send")
    assert sent.status == 200 and sent.body["status"] == "sent", sent.body
    assert "\\Answered" in await _flags(api, uid)
    [wire] = [m for m in api.devstack.smtp.delivered if m.login == api.user.email]
    assert b"In-Reply-To: <fig@example.test>" in wire.data
    assert b"References: <fig@example.test>" in wire.data


@pytest.mark.parametrize("dialect", ["jasni", "exante"])
async def test_forward_draft_carries_the_files_and_flags_the_original_when_sent(
        api: Api, dialect: str) -> None:
    uid = await _original(api)
    if dialect == "jasni":
        made = await api.call("POST", f"/api/v1/emails/{uid}/forward/draft",
                              json_body={"to": "Bob <bob@example.test>", "text": "FYI"})
        assert made.status == 201, made.body
        ref = made.body["data"]["id"]
        send = f"/api/v1/emails/drafts/{ref}/send"
    else:
        made = await api.call("POST", "/api/email/drafts/forward", json_body={
            "message_uid": uid, "to": ["Bob <bob@example.test>"], "body_text": "FYI"})
        assert made.status == 201, made.body
        ref = made.body["uid"]
        assert [a["filename"] for a in made.body["attachments"]] == ["q3.csv"]
        send = f"/api/email/drafts/{ref}/send"
    got = await api.call("GET", f"/api/email/drafts/{ref}")
    assert got.body["subject"] == "Fwd: Figures" and got.body["to"] == ["Bob <bob@example.test>"]
    assert got.body["body_text"].startswith("FYI\n\n---------- Forwarded message ----------")
    assert "$Forwarded" not in await _flags(api, uid)
    assert (await api.call("POST", send)).status == 200
    assert "$Forwarded" in await _flags(api, uid)
    [wire] = [m for m in api.devstack.smtp.delivered if m.login == api.user.email]
    assert b"X-Forwarded-Message-Id: <fig@example.test>" in wire.data
    assert b"X-Mailbridge" not in wire.data and b'filename="q3.csv"' in wire.data


async def test_bad_answers_name_the_field_and_write_nothing(api: Api) -> None:
    uid = await _original(api)
    cases = [
        ("POST", "/api/email/drafts/reply", {"message_uid": uid + 9}, 404, "message_uid"),
        ("POST", "/api/email/drafts/reply", {}, 422, "message_uid"),
        ("POST", "/api/email/drafts/reply", {"message_uid": uid, "folder": "Nope"}, 404,
         "folder"),
        ("POST", "/api/email/drafts/forward", {"message_uid": uid}, 422, "to"),
        ("POST", "/api/email/drafts/forward", {"message_uid": uid, "to": ["not an address"]},
         400, "to[0]"),
        ("POST", f"/api/v1/emails/{uid + 9}/reply/draft", {}, 404, "uid"),
        ("POST", f"/api/v1/emails/{uid}/forward/draft", {"to": "x@y.test\r\nBcc: z@y.test"},
         400, "to"),
        ("POST", f"/api/v1/emails/{uid}/reply/draft", {"replyAll": "maybe"}, 400, "replyAll"),
    ]
    for method, path, body, status, field in cases:
        answer = await api.call(method, path, json_body=body)
        error = answer.body.get("error")
        got = error["field"] if isinstance(error, dict) else answer.body.get("field")
        assert (answer.status, got) == (status, field), (path, body, answer.body)
    assert (await api.call("GET", "/api/email/drafts")).body["items"] == []
