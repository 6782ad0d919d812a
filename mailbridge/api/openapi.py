"""The OpenAPI 3.1 document of mailbridge's HTTP API, and the two routes that serve it.

``GET /openapi.json`` is generated, not written: the schemas come from the pydantic request and
response models of :mod:`mailbridge.api.schemas` (validation schemas of the request models,
serialization schemas of the response models, one ``components/schemas`` entry per model), and the
operations from :data:`OPERATIONS`, the route table below that names those models. A test compares
the table with the routes the aiohttp app really has, so a route added to a dialect without a line
here fails the suite.

``GET /docs`` is a self-contained page (inline CSS and JavaScript, no CDN, no request but the one
for ``/openapi.json``) that renders the document per tag, operation and schema. Neither route needs
a token: they describe the API, they reveal no mail.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema
from pydantic_core import core_schema

from mailbridge import __version__
from mailbridge.api.access import authorize
from mailbridge.api.keys import CONFIG
from mailbridge.api.params import MAX_IDEMPOTENCY_KEY, MAX_UID
from mailbridge.api.schemas import (
    ExanteDraft,
    ExanteDraftList,
    ExanteDraftUpsert,
    ExanteError,
    JasniAccountList,
    JasniDraftCreate,
    JasniDraftData,
    JasniDraftDeleted,
    JasniDraftList,
    JasniDraftSaved,
    JasniDraftUpdate,
    JasniEmailData,
    JasniEmailList,
    JasniError,
    JasniOk,
    JasniSendRequest,
    JasniSent,
)
from mailbridge.config import Limits, Scope

__all__ = ["DOCS_HTML", "OPERATIONS", "Operation", "Param", "add_routes", "build_document"]

OPENAPI_PATH = "/openapi.json"
DOCS_PATH = "/docs"

TAG_JASNI = "Jasni-style /api/v1"
TAG_EXANTE = "Exante-style /api/email"
TAG_HEALTH = "Health"
TAG_DOCS = "Documentation"

DOCS_CSP = "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'"

WWW_AUTHENTICATE = 'Bearer realm="mailbridge"'
"""The challenge of a 401 (``mailbridge.api.app.WWW_AUTHENTICATE``; not imported, so that app.py
can import this module)."""

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
"""Page sizes of every list call (``mailbridge.api.params.query_limit``)."""


# ----------------------------------------------------------------------------- health models
# health.py builds these bodies as dicts; the models say their shape for the document (a test
# checks the real answers against them).

class HealthStatus(BaseModel):
    """GET /healthz: the process serves HTTP."""

    status: Literal["ok"]


class AccountCheck(BaseModel):
    """One configured account as GET /readyz found it (``code`` and ``error`` only on failure)."""

    id: UUID
    email: str
    imap: Literal["ok", "error"]
    code: str | None = None
    error: str | None = None


class Readiness(BaseModel):
    """GET /readyz: whether every configured account's IMAP server accepts the login."""

    status: Literal["ready", "unavailable"]
    accounts: list[AccountCheck]


_OMITTED_WHEN_NULL: Mapping[str, tuple[str, ...]] = {
    "JasniError": ("field",),  # dumped with exclude_none (app.error_response)
    "AccountCheck": ("code", "error"),
}
"""Response fields left out of the JSON when null; every other response field is always there."""


# ----------------------------------------------------------------------------- the route table

ParamIn = Literal["path", "query", "header"]


@dataclass(frozen=True)
class Param:
    """One parameter of an operation (OpenAPI Parameter Object)."""

    name: str
    where: ParamIn
    schema: Mapping[str, Any]
    description: str
    required: bool = False


@dataclass(frozen=True)
class Operation:
    """One route: what the document says about it.

    ``response`` is the success body: a pydantic model (its serialization schema), a literal
    JSON schema, or None for no body. ``also`` lists further success statuses with the same
    body. ``errors`` are the statuses answered in the dialect's error shape. ``scope`` is the
    token scope the call needs; None means no authentication at all.
    """

    method: Literal["GET", "POST", "PUT", "DELETE"]
    path: str
    operation_id: str
    tag: str
    summary: str
    description: str
    scope: Scope | None
    response: type[BaseModel] | Mapping[str, Any] | None
    status: int = 200
    status_description: str = "Success."
    also: Mapping[int, str] = field(default_factory=dict)
    media_type: str = "application/json"
    body: type[BaseModel] | None = None
    body_required: bool = True
    examples: Mapping[str, tuple[str, Mapping[str, Any]]] = field(default_factory=dict)
    params: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()
    error_notes: Mapping[int, str] = field(default_factory=dict)
    etag: bool = False
    if_match: bool = False
    idempotency: bool = False


# --- parameters

def _query(name: str, description: str, schema: Mapping[str, Any] | None = None) -> Param:
    return Param(name, "query", schema or {"type": "string"}, description)


_UID_INT = {"type": "integer", "minimum": 1, "maximum": MAX_UID}
_UUID = {"type": "string", "format": "uuid"}

JASNI_DRAFT_UID = Param(
    "uid", "path", {"oneOf": [_UID_INT, _UUID]},
    "The IMAP UID of the message holding the draft (it changes on every update; the old one then "
    "answers 404), or the draft's stable id (UUID), which never changes.", required=True)
JASNI_EMAIL_UID = Param("uid", "path", _UID_INT, "The message's IMAP UID in `folder`.",
                        required=True)
EXANTE_UID = Param("uid", "path", _UUID,
                   "The draft's stable id (`uid` of the record; not an IMAP UID).", required=True)

ACCOUNT = _query("account", "The account's email address or its configured id (UUID). May be "
                 "omitted when the token may use exactly one account; otherwise its absence is a 422.")
FOLDER = _query("folder", "Any mailbox name (IMAP, UTF-8). Default `INBOX`.",
                {"type": "string", "default": "INBOX", "maxLength": 1000})
LIMIT = _query("limit", f"Page size, {DEFAULT_LIMIT} when omitted, at most {MAX_LIMIT}; "
               "anything else is a 400.",
               {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT})
FROM_ACCOUNT = _query("from_account_id", "The account's id (UUID) or email address. May be "
                      "omitted when the token may use exactly one account.")
FROM_ACCOUNT_HINT = _query("from_account_id", "Look for the draft in this account only (id or "
                           "email). Without it every account the token may use is searched.")
