"""Dialect 2 (Exante style) under ``/api/email``: snake_case, no envelope.

Errors are ``{"error": {"code", "message", "field"}}`` (rendered by the error middleware of
:mod:`mailbridge.api.app`). ``uid`` is always the draft's stable UUID. A draft is found in
whichever account of the token holds it; ``?from_account_id=`` narrows the search to one account.
"""

from __future__ import annotations

from urllib.parse import quote
from uuid import UUID

from aiohttp import web

from mailbridge.api.access import authorize, limits_of, resolve_account
from mailbridge.api.bodies import read_json_object, validate_body
from mailbridge.api.conversion import (
    attempt_view,
    draft_changes,
    draft_content,
    draft_input,
    format_address,
    header_safe,
    message_id,
    render_approval,
    webhook_view,
)
from mailbridge.api.keys import APPROVALS, DELIVERY, DRAFTS, MESSAGES, SENDING, WEBHOOKS
from mailbridge.api.params import (
    encode_cursor,
    idempotency_key,
    if_match,
    parse_draft_id,
    parse_status,
    query_cursor,
    query_limit,
    query_text,
    with_etag,
)
from mailbridge.api.schemas import (
    ExanteAttachmentOut,
    ExanteDraft,
    ExanteDraftList,
    ExanteDraftUpsert,
    ExanteForwardDraft,
    ExanteReplyDraft,
    ExanteWebhookDeliveries,
    ExanteWebhookList,
    RejectRequest,
    WebhookCreate,
    WebhookUpdate,
)
from mailbridge.auth import Principal
from mailbridge.config import AccountConfig, Limits
from mailbridge.drafts import DraftService
from mailbridge.errors import InvalidInput, NotFound, Unprocessable
from mailbridge.messages import MessageService
from mailbridge.replies import answer_content
from mailbridge.sending import Preview
from mailbridge.views import DraftQuery, StoredMessage

PREFIX = "/api/email"


def attachments_out(m: StoredMessage) -> list[ExanteAttachmentOut]:
    """The message's attachments as dialect 2 (and the MCP tools) show them."""
    return [ExanteAttachmentOut(filename=a.filename, content_type=a.content_type, size=a.size)
            for a in m.attachments]


# wire name -> DraftContent field
def render_draft(m: StoredMessage) -> ExanteDraft:
    c = m.content
    return ExanteDraft(
        uid=m.id, from_account_id=m.account.id, from_email=m.account.email,
        to=[format_address(a) for a in c.to], cc=[format_address(a) for a in c.cc],
        bcc=[format_address(a) for a in c.bcc],
        subject=c.subject, body_text=c.text, body_html=c.html,
        attachments=attachments_out(m),
        context_type=c.context_type, context_id=c.context_id,
        planned_send_at=c.planned_send_at, status=m.status, last_error=m.last_error,
        message_id=message_id(m.parsed.message_id), created_at=m.created_at,
        updated_at=m.updated_at, approval=render_approval(m),
    )


def record(m: StoredMessage, status: int = 200) -> web.Response:
    body = render_draft(m).model_dump(mode="json")
    return with_etag(web.json_response(body, status=status), m)


def _holders(principal: Principal, hint: str | None) -> list[AccountConfig]:
    """The accounts a draft named by id may be in: the one ``hint`` (from_account_id) names,
    else every account of the token."""
    if hint is not None or len(principal.accounts) == 1:
        return [resolve_account(principal, hint, "from_account_id")]
    return list(principal.accounts)


async def find_draft(drafts: DraftService, principal: Principal, ref: UUID,
                     hint: str | None) -> StoredMessage:
    """The draft ``ref`` in the account ``hint`` names, else in whichever of the token's
    accounts holds it (see DraftService.find)."""
    return await drafts.find(_holders(principal, hint), ref)


def _path_ref(request: web.Request) -> UUID:
    return parse_draft_id(request.match_info["uid"])


async def upsert_draft(request: web.Request) -> web.Response:
    """POST /api/email/drafts: without ``uid`` create (201), with ``uid`` update the fields given
    (200); the draft record either way, with its ETag.

    Create honours Idempotency-Key (a retry returns the first draft, again 201); update honours
    If-Match (412 when stale, nothing changed). A draft cannot move to another account.
    """
    principal = authorize(request, "write")
    body = validate_body(ExanteDraftUpsert, await read_json_object(request))
    drafts = request.app[DRAFTS]
    if body.uid is None:
        account = resolve_account(principal, body.from_account_id, "from_account_id")
        key = idempotency_key(request, principal)
        content = draft_content(draft_input(body), limits_of(request))
        del body  # its base64 text is decoded now; don't hold both while the message is stored
        draft, _created = await drafts.create(account, content, idempotency_key=key)
        return record(draft, status=201)
    changes = draft_changes(draft_input(body), limits_of(request))
    wanted = (resolve_account(principal, body.from_account_id, "from_account_id")
              if body.from_account_id is not None else None)
    ref = body.uid

    async def update(account: AccountConfig) -> StoredMessage:
        if wanted is not None and wanted.id != account.id:
            raise Unprocessable("a draft cannot move to another account; create a new draft "
                               "there and delete this one", field="from_account_id")
        return await drafts.replace(account, ref, changes, expected=if_match(request))

    return record(await drafts.in_holder(_holders(principal, None), ref, update))


