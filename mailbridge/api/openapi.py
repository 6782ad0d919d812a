"""The OpenAPI 3.1 document of mailbridge's HTTP API, built from the route table.

The document is generated, not written: the operations come from the one route table
(:data:`mailbridge.api.routes.ROUTES`, the same table the app registers its handlers from) and the
schemas from the pydantic request and response models it names (validation schemas of the request
models, serialization schemas of the response models, one ``components/schemas`` entry per model).
:mod:`mailbridge.api.docs` serves it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema
from pydantic_core import core_schema

from mailbridge import __version__
from mailbridge.api.params import DEFAULT_LIMIT, MAX_LIMIT
from mailbridge.api.routing import (
    TAG_DOCS,
    TAG_EXANTE,
    TAG_HEALTH,
    TAG_JASNI,
    TAG_MCP,
    TAG_METRICS,
    TAG_REVIEW,
    Param,
    Route,
)
from mailbridge.api.schemas import ExanteError, JasniError, JasniEventBody, StandardEventBody
from mailbridge.api.statuses import WWW_AUTHENTICATE
from mailbridge.config import Limits

__all__ = ["build_document"]

_OMITTED_WHEN_NULL: Mapping[str, tuple[str, ...]] = {
    "JasniError": ("field",),  # dumped with exclude_none (app.error_response)
    "AccountCheck": ("code", "error"),
}
"""Response fields left out of the JSON when null; every other response field is always there."""


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

_JASNI_ERROR_TEXT = {
    400: _ERROR_TEXT[400].removesuffix(" `field` names the culprit.") + "; or a value cannot be "
         "used: a required field is missing, a value has the wrong type or form (a time outside "
         "1970-9999), too many recipients or attachments, a value longer than "
         "`max_header_chars`, or the account must be named because the token may use several "
         "(`invalid_input`). `field` names the culprit. The Jasni SDK raises 400 as "
         "`ValidationError`.",
    422: "A draft that cannot be sent as it is: no recipient, too many, an invalid address "
         "(`invalid_input`, `field` names it); or an Idempotency-Key used before with another "
         "request (`idempotency_key_reused`). The request itself was fine.",
}
"""Dialect 1 answers unusable values with 400, which the Jasni SDK raises as ValidationError
(mailbridge.api.statuses.DIALECT_1)."""


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


def _models(routes: Sequence[Route]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    pairs: list[tuple[type[BaseModel], JsonSchemaMode]] = []
    for op in routes:
        if op.body is not None:
            pairs.append((op.body, "validation"))
        if isinstance(op.response, type):
            pairs.append((op.response, "serialization"))
        if op.errors:
            pairs.append((_error_model(op.tag), "serialization"))
    pairs.append((ExanteError, "serialization"))  # the default response of every operation
    pairs += [(JasniEventBody, "serialization"), (StandardEventBody, "serialization")]
    return list(dict.fromkeys(pairs))


def _webhooks(refs: Mapping[tuple[Any, JsonSchemaMode], Any]) -> dict[str, Any]:
    """OpenAPI 3.1 ``webhooks``: what mailbridge POSTs to a subscription's URL."""
    def hook(summary: str, description: str, model: type[BaseModel],
             headers: Mapping[str, str]) -> dict[str, Any]:
        return {"post": {
            "summary": summary, "description": description, "security": [],
            "parameters": [{"name": n, "in": "header", "required": True, "description": d,
                            "schema": {"type": "string"}} for n, d in headers.items()],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": refs[(model, "serialization")]}}},
            "responses": {"2XX": {"description": "Delivered."},
                          "5XX": {"description": "Tried again after 1, 2, 4... seconds for "
                                                 "`[server] webhook_retry_seconds` (so are a "
                                                 "timeout and a lost connection)."}}}}
    return {
        "jasniEvent": hook(
            "An event, to a dialect 1 subscription",
            "Verify it with the Jasni SDK: `jasni.webhooks.verify_signature(body, "
            "request.headers['X-Jasni-Signature'], secret)`.", JasniEventBody,
            {"X-Jasni-Signature": "`t=<unix time>,v1=<hex HMAC-SHA256 with the secret of "
                                  "\"<t>.<raw body>\">`"}),
        "standardEvent": hook(
            "An event, to a dialect 2 subscription",
            "Signed per the Standard Webhooks spec; verify it with its library: "
            "`standardwebhooks.webhooks.Webhook(secret).verify(body, headers)`.",
            StandardEventBody,
            {"webhook-id": "The event's id (drop a repeat by it).",
             "webhook-timestamp": "Unix time of this attempt.",
             "webhook-signature": "`v1,<base64 HMAC-SHA256 of \"<id>.<timestamp>.<body>\">`."}),
    }


def _header(description: str, schema: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "schema": dict(schema or {"type": "string"})}


def _parameter(p: Param) -> dict[str, Any]:
    param: dict[str, Any] = {"name": p.name, "in": p.where, "description": p.description,
                             "schema": dict(p.schema)}
    if p.required or p.where == "path":
        param["required"] = True
    return param


def _operation(op: Route, refs: Mapping[tuple[Any, JsonSchemaMode], Any],
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
    if op.refused:
        result["x-always-refused"] = True
    for status, description in ({} if op.refused else
                                {op.status: op.status_description, **op.also}).items():
        response: dict[str, Any] = {"description": description}
        if op.response is not None:
            schema = (refs[(op.response, "serialization")] if isinstance(op.response, type)
                      else dict(op.response))
            response["content"] = {op.media_type: {"schema": schema}}
            response["content"].update({media: {"schema": dict(alt)}
                                        for media, alt in op.alt_media.items()})
        if op.etag and status < 300:
            response["headers"] = {"ETag": {"$ref": "#/components/headers/ETag"}}
        responses[str(status)] = response
    error_ref = refs[(_error_model(op.tag), "serialization")]
    for status in op.errors:
        defaults = {**_ERROR_TEXT, **_JASNI_ERROR_TEXT} if op.tag == TAG_JASNI else _ERROR_TEXT
        text = op.error_notes.get(status, defaults[status])
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


def build_document(routes: Sequence[Route], limits: Limits | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1.0 document of ``routes`` (the app's: :data:`mailbridge.api.routes.ROUTES`).

    ``limits`` (default: the configuration's defaults) are quoted in the descriptions. The
    schemas are pydantic's JSON Schema (draft 2020-12, which OpenAPI 3.1 uses) of the models the
    table names, referenced as ``#/components/schemas/<Model>``.
    """
    limits = limits or Limits()
    refs, defs = models_json_schema(_models(routes), by_alias=True,
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
    for op in routes:
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
            {"name": TAG_METRICS, "description": "Prometheus metrics, for tokens with the "
                                                 "`metrics` scope."},
            {"name": TAG_DOCS, "description": "This document and the page that renders it; no "
                                              "authentication."},
            {"name": TAG_MCP, "description": "Tools for AI agents over the Model Context "
                                             "Protocol (streamable HTTP), with the same tokens."},
            {"name": TAG_REVIEW, "description": "The page where people approve or reject "
                                                "drafts, and the HTML it is made of."},
        ],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "webhooks": _webhooks(refs),
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
