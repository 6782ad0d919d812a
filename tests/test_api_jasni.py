"""Dialect 1 (Jasni, /api/v1) end to end against the real Dovecot, checked with imaplib."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api_helpers import BOTH_TOKEN, WRITE_TOKEN, Api, b64, running_api, thunderbird_draft

from conftest import MailUser
from mailbridge.devstack.stack import DevStack


@pytest.fixture
async def api(devstack: DevStack, user: MailUser) -> AsyncIterator[Api]:
    async with running_api(devstack, user) as running:
        yield running


PDF = b"%PDF-1.4 fake\x00\xff\x10 bytes"
PNG = b"\x89PNG\r\n\x1a\nnot really"

FULL_DRAFT: dict[str, Any] = {
    "to": "Bob Builder <bob@example.test>, carol@example.test",
    "cc": ["Dora <dora@example.test>"],
    "bcc": ["eve@example.test"],
    "subject": "Rechnung 42 — März",
    "text": "Hello Bob,\nthe invoice is attached.\n",
    "html": "<p>Hello Bob,</p><p>the invoice is attached.</p>",
    "attachments": [
        {"filename": "Übersicht März.pdf", "contentType": "application/pdf", "content": b64(PDF)},
        {"filename": "logo.png", "content": b64(PNG)},
    ],
    "inReplyTo": "<orig-1@example.test>",
    "references": "<root@example.test> <orig-1@example.test>",
    "contextType": "invoice",
    "contextId": "inv-42",
}


async def create(api: Api, body: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    reply = await api.call("POST", "/api/v1/emails/drafts", json_body=body or FULL_DRAFT, **kw)
    assert reply.status == 201, reply.body
    assert reply.body["success"] is True
    data: dict[str, Any] = reply.body["data"]
    assert reply.headers["ETag"]
    return data


async def test_create_stores_a_real_draft_and_reads_back(api: Api) -> None:
    reply = await api.call("POST", "/api/v1/emails/drafts",
                           json_body={**FULL_DRAFT, "account": api.user.email})
    assert reply.status == 201, reply.body
    data = reply.body["data"]
    assert set(data) == {"uid", "id", "account", "message"}
    assert data["account"] == api.user.email
    uid, draft_id = data["uid"], data["id"]
    assert isinstance(uid, int)
    uuid.UUID(draft_id)

    # on the server, as any mail client sees it
    [stored] = api.messages("Drafts")
    assert stored.uid == uid
    assert "\\Draft" in stored.flags and "\\Seen" in stored.flags
    msg = stored.message
    assert msg["Subject"] == "Rechnung 42 — März"
    assert "bob@example.test" in msg["To"] and "Bob Builder" in msg["To"]
    assert "carol@example.test" in msg["To"]
    assert "dora@example.test" in msg["Cc"]
    assert "eve@example.test" in msg["Bcc"]
    assert api.user.email in msg["From"]
    assert msg["In-Reply-To"] == "<orig-1@example.test>"
    assert msg["References"].split() == ["<root@example.test>", "<orig-1@example.test>"]
    assert msg["Message-ID"]
    body = msg.get_body(("plain",))
    assert body is not None and body.get_content().replace("\r\n", "\n") == FULL_DRAFT["text"]
    html = msg.get_body(("html",))
    assert html is not None and "the invoice is attached" in html.get_content()
    files = {p.get_filename(): p for p in msg.iter_attachments()}
    assert set(files) == {"Übersicht März.pdf", "logo.png"}
    assert files["Übersicht März.pdf"].get_content_type() == "application/pdf"
    assert files["Übersicht März.pdf"].get_content() == PDF
    assert files["logo.png"].get_content_type() == "image/png"
    assert files["logo.png"].get_content() == PNG

    # through the API, by UID and by stable id: the same draft, same ETag
    by_uid = await api.call("GET", f"/api/v1/emails/drafts/{uid}")
    by_id = await api.call("GET", f"/api/v1/emails/drafts/{draft_id}",
                           params={"account": str(api.user.id)})
    assert by_uid.status == by_id.status == 200
    assert by_uid.body == by_id.body
    assert by_uid.headers["ETag"] == by_id.headers["ETag"] == reply.headers["ETag"]
    draft = by_uid.body["data"]["draft"]
    assert draft["uid"] == uid and draft["id"] == draft_id
    assert draft["subject"] == "Rechnung 42 — März"
    assert draft["from"]["address"] == api.user.email
    assert draft["to"] == [{"address": "bob@example.test", "name": "Bob Builder"},
                           {"address": "carol@example.test", "name": None}]
    assert draft["cc"] == [{"address": "dora@example.test", "name": "Dora"}]
    assert draft["bcc"] == [{"address": "eve@example.test", "name": None}]
    assert draft["text"] == FULL_DRAFT["text"]
    assert draft["html"] == FULL_DRAFT["html"]
    assert draft["attachments"] == [
        {"filename": "Übersicht März.pdf", "contentType": "application/pdf", "size": len(PDF)},
        {"filename": "logo.png", "contentType": "image/png", "size": len(PNG)},
    ]
    assert draft["hasAttachments"] is True
    assert draft["inReplyTo"] == "<orig-1@example.test>"
    assert draft["references"] == "<root@example.test> <orig-1@example.test>"
    assert draft["contextType"] == "invoice" and draft["contextId"] == "inv-42"
    assert draft["plannedSendAt"] is None
    assert draft["status"] == "draft"
    assert draft["seen"] is True
    assert "\\Draft" in draft["flags"]
    assert draft["messageId"] == msg["Message-ID"].strip()
    assert draft["snippet"].startswith("Hello Bob")
    assert draft["date"].endswith("Z") or "+" in draft["date"]


async def test_list_drafts(api: Api) -> None:
    first = await create(api, {"to": "a@example.test", "subject": "first"})
    second = await create(api, {"to": ["b@example.test"], "subject": "second", "text": "two"})
    reply = await api.call("GET", "/api/v1/emails/drafts", params={"account": api.user.email})
    assert reply.status == 200
    data = reply.body["data"]
    assert data["total"] == 2 and data["account"] == api.user.email
    assert [d["uid"] for d in data["drafts"]] == [second["uid"], first["uid"]]  # newest first
    entry = data["drafts"][0]
    for key in ("uid", "messageId", "from", "to", "subject", "date", "seen", "hasAttachments",
                "snippet", "flags", "id", "status", "contextType", "contextId", "plannedSendAt"):
        assert key in entry, key
    assert entry["id"] == second["id"] and entry["text"] == "two"
    limited = await api.call("GET", "/api/v1/emails/drafts", params={"limit": "1"})
    assert [d["uid"] for d in limited.body["data"]["drafts"]] == [second["uid"]]
    assert limited.body["data"]["total"] == 2


async def test_update_merges_and_moves_the_uid(api: Api) -> None:
    created = await create(api)
    old_uid = created["uid"]
    reply = await api.call("PUT", f"/api/v1/emails/drafts/{old_uid}",
                           json_body={"subject": "Changed", "plannedSendAt": "2030-01-02T03:04:05+02:00"})
    assert reply.status == 200, reply.body
    data = reply.body["data"]
    assert data["id"] == created["id"] and data["uid"] != old_uid
    assert reply.headers["ETag"]
    draft = (await api.call("GET", f"/api/v1/emails/drafts/{data['uid']}")).body["data"]["draft"]
    assert draft["subject"] == "Changed"
    assert draft["text"] == FULL_DRAFT["text"]  # omitted: kept
    assert [a["filename"] for a in draft["attachments"]] == ["Übersicht März.pdf", "logo.png"]
    assert draft["cc"] == [{"address": "dora@example.test", "name": "Dora"}]
    assert draft["status"] == "scheduled"
    assert draft["plannedSendAt"] == "2030-01-02T03:04:05+02:00" or \
        draft["plannedSendAt"] == "2030-01-02T01:04:05Z"
    assert (await api.call("GET", f"/api/v1/emails/drafts/{old_uid}")).status == 404

    # attachments given replace the list; null clears plannedSendAt and html
    reply = await api.call("PUT", f"/api/v1/emails/drafts/{created['id']}", json_body={
        "attachments": [{"filename": "new.txt", "contentType": "text/plain",
                         "content": b64(b"new file")}],
        "plannedSendAt": None, "html": None, "to": "zed@example.test"})
    assert reply.status == 200, reply.body
    draft = (await api.call("GET", f"/api/v1/emails/drafts/{created['id']}")).body["data"]["draft"]
    assert [(a["filename"], a["size"]) for a in draft["attachments"]] == [("new.txt", 8)]
    assert draft["plannedSendAt"] is None and draft["status"] == "draft"
    assert draft["html"] is None and draft["text"] == FULL_DRAFT["text"]
    assert draft["to"] == [{"address": "zed@example.test", "name": None}]
    [stored] = api.messages("Drafts")
    assert stored.uid == draft["uid"]
    assert [p.get_filename() for p in stored.message.iter_attachments()] == ["new.txt"]
    assert stored.message["Message-ID"].strip() == draft["messageId"]


async def test_delete(api: Api) -> None:
    created = await create(api)
    keep = await create(api, {"subject": "keep"})
    reply = await api.call("DELETE", f"/api/v1/emails/drafts/{created['uid']}")
    assert reply.status == 200, reply.body
    assert reply.body["data"]["uid"] == created["uid"]
    assert reply.body["data"]["account"] == api.user.email
    assert (await api.call("GET", f"/api/v1/emails/drafts/{created['uid']}")).status == 404
    assert (await api.call("GET", f"/api/v1/emails/drafts/{created['id']}")).status == 404
    again = await api.call("DELETE", f"/api/v1/emails/drafts/{created['id']}")
    assert again.status == 404 and again.body["code"] == "not_found"
    assert [m.uid for m in api.messages("Drafts")] == [keep["uid"]]


async def test_send(api: Api) -> None:
    created = await create(api)
    reply = await api.call("POST", f"/api/v1/emails/drafts/{created['uid']}/send", json_body={})
    assert reply.status == 200, reply.body
    data = reply.body["data"]
    assert data["account"] == api.user.email and data["message"] == "Email sent"
    sent = api.messages("Sent")
    assert [m.uid for m in sent] == [data["uid"]]
    assert data["messageId"] == sent[0].message["Message-ID"]
    assert api.messages("Drafts") == []
    delivered = len(api.devstack.smtp.delivered)
    # a retry by the UID the caller knew: the same result, nothing sent again
    again = await api.call("POST", f"/api/v1/emails/drafts/{created['uid']}/send", json_body={})
    assert again.status == 200, again.body
    assert again.body["data"] == data
    assert len(api.devstack.smtp.delivered) == delivered
    # that UID names no draft any more
    assert (await api.call("GET", f"/api/v1/emails/drafts/{created['uid']}")).status == 404


async def test_any_folder_listing_and_get_email(api: Api) -> None:
    raw = (f"From: Zoe <zoe@example.test>\r\nTo: {api.user.email}\r\n"
           "Cc: cc@example.test\r\nBcc: hidden@example.test\r\n"
           "Subject: Hello from outside\r\nMessage-ID: <inbox-1@example.test>\r\n"
           "Date: Tue, 03 Mar 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/mixed; boundary=XX\r\n\r\n"
           "--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe body text.\r\n"
           "--XX\r\nContent-Type: application/octet-stream\r\n"
           "Content-Disposition: attachment; filename=data.bin\r\n"
           "Content-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n--XX--\r\n").encode()
    older = api.append(b"From: a@example.test\r\nSubject: older\r\n\r\nold\r\n")
    uid = api.append(raw)
    reply = await api.call("GET", "/api/v1/emails")
    assert reply.status == 200, reply.body
    data = reply.body["data"]
    assert data["folder"] == "INBOX" and data["total"] == 2 and data["account"] == api.user.email
    assert [e["uid"] for e in data["emails"]] == [uid, older]
    entry = data["emails"][0]
    assert entry["subject"] == "Hello from outside"
    assert entry["from"] == {"address": "zoe@example.test", "name": "Zoe"}
    assert entry["seen"] is False and entry["hasAttachments"] is True
    assert entry["messageId"] == "<inbox-1@example.test>"
    assert entry["date"] == "2026-03-03T12:00:00Z"

    one = await api.call("GET", f"/api/v1/emails/{uid}", params={"folder": "INBOX"})
    assert one.status == 200, one.body
    full = one.body["data"]["email"]
    assert full["text"].strip() == "The body text."
    assert full["cc"] == [{"address": "cc@example.test", "name": None}]
    assert full["bcc"] is None  # bcc only for Drafts and Sent
    assert full["attachments"] == [{"filename": "data.bin",
                                    "contentType": "application/octet-stream", "size": 4}]
    assert (await api.call("GET", "/api/v1/emails/999999")).status == 404
    missing = await api.call("GET", "/api/v1/emails", params={"folder": "No Such Folder"})
    assert missing.status == 404 and missing.body["field"] == "folder"

    # Drafts is a folder like any other, and there bcc is the sender's own data
    draft = await create(api)
    in_drafts = await api.call("GET", "/api/v1/emails", params={"folder": "Drafts", "limit": "5"})
    assert [e["uid"] for e in in_drafts.body["data"]["emails"]] == [draft["uid"]]
    got = await api.call("GET", f"/api/v1/emails/{draft['uid']}", params={"folder": "Drafts"})
    assert got.body["data"]["email"]["bcc"] == [{"address": "eve@example.test", "name": None}]


async def test_accounts(api: Api) -> None:
    """``created_at`` (snake_case, as the Jasni SDK reads it) is when the configuration was read,
    when it does not say (test_config: a configured one is read as given)."""
    before = datetime.now(UTC).replace(microsecond=0)
    reply = await api.call("GET", "/api/v1/accounts")
    assert reply.status == 200
    [account] = reply.body["data"]["accounts"]
    created = datetime.fromisoformat(account.pop("created_at"))
    assert reply.body == {"success": True, "data": {
        "accounts": [{"id": str(api.user.id), "email": api.user.email, "name": "Test User"}],
        "total": 1}}
    assert before - timedelta(minutes=5) <= created <= datetime.now(UTC)
    both = await api.call("GET", "/api/v1/accounts", token=BOTH_TOKEN)
    assert {a["email"] for a in both.body["data"]["accounts"]} == {api.user.email, api.other.email}
    assert both.body["data"]["total"] == 2


async def test_account_needed_when_the_token_sees_several(api: Api) -> None:
    reply = await api.call("POST", "/api/v1/emails/drafts", token=BOTH_TOKEN,
                           json_body={"subject": "x"})
    assert reply.status == 400 and reply.body["field"] == "account"  # the SDK's ValidationError
    made = await api.call("POST", "/api/v1/emails/drafts", token=BOTH_TOKEN,
                          json_body={"subject": "x", "account": api.other.email})
    assert made.status == 201
    assert made.body["data"]["account"] == api.other.email
    assert len(api.messages("Drafts", who=api.other)) == 1
    assert api.messages("Drafts") == []


async def test_thunderbird_draft_is_listed_read_updated_deleted(api: Api) -> None:
    uid = api.append(thunderbird_draft(api.user.email), folder="Drafts", flags="(\\Seen)")
    listed = await api.call("GET", "/api/v1/emails/drafts")
    assert [d["uid"] for d in listed.body["data"]["drafts"]] == [uid]
    stable = listed.body["data"]["drafts"][0]["id"]
    exante = await api.call("GET", "/api/email/drafts")
    assert [d["uid"] for d in exante.body["items"]] == [stable]

    got = await api.call("GET", f"/api/v1/emails/drafts/{uid}")
    assert got.status == 200
    draft = got.body["data"]["draft"]
    assert draft["subject"] == "Written in Thunderbird"
    assert draft["text"].startswith("Hello Carol")
    assert draft["to"] == [{"address": "carol@example.test", "name": "Carol Client"}]

    updated = await api.call("PUT", f"/api/v1/emails/drafts/{uid}",
                             json_body={"subject": "Edited through mailbridge"})
    assert updated.status == 200, updated.body
    assert updated.body["data"]["id"] == stable
    [stored] = api.messages("Drafts")
    assert stored.uid == updated.body["data"]["uid"]
    assert stored.message["Subject"] == "Edited through mailbridge"
    assert stored.message["X-Mozilla-Draft-Info"]  # Thunderbird still sees its draft
    assert stored.message.get_body(("plain",)).get_content().startswith("Hello Carol")  # type: ignore[union-attr]

    deleted = await api.call("DELETE", f"/api/v1/emails/drafts/{stable}")
    assert deleted.status == 200
    assert api.messages("Drafts") == []


async def test_stable_id_survives_twenty_updates(api: Api) -> None:
    created = await create(api, {"to": "a@example.test", "subject": "v0"})
    draft_id, uid = created["id"], created["uid"]
    seen_uids = {uid}
    for i in range(1, 21):
        reply = await api.call("PUT", f"/api/v1/emails/drafts/{uid}", json_body={"subject": f"v{i}"})
        assert reply.status == 200, reply.body
        assert reply.body["data"]["id"] == draft_id
        new_uid = reply.body["data"]["uid"]
        assert new_uid not in seen_uids
        assert (await api.call("GET", f"/api/v1/emails/drafts/{uid}")).status == 404
        seen_uids.add(new_uid)
        uid = new_uid
    got = await api.call("GET", f"/api/v1/emails/drafts/{draft_id}")
    assert got.body["data"]["draft"]["subject"] == "v20"
    assert got.body["data"]["draft"]["uid"] == uid
    [stored] = api.messages("Drafts")
    assert stored.uid == uid


async def test_if_match(api: Api) -> None:
    created = await create(api)
    got = await api.call("GET", f"/api/v1/emails/drafts/{created['uid']}")
    etag = got.headers["ETag"]
    updated = await api.call("PUT", f"/api/v1/emails/drafts/{created['uid']}",
                             json_body={"subject": "v2"}, headers={"If-Match": etag})
    assert updated.status == 200, updated.body
    before = api.messages("Drafts")
    stale = await api.call("PUT", f"/api/v1/emails/drafts/{created['id']}",
                           json_body={"subject": "v3"}, headers={"If-Match": etag})
    assert stale.status == 412 and stale.body["code"] == "precondition_failed"
    gone = await api.call("DELETE", f"/api/v1/emails/drafts/{created['id']}",
                          headers={"If-Match": etag})
    assert gone.status == 412
    assert api.messages("Drafts") == before
    fresh = updated.headers["ETag"]
    deleted = await api.call("DELETE", f"/api/v1/emails/drafts/{created['id']}",
                             headers={"If-Match": fresh})
    assert deleted.status == 200
    assert api.messages("Drafts") == []


async def test_idempotency_key(api: Api) -> None:
    headers = {"Idempotency-Key": "order-4711-confirmation"}
    first = await api.call("POST", "/api/v1/emails/drafts", json_body=FULL_DRAFT, headers=headers)
    retry = await api.call("POST", "/api/v1/emails/drafts", json_body=FULL_DRAFT, headers=headers)
    assert first.status == retry.status == 201
    assert first.body == retry.body
    assert len(api.messages("Drafts")) == 1
    other = await api.call("POST", "/api/v1/emails/drafts", json_body=FULL_DRAFT,
                           headers={"Idempotency-Key": "another-key"})
    assert other.status == 201 and other.body["data"]["id"] != first.body["data"]["id"]
    assert len(api.messages("Drafts")) == 2

    # the same key from another token is another key
    theirs = await api.call("POST", "/api/v1/emails/drafts", json_body={"subject": "x"},
                            headers=headers, token=WRITE_TOKEN)
    assert theirs.status == 201 and theirs.body["data"]["id"] != first.body["data"]["id"]
    # concurrent retries: one draft
    racing = await asyncio.gather(*(api.call("POST", "/api/v1/emails/drafts", json_body=FULL_DRAFT,
                                             headers={"Idempotency-Key": "race"})
                                    for _ in range(8)))
    assert {r.status for r in racing} == {201}
    assert len({r.body["data"]["id"] for r in racing}) == 1
    assert len(api.messages("Drafts")) == 4


async def test_concurrent_updates_leave_exactly_one_version(api: Api) -> None:
    created = await create(api, {"to": "a@example.test", "subject": "start"})
    draft_id = created["id"]

    async def update(i: int) -> tuple[int, int, str]:
        reply = await api.call("PUT", f"/api/v1/emails/drafts/{draft_id}",
                               json_body={"subject": f"update {i}", "text": f"body {i}"})
        return i, reply.status, reply.body["data"]["uid"] if reply.status == 200 else 0

    results = await asyncio.gather(*(update(i) for i in range(50)))
    statuses = {status for _, status, _ in results}
    assert statuses <= {200, 409, 412}, results
    winners = {i: uid for i, status, uid in results if status == 200}
    assert winners
    [stored] = api.messages("Drafts")
    subject = stored.message["Subject"]
    assert subject in {f"update {i}" for i in winners}
    i = int(subject.split()[1])
    assert stored.uid == winners[i]
    assert stored.message.get_body(("plain",)).get_content().strip() == f"body {i}"  # type: ignore[union-attr]
    got = await api.call("GET", f"/api/v1/emails/drafts/{draft_id}")
    assert got.body["data"]["draft"]["subject"] == subject


async def test_update_and_delete_name_the_draft_in_body_or_query(api: Api) -> None:
    """The Jasni SDK's forms: PUT /emails/drafts with uid in the body, DELETE /emails/drafts?uid=;
    without a uid they answer 400 naming it, and change nothing."""
    draft = await create(api)
    for method, kw in (("PUT", {"json_body": {"subject": "No uid"}}), ("DELETE", {})):
        reply = await api.call(method, "/api/v1/emails/drafts", **kw)
        assert (reply.status, reply.body["field"]) == (400, "uid"), reply.body
    listed = await api.call("GET", "/api/v1/emails/drafts")
    assert [d["uid"] for d in listed.body["data"]["drafts"]] == [draft["uid"]]
    updated = await api.call("PUT", "/api/v1/emails/drafts",
                             json_body={"uid": draft["uid"], "subject": "By body"})
    assert updated.status == 200 and updated.body["data"]["id"] == draft["id"], updated.body
    gone = await api.call("DELETE", "/api/v1/emails/drafts",
                          params={"uid": str(updated.body["data"]["uid"])})
    assert gone.status == 200, gone.body
    listed = await api.call("GET", "/api/v1/emails/drafts")
    assert listed.body["data"]["drafts"] == []


async def test_acting_on_a_message_refuses_bad_input_and_deletes_drafts_as_drafts(
        api: Api) -> None:
    """PATCH wants action read or unread (400 naming it otherwise, nothing changed); a message
    of Drafts deleted through /emails/{uid} goes as a draft does, every copy."""
    uid = await asyncio.to_thread(api.append, b"Subject: Hi\r\n\r\nx\r\n")
    bad = await api.call("PATCH", f"/api/v1/emails/{uid}", json_body={"action": "flag"})
    assert (bad.status, bad.body["field"]) == (400, "action"), bad.body
    got = await api.call("GET", f"/api/v1/emails/{uid}")
    assert got.body["data"]["email"]["seen"] is False
    draft = await create(api)
    gone = await api.call("DELETE", f"/api/v1/emails/{draft['uid']}", params={"folder": "Drafts"})
    assert gone.status == 200 and gone.body["data"]["movedTo"] is None, gone.body
    listed = await api.call("GET", "/api/v1/emails/drafts")
    assert listed.body["data"]["drafts"] == []
    missing = await api.call("GET", f"/api/v1/emails/{draft['uid']}/raw", params={"folder": "Drafts"})
    assert missing.status == 404


async def test_reply_and_forward_refuse_what_they_cannot_send(api: Api) -> None:
    """A forward to something that is not an address, or without to: 4xx naming the field,
    nothing sent, nothing left in Drafts; a reply to a message that is not there: 404."""
    uid = await asyncio.to_thread(api.append, b"From: ann@example.test\r\nSubject: Hi\r\n\r\nx\r\n")
    bad = await api.call("POST", f"/api/v1/emails/{uid}/forward", json_body={"to": "nobody"})
    assert bad.status == 400 and bad.body["field"] == "to", bad.body
    missing = await api.call("POST", f"/api/v1/emails/{uid}/forward", json_body={"text": "x"})
    assert (missing.status, missing.body["field"]) == (400, "to"), missing.body
    gone = await api.call("POST", f"/api/v1/emails/{uid + 100}/reply", json_body={"text": "x"})
    assert gone.status == 404, gone.body
    assert [m for m in api.devstack.smtp.delivered if m.login == api.user.email] == []
    listed = await api.call("GET", "/api/v1/emails/drafts")
    assert listed.body["data"]["drafts"] == []
