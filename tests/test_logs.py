"""[logging] format = "json": one JSON object per line, each with the id of the request it
belongs to, the same id the response names in X-Request-Id (the caller's own when it is a short
token); no password or token in any line. The text format carries the id too."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator

import pytest
from api_helpers import FULL_TOKEN, Api, running_api

from conftest import MailUser
from mailbridge import logs
from mailbridge.devstack.stack import DevStack


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.fixture
async def api(devstack: DevStack, user: MailUser) -> AsyncIterator[Api]:
    async with running_api(devstack, user) as running:
        yield running


async def _send_one(api: Api, request_id: str) -> str:
    made = await api.call("POST", "/api/email/drafts", json_body={
        "to": ["bob@example.test"], "subject": "Logged", "body_text": "x"})
    sent = await api.call("POST", f"/api/email/drafts/{made.body['uid']}/send",
                          headers={"X-Request-Id": request_id})
    assert sent.status == 200
    return sent.headers["X-Request-Id"]


async def test_json_lines_carry_the_request_id(api: Api, restore_logging: None,
                                               capfd: pytest.CaptureFixture[str]) -> None:
    logs.setup("info", "json")
    assert await _send_one(api, "req-42.abc") == "req-42.abc"
    odd = await api.call("GET", "/api/email/drafts", headers={"X-Request-Id": "no spaces allowed"})
    assert odd.headers["X-Request-Id"] != "no spaces allowed"
    assert len(odd.headers["X-Request-Id"]) == 32
    missing = await api.call("GET", "/nowhere")  # an error answer says its id too
    assert missing.status == 404 and missing.headers["X-Request-Id"]
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert {"time", "level", "logger", "message", "request_id"} <= set(records[0])
    sent = [r for r in records if r["message"].startswith("SMTP sent message")]
    assert [r["request_id"] for r in sent] == ["req-42.abc"]
    text = "\n".join(lines)
    assert api.user.password not in text and FULL_TOKEN not in text


async def test_text_lines_carry_it_too(api: Api, restore_logging: None,
                                       capfd: pytest.CaptureFixture[str]) -> None:
    logs.setup("info", "text")
    await _send_one(api, "plain-7")
    [line] = [x for x in capfd.readouterr().err.splitlines() if "SMTP sent message" in x]
    assert " INFO mailbridge.smtp [plain-7]: SMTP sent message" in line
