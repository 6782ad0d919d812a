"""What a route is: the entries of mailbridge's one route table (:mod:`mailbridge.api.routes`).

A :class:`Route` names its handler, and everything the OpenAPI document says about it; the app
registers the handlers from the table (:func:`mailbridge.api.routes.add_routes`) and
:mod:`mailbridge.api.openapi` builds the document from the same table, so the two cannot differ.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel

from mailbridge.config import Scope

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

TAG_JASNI = "Jasni-style /api/v1"
TAG_EXANTE = "Exante-style /api/email"
TAG_HEALTH = "Health"
TAG_METRICS = "Metrics"
TAG_DOCS = "Documentation"
TAG_MCP = "MCP"
TAG_REVIEW = "Review page"

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
class Route:
    """One route: its handler, and what the document says about it.

    ``response`` is the success body: a pydantic model (its serialization schema), a literal
    JSON schema, or None for no body. ``also`` lists further success statuses with the same
    body. ``errors`` are the statuses answered in the dialect's error shape. ``scope`` is the
    token scope the call needs; None means no authentication at all.
    """

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: str
    handler: Handler
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
    alt_media: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Further media types of the success body (content negotiation), each with its schema."""
    body: type[BaseModel] | None = None
    body_required: bool = True
    examples: Mapping[str, tuple[str, Mapping[str, Any]]] = field(default_factory=dict)
    params: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()
    error_notes: Mapping[int, str] = field(default_factory=dict)
    etag: bool = False
    if_match: bool = False
    idempotency: bool = False
    refused: bool = False
    """The call never succeeds here (a hosted service's call a gateway does not do): the
    document gives it no success answer, only its refusal (``x-always-refused``)."""
