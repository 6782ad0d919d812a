"""Hostile and heavy callers: what the bad-request catalogue (test_api_errors) cannot send
through aiohttp's own client, and what needs timing or a second request alongside."""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import socket
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from api_helpers import FULL_TOKEN, Api, running_api

from conftest import MailUser
from mailbridge.devstack.stack import DevStack

E = "/api/email/drafts"
J = "/api/v1/emails/drafts"


@pytest.fixture
async def api(devstack: DevStack, user: MailUser) -> AsyncIterator[Api]:
    async with running_api(devstack, user) as running:
        yield running


def raw_request(port: int, request: bytes) -> bytes:
    """Sends ``request`` as bytes over a socket of its own; the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)  # with "Connection: close" the server closes after its answer
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


async def test_an_authorization_header_that_is_not_utf8_is_401(api: Api) -> None:
    port = api.client.port
    assert port is not None
    for value in (b"Bearer \xff\xfe\xfd", b"\xc3\x28 token",
                  b"Bearer " + FULL_TOKEN.encode()[:-1] + b"\xe9"):
        answer = await asyncio.to_thread(raw_request, port, b"GET /api/email/drafts HTTP/1.1\r\n"
                                         b"Host: x\r\nAuthorization: " + value + b"\r\n"
                                         b"Connection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        assert b'"unauthorized"' in answer


async def test_a_hundred_thousand_recipients_are_refused_without_stalling_others(
        api: Api) -> None:
    """The count is checked before any address is parsed. Meanwhile /healthz keeps answering:
    before, every other request waited 4-25 s."""
    crowd = [f"r{i}@example.test" for i in range(100_000)]
    port = api.client.port
    assert port is not None
    latencies: list[float] = []
    done = threading.Event()

    def probe() -> None:  # a thread of its own: the event loop of the app may not time itself
        while not done.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            started = time.perf_counter()
            conn.request("GET", "/healthz")
            assert conn.getresponse().status == 200
            latencies.append(time.perf_counter() - started)
            conn.close()
            time.sleep(0.005)

    bodies = [(path, json.dumps(body).encode()) for path, body in (
        (E, {"to": crowd, "subject": "crowd"}),
        (J, {"to": ", ".join(crowd), "subject": "crowd"}),
        (J, {"to": crowd[:50], "cc": crowd[50:], "subject": "crowd"}))]
    prober = threading.Thread(target=probe)
    prober.start()
    await asyncio.sleep(0.05)
    for path, data in bodies:
        started = time.perf_counter()
        answer = await api.client.post(path, data=io.BytesIO(data), headers={
            "Authorization": f"Bearer {FULL_TOKEN}", "Content-Type": "application/json"})
        reply = await answer.json()
        took = time.perf_counter() - started
        assert answer.status == (400 if path == J else 422), reply  # dialect 1: ValidationError
        field = reply["field"] if path == J else reply["error"]["field"]
        assert field in ("to", "cc"), reply
        print(f"\n{path}: 100,000 recipients refused in {took * 1000:.0f} ms")
    done.set()
    await asyncio.to_thread(prober.join)
    print(f"/healthz meanwhile: {len(latencies)} answers, slowest {max(latencies) * 1000:.1f} ms")
    assert max(latencies) < 0.1
    assert api.messages("Drafts") == []


async def test_fractional_seconds_with_every_offset_form(api: Api) -> None:
    """datetime.isoformat()'s own output (microseconds and a numeric offset) was refused as
    "must have an offset"; every Python caller's scheduled send failed."""
    base = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    forms = {
        base.isoformat(): base,
        base.replace(microsecond=123456).isoformat(): base.replace(microsecond=123456),
        base.replace(microsecond=500000).astimezone(
            timezone(timedelta(hours=5, minutes=30))).isoformat():
            base.replace(microsecond=500000),
        base.strftime("%Y-%m-%dT%H:%M:%S.123456789Z"): base.replace(microsecond=123456),
        base.strftime("%Y-%m-%dT%H:%M:%S.1z"): base.replace(microsecond=100000),
        base.astimezone(timezone(-timedelta(hours=3))).isoformat(
            timespec="milliseconds"): base,
        base.strftime("%Y-%m-%d %H:%M:%S.25+00:00"): base.replace(microsecond=250000),
    }
    for text, moment in forms.items():
        reply = await api.call("POST", E, json_body={"to": ["a@example.test"], "subject": text,
                                                     "planned_send_at": text})
        assert reply.status == 201, (text, reply.body)
        planned = datetime.fromisoformat(reply.body["planned_send_at"].replace("Z", "+00:00"))
        assert abs((planned - moment).total_seconds()) < 1, (text, reply.body["planned_send_at"])
        assert reply.body["status"] == "scheduled"
        await api.call("DELETE", f"{E}/{reply.body['uid']}")


