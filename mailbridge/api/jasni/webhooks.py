"""Dialect 1 webhook subscriptions (the Jasni SDK's ``webhooks.*``; :mod:`mailbridge.subscriptions`)."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from mailbridge.api.access import authorize
from mailbridge.api.bodies import read_json_object, validate_body
from mailbridge.api.conversion import (
    attempt_view,
    webhook_view,
)
from mailbridge.api.jasni.common import (
    ok,
)
from mailbridge.api.keys import DELIVERY, WEBHOOKS
from mailbridge.api.params import (
    query_text,
)
from mailbridge.api.schemas import (
    JasniWebhookData,
    JasniWebhookDeleted,
    JasniWebhookDeliveries,
    JasniWebhookList,
    JasniWebhookUpdate,
    WebhookCreate,
)
from mailbridge.errors import (
    InvalidInput,
)


def _webhook_id(text: str | None, given: UUID | None = None) -> UUID:
    """The webhook named in the path or query (``text``) and/or the body (``given``)."""
    if text:
        try:
            ref = UUID(text)
        except ValueError:
            raise InvalidInput("id must be a webhook id (a UUID)", field="id") from None
        if given is not None and given != ref:
            raise InvalidInput("the id in the body is not the one in the path", field="id")
        return ref
    if given is None:
        raise InvalidInput("id is required: the webhook's id", field="id")
    return given


async def list_webhooks(request: web.Request) -> web.Response:
    """GET /api/v1/webhooks -> {webhooks}: the token's own subscriptions (no secrets)."""
    principal = authorize(request, "read")
    subs = await request.app[WEBHOOKS].of(principal)
    return ok(JasniWebhookList(webhooks=[webhook_view(s) for s in subs]))


async def get_webhook(request: web.Request) -> web.Response:
    """GET /api/v1/webhooks/{id} -> {webhook}."""
    principal = authorize(request, "read")
    sub = await request.app[WEBHOOKS].get(principal, _webhook_id(request.match_info["id"]))
    return ok(JasniWebhookData(webhook=webhook_view(sub)))


async def create_webhook(request: web.Request) -> web.Response:
    """POST /api/v1/webhooks {url, events, description} -> 201 {webhook} with its secret, once.
    Deliveries are signed the Jasni way (X-Jasni-Signature)."""
    principal = authorize(request, "read")
    body = validate_body(WebhookCreate, await read_json_object(request))
    sub = await request.app[WEBHOOKS].create(principal, body.url, body.events, body.description,
                                             "jasni")
    return ok(JasniWebhookData(webhook=webhook_view(sub, with_secret=True)), status=201)


async def update_webhook(request: web.Request) -> web.Response:
    """PATCH /api/v1/webhooks {id, url, events, active, description} (the SDK's form) or PATCH
    /api/v1/webhooks/{id} -> {webhook}. A field left out or null is kept."""
    principal = authorize(request, "read")
    body = validate_body(JasniWebhookUpdate, await read_json_object(request))
    sub_id = _webhook_id(request.match_info.get("id"), body.id)
    sub = await request.app[WEBHOOKS].update(principal, sub_id, url=body.url, events=body.events,
                                             active=body.active, description=body.description)
    return ok(JasniWebhookData(webhook=webhook_view(sub)))


async def delete_webhook(request: web.Request) -> web.Response:
    """DELETE /api/v1/webhooks?id= (the SDK's form) or DELETE /api/v1/webhooks/{id} -> {id,
    message}."""
    principal = authorize(request, "read")
    sub_id = _webhook_id(request.match_info.get("id") or query_text(request, "id"))
    await request.app[WEBHOOKS].delete(principal, sub_id)
    return ok(JasniWebhookDeleted(id=str(sub_id), message="Webhook deleted"))


async def webhook_deliveries(request: web.Request) -> web.Response:
    """GET /api/v1/webhooks/{id}/deliveries -> {deliveries}: the latest attempts, newest first."""
    principal = authorize(request, "read")
    sub = await request.app[WEBHOOKS].get(principal, _webhook_id(request.match_info["id"]))
    attempts = await request.app[DELIVERY].attempts(sub.id, principal.accounts)
    return ok(JasniWebhookDeliveries(deliveries=[attempt_view(a) for a in attempts]))