async def reply_draft(request: web.Request) -> web.Response:
    """POST /api/email/drafts/reply {from_account_id, folder, message_uid, body_text, body_html,
    reply_all, include_original, context_*, planned_send_at} -> 201, the draft record."""
    return await _answer_draft(request, forward=False)


async def forward_draft(request: web.Request) -> web.Response:
    """POST /api/email/drafts/forward {from_account_id, folder, message_uid, to, cc, bcc,
    body_text, body_html, include_original, context_*, planned_send_at} -> 201, the record."""
    return await _answer_draft(request, forward=True)


async def _answer_draft(request: web.Request, *, forward: bool) -> web.Response:
    principal = authorize(request, "write")
    data = await read_json_object(request)
    body: ExanteReplyDraft | ExanteForwardDraft = (
        validate_body(ExanteForwardDraft, data) if forward
        else validate_body(ExanteReplyDraft, data))
    account = resolve_account(principal, body.from_account_id, "from_account_id")
    draft = await answer_draft(request.app[MESSAGES], account, body, limits_of(request),
                               idempotency_key(request, principal))
    return record(draft, status=201)


async def answer_draft(messages: MessageService, account: AccountConfig,
                       body: ExanteReplyDraft | ExanteForwardDraft, limits: Limits,
                       key: str | None = None) -> StoredMessage:
    """The reply (or forward) draft ``body`` asks for, of the message ``body.message_uid`` in
    ``body.folder`` (a message not found is named ``message_uid``)."""
    forward = isinstance(body, ExanteForwardDraft)
    given = draft_changes(draft_input(body), limits)
    reply_all = isinstance(body, ExanteReplyDraft) and body.reply_all
    folder = await messages.folder_named(account, body.folder)
    try:
        draft, _created = await messages.answer_draft(
            account, folder, body.message_uid,
            lambda original: answer_content(original, account, given, forward=forward,
                                            reply_all=reply_all,
                                            include_original=body.include_original),
            forward=forward, idempotency_key=key)
    except NotFound as exc:  # the message: named message_uid in this dialect
        if exc.field != "uid":
            raise
        raise NotFound(exc.message, field="message_uid") from None
    return draft


async def get_draft(request: web.Request) -> web.Response:
    """GET /api/email/drafts/{uid} -> the draft record (ETag)."""
    principal = authorize(request, "read")
    ref = _path_ref(request)
    draft = await find_draft(request.app[DRAFTS], principal, ref,
                             query_text(request, "from_account_id"))
    return record(draft)


async def list_drafts(request: web.Request) -> web.Response:
    """GET /api/email/drafts?from_account_id=&context_type=&context_id=&status=&limit=&cursor=
    -> {items, next_cursor}, newest first; ``next_cursor`` null on the last page."""
    principal = authorize(request, "read")
    account = resolve_account(principal, query_text(request, "from_account_id"),
                              "from_account_id")
    status = parse_status(query_text(request, "status"))
    query = DraftQuery(limit=query_limit(request), after=query_cursor(request),
                       context_type=query_text(request, "context_type"),
                       context_id=query_text(request, "context_id"), status=status)
    page = await request.app[DRAFTS].list(account, query)
    body = ExanteDraftList(items=[render_draft(m) for m in page.items],
                           next_cursor=encode_cursor(page.next))
    return web.json_response(body.model_dump(mode="json"))


async def delete_draft(request: web.Request) -> web.Response:
    """DELETE /api/email/drafts/{uid} -> 204; If-Match honoured."""
    principal = authorize(request, "write")
    ref = _path_ref(request)
    drafts = request.app[DRAFTS]

    async def delete(account: AccountConfig) -> StoredMessage:
        return await drafts.delete(account, ref, expected=if_match(request))

    await drafts.in_holder(_holders(principal, query_text(request, "from_account_id")), ref,
                           delete)
    return web.Response(status=204)


async def send_draft(request: web.Request) -> web.Response:
    """POST /api/email/drafts/{uid}/send -> the record with status "sent".

    Sends exactly once: a retry, or a send of a draft already sent, returns the sent record and
    delivers nothing. If-Match and Idempotency-Key honoured; 409 while another send of the
    draft is in flight; 422 for a draft without valid recipients; 502 when the SMTP server
    refused it (the draft is kept, status failed, last_error = the server's reply); 503 when
    it could not be reached (the draft is kept unchanged)."""
    principal = authorize(request, "write")
    ref = _path_ref(request)
    key = idempotency_key(request, principal)

    async def send(account: AccountConfig) -> tuple[StoredMessage, bool]:
        return await request.app[APPROVALS].send_or_request(
            account, ref, by=principal.name, may_send=principal.may("send"),
            expected=if_match(request), idempotency_key=key)

    draft, sent = await request.app[DRAFTS].in_holder(
        _holders(principal, query_text(request, "from_account_id")), ref, send)
    return record(draft, 200 if sent else 202)


