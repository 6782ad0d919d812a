"""A catalogue of bad requests to both dialects: each gets its status, the dialect's error shape
and the field at fault, and none of them creates or changes a message on the server.

The app runs with small limits so that the size limits can be hit cheaply. A value that cannot
be used is a 422 in dialect 2 and a 400 in dialect 1, where the Jasni SDK raises 400 as
ValidationError (mailbridge/api/statuses.py, DIALECT_1).
"""

from __future__ import annotations

import hashlib
import json
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from api_helpers import (
    BOTH_TOKEN,
    FULL_TOKEN,
    READ_TOKEN,
    WRITE_TOKEN,
    Api,
    b64,
    running_api,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import MailUser
from mailbridge.api import create_app
from mailbridge.devstack.stack import DevStack

LIMITS = {"max_request_bytes": 4096, "max_body_bytes": 1000, "max_attachment_bytes": 300,
          "max_draft_attachments_bytes": 500, "max_recipients": 3, "max_attachments": 2,
          "max_header_chars": 100, "max_json_depth": 6}

J = "/api/v1/emails/drafts"
E = "/api/email/drafts"
NO_BODY = object()


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str
    status: int
    culprit: str | None = None
    code: str | None = None
    body: Any = NO_BODY
    raw: bytes | None = None
    token: str | None = FULL_TOKEN
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


def big(n: int) -> str:
    return b64(b"x" * n)


CASES = [
    # --- authentication and authorisation
    Case("j-no-token", "GET", J, 401, token=None, code="unauthorized"),
    Case("e-no-token", "POST", E, 401, token=None, body={"subject": "x"}, code="unauthorized"),
    Case("j-wrong-token", "GET", "/api/v1/accounts", 401, token="not-the-token",
         code="unauthorized"),
    Case("j-token-prefix", "GET", J, 401, token=FULL_TOKEN[:-1], code="unauthorized"),
    Case("e-basic-scheme", "GET", E, 401, token=None, code="unauthorized",
         headers={"Authorization": f"Basic {FULL_TOKEN}"}),
    Case("j-read-only-create", "POST", J, 403, token=READ_TOKEN, body={"subject": "x"},
         code="forbidden"),
    Case("j-read-only-update", "PUT", f"{J}/{{uid}}", 403, token=READ_TOKEN,
         body={"subject": "x"}, code="forbidden"),
    Case("e-read-only-delete", "DELETE", f"{E}/{{id}}", 403, token=READ_TOKEN, code="forbidden"),
    # a send without the send scope asks for approval (202, test_approval); approving needs
    # the approve scope
    Case("j-approve-without-approve-scope", "POST", f"{J}/{{uid}}/approve", 403,
         token=WRITE_TOKEN, body={}, code="forbidden"),
    Case("e-approve-without-approve-scope", "POST", f"{E}/{{id}}/approve", 403,
         token=FULL_TOKEN, code="forbidden"),
    Case("j-unknown-account", "GET", J, 404, "account", "not_found",
         params={"account": "nobody@example.test"}),
    Case("e-unknown-account", "POST", E, 404, "from_account_id", "not_found",
         body={"from_account_id": str(uuid.uuid4()), "subject": "x"}),
    Case("j-account-of-another-token", "POST", J, 404, "account", "not_found",
         body={"account": "{other}", "subject": "x"}),
    Case("e-account-of-another-token", "GET", E, 404, "from_account_id", "not_found",
         params={"from_account_id": "{other_id}"}),
    Case("e-account-required", "POST", E, 422, "from_account_id", token=BOTH_TOKEN,
         body={"subject": "x"}),
    # --- the body as a whole
    Case("j-malformed-json", "POST", J, 400, code="malformed_json", raw=b'{"subject": "x",}'),
    Case("e-malformed-json", "POST", E, 400, code="malformed_json", raw=b"{subject: x}"),
    Case("j-json-array", "POST", J, 400, code="malformed_json", body=[{"subject": "x"}]),
    Case("e-json-string", "POST", E, 400, code="malformed_json", body="subject"),
    Case("e-json-null", "POST", E, 400, code="malformed_json", raw=b"null"),
    Case("j-empty-body", "POST", J, 400, code="malformed_json", raw=b""),
    Case("j-not-utf8", "POST", J, 400, code="malformed_json", raw=b'{"subject": "\xff\xfe"}'),
    Case("j-deep-nesting", "POST", J, 400, raw=b"[" * 2000 + b"]" * 2000),
    Case("j-lone-surrogate", "POST", J, 400, "subject", raw=b'{"subject": "a\\ud800b"}'),
    Case("j-unknown-field", "POST", J, 400, "subjekt", "unknown_field",
         body={"subjekt": "typo"}),
    Case("j-snake-case-field", "PUT", f"{J}/{{uid}}", 400, "in_reply_to", "unknown_field",
         body={"in_reply_to": "<a@b>"}),
    Case("e-unknown-field", "POST", E, 400, "inReplyTo", "unknown_field",
         body={"subject": "x", "inReplyTo": "<a@b>"}),
    Case("e-unknown-attachment-field", "POST", E, 400, "attachments[0].content",
         "unknown_field", body={"attachments": [{"filename": "a", "data_base64": "",
                                                 "content": "eA=="}]}),
    # --- types and forms
    Case("j-subject-number", "POST", J, 400, "subject", "invalid_input", body={"subject": 5}),
    Case("j-to-number-list", "POST", J, 400, "to", body={"to": [1, 2]}),
    Case("e-to-string", "POST", E, 422, "to", body={"to": "bob@example.test"}),
    Case("j-attachments-object", "POST", J, 400, "attachments", body={"attachments": {}}),
    Case("e-attachment-without-data", "POST", E, 422, "attachments[0].data_base64",
         body={"attachments": [{"filename": "a.txt"}]}),
    Case("j-attachment-empty-filename", "POST", J, 400, "attachments[0].filename",
         body={"attachments": [{"filename": "", "content": "eA=="}]}),
    Case("e-uid-not-uuid", "POST", E, 422, "uid", body={"uid": "12", "subject": "x"}),
    Case("j-references-number", "PUT", f"{J}/{{uid}}", 400, "references",
         body={"references": 7}),
    Case("j-bad-message-id", "POST", J, 400, "inReplyTo", body={"inReplyTo": "not a msgid"}),
    Case("j-bad-content-type", "POST", J, 400, "attachments[0].contentType",
         body={"attachments": [{"filename": "a", "contentType": "pdf", "content": "eA=="}]}),
    Case("e-context-too-long", "POST", E, 422, "context_id", body={"context_id": "x" * 300}),
    # --- addresses
    Case("j-bad-address", "POST", J, 400, "to", body={"to": "not an address"}),
    Case("j-bad-address-in-list", "PUT", f"{J}/{{id}}", 400, "cc",
         body={"cc": ["ok@example.test", "bob@"]}),
    Case("e-bad-address", "POST", E, 400, "bcc", body={"bcc": ["two@@example.test"]}),
    # --- header injection (CR/LF, and the other line breaks the email package honours)
    Case("j-crlf-subject", "POST", J, 400, "subject", body={"subject": "Hi\r\nBcc: x@evil.test"}),
    Case("e-lf-subject", "POST", E, 400, "subject", body={"subject": "Hi\nBcc: x@evil.test"}),
    Case("j-u2028-subject", "POST", J, 400, "subject", body={"subject": "Hi\u2028Bcc: x@e.test"}),
    Case("j-nul-subject", "POST", J, 400, "subject", body={"subject": "Hi\x00there"}),
    Case("e-crlf-display-name", "POST", E, 400, "to",
         body={"to": ["Bob\r\nBcc: x@evil.test <bob@example.test>"]}),
    Case("j-crlf-display-name", "POST", J, 400, "to",
         body={"to": "\"Bob\r\nX: y\" <bob@example.test>"}),
    Case("j-crlf-filename", "POST", J, 400, "attachments[0].filename",
         body={"attachments": [{"filename": "a\r\nb.txt", "content": "eA=="}]}),
    Case("e-crlf-filename", "POST", E, 400, "attachments[0].filename",
         body={"attachments": [{"filename": "a\nContent-Type: text/html",
                                "data_base64": "eA=="}]}),
    Case("e-path-filename", "POST", E, 400, "attachments[0].filename",
         body={"attachments": [{"filename": "../../etc/passwd", "data_base64": "eA=="}]}),
    Case("e-crlf-context-id", "POST", E, 400, "context_id",
         body={"context_id": "inv-1\r\nX-Evil: 1"}),
    Case("j-lf-context-type", "PUT", f"{J}/{{uid}}", 400, "contextType",
         body={"contextType": "a\nb"}),
    Case("j-crlf-content-type", "POST", J, 400, "attachments[0].contentType",
         body={"attachments": [{"filename": "a", "contentType": "text/plain\r\nX: y",
                                "content": "eA=="}]}),
    Case("j-crlf-in-reply-to", "POST", J, 400, "inReplyTo",
         body={"inReplyTo": "<a@b>\r\nBcc: x@evil.test"}),
    Case("e-crlf-context-filter", "GET", E, 400, "context_id",
         params={"context_id": "a\r\nb"}),
    # --- base64
    Case("j-bad-base64", "POST", J, 400, "attachments[0].content",
         body={"attachments": [{"filename": "a", "content": "@@@@"}]}),
    Case("e-bad-base64-padding", "POST", E, 400, "attachments[1].data_base64",
         body={"attachments": [{"filename": "a", "data_base64": "eA=="},
                               {"filename": "b", "data_base64": "eA="}]}),
    Case("j-base64-with-newline", "POST", J, 400, "attachments[0].content",
         body={"attachments": [{"filename": "a", "content": "eHh4\neHh4"}]}),
    Case("e-base64-non-ascii", "POST", E, 400, "attachments[0].data_base64",
         body={"attachments": [{"filename": "a", "data_base64": "eHh4ä"}]}),
    # --- limits
    Case("j-request-too-large", "POST", J, 413, code="payload_too_large",
         body={"subject": "x", "text": "y" * 5000}),
    Case("e-request-too-large", "POST", E, 413, code="payload_too_large",
         raw=b'{"subject": "' + b"y" * 5000 + b'"}'),
    Case("j-attachment-too-large", "POST", J, 413, "attachments[0].content", "payload_too_large",
         body={"attachments": [{"filename": "a", "content": big(301)}]}),
    Case("e-attachments-too-large", "POST", E, 413, "attachments", "payload_too_large",
         body={"attachments": [{"filename": "a", "data_base64": big(260)},
                               {"filename": "b", "data_base64": big(260)}]}),
    Case("e-body-too-large", "POST", E, 413, "body_html", "payload_too_large",
         body={"body_text": "a" * 300, "body_html": "b" * 800}),
    Case("j-too-many-recipients", "POST", J, 400, "cc",
         body={"to": "a@example.test, b@example.test", "cc": ["c@example.test", "d@example.test"]}),
    Case("e-too-many-recipients", "POST", E, 422, "to",
         body={"to": [f"r{i}@example.test" for i in range(4)]}),
    # --- planned_send_at
    Case("j-planned-without-offset", "POST", J, 400, "plannedSendAt",
         body={"plannedSendAt": "2030-01-01T10:00:00"}),
    Case("e-planned-without-offset", "POST", E, 422, "planned_send_at",
         body={"planned_send_at": "2030-01-01T10:00:00"}),
    Case("e-planned-garbage", "POST", E, 422, "planned_send_at",
         body={"uid": "{id}", "planned_send_at": "tomorrow"}),
    Case("e-planned-date-only", "POST", E, 422, "planned_send_at",
         body={"planned_send_at": "2030-01-01"}),
    Case("e-planned-number", "POST", E, 422, "planned_send_at",
         body={"planned_send_at": 1893456000}),
    Case("e-planned-fraction-offset-garbage", "POST", E, 422, "planned_send_at",
         body={"planned_send_at": "2030-01-01T10:00:00.5+25:00"}),
    Case("e-planned-before-1970", "POST", E, 422, "planned_send_at",
         body={"planned_send_at": "1969-12-31T23:59:59Z"}),
    Case("j-planned-year-672", "POST", J, 400, "plannedSendAt",
         body={"plannedSendAt": "0672-03-17T00:00:00Z"}),
    Case("e-planned-year-10000", "POST", E, 422, "planned_send_at",
         body={"planned_send_at": "10000-01-01T00:00:00Z"}),
    # --- limits enforced before the work they protect
    Case("j-too-many-attachments", "POST", J, 400, "attachments",
         body={"attachments": [{"filename": f"a{i}", "content": "eA=="} for i in range(3)]}),
    Case("e-subject-too-long", "POST", E, 422, "subject", body={"subject": "s" * 101}),
    Case("j-display-name-too-long", "POST", J, 400, "to[0]",
         body={"to": [f"{'n' * 101} <n@example.test>"]}),
    Case("e-filename-too-long", "POST", E, 422, "attachments[0].filename",
         body={"attachments": [{"filename": "f" * 101, "data_base64": "eA=="}]}),
    Case("j-recipients-in-one-string", "POST", J, 400, "to",
         body={"to": ", ".join(f"r{i}@example.test" for i in range(50))}),
    Case("j-json-too-deep", "POST", J, 400, code="malformed_json",
         raw=b'{"to": [[[[[[["a@example.test"]]]]]]]}'),
    Case("e-json-brackets-in-strings-are-no-depth", "POST", E, 422, "subject",
         body={"subject": "[[[[[[[[[[{{{{{{{{" * 7}),
    Case("j-duplicate-key", "POST", J, 400, "subject", "malformed_json",
         raw=b'{"subject": "shown", "subject": "sent"}'),
    Case("e-duplicate-nested-key", "POST", E, 400, "filename", "malformed_json",
         raw=b'{"attachments": [{"filename": "a", "filename": "b", "data_base64": "eA=="}]}'),
    Case("j-form-content-type", "POST", J, 415, "Content-Type", "unsupported_media_type",
         body={"subject": "x"}, headers={"Content-Type": "application/x-www-form-urlencoded"}),
    Case("e-text-content-type", "POST", E, 415, "Content-Type", "unsupported_media_type",
         body={"subject": "x"}, headers={"Content-Type": "text/plain"}),
    Case("j-false-gzip", "POST", J, 400, "Content-Encoding", body={"subject": "x"},
         headers={"Content-Encoding": "gzip"}),
    Case("e-false-deflate", "POST", E, 400, "Content-Encoding", body={"subject": "x"},
         headers={"Content-Encoding": "deflate"}),
    # --- query parameters
    Case("j-limit-zero", "GET", J, 400, "limit", params={"limit": "0"}),
    Case("j-limit-too-big", "GET", "/api/v1/emails", 400, "limit", params={"limit": "101"}),
    Case("e-limit-not-a-number", "GET", E, 400, "limit", params={"limit": "ten"}),
    Case("e-bad-cursor", "GET", E, 400, "cursor", params={"cursor": "!!not-a-cursor!!"}),
    Case("e-forged-cursor", "GET", E, 400, "cursor", params={"cursor": "OTk5OTk6MTA"}),
    Case("e-bad-status", "GET", E, 400, "status", params={"status": "done"}),
    Case("j-bad-folder", "GET", "/api/v1/emails", 400, "folder", params={"folder": "a\r\nb"}),
    Case("j-missing-folder", "GET", "/api/v1/emails/1", 404, "folder",
         params={"folder": "Nope"}),
    Case("j-folder-refused", "GET", "/api/v1/emails", 400, "folder", "invalid_input",
         params={"folder": "INBOX/../x"}),
    Case("j-folder-refused-get", "GET", "/api/v1/emails/1", 400, "folder", "invalid_input",
         params={"folder": "a//b"}),
    # --- ids in paths
    Case("j-no-such-uid", "GET", f"{J}/999999", 404, "uid", "not_found"),
    Case("j-no-such-uid-update", "PUT", f"{J}/999999", 404, "uid", "not_found",
         body={"subject": "x"}),
    Case("j-no-such-id-delete", "DELETE", f"{J}/{uuid.uuid4()}", 404, "uid", "not_found"),
    Case("e-no-such-id", "GET", f"{E}/{uuid.uuid4()}", 404, "uid", "not_found"),
    Case("e-no-such-id-update", "POST", E, 404, "uid", "not_found",
         body={"uid": str(uuid.uuid4()), "subject": "x"}),
    Case("e-no-such-id-delete", "DELETE", f"{E}/{uuid.uuid4()}", 404, "uid", "not_found"),
    Case("j-bad-uid", "GET", f"{J}/abc", 400, "uid"),
    Case("j-uid-zero", "DELETE", f"{J}/0", 400, "uid"),
    Case("e-uid-not-a-uuid", "GET", f"{E}/123", 400, "uid"),
    Case("j-email-uid-not-a-number", "GET", "/api/v1/emails/abc", 400, "uid"),
    # --- headers
    Case("j-stale-if-match", "PUT", f"{J}/{{uid}}", 412, "If-Match", "precondition_failed",
         body={"subject": "x"}, headers={"If-Match": '"1.1.1"'}),
    Case("e-stale-if-match-update", "POST", E, 412, "If-Match", "precondition_failed",
         body={"uid": "{id}", "subject": "x"}, headers={"If-Match": '"1.1.1"'}),
    Case("e-stale-if-match-delete", "DELETE", f"{E}/{{id}}", 412, "If-Match",
         "precondition_failed", headers={"If-Match": '"1.1.1", "2.2.2"'}),
    Case("j-idempotency-key-too-long", "POST", J, 400, "Idempotency-Key",
         body={"subject": "x"}, headers={"Idempotency-Key": "k" * 201}),
    Case("e-idempotency-key-empty", "POST", E, 400, "Idempotency-Key",
         body={"subject": "x"}, headers={"Idempotency-Key": ""}),
    Case("e-idempotency-key-control", "POST", E, 400, "Idempotency-Key",
         body={"subject": "x"}, headers={"Idempotency-Key": "a\tb"}),
    # --- routing
    Case("j-no-such-route", "GET", "/api/v1/nothing", 404, code="not_found"),
    Case("e-method-not-allowed", "PUT", E, 405, code="method_not_allowed",
         body={"subject": "x"}),
]


@pytest.fixture
async def small_api(devstack: DevStack, user: MailUser) -> AsyncIterator[Api]:
    async with running_api(devstack, user, limits=LIMITS) as running:
        yield running


def fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        for k, v in names.items():
            value = value.replace("{" + k + "}", v)
        return value
    if isinstance(value, dict):
        return {k: fill(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, names) for v in value]
    return value


def check_shape(case: Case, path: str, status: int, body: Any, headers: dict[str, str]) -> None:
    assert status == case.status, (case.id, status, body)
    if path.startswith("/api/v1"):
        assert set(body) <= {"success", "error", "code", "field"}, body
        assert body["success"] is False
        assert isinstance(body["error"], str) and body["error"]
        code, got_field = body["code"], body.get("field")
    else:
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}, body
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
        code, got_field = body["error"]["code"], body["error"]["field"]
    assert isinstance(code, str) and code
    if case.code is not None:
        assert code == case.code, (case.id, body)
    if case.culprit is not None:
        assert got_field == case.culprit or str(got_field).startswith(case.culprit + "["), \
            (case.id, body)
    if status == 401:
        assert headers["WWW-Authenticate"] == 'Bearer realm="mailbridge"'