CONTEXT_TYPE = _query("context_type", "Only drafts linked to this kind of entity (exact match).")
CONTEXT_ID = _query("context_id", "Only drafts linked to this entity id (exact match).")
STATUS = _query("status", "Only drafts in this state; another value is a 400.",
                {"$ref": "#/components/schemas/Status"})
CURSOR = _query("cursor", "`next_cursor` of the previous page; omit it for the first page. "
                "A cursor this service did not hand out is a 400.")
IF_MATCH = Param(
    "If-Match", "header", {"type": "string"},
    "The `ETag` of the draft as last seen (or `*`; several comma-separated tags allowed, RFC "
    "9110). When the draft changed since, the call answers 412 and changes nothing.")
IDEMPOTENCY_KEY = Param(
    "Idempotency-Key", "header",
    {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY, "pattern": "^[ -~]+$"},
    f"1-{MAX_IDEMPOTENCY_KEY} printable ASCII characters chosen by the caller. A retry with the "
    "same key (and the same token) returns the first result and does no second create or send; "
    "keys of different tokens never meet.")


# --- examples (posted to the real API by tests/test_openapi.py)

EXAMPLE_ACCOUNT = "alice@example.com"
EXAMPLE_ACCOUNT_ID = "6f1c9f0e-8a51-4d0b-9a8e-2a7d0c1e5b42"
EXAMPLE_DRAFT_ID = "0d3b7c52-4a8e-4f5e-b1c6-93e2d7f04a18"

_JASNI_CREATE = {
    "account": EXAMPLE_ACCOUNT,
    "to": ["Bob Builder <bob@example.com>"], "cc": "carol@example.com",
    "subject": "Quarterly report",
    "text": "Hello Bob,\n\nthe report is attached.",
    "html": "<p>Hello Bob,</p><p>the report is attached.</p>",
    "attachments": [{"filename": "report.txt", "contentType": "text/plain",
                     "content": "UXVhcnRlcmx5IHJlcG9ydAo="}],
    "contextType": "invoice", "contextId": "inv-2026-0042",
}
_JASNI_UPDATE = {"subject": "Quarterly report (final)",
                 "plannedSendAt": "2031-06-02T09:00:00+02:00"}
_EXANTE_CREATE = {
    "from_account_id": EXAMPLE_ACCOUNT_ID,
    "to": ["Bob Builder <bob@example.com>"], "cc": ["carol@example.com"],
    "subject": "Quarterly report", "body_text": "Hello Bob,\n\nthe report is attached.",
    "attachments": [{"filename": "report.txt", "content_type": "text/plain",
                     "data_base64": "UXVhcnRlcmx5IHJlcG9ydAo="}],
    "context_type": "invoice", "context_id": "inv-2026-0042",
}
_EXANTE_UPDATE = {"uid": EXAMPLE_DRAFT_ID, "subject": "Quarterly report (final)",
                  "planned_send_at": "2031-06-02T07:00:00Z"}

_SEND_OUTCOMES = (
    "Sends exactly once: a retry, or a send of a draft already sent, returns the same result and "
    "delivers nothing again. The recipients get the message without Bcc; the Sent folder gets a "
    "copy with Bcc.")

_SEND_NOTES = {
    409: "Another send of this draft is in flight (`conflict`).",
    422: "The draft has no recipient, too many, or an invalid address (`invalid_input`; `field` "
         "names it).",
    502: "The SMTP server refused the message (`smtp_rejected`, `smtp_auth_failed`, "
         "`smtp_outcome_unknown` when the connection dropped after the data was sent: do not retry "
         "blindly). The draft is kept with status `failed` and `last_error` = the server's reply.",
    503: "The SMTP or IMAP server could not be reached or answered \"try later\" (`smtp_unavailable`, "
         "`smtp_temporary_failure`, `imap_unavailable`). Nothing was delivered; the draft is kept "
         "unchanged and a retry is safe.",
}

_BODY_ERRORS = (400, 401, 403, 404, 409, 413, 415, 422, 502, 503)