async def approve_draft(request: web.Request) -> web.Response:
    """POST /api/email/drafts/{uid}/approve -> the record: sent now (status sent), or scheduled
    for its planned time. Needs the approve scope."""
    principal = authorize(request, "approve")
    ref = _path_ref(request)

    async def approve(account: AccountConfig) -> StoredMessage:
        return await request.app[APPROVALS].approve(account, ref, by=principal.name,
                                                    expected=if_match(request))

    return record(await request.app[DRAFTS].in_holder(
        _holders(principal, query_text(request, "from_account_id")), ref, approve))


async def reject_draft(request: web.Request) -> web.Response:
    """POST /api/email/drafts/{uid}/reject {reason} -> the record, status rejected."""
    principal = authorize(request, "approve")
    ref = _path_ref(request)
    body = validate_body(RejectRequest, await read_json_object(request))
    reason = header_safe("reason", body.reason)

    async def reject(account: AccountConfig) -> StoredMessage:
        return await request.app[APPROVALS].reject(account, ref, by=principal.name,
                                                   reason=reason, expected=if_match(request))

    return record(await request.app[DRAFTS].in_holder(
        _holders(principal, query_text(request, "from_account_id")), ref, reject))


async def preview_draft(request: web.Request) -> web.Response:
    """GET /api/email/drafts/{uid}/preview -> message/rfc822: what a send would hand to SMTP
    now (no Bcc, no X-Mailbridge-* header), its envelope in X-Envelope-From/-To."""
    principal = authorize(request, "read")
    ref = _path_ref(request)

    async def preview(account: AccountConfig) -> Preview:
        return await request.app[SENDING].preview(account, ref)

    return rfc822(await request.app[DRAFTS].in_holder(
        _holders(principal, query_text(request, "from_account_id")), ref, preview))


def rfc822(preview: Preview) -> web.Response:
    """A preview as the answer of both dialects: the message's bytes as they are, and its
    envelope in headers (addresses percent-encoded where they are not ASCII)."""
    def header(address: str) -> str:
        return quote(address, safe="@!#$&'*+-/=?^_`{|}~.%")

    return web.Response(body=preview.message, content_type="message/rfc822", headers={
        "X-Envelope-From": header(preview.mail_from),
        "X-Envelope-To": ", ".join(header(r) for r in preview.recipients),
        "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})


__all__ = ["PREFIX", "find_draft", "render_draft", "rfc822"]


# ----------------------------------------------------------------------------- webhooks

def _webhook_ref(request: web.Request) -> UUID:
    try:
        return UUID(request.match_info["id"])
    except ValueError:
        raise InvalidInput("id must be a webhook id (a UUID)", field="id") from None


async def list_webhooks(request: web.Request) -> web.Response:
    """GET /api/email/webhooks -> {items}: the token's own subscriptions (no secrets)."""
    principal = authorize(request, "read")
    subs = await request.app[WEBHOOKS].of(principal)
    return web.json_response(ExanteWebhookList(items=[webhook_view(s) for s in subs])
                             .model_dump(mode="json"))


async def get_webhook(request: web.Request) -> web.Response:
    """GET /api/email/webhooks/{id} -> the subscription."""
    principal = authorize(request, "read")
    sub = await request.app[WEBHOOKS].get(principal, _webhook_ref(request))
    return web.json_response(webhook_view(sub).model_dump(mode="json"))


async def create_webhook(request: web.Request) -> web.Response:
    """POST /api/email/webhooks {url, events, description} -> 201, the subscription with its
    secret (``whsec_...``), once. Deliveries are signed per Standard Webhooks."""
    principal = authorize(request, "read")
    body = validate_body(WebhookCreate, await read_json_object(request))
    sub = await request.app[WEBHOOKS].create(principal, body.url, body.events, body.description,
                                             "standard")
    return web.json_response(webhook_view(sub, with_secret=True).model_dump(mode="json"),
                             status=201)


async def update_webhook(request: web.Request) -> web.Response:
    """PATCH /api/email/webhooks/{id} {url, events, active, description} -> the subscription."""
    principal = authorize(request, "read")
    body = validate_body(WebhookUpdate, await read_json_object(request))
    sub = await request.app[WEBHOOKS].update(principal, _webhook_ref(request), url=body.url,
                                             events=body.events, active=body.active,
                                             description=body.description)
    return web.json_response(webhook_view(sub).model_dump(mode="json"))


async def delete_webhook(request: web.Request) -> web.Response:
    """DELETE /api/email/webhooks/{id} -> 204."""
    principal = authorize(request, "read")
    await request.app[WEBHOOKS].delete(principal, _webhook_ref(request))
    return web.Response(status=204)


async def webhook_deliveries(request: web.Request) -> web.Response:
    """GET /api/email/webhooks/{id}/deliveries -> {items}: the latest attempts, newest first."""
    principal = authorize(request, "read")
    sub = await request.app[WEBHOOKS].get(principal, _webhook_ref(request))
    attempts = await request.app[DELIVERY].attempts(sub.id, principal.accounts)
    return web.json_response(ExanteWebhookDeliveries(items=[attempt_view(a) for a in attempts])
                             .model_dump(mode="json"))
