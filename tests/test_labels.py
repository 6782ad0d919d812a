"""Labels against bad input and awkward names: every name works and becomes a keyword the IMAP
server takes (no IMAP syntax from a caller reaches a command), bad input is a 400 naming the
field, and nothing is written."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest
from api_helpers import READ_TOKEN, Api, running_api

from conftest import MailUser
from mailbridge.devstack.stack import DevStack
from mailbridge.labels import keyword_of


@pytest.fixture
async def api(devstack: DevStack, user: MailUser) -> AsyncIterator[Api]:
    async with running_api(devstack, user) as running:
        yield running


@pytest.mark.parametrize("name, keyword", [
    ("Work", "Work"),
    ("to-do_2026.q3+x", "to-do_2026.q3+x"),
    ("R&D", "R&D"),
    ("$Forwarded", None),  # never a system keyword
    ("\\Seen", None),
    ("two words", None),
    ("(paren)", None),
    ('say "hi"', None),
    ("50%*", None),
    ("]", None),
    ("Größe", None),
    ("x" * 51, None),  # longer than Dovecot's keyword limit
])
def test_keyword_of(name: str, keyword: str | None) -> None:
    got = keyword_of(name)
    if keyword is not None:
        assert got == keyword
    else:
        assert re.fullmatch("mb_[a-z2-7]{26}", got), got
        assert keyword_of(name) == got and keyword_of(name + " ") != got


async def test_awkward_names_go_on_and_off(api: Api) -> None:
    uid = await asyncio.to_thread(api.append, b"Subject: x\r\nMessage-ID: <aw@x>\r\n\r\nx\r\n")
    names = ["$Forwarded", "\\Seen", 'a) (b "c" {3}', "Größe 50%", "]x*"]
    made = await api.call("POST", f"/api/v1/emails/{uid}/labels", json_body={"labels": names})
    assert made.status == 200, made.body
    assert sorted(lb["name"] for lb in made.body["data"]["labels"]) == sorted(names)
    flags = (await api.call("GET", f"/api/v1/emails/{uid}")).body["data"]["email"]["flags"]
    assert "$Forwarded" not in flags and "\\Seen" not in flags  # the names, not the flags
    ids = ",".join(lb["id"] for lb in made.body["data"]["labels"])
    gone = await api.call("DELETE", f"/api/v1/emails/{uid}/labels", params={"label_ids": ids})
    assert gone.body["data"]["removed_count"] == len(names), gone.body


async def test_bad_input_names_the_field_and_writes_nothing(api: Api) -> None:
    uid = await asyncio.to_thread(api.append, b"Subject: x\r\n\r\nx\r\n")
    on = f"/api/v1/emails/{uid}/labels"
    cases = [
        ("POST", "/api/v1/labels", {}, None, 400, "name"),
        ("POST", "/api/v1/labels", {"name": ""}, None, 400, "name"),
        ("POST", "/api/v1/labels", {"name": "a\r\nb"}, None, 400, "name"),
        ("POST", "/api/v1/labels", {"name": "x" * 101}, None, 400, "name"),
        ("POST", "/api/v1/labels", {"name": "ok", "color": "blue"}, None, 400, "color"),
        ("POST", "/api/v1/labels", {"name": "ok", "colour": "#000000"}, None, 400, "colour"),
        ("DELETE", "/api/v1/labels", None, None, 400, "id"),
        ("DELETE", "/api/v1/labels", None, {"id": "a) (b"}, 404, "id"),
        ("GET", "/api/v1/labels", None, {"include_count": "maybe"}, 400, "include_count"),
        ("POST", on, {}, None, 400, "labels"),
        ("POST", on, {"labels": ["ok\tno"]}, None, 400, "labels"),
        ("POST", on, {"label_ids": ["a) (b"]}, None, 404, "label_ids"),
        ("POST", f"/api/v1/emails/{uid + 5}/labels", {"labels": ["ok"]}, None, 404, "uid"),
        ("DELETE", on, None, None, 400, "label_ids"),
    ]
    for method, path, body, params, status, field in cases:
        answer = await api.call(method, path, json_body=body, params=params)
        assert (answer.status, answer.body.get("field")) == (status, field), (path, body, params,
                                                                             answer.body)
    odd = await api.call("DELETE", on, params={"label_ids": 'a) (b,"c'})
    assert odd.status == 200 and odd.body["data"]["removed_count"] == 0, odd.body
    assert (await api.call("GET", "/api/v1/labels")).body["data"]["labels"] == []
    flags = (await api.call("GET", f"/api/v1/emails/{uid}")).body["data"]["email"]["flags"]
    assert flags == []
    read_only = await api.call("POST", "/api/v1/labels", json_body={"name": "x"}, token=READ_TOKEN)
    assert read_only.status == 403