OPERATIONS: tuple[Operation, ...] = (
    # ------------------------------------------------------------------ dialect 1: Jasni
    Operation(
        "GET", "/api/v1/accounts", "jasniListAccounts", TAG_JASNI, "List the accounts of the token",
        "Not in the original contract: the accounts this token may use (id, email address, "
        "display name), so a caller can find the `account` to pass.",
        "read", JasniOk[JasniAccountList], errors=(401, 403)),
    Operation(
        "POST", "/api/v1/emails/drafts", "jasniCreateDraft", TAG_JASNI, "Create a draft",
        "Stores a new draft in the account's Drafts folder (flags `\\Draft \\Seen`).\n\n"
        "- `account` may be omitted when the token may use exactly one account (the contract "
        "lists it as required; without it and with several accounts the answer is 422).\n"
        "- `to`, `cc`, `bcc`: one address, a comma-separated string or a list; `Name <a@b>` "
        "accepted.\n"
        "- `attachments[].content` is base64 (RFC 4648, padded); `contentType` is guessed from "
        "the filename when omitted.\n"
        "- `references`: a space-separated string or a list of Message-IDs.\n"
        "- `plannedSendAt` (RFC 3339 with offset) schedules the draft.\n\n"
        "With an `Idempotency-Key`, a retry returns the draft the first call created, again with "
        "201. The response carries the draft's `ETag`.",
        "write", JasniOk[JasniDraftSaved], status=201, status_description="The draft was stored.",
        body=JasniDraftCreate,
        examples={"create": ("A draft with an attachment", _JASNI_CREATE)},
        params=(IDEMPOTENCY_KEY,), errors=_BODY_ERRORS, etag=True, idempotency=True),
    Operation(
        "GET", "/api/v1/emails/drafts", "jasniListDrafts", TAG_JASNI, "List drafts",
        f"The drafts of the account, newest first: the first `limit` (default {DEFAULT_LIMIT}, "
        f"at most {MAX_LIMIT}); `total` counts them all. Drafts written by other mail clients are "
        "listed too. Dialect 1 has no paging cursor (dialect 2 has).",
        "read", JasniOk[JasniDraftList], params=(ACCOUNT, LIMIT),
        errors=(400, 401, 403, 404, 422, 502, 503)),
    Operation(
        "GET", "/api/v1/emails/drafts/{uid}", "jasniGetDraft", TAG_JASNI, "Get a draft",
        "The whole draft, with its `ETag`.",
        "read", JasniOk[JasniDraftData], params=(JASNI_DRAFT_UID, ACCOUNT),
        errors=(400, 401, 403, 404, 422, 502, 503), etag=True),
    Operation(
        "PUT", "/api/v1/emails/drafts/{uid}", "jasniUpdateDraft", TAG_JASNI, "Update a draft",
        "Replaces the draft's message with a new version: omitted fields are kept, `null` "
        "clears a field, `attachments` given replace the whole list. The answer names the new "
        "IMAP `uid` (the old one then answers 404); `id` stays. `account` may come in the body or "
        "as `?account=`. A draft being sent cannot be changed (409).",
        "write", JasniOk[JasniDraftSaved], body=JasniDraftUpdate,
        examples={"reschedule": ("A new subject, scheduled", _JASNI_UPDATE)},
        params=(JASNI_DRAFT_UID, ACCOUNT, IF_MATCH),
        errors=(400, 401, 403, 404, 409, 412, 413, 415, 422, 502, 503), etag=True, if_match=True),
    Operation(
        "DELETE", "/api/v1/emails/drafts/{uid}", "jasniDeleteDraft", TAG_JASNI, "Delete a draft",
        "Removes the draft from the Drafts folder; `uid` in the answer is the one it had. A draft "
        "being sent cannot be deleted (409).",
        "write", JasniOk[JasniDraftDeleted], params=(JASNI_DRAFT_UID, ACCOUNT, IF_MATCH),
        errors=(400, 401, 403, 404, 409, 412, 422, 502, 503), if_match=True),
    Operation(
        "POST", "/api/v1/emails/drafts/{uid}/send", "jasniSendDraft", TAG_JASNI, "Send a draft",
        f"{_SEND_OUTCOMES} The body is optional (`account` may also come as `?account=`). The "
        "answer's `uid` is the message's UID in Sent, or null when the account keeps no Sent "
        "copy (e.g. Gmail, whose submission files its own).",
        "send", JasniOk[JasniSent], body=JasniSendRequest, body_required=False,
        examples={"send": ("Naming the account", {"account": EXAMPLE_ACCOUNT})},
        params=(JASNI_DRAFT_UID, ACCOUNT, IF_MATCH, IDEMPOTENCY_KEY),
        errors=(400, 401, 403, 404, 409, 412, 415, 422, 502, 503), error_notes=_SEND_NOTES,
        if_match=True, idempotency=True),
    Operation(
        "GET", "/api/v1/emails", "jasniListEmails", TAG_JASNI, "List the messages of a folder",
        f"Any folder, newest first: the first `limit` (default {DEFAULT_LIMIT}, at most "
        f"{MAX_LIMIT}); `total` counts them all. An unknown folder is a 404.",
        "read", JasniOk[JasniEmailList], params=(ACCOUNT, FOLDER, LIMIT),
        errors=(400, 401, 403, 404, 422, 502, 503)),
    Operation(
        "GET", "/api/v1/emails/{uid}", "jasniGetEmail", TAG_JASNI, "Get a message",
        "The whole message. `bcc` is the sender's own data: it is given for the Drafts and Sent "
        "folders and null in any other.",
        "read", JasniOk[JasniEmailData], params=(JASNI_EMAIL_UID, ACCOUNT, FOLDER),
        errors=(400, 401, 403, 404, 422, 502, 503)),
    # ------------------------------------------------------------------ dialect 2: Exante
    Operation(
        "POST", "/api/email/drafts", "exanteUpsertDraft", TAG_EXANTE, "Create or update a draft",
        "Upsert. Without `uid`: create a draft (201); `from_account_id` may be omitted when the "
        "token may use exactly one account. With `uid`: update only the fields given (200); "
        "`null` clears a field (`planned_send_at: null` unschedules the draft) and "
        "`attachments` given replace the list. A draft cannot move to another account (422).\n\n"
        "`Idempotency-Key` is honoured on create (a retry returns the first draft, again 201), "
        "`If-Match` on update. The answer is the draft record with its `ETag`.",
        "write", ExanteDraft, status=201, status_description="Created: the new draft record.",
        also={200: "Updated: the draft record as it is now."},
        body=ExanteDraftUpsert,
        examples={"create": ("Create a draft", _EXANTE_CREATE),
                  "update": ("Update two fields of a draft", _EXANTE_UPDATE)},
        params=(IF_MATCH, IDEMPOTENCY_KEY),
        errors=(400, 401, 403, 404, 409, 412, 413, 415, 422, 502, 503), etag=True, if_match=True,
        idempotency=True),
    Operation(
        "GET", "/api/email/drafts", "exanteListDrafts", TAG_EXANTE, "List drafts",
        f"The drafts of one account, newest first, filtered on the mail server; `limit` default "
        f"{DEFAULT_LIMIT}, at most {MAX_LIMIT}. `next_cursor` is null on the last page; pass it "
        "back as `cursor` for the next one.",
        "read", ExanteDraftList,
        params=(FROM_ACCOUNT, CONTEXT_TYPE, CONTEXT_ID, STATUS, LIMIT, CURSOR),
        errors=(400, 401, 403, 404, 422, 502, 503)),
    Operation(
        "GET", "/api/email/drafts/{uid}", "exanteGetDraft", TAG_EXANTE, "Get a draft",
        "The draft record with its `ETag`, also after it was sent (status `sent`). The draft is "
        "looked for in every account the token may use unless `from_account_id` names one.",
        "read", ExanteDraft, params=(EXANTE_UID, FROM_ACCOUNT_HINT),
        errors=(400, 401, 403, 404, 502, 503), etag=True),
    Operation(
        "DELETE", "/api/email/drafts/{uid}", "exanteDeleteDraft", TAG_EXANTE, "Delete a draft",
        "Removes the draft; 204 without a body. A draft being sent cannot be deleted (409).",
        "write", None, status=204, status_description="Deleted.",
        params=(EXANTE_UID, FROM_ACCOUNT_HINT, IF_MATCH),
        errors=(400, 401, 403, 404, 409, 412, 502, 503), if_match=True),
    Operation(
        "POST", "/api/email/drafts/{uid}/send", "exanteSendDraft", TAG_EXANTE, "Send a draft",
        f"{_SEND_OUTCOMES} No request body. The answer is the draft record with status `sent`.",
        "send", ExanteDraft, params=(EXANTE_UID, FROM_ACCOUNT_HINT, IF_MATCH, IDEMPOTENCY_KEY),
        errors=(400, 401, 403, 404, 409, 412, 415, 422, 502, 503), error_notes=_SEND_NOTES, etag=True,
        if_match=True, idempotency=True),
    # ------------------------------------------------------------------ health and docs
    Operation(
        "GET", "/healthz", "healthz", TAG_HEALTH, "Liveness",
        "200 while the process serves HTTP; no authentication, no I/O.",
        None, HealthStatus),
    Operation(
        "GET", "/readyz", "readyz", TAG_HEALTH, "Readiness",
        "Logs in to every configured account's IMAP server. No authentication: it reveals only "
        "the account addresses an operator configured, never a password.",
        None, Readiness, status_description="Every account's IMAP server accepts the login.",
        also={503: "At least one account failed; its entry says why."}),
    Operation(
        "GET", OPENAPI_PATH, "openapi", TAG_DOCS, "This document",
        "The OpenAPI 3.1 document, generated from the service's request and response models. "
        "Like every call but the health checks it needs a token.",
        "read", {"type": "object"}, status_description="The OpenAPI document.",
        errors=(401, 403)),
    Operation(
        "GET", DOCS_PATH, "docs", TAG_DOCS, "Readable API documentation",
        "A self-contained HTML page that renders this document; it holds no data of its own, "
        "asks for a token and makes no request but the one for `/openapi.json` (with that "
        "token, kept in the browser tab's sessionStorage).",
        None, {"type": "string"}, media_type="text/html", status_description="The page."),
)
"""Every route of the app, in the order the document lists them."""


