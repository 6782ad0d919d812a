"""The OpenAPI document (GET /openapi.json) and the docs page (GET /docs).

The document is checked three ways: structurally (openapi-spec-validator when installed, and our
own checks: every $ref resolves, operationIds unique, security where it belongs), against the
routes the aiohttp app really has (the app registers its handlers from the same table, routes.ROUTES,
so this catches a route added beside it), and
against the running API: the document's example bodies and a body of only its required fields
are posted to the real service, and every answer is validated against the schema the document
gives for that status.
"""

from __future__ import annotations

import copy
import importlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from api_helpers import (
    FULL_TOKEN,
    READ_TOKEN,
    Api,
    Reply,
    new_user,
    token_entry,
)

from conftest import MailUser
from mailbridge.api import create_app, docs, openapi, review, routes, routing, statuses
from mailbridge.config import Config, parse_config
from mailbridge.devstack.stack import DevStack

PUBLIC_PATHS = {"/healthz", "/readyz", "/docs", "/review"}
"""/docs is Swagger UI holding no data; it asks for a token to fetch /openapi.json. /review is
the review page, holding no data either; it asks for a token to fetch its fragments."""
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


# ----------------------------------------------------------------------------- helpers

def offline_config(**limits: int) -> Config:
    """A config whose account is never contacted (the document needs no mail server)."""
    server = {"host": "127.0.0.1", "port": 1}
    endpoint = {"host": "127.0.0.1", "port": 1, "security": "none", "username": "alice",
                "password": "secret"}
    data: dict[str, Any] = {
        "server": {**server, "limits": dict(limits)} if limits else server,
        "accounts": [{"id": str(uuid.uuid4()), "email": "alice@example.com",
                      "display_name": "Alice", "imap": endpoint, "smtp": endpoint}],
        "tokens": [token_entry("full", FULL_TOKEN, ["*"], ["read", "write", "send"])],
    }
    return parse_config(data, source="test")


def build_app(config: Config) -> web.Application:
    return create_app(config, scheduler=False)


def app_routes(app: web.Application) -> set[tuple[str, str]]:
    """(METHOD, path template) of every route of the app; aiohttp's automatic HEAD left out."""
    routes = set()
    for route in app.router.routes():
        if route.method in ("HEAD", "*") or route.resource is None:
            continue
        routes.add((route.method, route.resource.canonical))
    return routes


def document_routes(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items()
            for method in item if method in METHODS}


def resolve(document: dict[str, Any], ref: str) -> Any:
    """The object a local JSON pointer ``#/a/b`` names; KeyError when it names nothing."""
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def walk_refs(node: Any, where: str = "#") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield where, value
            else:
                yield from walk_refs(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk_refs(value, f"{where}/{i}")


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield method.upper(), path, op


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    # through JSON, as a caller sees it
    built: dict[str, Any] = json.loads(json.dumps(openapi.build_document(routes.ROUTES)))
    return built


# ----------------------------------------------------------------------------- structure

def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(document)


def test_every_ref_resolves(document: dict[str, Any]) -> None:
    refs = list(walk_refs(document))
    assert len(refs) > 50
    for where, ref in refs:
        try:
            resolve(document, ref)
        except (KeyError, TypeError, AssertionError):
            pytest.fail(f"{where}: $ref {ref!r} resolves to nothing")


def test_every_schema_is_used(document: dict[str, Any]) -> None:
    used = {ref.rsplit("/", 1)[1] for _, ref in walk_refs(document)
            if ref.startswith("#/components/schemas/")}
    assert set(document["components"]["schemas"]) == used


def test_operations_are_complete(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(ids) == len(set(ids)), "operationIds must be unique"
    tags = {t["name"] for t in document["tags"]}
    assert {routing.TAG_JASNI, routing.TAG_EXANTE, routing.TAG_HEALTH} <= tags
    for method, path, op in operations(document):
        name = f"{method} {path}"
        assert op["summary"] and op["description"], name
        assert len(op["tags"]) == 1 and op["tags"][0] in tags, name
        if op.get("x-always-refused"):  # a hosted service's call: only its refusal
            assert set(op["responses"]) == {"401", "403", "default"}, name
            assert "always" in op["responses"]["403"]["description"].lower(), name
        else:
            assert any(s.startswith("2") for s in op["responses"]), f"{name}: no success response"
        for status, response in op["responses"].items():
            assert response["description"], f"{name} {status}"
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"\{(\w+)\}", path)), name
        for p in op.get("parameters", []):
            assert p["in"] != "path" or p["required"] is True, name