async def run_case(api: Api, case: Case, names: dict[str, str]) -> None:
    if case.id.startswith("j-folder-refused"):  # the folder named, not the server's words
        reply = await api.call(case.method, fill(case.path, names), params=case.params)
        assert case.params["folder"] in reply.body["error"], reply.body
        assert "CANNOT" not in reply.body["error"] and "mailbox name" not in reply.body["error"]
    path = fill(case.path, names)
    headers = dict(case.headers)
    data: bytes | None = case.raw
    if case.body is not NO_BODY:
        data = json.dumps(fill(case.body, names)).encode()
    if data is not None:
        headers.setdefault("Content-Type", "application/json")
    reply = await api.call(case.method, path, token=case.token, data=data, headers=headers,
                           params=fill(case.params, names))
    check_shape(case, path, reply.status, reply.body, reply.headers)


async def seed(api: Api) -> dict[str, str]:
    made = await api.call("POST", J, json_body={"to": "seed@example.test", "subject": "seed",
                                                "text": "seed body"})
    assert made.status == 201, made.body
    return {"uid": str(made.body["data"]["uid"]), "id": made.body["data"]["id"],
            "other": api.other.email, "other_id": str(api.other.id)}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_bad_request(small_api: Api, case: Case) -> None:
    names = await seed(small_api)
    before = small_api.messages("Drafts")
    others_before = small_api.messages("Drafts", who=small_api.other)
    await run_case(small_api, case, names)
    assert small_api.messages("Drafts") == before, "a bad request changed the Drafts folder"
    assert small_api.messages("Drafts", who=small_api.other) == others_before