# ----------------------------------------------------------------------------- errors

_ERROR_TEXT = {
    400: "Malformed request: the body is not a JSON object, names a key twice or nests deeper "
         "than `max_json_depth` (`malformed_json`), does not follow its Content-Encoding, names "
         "an unknown field (`unknown_field`), or a value is malformed, e.g. an address, base64, a "
         "uid, `limit`, a cursor or a header value with a line break (`invalid_input`, "
         "`header_injection`). `field` names the culprit.",
    401: "No bearer token, or one that matches no configured token (`unauthorized`).",
    403: "The token lacks the scope this call needs (`forbidden`).",
    404: "No such draft, message, folder or account, or one this token may not use (`not_found`).",
    409: "The draft is being changed or sent by another request (`conflict`); fetch it and retry.",
    412: "`If-Match` named a version of the draft that is no longer current (`precondition_failed`);"
         " nothing was changed.",
    413: "The request, the text and HTML bodies, an attachment or all attachments together exceed "
         "the configured limits (`payload_too_large`).",
    415: "The body is declared as something other than JSON (`unsupported_media_type`); send "
         "`Content-Type: application/json` (or none).",
    422: "Well-formed but unusable: a required field is missing, a value has the wrong type or "
         "form (a time outside 1970-9999), too many recipients or attachments, a value longer "
         "than `max_header_chars`, or the account must be named because the token may use "
         "several (`invalid_input`); an Idempotency-Key used before with another request "
         "(`idempotency_key_reused`).",
    502: "The mail server answered with an error (`imap_error`, `imap_protocol_error`, "
         "`imap_auth_failed`, `imap_capability_missing`).",
    503: "The mail server could not be reached or timed out (`imap_unavailable`); retrying later "
         "may succeed.",
}

_DEFAULT_ERROR = ("Any other failure in the dialect's error shape: 405 for a method the path does "
                  "not have, 500 (`internal_error`) for an unexpected one (the service log has the "
                  "cause).")


def _error_model(tag: str) -> type[BaseModel]:
    """Dialect 1 answers errors as JasniError; every other path (dialect 2, health, docs) as
    ExanteError (``mailbridge.api.app.error_response``)."""
    return JasniError if tag == TAG_JASNI else ExanteError


# ----------------------------------------------------------------------------- the document

