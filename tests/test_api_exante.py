"""Dialect 2 (Exante, /api/email) end to end against the real Dovecot, checked with imaplib."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from api_helpers import BOTH_TOKEN, Api, b64, running_api, thunderbird_draft

from conftest import MailUser
from mailbridge.devstack.stack import DevStack


@pytest.fixture
async def api(devstack: DevStack, user: MailUser) -> AsyncIterator[Api]:
    async with running_api(devstack, user) as running:
        yield running


DOC = "Prüfbericht Nr. 7 — final.docx"
DOC_BYTES = bytes(range(256)) * 3

RECORD_FIELDS = {"uid", "from_account_id", "from_email", "to", "cc", "bcc", "subject", "body_text",
                 "body_html", "attachments", "context_type", "context_id", "planned_send_at",
                 "status", "last_error", "message_id", "created_at", "updated_at", "approval"}


def draft_body(api: Api, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "from_account_id": str(api.user.id),
        "to": ["Bob Builder <bob@example.test>"], "cc": ["carol@example.test"],
        "bcc": ["Eve <eve@example.test>"], "subject": "Quarterly report",
        "body_text": "Plain text body", "body_html": "<b>HTML body</b>",
        "attachments": [{"filename": DOC, "data_base64": b64(DOC_BYTES),
                         "content_type": "application/vnd.openxmlformats-officedocument."
                                         "wordprocessingml.document"}],
        "context_type": "report", "context_id": "rep-7",
    }
    body.update(extra)
    return body


async def create(api: Api, **extra: Any) -> dict[str, Any]:
    reply = await api.call("POST", "/api/email/drafts", json_body=draft_body(api, **extra))
    assert reply.status == 201, reply.body
    assert reply.headers["ETag"]
    record: dict[str, Any] = reply.body
    return record


async def test_create_and_get(api: Api) -> None:
    reply = await api.call("POST", "/api/email/drafts", json_body=draft_body(
        api, planned_send_at="2031-06-01T08:00:00Z"))
    assert reply.status == 201, reply.body
    record = reply.body
    assert set(record) == RECORD_FIELDS
    assert record["from_account_id"] == str(api.user.id)
    assert record["from_email"] == api.user.email
    assert record["to"] == ["Bob Builder <bob@example.test>"]
    assert record["cc"] == ["carol@example.test"]
    assert record["bcc"] == ["Eve <eve@example.test>"]
    assert record["subject"] == "Quarterly report"
    assert record["body_text"] == "Plain text body"
    assert record["body_html"] == "<b>HTML body</b>"
    assert record["attachments"] == [{
        "filename": DOC, "size": len(DOC_BYTES),
        "content_type": "application/vnd.openxmlformats-officedocument.wordprocessingml.document"}]
    assert record["context_type"] == "report" and record["context_id"] == "rep-7"
    assert record["planned_send_at"] == "2031-06-01T08:00:00Z"
    assert record["status"] == "scheduled"
    assert record["last_error"] is None
    assert record["message_id"].startswith("<") and record["message_id"].endswith(">")
    for key in ("created_at", "updated_at"):
        assert record[key].endswith("Z")
        datetime.fromisoformat(record[key])

    got = await api.call("GET", f"/api/email/drafts/{record['uid']}")
    assert got.status == 200
    assert got.body == record
    assert got.headers["ETag"] == reply.headers["ETag"]

    [stored] = api.messages("Drafts")
    assert "\\Draft" in stored.flags and "\\Seen" in stored.flags
    msg = stored.message
    assert msg["Subject"] == "Quarterly report"
    assert msg["Message-ID"].strip() == record["message_id"]
    assert "eve@example.test" in msg["Bcc"]
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_filename() == DOC
    assert attachment.get_content() == DOC_BYTES
    # the context link is in the message but is not a recipient-visible standard header
    assert "rep-7" in stored.raw.decode("utf-8", "replace")


async def test_upsert_updates_only_the_fields_given(api: Api) -> None:
    record = await create(api)
    reply = await api.call("POST", "/api/email/drafts", json_body={
        "uid": record["uid"], "subject": "Quarterly report v2",
        "planned_send_at": "2031-06-01T10:00:00+02:00"})
    assert reply.status == 200, reply.body
    updated = reply.body
    assert updated["uid"] == record["uid"]
    assert updated["subject"] == "Quarterly report v2"
    assert updated["status"] == "scheduled"
    assert updated["planned_send_at"] in ("2031-06-01T10:00:00+02:00", "2031-06-01T08:00:00Z")
    for key in ("to", "cc", "bcc", "body_text", "body_html", "attachments", "context_type",
                "context_id", "message_id", "created_at", "from_account_id"):
        assert updated[key] == record[key], key
    assert reply.headers["ETag"] == (await api.call("GET", f"/api/email/drafts/{record['uid']}")
                                     ).headers["ETag"]

    cleared = await api.call("POST", "/api/email/drafts", json_body={
        "uid": record["uid"], "planned_send_at": None, "attachments": [],
        "from_account_id": api.user.email})
    assert cleared.status == 200, cleared.body
    assert cleared.body["planned_send_at"] is None
    assert cleared.body["status"] == "draft"
    assert cleared.body["attachments"] == []
    assert cleared.body["subject"] == "Quarterly report v2"
    [stored] = api.messages("Drafts")
    assert list(stored.message.iter_attachments()) == []


async def test_list_filters_and_cursor_paging(api: Api) -> None:
    made = []
    for i in range(5):
        made.append(await create(api, subject=f"n{i}", context_type="invoice" if i % 2 else "order",
                                 context_id=f"id-{i}", attachments=[]))
    await create(api, subject="scheduled one", context_type="order", context_id="id-9",
                 planned_send_at="2032-01-01T00:00:00Z", attachments=[])
    everything = await api.call("GET", "/api/email/drafts")
    assert everything.status == 200
    assert len(everything.body["items"]) == 6 and everything.body["next_cursor"] is None

    invoices = await api.call("GET", "/api/email/drafts", params={"context_type": "invoice"})
    assert [r["subject"] for r in invoices.body["items"]] == ["n3", "n1"]
    one = await api.call("GET", "/api/email/drafts",
                         params={"context_type": "order", "context_id": "id-2"})
    assert [r["subject"] for r in one.body["items"]] == ["n2"]
    scheduled = await api.call("GET", "/api/email/drafts", params={"status": "scheduled"})
    assert [r["subject"] for r in scheduled.body["items"]] == ["scheduled one"]
    plain = await api.call("GET", "/api/email/drafts", params={"status": "draft"})
    assert len(plain.body["items"]) == 5

    pages: list[list[str]] = []
    cursor = None
    while True:
        params = {"limit": "2", "from_account_id": str(api.user.id)}
        if cursor:
            params["cursor"] = cursor
        page = await api.call("GET", "/api/email/drafts", params=params)
        assert page.status == 200, page.body
        pages.append([r["subject"] for r in page.body["items"]])
        cursor = page.body["next_cursor"]
        if cursor is None:
            break
    assert pages == [["scheduled one", "n4"], ["n3", "n2"], ["n1", "n0"]]


async def test_delete(api: Api) -> None:
    record = await create(api)
    keep = await create(api, subject="keep")
    reply = await api.call("DELETE", f"/api/email/drafts/{record['uid']}")
    assert reply.status == 204 and reply.body is None
    missing = await api.call("GET", f"/api/email/drafts/{record['uid']}")
    assert missing.status == 404
    assert missing.body == {"error": {"code": "not_found", "message": missing.body["error"]["message"],
                                      "field": "uid"}}
    assert (await api.call("DELETE", f"/api/email/drafts/{record['uid']}")).status == 404
    assert [r["uid"] for r in (await api.call("GET", "/api/email/drafts")).body["items"]] == \
        [keep["uid"]]
    assert len(api.messages("Drafts")) == 1


async def test_send_moves_the_draft_to_sent(api: Api) -> None:
    record = await create(api)
    api.devstack.smtp.clear()
    reply = await api.call("POST", f"/api/email/drafts/{record['uid']}/send")
    assert reply.status == 200, reply.body
    assert reply.body["status"] == "sent" and reply.body["uid"] == record["uid"]
    assert api.messages("Drafts") == []
    sent = api.messages("Sent")
    assert len(sent) == 1 and sent[0].message["Bcc"] == "Eve <eve@example.test>"
    delivered = [m for m in api.devstack.smtp.delivered if m.login == api.user.email]
    assert len(delivered) == 1
    assert b"\r\nBcc:" not in delivered[0].data and b"X-Mailbridge" not in delivered[0].data
    assert "eve@example.test" in delivered[0].rcpt_tos
    again = await api.call("GET", f"/api/email/drafts/{record['uid']}")
    assert again.status == 200 and again.body["status"] == "sent"
    # a retry delivers nothing more and answers the same
    retry = await api.call("POST", f"/api/email/drafts/{record['uid']}/send")
    assert retry.status == 200 and retry.body["status"] == "sent"
    assert len([m for m in api.devstack.smtp.delivered if m.login == api.user.email]) == 1


async def test_drafts_of_several_accounts(api: Api) -> None:
    """A token seeing two accounts finds each draft in its own account without being told."""
    mine = await api.call("POST", "/api/email/drafts", token=BOTH_TOKEN,
                          json_body={"from_account_id": api.user.email, "subject": "mine"})
    theirs = await api.call("POST", "/api/email/drafts", token=BOTH_TOKEN,
                            json_body={"from_account_id": str(api.other.id), "subject": "theirs"})
    assert mine.status == theirs.status == 201
    for record, who in ((mine.body, api.user), (theirs.body, api.other)):
        got = await api.call("GET", f"/api/email/drafts/{record['uid']}", token=BOTH_TOKEN)
        assert got.status == 200 and got.body["from_email"] == who.email
    moved = await api.call("POST", "/api/email/drafts", token=BOTH_TOKEN, json_body={
        "uid": theirs.body["uid"], "from_account_id": api.user.email, "subject": "x"})
    assert moved.status == 422 and moved.body["error"]["field"] == "from_account_id"
    updated = await api.call("POST", "/api/email/drafts", token=BOTH_TOKEN,
                             json_body={"uid": theirs.body["uid"], "subject": "theirs v2"})
    assert updated.status == 200 and updated.body["from_email"] == api.other.email
    needs_account = await api.call("GET", "/api/email/drafts", token=BOTH_TOKEN)
    assert needs_account.status == 422
    assert needs_account.body["error"]["field"] == "from_account_id"
    assert len(api.messages("Drafts")) == 1 and len(api.messages("Drafts", who=api.other)) == 1


async def test_where_an_instance_last_saw_a_draft_is_only_a_hint(api: Api) -> None:
    """Instance A remembers which account holds a draft; instance B (same accounts) deletes,
    sends or updates it meanwhile. A must answer what the server holds, not what it remembers."""
    from api_helpers import start_api

    other = await start_api(api.devstack, api.user, api.other)
    try:
        uids = []
        for subject in ("to delete", "to send", "to update"):
            made = await api.call("POST", "/api/email/drafts", token=BOTH_TOKEN, json_body={
                "from_account_id": api.user.email, "subject": subject,
                "to": ["bob@example.test"]})
            assert made.status == 201
            uids.append(made.body["uid"])
        gone, sent, updated = uids
        assert (await other.call("DELETE", f"/api/email/drafts/{gone}",
                                 token=BOTH_TOKEN)).status == 204
        assert (await other.call("POST", f"/api/email/drafts/{sent}/send",
                                 token=BOTH_TOKEN)).status == 200
        assert (await other.call("POST", "/api/email/drafts", token=BOTH_TOKEN, json_body={
            "uid": updated, "subject": "updated by B"})).status == 200

        assert (await api.call("GET", f"/api/email/drafts/{gone}", token=BOTH_TOKEN)).status == 404
        assert (await api.call("DELETE", f"/api/email/drafts/{gone}",
                               token=BOTH_TOKEN)).status == 404
        got = await api.call("GET", f"/api/email/drafts/{sent}", token=BOTH_TOKEN)
        assert got.status == 200 and got.body["status"] == "sent"
        again = await api.call("POST", f"/api/email/drafts/{sent}/send", token=BOTH_TOKEN)
        assert again.status == 200 and again.body["status"] == "sent"
        got = await api.call("GET", f"/api/email/drafts/{updated}", token=BOTH_TOKEN)
        assert got.status == 200 and got.body["subject"] == "updated by B"
        changed = await api.call("POST", "/api/email/drafts", token=BOTH_TOKEN, json_body={
            "uid": updated, "subject": "updated by A"})
        assert changed.status == 200 and changed.body["subject"] == "updated by A"
        assert len([m for m in api.devstack.smtp.delivered if m.login == api.user.email]) == 1
        assert [m.message["Subject"] for m in api.messages("Drafts")] == ["updated by A"]
    finally:
        await other.client.close()


async def test_thunderbird_draft(api: Api) -> None:
    api.append(thunderbird_draft(api.user.email), folder="Drafts")
    items = (await api.call("GET", "/api/email/drafts")).body["items"]
    assert len(items) == 1
    stable = items[0]["uid"]
    assert items[0]["subject"] == "Written in Thunderbird"
    got = await api.call("GET", f"/api/email/drafts/{stable}")
    assert got.status == 200 and got.body["to"] == ["Carol Client <carol@example.test>"]
    for i in range(3):
        upd = await api.call("POST", "/api/email/drafts",
                             json_body={"uid": stable, "body_text": f"rewritten {i}"})
        assert upd.status == 200, upd.body
        assert upd.body["uid"] == stable
    [stored] = api.messages("Drafts")
    assert stored.message["X-Mozilla-Draft-Info"]
    assert (await api.call("DELETE", f"/api/email/drafts/{stable}")).status == 204
    assert api.messages("Drafts") == []


async def test_if_match_and_idempotency(api: Api) -> None:
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    first = await api.call("POST", "/api/email/drafts", json_body=draft_body(api), headers=headers)
    retry = await api.call("POST", "/api/email/drafts", json_body=draft_body(api), headers=headers)
    assert first.status == retry.status == 201
    assert first.body == retry.body and first.headers["ETag"] == retry.headers["ETag"]
    assert len(api.messages("Drafts")) == 1

    etag = first.headers["ETag"]
    ok = await api.call("POST", "/api/email/drafts", headers={"If-Match": etag},
                        json_body={"uid": first.body["uid"], "subject": "v2"})
    assert ok.status == 200
    before = api.messages("Drafts")
    stale = await api.call("POST", "/api/email/drafts", headers={"If-Match": etag},
                           json_body={"uid": first.body["uid"], "subject": "v3"})
    assert stale.status == 412
    assert stale.body["error"]["code"] == "precondition_failed"
    assert (await api.call("DELETE", f"/api/email/drafts/{first.body['uid']}",
                           headers={"If-Match": etag})).status == 412
    assert api.messages("Drafts") == before
    assert (await api.call("DELETE", f"/api/email/drafts/{first.body['uid']}",
                           headers={"If-Match": ok.headers["ETag"]})).status == 204


async def test_concurrent_upserts_leave_exactly_one_version(api: Api) -> None:
    record = await create(api, attachments=[])

    async def update(i: int) -> tuple[int, int]:
        reply = await api.call("POST", "/api/email/drafts", json_body={
            "uid": record["uid"], "subject": f"update {i}", "body_text": f"body {i}"})
        return i, reply.status

    results = await asyncio.gather(*(update(i) for i in range(50)))
    assert {status for _, status in results} <= {200, 409, 412}, results
    winners = {i for i, status in results if status == 200}
    assert winners
    [stored] = api.messages("Drafts")
    subject = stored.message["Subject"]
    assert subject in {f"update {i}" for i in winners}
    i = int(subject.split()[1])
    assert stored.message.get_body(("plain",)).get_content().strip() == f"body {i}"  # type: ignore[union-attr]
    got = await api.call("GET", f"/api/email/drafts/{record['uid']}")
    assert got.body["subject"] == subject and got.body["body_text"].strip() == f"body {i}"


async def test_addresses_round_trip(api: Api) -> None:
    """Records give addresses back in a form the API accepts again, unchanged."""
    given = ['"Jörg, B." <jörg@example.test>', "Ann Lee <ann@example.test>", "plain@example.test",
             '"Quote \\" Me" <q@example.test>']
    record = await create(api, to=given, cc=[], bcc=[], attachments=[])
    assert record["to"] == given
    again = await api.call("POST", "/api/email/drafts",
                           json_body={"uid": record["uid"], "to": record["to"]})
    assert again.status == 200 and again.body["to"] == given
    jasni = await api.call("GET", f"/api/v1/emails/drafts/{record['uid']}")
    assert jasni.body["data"]["draft"]["to"][0] == {"address": "jörg@example.test",
                                                   "name": "Jörg, B."}