def test_catalogue_is_broad() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
    assert sum(c.path.startswith("/api/v1") for c in CASES) >= 20
    assert sum(c.path.startswith("/api/email") for c in CASES) >= 20


async def test_whole_catalogue_on_one_account_changes_nothing(small_api: Api) -> None:
    """Every bad request in a row against one account: Drafts keeps its count, UIDs and bytes."""
    names = await seed(small_api)
    before = small_api.messages("Drafts")
    for case in CASES:
        await run_case(small_api, case, names)
    after = small_api.messages("Drafts")
    assert [m.uid for m in after] == [m.uid for m in before]
    assert after == before


# --- fuzzing: no body, however odd, gets a 500 or changes Drafts unless it answers 201

_PIECES = [*'ab@<>,;:" .\\=?', "\r", "\n", "\x00", "\u2028", "\ud800", "é", "😀", "=?utf-8?q?x?="]
_ODD_TEXT = st.lists(st.sampled_from(_PIECES), max_size=8).map("".join)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | _ODD_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_ODD_TEXT, inner, max_size=3),
    max_leaves=6)
_ADDRESS = st.sampled_from(["a@example.test", "Ann <a@example.test>", "bad", "x@", "@y",
                            '"Q, R" <q@example.test>', "a@example.test, b@example.test"])