class _SchemaGenerator(GenerateJsonSchema):
    """pydantic's JSON Schema generator, tuned for a document humans read too."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False  # "Contexttype" and the like add nothing to the field name

    def normalize_name(self, name: str) -> str:
        # JasniOk[JasniDraftSaved] -> JasniOk_JasniDraftSaved
        return super().normalize_name(name.replace("[", "_").replace("]", "").replace(", ", "_"))

    def field_is_required(self, field: core_schema.ModelField | core_schema.DataclassField
                          | core_schema.TypedDictField, total: bool) -> bool:
        # Responses are dumped with every field (defaults and nulls included), so a response
        # field is always there; _OMITTED_WHEN_NULL lists the exceptions.
        if self.mode == "serialization":
            return True
        return super().field_is_required(field, total)


def _models() -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    pairs: list[tuple[type[BaseModel], JsonSchemaMode]] = []
    for op in OPERATIONS:
        if op.body is not None:
            pairs.append((op.body, "validation"))
        if isinstance(op.response, type):
            pairs.append((op.response, "serialization"))
        if op.errors:
            pairs.append((_error_model(op.tag), "serialization"))
    pairs.append((ExanteError, "serialization"))  # the default response of every operation
    return list(dict.fromkeys(pairs))


def _header(description: str, schema: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "schema": dict(schema or {"type": "string"})}


def _parameter(p: Param) -> dict[str, Any]:
    param: dict[str, Any] = {"name": p.name, "in": p.where, "description": p.description,
                             "schema": dict(p.schema)}
    if p.required or p.where == "path":
        param["required"] = True
    return param


def _operation(op: Operation, refs: Mapping[tuple[Any, JsonSchemaMode], Any],
               limits: Limits) -> dict[str, Any]:
    result: dict[str, Any] = {"operationId": op.operation_id, "tags": [op.tag],
                              "summary": op.summary, "description": op.description}
    if op.scope is None:
        result["security"] = []
    else:
        result["security"] = [{"bearerAuth": [op.scope]}]
        result["description"] += f"\n\nNeeds a token with the `{op.scope}` scope."
    if op.params:
        result["parameters"] = [_parameter(p) for p in op.params]
    if op.body is not None:
        media: dict[str, Any] = {"schema": refs[(op.body, "validation")]}
        if op.examples:
            media["examples"] = {name: {"summary": summary, "value": dict(value)}
                                 for name, (summary, value) in op.examples.items()}
        result["requestBody"] = {"required": op.body_required,
                                 "content": {"application/json": media}}

    responses: dict[str, Any] = {}
    for status, description in {op.status: op.status_description, **op.also}.items():
        response: dict[str, Any] = {"description": description}
        if op.response is not None:
            schema = (refs[(op.response, "serialization")] if isinstance(op.response, type)
                      else dict(op.response))
            response["content"] = {op.media_type: {"schema": schema}}
        if op.etag and status < 300:
            response["headers"] = {"ETag": {"$ref": "#/components/headers/ETag"}}
        responses[str(status)] = response
    error_ref = refs[(_error_model(op.tag), "serialization")]
    for status in op.errors:
        text = op.error_notes.get(status, _ERROR_TEXT[status])
        if status == 413:
            text += (f" Limits of this service: request {limits.max_request_bytes} bytes, text and "
                     f"HTML together {limits.max_body_bytes}, one attachment "
                     f"{limits.max_attachment_bytes}, all attachments of a draft "
                     f"{limits.max_draft_attachments_bytes} (decoded).")
        error: dict[str, Any] = {"description": text,
                                 "content": {"application/json": {"schema": error_ref}}}
        if status == 401:
            error["headers"] = {"WWW-Authenticate": {"$ref": "#/components/headers/WWW-Authenticate"}}
        responses[str(status)] = error
    responses["default"] = {"description": _DEFAULT_ERROR,
                            "content": {"application/json": {"schema": error_ref}}}
    result["responses"] = responses
    return result


def _info_description(limits: Limits) -> str:
    return (
        "mailbridge keeps email drafts in the user's own IMAP server and sends them over SMTP. "
        "One draft service is served in two HTTP dialects, so callers of either API can point "
        "their base URL here and keep working.\n\n"
        "**Dialect 1, Jasni style, under `/api/v1`**: camelCase JSON; success "
        "`{\"success\": true, \"data\": ...}`, errors `{\"success\": false, \"error\", \"code\", "
        "\"field\"}` (`field` only when known). Draft ids in paths are IMAP UIDs (the stable UUID "
        "is accepted too).\n\n"
        "**Dialect 2, Exante style, under `/api/email`**: snake_case JSON without an envelope; "
        "errors `{\"error\": {\"code\", \"message\", \"field\"}}`. `uid` is the draft's stable "
        "UUID.\n\n"
        "Every call under `/api/` needs `Authorization: Bearer <token>`; a token has scopes "
        "(`read`, `write`, `send`) and the accounts it may use. Every response carrying one draft "
        "has an `ETag`; `If-Match` is honoured on every update, delete and send (stale: 412, "
        "nothing changed); `Idempotency-Key` on create and send.\n\n"
        f"Limits of this service: request body {limits.max_request_bytes} bytes; text and HTML "
        f"together {limits.max_body_bytes} bytes; one attachment {limits.max_attachment_bytes} "
        f"bytes and all attachments of a draft {limits.max_draft_attachments_bytes} bytes "
        f"(decoded); {limits.max_recipients} recipients in to, cc and bcc together; list pages "
        f"{DEFAULT_LIMIT} by default, {MAX_LIMIT} at most."
    )


def build_document(limits: Limits | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1.0 document of every route in :data:`OPERATIONS`.

    ``limits`` (default: the configuration's defaults) are quoted in the descriptions. The
    schemas are pydantic's JSON Schema (draft 2020-12, which OpenAPI 3.1 uses) of the models the
    table names, referenced as ``#/components/schemas/<Model>``.
    """
    limits = limits or Limits()
    refs, defs = models_json_schema(_models(), by_alias=True,
                                    ref_template="#/components/schemas/{model}",
                                    schema_generator=_SchemaGenerator)
    schemas: dict[str, Any] = dict(sorted(defs.get("$defs", {}).items()))
    for name, schema in schemas.items():
        if name.startswith("JasniOk_") and "description" not in schema:
            schema["description"] = (f"The success envelope of dialect 1 around "
                                     f"{name.removeprefix('JasniOk_')}.")
    for name, optional in _OMITTED_WHEN_NULL.items():
        if name in schemas:
            required = [f for f in schemas[name].get("required", []) if f not in optional]
            schemas[name]["required"] = required

    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs, limits)

    return {
        "openapi": "3.1.0",
        "info": {"title": "mailbridge", "version": __version__,
                 "summary": "Email drafts over HTTP, stored in the user's own IMAP server.",
                 "description": _info_description(limits),
                 "license": {"name": "GPL-3.0-or-later", "identifier": "GPL-3.0-or-later"}},
        "servers": [{"url": "/"}],
        "tags": [
            {"name": TAG_JASNI, "description": "Dialect 1: camelCase, `{success, data}` envelope, "
                                               "IMAP UIDs in paths."},
            {"name": TAG_EXANTE, "description": "Dialect 2: snake_case, no envelope, the draft's "
                                                "stable UUID in paths."},
            {"name": TAG_HEALTH, "description": "Probes for load balancers and orchestrators; no "
                                                "authentication."},
            {"name": TAG_DOCS, "description": "This document and the page that renders it; no "
                                              "authentication."},
        ],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer",
                "description": "A token listed in the `[[tokens]]` of the configuration "
                               "(stored there as its SHA-256). Its scopes (`read`, `write`, "
                               "`send`) are named on each operation."}},
            "headers": {
                "ETag": _header("The draft's version (RFC 9110 entity tag); send it back as "
                                "`If-Match` to change the draft only if nobody else did."),
                "WWW-Authenticate": _header(f"`{WWW_AUTHENTICATE}`"),
            },
        },
    }


# ----------------------------------------------------------------------------- routes

def add_routes(app: web.Application) -> None:
    """Adds ``GET /openapi.json`` (a token with read) and ``GET /docs`` (a static page) to ``app``.

    The document is built on the first request, with the limits of the app's configuration.
    """
    cache: dict[str, bytes] = {}

    async def openapi_json(request: web.Request) -> web.Response:
        authorize(request, "read")
        if "doc" not in cache:
            config = request.app.get(CONFIG)
            document = build_document(config.server.limits if config is not None else None)
            cache["doc"] = json.dumps(document, ensure_ascii=False, indent=1).encode()
        return web.Response(body=cache["doc"], content_type="application/json",
                            headers={"Cache-Control": "no-cache"})

    async def docs(request: web.Request) -> web.Response:
        return web.Response(text=DOCS_HTML, content_type="text/html", headers={
            "Content-Security-Policy": DOCS_CSP, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"})

    app.router.add_get(OPENAPI_PATH, openapi_json)
    app.router.add_get(DOCS_PATH, docs)


# ----------------------------------------------------------------------------- the page

DOCS_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mailbridge API</title>
<style>
:root { --fg: #1d232a; --muted: #5b6570; --line: #d9dee3; --bg: #ffffff; --soft: #f4f6f8;
        --get: #1f6feb; --post: #1a7f37; --put: #9a6700; --delete: #cf222e; --code: #f0f2f4; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
       background: var(--bg); }
code, pre, .path { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
                   font-size: 13px; }
code { background: var(--code); padding: 0 4px; border-radius: 3px; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 10px;
      overflow: auto; margin: 6px 0; }
a { color: var(--get); text-decoration: none; }
a:hover { text-decoration: underline; }
.layout { display: flex; min-height: 100vh; }
nav { width: 290px; flex: none; border-right: 1px solid var(--line); padding: 16px; position: sticky;
      top: 0; height: 100vh; overflow: auto; background: var(--soft); }
nav h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted);
         margin: 16px 0 4px; }