async def test_dates_are_rendered_with_four_digit_years(api: Api) -> None:
    """A message another client wrote with a Date in year 672 renders as 0672-..., valid RFC
    3339 (before: "672-03-17T..."), in both dialects."""
    raw = (b"From: someone@example.test\r\nTo: x@example.test\r\nSubject: Ancient\r\n"
           b"Date: Thu, 17 Mar 0672 10:00:00 +0000\r\nMessage-ID: <ancient@example.test>\r\n"
           b"\r\nOld.\r\n")
    uid = api.append(raw, "Drafts", "\\Draft \\Seen")
    listed = await api.call("GET", E)
    [item] = listed.body["items"]
    assert item["created_at"].startswith("0672-03-17T"), item["created_at"]
    one = await api.call("GET", f"{J}/{uid}")
    assert one.status == 200, one.body
    assert one.body["data"]["draft"]["date"].startswith("0672-03-17T")


async def test_an_idempotency_key_reused_with_another_request_is_422(api: Api) -> None:
    key = {"Idempotency-Key": "reused-key-1"}
    first = await api.call("POST", E, json_body={"to": ["a@example.test"], "subject": "One"},
                           headers=key)
    assert first.status == 201
    retry = await api.call("POST", E, json_body={"to": ["a@example.test"], "subject": "One"},
                           headers=key)
    assert retry.status == 201 and retry.body["uid"] == first.body["uid"]
    other = await api.call("POST", E, json_body={"to": ["a@example.test"], "subject": "Two"},
                           headers=key)
    assert other.status == 422, other.body
    assert other.body["error"] == {"code": "idempotency_key_reused", "field": "Idempotency-Key",
                                   "message": other.body["error"]["message"]}
    assert len(api.messages("Drafts")) == 1

    # sends: a key that a draft in Drafts holds (its send was refused by the SMTP server)
    # cannot send another draft
    a = await api.call("POST", E, json_body={"to": ["a@elsewhere.test"], "subject": "A"})
    b = await api.call("POST", E, json_body={"to": ["b@elsewhere.test"], "subject": "B"})
    send_key = {"Idempotency-Key": "send-key-1"}
    api.devstack.smtp.fail_next.append((554, "5.7.1 Rejected on purpose"))
    try:
        failed = await api.call("POST", f"{E}/{a.body['uid']}/send", headers=send_key)
    finally:
        api.devstack.smtp.fail_next.clear()
    assert failed.status == 502, failed.body
    reused = await api.call("POST", f"{E}/{b.body['uid']}/send", headers=send_key)
    assert reused.status == 422 and reused.body["error"]["code"] == "idempotency_key_reused"
    assert (await api.call("GET", f"{E}/{b.body['uid']}")).body["status"] == "draft"
    # the retry of the very request still answers what it answered
    retry = await api.call("POST", f"{E}/{a.body['uid']}/send", headers=send_key)
    assert retry.status == 502, retry.body


async def test_a_body_declared_as_json_needs_no_header_and_other_types_are_415(api: Api) -> None:
    port = api.client.port
    assert port is not None
    body = json.dumps({"to": ["a@example.test"], "subject": "no content type"}).encode()
    answer = await asyncio.to_thread(
        raw_request, port, b"POST /api/email/drafts HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer " + FULL_TOKEN.encode() + b"\r\nContent-Length: "
        + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
    assert answer.startswith(b"HTTP/1.1 201"), answer[:300]
    for ctype in ("application/json; charset=utf-8", "application/merge-patch+json"):
        ok = await api.call("POST", E, data=body, headers={"Content-Type": ctype})
        assert ok.status == 201, (ctype, ok.body)