def test_security(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for method, path, op in operations(document):
        if path in PUBLIC_PATHS:
            assert op["security"] == [], f"{method} {path} must need no token"
            assert "401" not in op["responses"]
        else:
            assert path.startswith("/api/") or path in (
                "/openapi.json", "/metrics", "/mcp", "/review/drafts", "/review/drafts/{uid}")
            (requirement,) = op["security"]
            assert list(requirement) == ["bearerAuth"]
            assert requirement["bearerAuth"] in (["read"], ["write"], ["send"], ["approve"],
                                                 ["metrics"])
            assert (requirement["bearerAuth"] == ["metrics"]) == (path == "/metrics")
            assert "401" in op["responses"] and "403" in op["responses"]
            assert "WWW-Authenticate" in op["responses"]["401"]["headers"]


def test_error_responses_have_the_dialect_shape(document: dict[str, Any]) -> None:
    for method, path, op in operations(document):
        expected = ("#/components/schemas/JasniError" if path.startswith("/api/v1/")
                    else "#/components/schemas/ExanteError")
        for status, response in op["responses"].items():
            if status == "default" or (int(status) >= 400 and path != "/readyz"):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": expected}, f"{method} {path} {status}"
    schemas = document["components"]["schemas"]
    assert schemas["JasniError"]["required"] == ["success", "error", "code"]
    assert schemas["JasniError"]["properties"]["success"]["const"] is False
    assert schemas["ExanteError"]["properties"]["error"] == {
        "$ref": "#/components/schemas/ExanteErrorBody"}
    assert schemas["ExanteErrorBody"]["required"] == ["code", "message", "field"]


def test_dialect_1_success_is_the_envelope(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for method, path, op in operations(document):
        if not path.startswith("/api/v1/") or op.get("x-always-refused"):
            continue
        ok = [r for s, r in op["responses"].items() if s.startswith("2")]
        ref = ok[0]["content"]["application/json"]["schema"]["$ref"]
        envelope = resolve(document, ref)
        assert envelope["required"] == ["success", "data"], f"{method} {path}"
        assert envelope["properties"]["success"]["const"] is True
        assert envelope["properties"]["data"]["$ref"].rsplit("/", 1)[1] in schemas


def test_headers(document: dict[str, Any]) -> None:
    """ETag on every answer that carries one draft; If-Match on every update, delete and send;
    Idempotency-Key on create and send (shared/api-dialects.md)."""
    etag = {("POST", "/api/v1/emails/drafts"), ("GET", "/api/v1/emails/drafts/{uid}"),
            ("PUT", "/api/v1/emails/drafts/{uid}"), ("PUT", "/api/v1/emails/drafts"),
            ("POST", "/api/email/drafts"),
            ("GET", "/api/email/drafts/{uid}"), ("POST", "/api/email/drafts/{uid}/send"),
            ("POST", "/api/v1/emails/{uid}/reply/draft"),
            ("POST", "/api/v1/emails/{uid}/forward/draft"),
            ("POST", "/api/email/drafts/reply"), ("POST", "/api/email/drafts/forward"),
            ("POST", "/api/email/drafts/{uid}/approve"), ("POST", "/api/email/drafts/{uid}/reject"),
            ("GET", "/review/drafts/{uid}")}
    if_match = {("PUT", "/api/v1/emails/drafts/{uid}"), ("DELETE", "/api/v1/emails/drafts/{uid}"),
                ("PUT", "/api/v1/emails/drafts"), ("DELETE", "/api/v1/emails/drafts"),
                ("POST", "/api/v1/emails/drafts/{uid}/send"), ("POST", "/api/email/drafts"),
                ("DELETE", "/api/email/drafts/{uid}"), ("POST", "/api/email/drafts/{uid}/send"),
                ("POST", "/api/v1/emails/drafts/{uid}/approve"),
                ("POST", "/api/v1/emails/drafts/{uid}/reject"),
                ("POST", "/api/email/drafts/{uid}/approve"),
                ("POST", "/api/email/drafts/{uid}/reject")}
    idempotency = {("POST", "/api/v1/emails/drafts"), ("POST", "/api/v1/emails/drafts/{uid}/send"),
                   ("POST", "/api/v1/emails/send"), ("POST", "/api/v1/emails/{uid}/reply"),
                   ("POST", "/api/v1/emails/{uid}/forward"),
                   ("POST", "/api/v1/emails/{uid}/reply/draft"),
                   ("POST", "/api/v1/emails/{uid}/forward/draft"),
                   ("POST", "/api/email/drafts"), ("POST", "/api/email/drafts/{uid}/send"),
                   ("POST", "/api/email/drafts/reply"), ("POST", "/api/email/drafts/forward")}
    for method, path, op in operations(document):
        headers = {p["name"] for p in op.get("parameters", []) if p["in"] == "header"}
        assert ("If-Match" in headers) == ((method, path) in if_match), f"{method} {path}"
        assert ("Idempotency-Key" in headers) == ((method, path) in idempotency), f"{method} {path}"
        assert ("412" in op["responses"]) == ((method, path) in if_match), f"{method} {path}"
        with_etag = [s for s, r in op["responses"].items() if "ETag" in r.get("headers", {})]
        assert bool(with_etag) == ((method, path) in etag), f"{method} {path}"
        assert all(s.startswith("2") for s in with_etag)


def test_schemas_are_the_models(document: dict[str, Any]) -> None:
    """Field names are the wire names of the pydantic models (camelCase aliases in dialect 1)."""
    from mailbridge.api.schemas import ExanteDraft, JasniDraft, JasniDraftCreate

    schemas = document["components"]["schemas"]
    create = schemas["JasniDraftCreate"]
    assert set(create["properties"]) == {f.alias or n for n, f in
                                         JasniDraftCreate.model_fields.items()}
    assert {"inReplyTo", "contextType", "plannedSendAt"} <= set(create["properties"])
    assert create["additionalProperties"] is False
    draft = schemas["JasniDraft"]
    assert set(draft["required"]) == {f.alias or n for n, f in JasniDraft.model_fields.items()}
    assert "from" in draft["properties"] and "messageId" in draft["properties"]
    record = schemas["ExanteDraft"]
    assert set(record["required"]) == set(ExanteDraft.model_fields)
    assert schemas["Status"]["enum"] == ["draft", "scheduled", "held", "awaiting_approval",
                                         "approved", "rejected", "sending", "sent", "failed"]


def test_the_document_names_the_challenge_the_app_sends(document: dict[str, Any]) -> None:
    header = document["components"]["headers"]["WWW-Authenticate"]
    assert statuses.WWW_AUTHENTICATE in header["description"]


# ----------------------------------------------------------------------------- the app

def test_the_document_covers_every_route_of_the_app(document: dict[str, Any]) -> None:
    app = build_app(offline_config())
    in_document = document_routes(document)
    # the pages' parts (their scripts and style sheets, Swagger UI's files) are not operations
    in_app = {r for r in app_routes(app) if not r[1].startswith(
        ("/docs/", docs.ASSETS_PATH, review.SCRIPT_PATH, review.STYLE_PATH))}
    api = {r for r in in_app if r[1].startswith("/api/")}
    assert api, "the app has no /api/ routes?"
    assert api <= in_document, f"routes missing from routes.ROUTES: {sorted(api - in_document)}"
    assert in_document <= in_app, f"documented but not routed: {sorted(in_document - in_app)}"
    assert in_app == in_document, f"undocumented routes: {sorted(in_app - in_document)}"


@pytest.fixture
async def offline_client() -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    client = TestClient(TestServer(build_app(offline_config(max_request_bytes=1234567))))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def test_openapi_json_needs_a_token(
        offline_client: TestClient) -> None:  # type: ignore[type-arg]
    missing = await offline_client.get("/openapi.json")
    assert missing.status == 401 and "Bearer" in missing.headers["WWW-Authenticate"]
    wrong = await offline_client.get("/openapi.json", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    auth = {"Authorization": f"Bearer {FULL_TOKEN}"}
    resp = await offline_client.get("/openapi.json", headers=auth)
    assert resp.status == 200
    assert resp.content_type == "application/json"
    served = await resp.json()
    expected = json.loads(json.dumps(openapi.build_document(
        routes.ROUTES, offline_config(max_request_bytes=1234567).server.limits)))
    assert served == expected
    assert "1234567" in served["info"]["description"]  # the configured limits, not the defaults
    again = await offline_client.get("/openapi.json", headers=auth)
    assert await again.json() == served


async def test_docs_page_is_self_contained(offline_client: TestClient) -> None:  # type: ignore[type-arg]
    """Swagger UI, served by the service itself: every file the page loads comes from it and
    answers without a token; the page names no other origin and runs no inline script."""
    resp = await offline_client.get("/docs")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    policy = dict(p.strip().split(" ", 1) for p in resp.headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'self'" and policy["script-src"] == "'self'"
    html = await resp.text()
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert not re.search(r"https?://", html, re.IGNORECASE), "the page must not name any URL"
    assert re.findall(r"<script[^>]*>([^<]*)</script>", html) == ["", ""], "no inline script"
    loaded = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", html)
    assert len(loaded) == 3  # Swagger UI's stylesheet and script, the page's script
    types = {}
    for path in loaded:
        assert path.startswith("/") and not path.startswith("//"), path
        part = await offline_client.get(path)
        assert part.status == 200, path
        types[path] = part.content_type
        assert len(await part.read()) > 100, path
    assert "text/css" in types.values()
    assert set(types.values()) <= {"text/css", "text/javascript", "application/javascript"}
    script = await (await offline_client.get(docs.SCRIPT_PATH)).text()
    assert 'url: "openapi.json"' in script and "SwaggerUIBundle(" in script


async def test_docs_page_needs_no_token_and_asks_for_one(
        offline_client: TestClient) -> None:  # type: ignore[type-arg]
    for headers in ({}, {"Authorization": "Bearer nope"}):
        resp = await offline_client.get("/docs", headers=headers)
        assert resp.status == 200
        page = await resp.text()
        assert re.search(r'<label for="token">Token</label>', page)
    script = await (await offline_client.get(docs.SCRIPT_PATH)).text()
    assert "request.headers.Authorization" in script and "sessionStorage" in script


# ----------------------------------------------------------------------------- the live API

class Checker:
    """Validates answers of the running API against the document."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.seen: set[tuple[str, str, str]] = set()
        self.jsonschema: Any = None
        try:  # comes with openapi-spec-validator; without it only statuses and headers are checked
            self.jsonschema = importlib.import_module("jsonschema")
        except ImportError:
            pass

    def validate(self, ref_or_schema: dict[str, Any], value: Any) -> None:
        if self.jsonschema is None:
            return
        root = {**ref_or_schema, "components": self.document["components"]}
        cls = self.jsonschema.Draft202012Validator
        errors = list(cls(root, format_checker=cls.FORMAT_CHECKER).iter_errors(value))
        assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]

    def operation(self, method: str, path: str) -> dict[str, Any]:
        op: dict[str, Any] = self.document["paths"][path][method.lower()]
        return op

    def check(self, method: str, path: str, reply: Reply) -> Reply:
        op = self.operation(method, path)
        status = str(reply.status)
        assert status in op["responses"], \
            f"{method} {path} answered {status}, not documented: {reply.body}"
        self.seen.add((method, path, status))
        response = op["responses"][status]
        content = response.get("content")
        if content is None:
            assert reply.body is None, f"{method} {path} {status} should have no body"
        else:
            self.validate(content["application/json"]["schema"], reply.body)
        if "ETag" in response.get("headers", {}):
            assert reply.headers.get("ETag"), f"{method} {path} {status}: no ETag"
        return reply

    def body_example(self, method: str, path: str, name: str) -> dict[str, Any]:
        media = self.operation(method, path)["requestBody"]["content"]["application/json"]
        value: dict[str, Any] = copy.deepcopy(media["examples"][name]["value"])
        self.validate(media["schema"], value)  # the document's example fits its own schema
        return value

    def required_only(self, method: str, path: str) -> dict[str, Any]:
        """A body with only the fields the schema says are required (strings for strings)."""
        media = self.operation(method, path)["requestBody"]["content"]["application/json"]
        schema = resolve(self.document, media["schema"]["$ref"])
        body = {name: "x" for name in schema.get("required", [])}
        self.validate(media["schema"], body)
        return body


@dataclass
class Live:
    api: Api
    doc: Checker

    async def call(self, method: str, template: str, path: str | None = None,
                   **kw: Any) -> Reply:
        reply = await self.api.call(method, path or template, **kw)
        return self.doc.check(method, template, reply)


@pytest.fixture
async def live(devstack: DevStack, user: MailUser,
               document: dict[str, Any]) -> AsyncIterator[Live]:
    checker = Checker(document)
    other = new_user(devstack)
    data = devstack.config_data(
        accounts=[devstack.account_entry(user.id, user.email, "Test User"),
                  devstack.account_entry(other.id, other.email, "Other User")],
        tokens=[token_entry("full", FULL_TOKEN, [str(user.id)], ["read", "write", "send"]),
                token_entry("read", READ_TOKEN, [user.email], ["read"])])
    client = TestClient(TestServer(build_app(parse_config(data, source="test"))))
    await client.start_server()
    try:
        yield Live(Api(client=client, devstack=devstack, user=user, other=other), checker)
    finally:
        await client.close()


def with_account(body: dict[str, Any], user: MailUser) -> dict[str, Any]:
    """A documented example, aimed at the test's account instead of the placeholder."""
    for key in ("account", "from"):
        if body.get(key) == routes.EXAMPLE_ACCOUNT:
            body[key] = user.email
    if body.get("from_account_id") == routes.EXAMPLE_ACCOUNT_ID:
        body["from_account_id"] = str(user.id)
    return body


async def test_dialect_1_answers_as_documented(live: Live) -> None:
    doc, user = live.doc, live.api.user
    drafts, one = "/api/v1/emails/drafts", "/api/v1/emails/drafts/{uid}"

    minimal = doc.required_only("POST", drafts)
    assert minimal == {}  # account may be omitted: this token sees one account
    await live.call("POST", drafts, json_body=minimal)

    body = with_account(doc.body_example("POST", drafts, "create"), user)
    created = (await live.call("POST", drafts, json_body=body)).body["data"]
    assert created["account"] == user.email
    draft = (await live.call("GET", one, f"{drafts}/{created['uid']}")).body["data"]["draft"]
    assert draft["subject"] == "Quarterly report"
    assert draft["contextType"] == "invoice"
    assert [a["filename"] for a in draft["attachments"]] == ["report.txt"]
    listed = await live.call("GET", drafts, params={"limit": "10"})
    assert listed.body["data"]["total"] == 2

    update = doc.body_example("PUT", one, "reschedule")
    updated = await live.call("PUT", one, f"{drafts}/{created['uid']}", json_body=update)
    new_uid = updated.body["data"]["uid"]
    assert updated.body["data"]["id"] == created["id"] and new_uid != created["uid"]
    stale = await live.call("PUT", one, f"{drafts}/{new_uid}", json_body={"subject": "x"},
                            headers={"If-Match": '"1.1.1"'})
    assert stale.status == 412
    await live.call("GET", one, f"{drafts}/{created['uid']}")  # the old UID: 404

    send = with_account(doc.body_example("POST", f"{one}/send", "send"), user)
    sent = await live.call("POST", f"{one}/send", f"{drafts}/{new_uid}/send", json_body=send)
    assert sent.status == 200, sent.body
    folder = await live.call("GET", "/api/v1/emails", params={"folder": "Sent"})
    (entry,) = folder.body["data"]["emails"]
    await live.call("GET", "/api/v1/emails/{uid}", f"/api/v1/emails/{entry['uid']}",
                    params={"folder": "Sent"})

    gone = (await live.call("GET", drafts)).body["data"]["drafts"][0]
    await live.call("DELETE", one, f"{drafts}/{gone['uid']}")
    await live.call("GET", "/api/v1/accounts")

    new = with_account(doc.body_example("POST", "/api/v1/emails/send", "send"), user)
    sent_now = await live.call("POST", "/api/v1/emails/send", json_body=new)
    assert sent_now.status == 200 and sent_now.body["data"]["savedToSent"] is True, sent_now.body
    drafts_before = (await live.call("GET", drafts)).body["data"]["total"]
    assert (await live.call("POST", "/api/v1/emails/send", json_body={"from": user.email})
            ).status == 400  # no recipient: refused before anything is stored
    assert (await live.call("GET", drafts)).body["data"]["total"] == drafts_before

    # errors, each in the documented shape
    assert (await live.call("GET", drafts, token=None)).status == 401
    assert (await live.call("POST", drafts, json_body={}, token=READ_TOKEN)).status == 403
    assert (await live.call("POST", drafts, data="{not json",
                            headers={"Content-Type": "application/json"})).status == 400
    assert (await live.call("POST", drafts, data="{}")).status == 415  # sent as text/plain
    assert (await live.call("POST", drafts, json_body={"to": 5})).status == 400
    key = {"Idempotency-Key": "openapi-reused"}
    assert (await live.call("POST", drafts, json_body={"subject": "one"}, headers=key)
            ).status == 201
    assert (await live.call("POST", drafts, json_body={"subject": "two"}, headers=key)
            ).status == 422  # the key was used for another request
    assert (await live.call("GET", drafts, params={"account": "nobody@example.com"})).status == 404
    assert (await live.call("GET", "/api/v1/emails", params={"folder": "Nope"})).status == 404
    assert {s for m, p, s in doc.seen if p == drafts} >= {"200", "201", "400", "401", "403", "404",
                                                         "422"}


async def test_dialect_2_answers_as_documented(live: Live) -> None:
    doc, user = live.doc, live.api.user
    drafts, one = "/api/email/drafts", "/api/email/drafts/{uid}"

    minimal = doc.required_only("POST", drafts)
    assert minimal == {}
    empty = await live.call("POST", drafts, json_body=minimal)
    assert empty.status == 201

    body = with_account(doc.body_example("POST", drafts, "create"), user)
    created = await live.call("POST", drafts, json_body=body)
    assert created.status == 201 and created.body["from_account_id"] == str(user.id)
    record = created.body

    update = doc.body_example("POST", drafts, "update")
    update["uid"] = record["uid"]
    updated = await live.call("POST", drafts, json_body=update,
                              headers={"If-Match": created.headers["ETag"]})
    assert updated.status == 200 and updated.body["status"] == "scheduled"
    stale = await live.call("POST", drafts, json_body=update,
                            headers={"If-Match": created.headers["ETag"]})
    assert stale.status == 412

    await live.call("GET", one, f"{drafts}/{record['uid']}")
    page = await live.call("GET", drafts, params={"limit": "1"})
    assert page.body["next_cursor"]
    await live.call("GET", drafts, params={"limit": "1", "cursor": page.body["next_cursor"]})
    await live.call("GET", drafts, params={"context_type": "invoice", "status": "scheduled"})

    sent = await live.call("POST", f"{one}/send", f"{drafts}/{record['uid']}/send")
    assert sent.status == 200 and sent.body["status"] == "sent", sent.body
    assert (await live.call("GET", one, f"{drafts}/{record['uid']}")).body["status"] == "sent"

    assert (await live.call("DELETE", one, f"{drafts}/{empty.body['uid']}")).status == 204
    assert (await live.call("GET", one, f"{drafts}/{empty.body['uid']}")).status == 404
    assert (await live.call("GET", one, f"{drafts}/not-a-uuid")).status == 400
    assert (await live.call("GET", drafts, token=None)).status == 401
    assert (await live.call("POST", drafts, json_body={}, token=READ_TOKEN)).status == 403
    assert (await live.call("POST", drafts, json_body={"subject": 1})).status == 422
    assert (await live.call("POST", drafts, json_body={"sbject": "x"})).status == 400
    assert (await live.call("GET", drafts, params={"status": "lost"})).status == 400


async def test_health_answers_as_documented(live: Live) -> None:
    assert (await live.call("GET", "/healthz", token=None)).status == 200
    ready = await live.call("GET", "/readyz", token=None)
    assert ready.status == 200 and ready.body["status"] == "ready"


def test_readme_lists_every_api_call() -> None:
    """README's tables of the two dialects name every route of the route table (method and
    path, on one line), so they cannot fall behind the code."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    lines = [line for line in readme.splitlines() if line.startswith("| ")]
    for route in routes.ROUTES:
        if not route.path.startswith("/api/"):
            continue
        path = re.compile(re.escape(route.path) + r"(?![\w/{])")
        rows = [line for line in lines if path.search(line)]
        assert any(re.search(rf"`{route.method}\b|\b{route.method}`", row) for row in rows), (
            f"README has no table row for {route.method} {route.path}")