nav ul { list-style: none; padding: 0; margin: 0; }
nav li { margin: 2px 0; font-size: 13px; white-space: nowrap; overflow: hidden;
         text-overflow: ellipsis; }
nav input { width: 100%; padding: 6px 8px; border: 1px solid var(--line); border-radius: 6px; }
main { flex: 1; padding: 24px 32px; max-width: 1100px; min-width: 0; }
h1 { margin: 0 0 4px; }
h2.tag { border-bottom: 2px solid var(--line); padding-bottom: 4px; margin-top: 36px; }
.muted { color: var(--muted); }
.method { display: inline-block; min-width: 62px; text-align: center; color: #fff; font-weight: 600;
          font-size: 12px; border-radius: 4px; padding: 2px 6px; margin-right: 8px; }
.m-get { background: var(--get); } .m-post { background: var(--post); }
.m-put { background: var(--put); } .m-delete { background: var(--delete); }
details.op { border: 1px solid var(--line); border-radius: 8px; margin: 10px 0; background: #fff; }
details.op > summary { cursor: pointer; padding: 10px 12px; list-style: none; }
details.op > summary::-webkit-details-marker { display: none; }
details.op[open] > summary { border-bottom: 1px solid var(--line); background: var(--soft); }
.op-body { padding: 4px 16px 12px; }
.path { font-weight: 600; }
.lock { font-size: 12px; color: var(--muted); margin-left: 8px; }
h4 { margin: 16px 0 6px; font-size: 14px; }
table { border-collapse: collapse; width: 100%; margin: 4px 0 8px; font-size: 14px; }
th, td { text-align: left; vertical-align: top; border-bottom: 1px solid var(--line);
         padding: 5px 8px; }
th { font-size: 12px; color: var(--muted); font-weight: 600; }
td.name { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px; white-space: nowrap; }
td.type { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px; color: #6f42c1; }
.req { color: var(--delete); font-weight: 700; margin-left: 2px; }
.status { font-weight: 700; font-family: ui-monospace, Menlo, Consolas, monospace; }
.s2 { color: var(--post); } .s4 { color: var(--put); } .s5 { color: var(--delete); }
.sd { color: var(--muted); }
.nested { margin-left: 18px; border-left: 3px solid var(--line); padding-left: 8px; }
details.raw > summary { cursor: pointer; color: var(--muted); font-size: 13px; }
.desc p { margin: 6px 0; } .desc ul { margin: 6px 0; padding-left: 22px; }
.schema-card { border: 1px solid var(--line); border-radius: 8px; padding: 8px 14px; margin: 10px 0; }
.hidden { display: none; }
.error { color: var(--delete); }
@media (max-width: 800px) { .layout { display: block; } nav { width: auto; height: auto;
  position: static; } main { padding: 16px; } }
</style>
</head>
<body>
<div class="layout">
<nav>
  <input id="filter" type="search" placeholder="Filter operations" aria-label="Filter operations">
  <div id="toc"></div>
</nav>
<main id="main"><p class="muted">Loading the OpenAPI document...</p></main>
</div>
<script>
"use strict";
(function () {
  var doc = null;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (k === "text") { node.textContent = attrs[k]; }
        else if (k === "cls") { node.className = attrs[k]; }
        else { node.setAttribute(k, attrs[k]); }
      });
    }
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) { return; }
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function escapeHtml(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  }

  function inline(text) {
    // text is escaped first, so only the tags added here reach the page
    return escapeHtml(text).replace(/``([^`]+)``/g, "<code>$1</code>")
      .replace(/`([^`]+)`/g, "<code>$1</code>")
      .replace(/\\*\\*([^*]+)\\*\\*/g, "<strong>$1</strong>");
  }

  function markdown(text) {
    var box = el("div", {cls: "desc"});
    if (!text) { return box; }
    var html = "";
    text.split(/\\n\\s*\\n/).forEach(function (block) {
      var lines = block.split("\\n");
      if (lines.every(function (l) { return /^- /.test(l) || /^ {2}/.test(l); })) {
        html += "<ul>" + lines.filter(function (l) { return /^- /.test(l); }).map(function (l) {
          return "<li>" + inline(l.slice(2)) + "</li>";
        }).join("") + "</ul>";
      } else {
        html += "<p>" + inline(block) + "</p>";
      }
    });
    box.innerHTML = html;
    return box;
  }

  function refName(ref) { return ref.split("/").pop(); }

  function resolve(obj) {
    var seen = 0;
    while (obj && obj.$ref && seen < 20) {
      var node = doc;
      obj.$ref.replace(/^#\\//, "").split("/").forEach(function (part) {
        node = node ? node[part.replace(/~1/g, "/").replace(/~0/g, "~")] : undefined;
      });
      obj = node;
      seen += 1;
    }
    return obj || {};
  }

  function schemaLink(ref) {
    var name = refName(ref);
    return el("a", {href: "#schema-" + name, text: name});
  }

  function typeOf(schema) {
    // a readable type: string, integer (1..100), Foo[], string | null, "a" | "b"...
    if (!schema) { return ["any"]; }
    if (schema.$ref) { return [schemaLink(schema.$ref)]; }
    var alts = schema.anyOf || schema.oneOf;
    if (alts) {
      var parts = [];
      alts.forEach(function (s, i) {
        if (i) { parts.push(" | "); }
        parts = parts.concat(typeOf(s));
      });
      return parts;
    }
    if (schema.const !== undefined) { return [JSON.stringify(schema.const)]; }
    if (schema.enum) { return [schema.enum.map(function (v) { return JSON.stringify(v); }).join(" | ")]; }
    if (schema.type === "array") { return typeOf(schema.items).concat(["[]"]); }
    var t = Array.isArray(schema.type) ? schema.type.join(" | ") : (schema.type || "any");
    if (schema.format) { t += " (" + schema.format + ")"; }
    return [t];
  }

  function constraints(schema) {
    var out = [];
    var s = schema.anyOf ? schema.anyOf.filter(function (x) { return x.type !== "null"; })[0] || {}
                         : schema;
    if (s.minLength !== undefined) { out.push("min length " + s.minLength); }
    if (s.maxLength !== undefined) { out.push("max length " + s.maxLength); }
    if (s.minimum !== undefined) { out.push("min " + s.minimum); }
    if (s.maximum !== undefined) { out.push("max " + s.maximum); }
    if (s.pattern !== undefined) { out.push("pattern " + s.pattern); }
    if (schema.default !== undefined && schema.default !== null) {
      out.push("default " + JSON.stringify(schema.default));
    }
    return out.join("; ");
  }

  function fieldTable(schema, depth) {
    // properties of an object schema as rows: name (* = required), type, description
    schema = resolve(schema);
    var props = schema.properties || {};
    var required = schema.required || [];
    var table = el("table", null, [el("tr", null, [
      el("th", {text: "Field"}), el("th", {text: "Type"}), el("th", {text: "Description"})])]);
    Object.keys(props).forEach(function (name) {
      var p = props[name];
      var nameCell = el("td", {cls: "name"}, [name]);
      if (required.indexOf(name) >= 0) {
        nameCell.appendChild(el("span", {cls: "req", title: "required", text: "*"}));
      }
      var info = [p.description || resolve(p).description || ""].filter(Boolean);
      var c = constraints(p);
      var desc = el("td", null, [markdown(info.join(" ")), c ? el("div", {cls: "muted", text: c}) : null]);
      table.appendChild(el("tr", null, [nameCell, el("td", {cls: "type"}, typeOf(p)), desc]));
    });
    if (!Object.keys(props).length) {
      return el("div", {cls: "type"}, typeOf(schema));
    }
    return table;
  }

  function example(schema, depth) {
    // a JSON value of the schema's shape (examples, defaults and formats where known)
    depth = depth || 0;
    if (depth > 6) { return null; }
    schema = resolve(schema);
    if (schema.examples && schema.examples.length) { return schema.examples[0]; }
    if (schema.const !== undefined) { return schema.const; }
    if (schema.default !== undefined && schema.default !== null) { return schema.default; }
    if (schema.enum) { return schema.enum[0]; }
    var alts = schema.anyOf || schema.oneOf;
    if (alts) {
      var first = alts.filter(function (s) { return s.type !== "null"; })[0];
      return first ? example(first, depth + 1) : null;
    }
    switch (schema.type) {
      case "object":
        var out = {};
        Object.keys(schema.properties || {}).forEach(function (k) {
          out[k] = example(schema.properties[k], depth + 1);
        });
        return out;
      case "array": return [example(schema.items, depth + 1)];
      case "integer": return schema.minimum !== undefined ? schema.minimum : 0;
      case "number": return 0;
      case "boolean": return true;
      case "null": return null;
      case "string":
        if (schema.format === "date-time") { return "2026-05-01T09:00:00Z"; }
        if (schema.format === "uuid") { return "3fa85f64-5717-4562-b3fc-2c963f66afa6"; }
        return "string";
      default: return null;
    }
  }

  function rawDetails(label, value) {
    return el("details", {cls: "raw"}, [el("summary", {text: label}),
      el("pre", {text: JSON.stringify(value, null, 2)})]);
  }

  function schemaBlock(schema, withExample) {
    var box = el("div", {cls: "nested"});
    var target = resolve(schema);
    if (schema.$ref) {
      box.appendChild(el("div", null, ["Schema: ", schemaLink(schema.$ref)]));
    }
    box.appendChild(fieldTable(schema, 0));
    if (withExample) { box.appendChild(rawDetails("Example (generated)", example(target))); }
    box.appendChild(rawDetails("JSON Schema", schema));
    return box;
  }

  function paramTable(params) {
    var table = el("table", null, [el("tr", null, [el("th", {text: "Name"}), el("th", {text: "In"}),
      el("th", {text: "Type"}), el("th", {text: "Description"})])]);
    params.forEach(function (p) {
      p = resolve(p);
      var name = el("td", {cls: "name"}, [p.name]);
      if (p.required) { name.appendChild(el("span", {cls: "req", title: "required", text: "*"})); }
      var c = constraints(p.schema || {});
      table.appendChild(el("tr", null, [name, el("td", {text: p.in}),
        el("td", {cls: "type"}, typeOf(p.schema)),
        el("td", null, [markdown(p.description), c ? el("div", {cls: "muted", text: c}) : null])]));
    });
    return table;
  }

  function responseBlock(status, response) {
    response = resolve(response);
    var cls = "status s" + String(status).charAt(0);
    if (status === "default") { cls = "status sd"; }
    var box = el("div", null, [el("div", null, [el("span", {cls: cls, text: status})])]);
    box.appendChild(markdown(response.description));
    var headers = response.headers || {};
    Object.keys(headers).forEach(function (h) {
      var hd = resolve(headers[h]);
      box.appendChild(el("div", {cls: "muted"}, ["Header ", el("code", {text: h}), ": ",
        hd.description || ""]));
    });
    Object.keys(response.content || {}).forEach(function (media) {
      box.appendChild(el("div", {cls: "muted", text: media}));
      box.appendChild(schemaBlock(response.content[media].schema || {}, true));
    });
    return box;
  }

  function operationBlock(path, method, op) {
    var id = "op-" + (op.operationId || method + path);
    var sec = op.security || doc.security || [];
    var scopes = sec.length && sec[0].bearerAuth ? sec[0].bearerAuth : [];
    var lock = sec.length === 0 ? "no auth"
      : "bearer token" + (scopes.length ? " \\u00b7 scope " + scopes.join(", ") : "");
    var summary = el("summary", null, [el("span", {cls: "method m-" + method, text: method.toUpperCase()}),
      el("span", {cls: "path", text: path}), " ", el("span", {cls: "muted", text: op.summary || ""}),
      el("span", {cls: "lock", text: lock})]);
    var body = el("div", {cls: "op-body"});
    body.appendChild(markdown(op.description));
    if (op.parameters && op.parameters.length) {
      body.appendChild(el("h4", {text: "Parameters"}));
      body.appendChild(paramTable(op.parameters));
    }
    if (op.requestBody) {
      var rb = resolve(op.requestBody);
      body.appendChild(el("h4", {text: "Request body" + (rb.required ? "" : " (optional)")}));
      Object.keys(rb.content || {}).forEach(function (media) {
        var m = rb.content[media];
        body.appendChild(el("div", {cls: "muted", text: media}));
        body.appendChild(schemaBlock(m.schema || {}, !m.examples));
        Object.keys(m.examples || {}).forEach(function (name) {
          var ex = m.examples[name];
          body.appendChild(el("div", null, [el("strong", {text: "Example: "}), ex.summary || name]));
          body.appendChild(el("pre", {text: JSON.stringify(ex.value, null, 2)}));
        });
      });
    }
    body.appendChild(el("h4", {text: "Responses"}));
    Object.keys(op.responses || {}).forEach(function (status) {
      body.appendChild(responseBlock(status, op.responses[status]));
    });
    var node = el("details", {cls: "op", id: id}, [summary, body]);
    node.dataset.search = (method + " " + path + " " + (op.summary || "") + " " +
                           (op.description || "")).toLowerCase();
    return node;
  }

  function render() {
    var main = document.getElementById("main");
    var toc = document.getElementById("toc");
    main.textContent = "";
    var info = doc.info || {};
    main.appendChild(el("h1", {text: (info.title || "API") + " "}, [
      el("span", {cls: "muted", text: info.version ? "v" + info.version : ""})]));
    main.appendChild(el("div", {cls: "muted"}, ["OpenAPI " + doc.openapi + " \\u00b7 ",
      el("a", {href: "openapi.json", text: "openapi.json"})]));
    main.appendChild(markdown(info.description));

    var tags = (doc.tags || []).map(function (t) { return t.name; });
    var ops = [];
    Object.keys(doc.paths || {}).forEach(function (path) {
      ["get", "put", "post", "delete", "patch", "head", "options"].forEach(function (method) {
        var op = doc.paths[path][method];
        if (!op) { return; }
        var tag = (op.tags || ["Other"])[0];
        if (tags.indexOf(tag) < 0) { tags.push(tag); }
        ops.push({path: path, method: method, op: op, tag: tag});
      });
    });
    tags.forEach(function (tag) {
      var tagInfo = (doc.tags || []).filter(function (t) { return t.name === tag; })[0] || {};
      var anchor = "tag-" + tags.indexOf(tag);
      var section = el("section", {id: anchor, cls: "tag-section"}, [el("h2", {cls: "tag", text: tag})]);
      section.appendChild(markdown(tagInfo.description));
      var list = el("ul");
      toc.appendChild(el("h2", null, [el("a", {href: "#" + anchor, text: tag})]));
      toc.appendChild(list);
      ops.filter(function (o) { return o.tag === tag; }).forEach(function (o) {
        var block = operationBlock(o.path, o.method, o.op);
        section.appendChild(block);
        var item = el("li", null, [el("a", {href: "#" + block.id}, [
          el("span", {cls: "method m-" + o.method, text: o.method.toUpperCase()}), o.path])]);
        item.firstChild.addEventListener("click", function () { block.open = true; });
        item.dataset.target = block.id;
        list.appendChild(item);
      });
      main.appendChild(section);
    });

    var schemas = (doc.components || {}).schemas || {};
    var section = el("section", {id: "schemas"}, [el("h2", {cls: "tag", text: "Schemas"})]);
    toc.appendChild(el("h2", null, [el("a", {href: "#schemas", text: "Schemas"})]));
    Object.keys(schemas).forEach(function (name) {
      var s = schemas[name];
      var card = el("div", {cls: "schema-card", id: "schema-" + name}, [el("h3", {text: name})]);
      card.appendChild(markdown(s.description));
      if (s.enum) {
        card.appendChild(el("div", null, ["One of: ", el("code", {text: s.enum.join(", ")})]));
      } else {
        card.appendChild(fieldTable(s, 0));
      }
      card.appendChild(rawDetails("JSON Schema", s));
      section.appendChild(card);
    });
    main.appendChild(section);

    if (location.hash) {
      var target = document.getElementById(location.hash.slice(1));
      if (target) {
        if (target.tagName === "DETAILS") { target.open = true; }
        target.scrollIntoView();
      }
    }
  }

  document.getElementById("filter").addEventListener("input", function (ev) {
    var q = ev.target.value.trim().toLowerCase();
    document.querySelectorAll("details.op").forEach(function (d) {
      d.classList.toggle("hidden", q !== "" && d.dataset.search.indexOf(q) < 0);
    });
    document.querySelectorAll("#toc li").forEach(function (li) {
      var d = document.getElementById(li.dataset.target);
      li.classList.toggle("hidden", !!d && d.classList.contains("hidden"));
    });
  });

  var TOKEN_KEY = "mailbridge-docs-token";

  function askToken(message) {
    var main = document.getElementById("main");
    main.textContent = "";
    var input = el("input", {});
    input.type = "password";
    input.placeholder = "bearer token";
    input.setAttribute("aria-label", "bearer token");
    var button = el("button", {text: "Show the API"});
    var form = el("form", {}, [el("p", {text: message}), input, button]);
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      load();
    });
    main.appendChild(form);
    input.focus();
  }

  function load() {
    var token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) {
      askToken("The API description needs a token (any token with the read scope).");
      return;
    }
    fetch("openapi.json", {headers: {"Accept": "application/json",
                                     "Authorization": "Bearer " + token}})
      .then(function (r) {
        if (r.status === 401 || r.status === 403) {
          sessionStorage.removeItem(TOKEN_KEY);
          askToken("That token was not accepted (" + r.status + "); try another.");
          return null;
        }
        if (!r.ok) { throw new Error("GET openapi.json answered " + r.status); }
        return r.json();
      })
      .then(function (d) { if (d !== null) { doc = d; render(); } })
      .catch(function (e) {
        var main = document.getElementById("main");
        main.textContent = "";
        main.appendChild(el("p", {cls: "error", text: "Could not load the OpenAPI document: " + e}));
      });
  }

  load();
})();
</script>
</body>
</html>
"""
"""The page of ``GET /docs``: inline CSS and JavaScript only; it fetches ``openapi.json``
(relative, so it works behind a path prefix too) and nothing else."""
