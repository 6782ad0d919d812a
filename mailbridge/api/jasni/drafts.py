"""Dialect 1 drafts: create, list, get, update (both forms), delete (both forms), send."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from mailbridge.api.access import authorize, limits_of
from mailbridge.api.bodies import read_json_object, validate_body
from mailbridge.api.conversion import (
    draft_changes,
    draft_content,
    draft_input,
    header_safe,
)
from mailbridge.api.exante import rfc822
from mailbridge.api.jasni.common import (
    account_of,
    ok,
    render_draft,
    render_draft_summary,
    sent_answer,
)
from mailbridge.api.keys import APPROVALS, DRAFTS, SENDING
from mailbridge.api.params import (
    accepts_json,
    idempotency_key,
    if_match,
    parse_ref,
    query_limit,
    query_text,
    with_etag,
)
from mailbridge.api.schemas import (
    JasniApprovalAnswer,
    JasniDraftCreate,
    JasniDraftData,
    JasniDraftDeleted,
    JasniDraftList,
    JasniDraftSaved,
    JasniDraftUpdate,
    JasniPreview,
    JasniSendRequest,
    RejectRequest,
)
from mailbridge.config import AccountConfig
from mailbridge.errors import (
    Unprocessable,
)
from mailbridge.model import Status
from mailbridge.views import DraftQuery, StoredMessage


async def create_draft(request: web.Request) -> web.Response:
    """POST /api/v1/emails/drafts -> 201 {uid, id, account, message} (ETag of the draft).

    With an Idempotency-Key, a retry returns the draft the first call created, again with 201.
    """
    principal = authorize(request, "write")
    body = validate_body(JasniDraftCreate, await read_json_object(request))
    account = account_of(principal, body.account)
    key = idempotency_key(request, principal)
    content = draft_content(draft_input(body), limits_of(request))
    del body  # its base64 text is decoded now; don't hold both while the message is stored
    draft, _created = await request.app[DRAFTS].create(account, content, idempotency_key=key)
    saved = JasniDraftSaved(uid=draft.uid, id=draft.id, account=account.email,
                            message="Draft saved")
    return with_etag(ok(saved, status=201), draft)


async def list_drafts(request: web.Request) -> web.Response:
    """GET /api/v1/emails/drafts?account=&limit= -> {drafts, total, account}, newest first."""
    principal = authorize(request, "read")
    account = account_of(principal, query_text(request, "account"))
    limit = query_limit(request)
    page = await request.app[DRAFTS].list(account, DraftQuery(limit=limit))
    data = JasniDraftList(drafts=[render_draft_summary(m) for m in page.items], total=page.total,
                          account=account.email)
    return ok(data)


async def get_draft(request: web.Request) -> web.Response:
    """GET /api/v1/emails/drafts/{uid}?account= -> {draft} (ETag of the draft)."""
    principal = authorize(request, "read")
    account = account_of(principal, query_text(request, "account"))
    ref = parse_ref(request.match_info["uid"], integers=True)
    draft = await request.app[DRAFTS].get(account, ref)
    return with_etag(ok(JasniDraftData(draft=render_draft(draft))), draft)


async def preview_draft(request: web.Request) -> web.Response:
    """GET /api/v1/emails/drafts/{uid}/preview?account= -> {raw, envelopeFrom, envelopeTo,
    account}; message/rfc822 as dialect 2's when the Accept header leaves JSON out."""
    principal = authorize(request, "read")
    account = account_of(principal, query_text(request, "account"))
    ref = parse_ref(request.match_info["uid"], integers=True)
    preview = await request.app[SENDING].preview(account, ref)
    if not accepts_json(request.headers.get("Accept")):
        return rfc822(preview)
    return ok(JasniPreview(raw=preview.message.decode("utf-8", "replace"),
                           envelope_from=preview.mail_from, envelope_to=preview.recipients,
                           account=account.email))


def _draft_ref(request: web.Request, given: int | UUID | None = None) -> int | UUID:
    """The draft a call names: in its path (``/drafts/{uid}``), else ``uid`` in its body
    (``given``) or query (the Jasni SDK's forms of update and delete)."""
    if "uid" in request.match_info:
        return parse_ref(request.match_info["uid"], integers=True)
    if given is not None:
        return given
    text = query_text(request, "uid")
    if text is None:
        raise Unprocessable("uid is required: the draft's IMAP UID or stable id", field="uid")
    return parse_ref(text, integers=True)