_JASNI_FIELDS = ["to", "cc", "bcc", "subject", "text", "html", "attachments", "inReplyTo",
                 "references", "contextType", "contextId", "plannedSendAt", "account", "junk"]
_EXANTE_FIELDS = ["to", "cc", "bcc", "subject", "body_text", "body_html", "attachments",
                  "context_type", "context_id", "planned_send_at", "from_account_id", "uid"]


def _bodies(fields: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    attachment = st.fixed_dictionaries({}, optional={
        "filename": _ODD_TEXT, "content": st.sampled_from(["eA==", "@@", "", "eA="]) | _JSON,
        "data_base64": st.sampled_from(["eA==", "eA"]) | _JSON,
        "contentType": st.sampled_from(["text/plain", "x", "a/b\r\nc"]) | _JSON,
        "content_type": st.sampled_from(["text/plain", "x"]) | _JSON})
    value = (_JSON | _ADDRESS | st.lists(_ADDRESS, max_size=4) | st.lists(attachment, max_size=2)
             | st.sampled_from(["2030-01-01T00:00:00Z", "2030-01-01T00:00:00", "2030-13-01T00:00:00Z"]))
    return st.dictionaries(st.sampled_from(fields), value, max_size=5)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(jasni=_bodies(_JASNI_FIELDS), exante=_bodies(_EXANTE_FIELDS))
async def test_fuzzed_bodies_never_fail_the_server(small_api: Api, jasni: dict[str, Any],
                                                   exante: dict[str, Any]) -> None:
    for path, body in (("/api/v1/emails/drafts", jasni), ("/api/email/drafts", exante)):
        before = len(small_api.messages("Drafts"))
        reply = await small_api.call("POST", path, json_body=body)
        assert reply.status < 500, (path, body, reply.body)
        after = len(small_api.messages("Drafts"))
        assert after == before + (1 if reply.status == 201 else 0), (path, body, reply.body)


async def test_mail_server_down_is_503_in_each_dialect(devstack: DevStack, user: MailUser) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    entry = devstack.account_entry(user.id, user.email)
    entry["imap"]["port"] = dead_port
    config = devstack.config(accounts=[entry], tokens=[{
        "name": "t", "sha256": hashlib.sha256(FULL_TOKEN.encode()).hexdigest(),
        "accounts": ["*"], "scopes": ["read", "write"]}])
    client = TestClient(TestServer(create_app(config)))
    await client.start_server()
    try:
        auth = {"Authorization": f"Bearer {FULL_TOKEN}"}
        jasni = await client.get("/api/v1/emails/drafts", headers=auth)
        assert jasni.status == 503
        body = await jasni.json()
        assert body["success"] is False and body["code"] == "imap_unavailable"
        exante = await client.post("/api/email/drafts", headers=auth, json={"subject": "x"})
        assert exante.status == 503
        assert (await exante.json())["error"]["code"] == "imap_unavailable"
    finally:
        await client.close()