async def update_draft(request: web.Request) -> web.Response:
    """PUT /api/v1/emails/drafts/{uid} (or PUT /api/v1/emails/drafts with ``uid`` in the body)
    -> {uid (the new UID), id, account, message}.

    Omitted fields are kept, null clears a field, ``attachments`` given replace the list.
    If-Match is honoured (412 when stale, nothing changed).
    """
    principal = authorize(request, "write")
    body = validate_body(JasniDraftUpdate, await read_json_object(request))
    ref = _draft_ref(request, body.uid)
    account = account_of(principal, body.account or query_text(request, "account"))
    changes = draft_changes(draft_input(body), limits_of(request))
    del body  # decoded into ``changes``
    draft = await request.app[DRAFTS].replace(account, ref, changes, expected=if_match(request))
    saved = JasniDraftSaved(uid=draft.uid, id=draft.id, account=account.email,
                            message="Draft updated")
    return with_etag(ok(saved), draft)


async def delete_draft(request: web.Request) -> web.Response:
    """DELETE /api/v1/emails/drafts/{uid}?account= (or DELETE /api/v1/emails/drafts?uid=) ->
    {uid, account, message}; If-Match honoured."""
    principal = authorize(request, "write")
    account = account_of(principal, query_text(request, "account"))
    ref = _draft_ref(request)
    draft = await request.app[DRAFTS].delete(account, ref, expected=if_match(request))
    return ok(JasniDraftDeleted(uid=draft.uid, account=account.email, message="Draft deleted"))


async def send_draft(request: web.Request) -> web.Response:
    """POST /api/v1/emails/drafts/{uid}/send {account} -> {uid (in Sent), messageId, account,
    message}. Sends exactly once: a retry, or a send of a draft already sent, returns the same
    result and delivers nothing. If-Match and Idempotency-Key honoured; 409 while another send
    of the draft is in flight; 422 for a draft without valid recipients; 502 when the SMTP
    server refused it (the draft is kept, status failed); 503 when it could not be reached
    (the draft is kept unchanged). A token that may write but not send, or an account that
    requires approval, gets 202 {uid, id, account, status: awaiting_approval} instead: the draft
    waits for a token with the approve scope."""
    principal = authorize(request, "write")
    data = await read_json_object(request) if request.can_read_body else {}
    body = validate_body(JasniSendRequest, data)
    account = account_of(principal, body.account or query_text(request, "account"))
    ref = parse_ref(request.match_info["uid"], integers=True)
    draft, sent = await request.app[APPROVALS].send_or_request(
        account, ref, by=principal.name, may_send=principal.may("send"),
        expected=if_match(request), idempotency_key=idempotency_key(request, principal))
    if not sent:
        return ok(_decided(account, draft, "Awaiting approval"), status=202)
    return ok(sent_answer(account, draft))


async def approve_draft(request: web.Request) -> web.Response:
    """POST /api/v1/emails/drafts/{uid}/approve {account} -> as a send answers (sent now), or
    {uid, id, account, status: scheduled} when it has a planned time. Needs approve."""
    principal = authorize(request, "approve")
    data = await read_json_object(request) if request.can_read_body else {}
    body = validate_body(JasniSendRequest, data)
    account = account_of(principal, body.account or query_text(request, "account"))
    ref = parse_ref(request.match_info["uid"], integers=True)
    draft = await request.app[APPROVALS].approve(account, ref, by=principal.name,
                                                 expected=if_match(request))
    if draft.status is Status.SENT:
        return ok(sent_answer(account, draft))
    return ok(_decided(account, draft, "Approved"))


async def reject_draft(request: web.Request) -> web.Response:
    """POST /api/v1/emails/drafts/{uid}/reject {account, reason} -> {uid, id, account, status:
    rejected}. Needs approve."""
    principal = authorize(request, "approve")
    data = await read_json_object(request)
    account = account_of(principal, data.pop("account", None) or query_text(request, "account"))
    body = validate_body(RejectRequest, data)
    ref = parse_ref(request.match_info["uid"], integers=True)
    draft = await request.app[APPROVALS].reject(account, ref, by=principal.name,
                                                reason=header_safe("reason", body.reason),
                                                expected=if_match(request))
    return ok(_decided(account, draft, "Rejected"))


def _decided(account: AccountConfig, draft: StoredMessage, message: str) -> JasniApprovalAnswer:
    return JasniApprovalAnswer(uid=draft.uid, id=draft.id, account=account.email,
                               status=draft.status, message=message)
