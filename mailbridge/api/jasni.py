"""Dialect 1 (Jasni style) under ``/api/v1``: envelope ``{"success": true, "data": ...}``, camelCase.

Each handler adapts: authenticate (:mod:`~mailbridge.api.access`), read the request
(:mod:`~mailbridge.api.bodies`, :mod:`~mailbridge.api.params`, :mod:`~mailbridge.api.conversion`),
one DraftService call, render. Errors are rendered by the error middleware of
:mod:`mailbridge.api.app` as ``{"success": false, "error", "code", "field"}``.

``{uid}`` in a path is the integer IMAP UID of the message holding the draft (it changes on every
update; the old one then answers 404); the draft's stable UUID is accepted too. ``account`` (the
account's email address or id) may be omitted when the token may use exactly one account.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel

from mailbridge.api.access import authorize, limits_of, resolve_account
from mailbridge.api.bodies import read_json_object, validate_body
from mailbridge.api.conversion import (
    draft_changes,
    draft_content,
    draft_input,
    format_address,
    message_id,
    webhook_view,
)
from mailbridge.api.keys import ACCOUNTS, DRAFTS, LABELS, MESSAGES, SENDING, WEBHOOKS
from mailbridge.api.params import (
    idempotency_key,
    if_match,
    parse_ref,
    parse_uid,
    query_bool,
    query_folder,
    query_limit,
    query_text,
    with_etag,
)
from mailbridge.api.schemas import (
    JasniAccount,
    JasniAccountList,
    JasniAddress,
    JasniAttachmentData,
    JasniAttachmentList,
    JasniAttachmentOne,
    JasniAttachmentOut,
    JasniCreatedLabel,
    JasniDraft,
    JasniDraftCreate,
    JasniDraftData,
    JasniDraftDeleted,
    JasniDraftList,
    JasniDraftSaved,
    JasniDraftSummary,
    JasniDraftUpdate,
    JasniEmail,
    JasniEmailAction,
    JasniEmailChanged,
    JasniEmailData,
    JasniEmailDeleted,
    JasniEmailLabel,
    JasniEmailLabels,
    JasniEmailList,
    JasniEmailSummary,
    JasniForwarded,
    JasniForwardedFrom,
    JasniForwardRequest,
    JasniLabel,
    JasniLabelAssign,
    JasniLabelCreate,
    JasniLabelCreated,
    JasniLabelDeleted,
    JasniLabelList,
    JasniLabelsAssigned,
    JasniLabelsRemoved,
    JasniRaw,
    JasniReplied,
    JasniReplyRequest,
    JasniSendEmail,
    JasniSendRequest,
    JasniSent,
    JasniThread,
    JasniThreadList,
    JasniThreadPreview,
    JasniWebhookData,
    JasniWebhookDeleted,
    JasniWebhookList,
    JasniWebhookUpdate,
    WebhookCreate,
    rfc3339,
)
from mailbridge.attachments import AttachmentPart, find
from mailbridge.auth import Principal
from mailbridge.config import AccountConfig, Scope
from mailbridge.errors import (
    AccountsFromConfiguration,
    Conflict,
    ImapNotFound,
    InvalidInput,
    MailbridgeError,
    NotFound,
    Unprocessable,
)
from mailbridge.labels import Label, keyword_of
from mailbridge.mime import parse_address_list
from mailbridge.model import Address, DraftContent
from mailbridge.replies import answer_content, forwarding_headers
from mailbridge.threads import WINDOW, Thread
from mailbridge.views import DraftQuery, StoredMessage, utcnow

PREFIX = "/api/v1"
log = logging.getLogger("mailbridge.api")

# ----------------------------------------------------------------------------- rendering

def ok(data: BaseModel, status: int = 200) -> web.Response:
    """The success envelope (:class:`~mailbridge.api.schemas.JasniOk`) around ``data``."""
    body = {"success": True, "data": data.model_dump(mode="json", by_alias=True)}
    return web.json_response(body, status=status)


def _address(a: Address) -> JasniAddress:
    return JasniAddress(address=a.email, name=a.name or None)


def _summary(m: StoredMessage) -> dict[str, Any]:
    c = m.content
    return {
        "uid": m.uid, "message_id": message_id(m.parsed.message_id) or "",
        "from_": _address(m.parsed.sender) if m.parsed.sender is not None else "",
        "to": [_address(a) for a in c.to], "subject": c.subject,
        # the server's arrival time when the Date header is missing or unreadable
        "date": m.parsed.date or m.internaldate or m.created_at, "seen": m.seen,
        "has_attachments": m.has_attachments, "snippet": m.snippet, "flags": list(m.flags),
    }


def _full(m: StoredMessage, *, with_bcc: bool) -> dict[str, Any]:
    c = m.content
    return {
        **_summary(m), "cc": [_address(a) for a in c.cc],
        "bcc": [_address(a) for a in c.bcc] if with_bcc else None,
        "text": c.text, "html": c.html,
        "attachments": [JasniAttachmentOut(filename=a.filename, content_type=a.content_type,
                                           size=a.size) for a in m.attachments],
        "in_reply_to": message_id(c.in_reply_to),
        "references": " ".join(filter(None, map(message_id, c.references))) or None,
    }


def _draft_extra(m: StoredMessage) -> dict[str, Any]:
    c = m.content
    return {"id": m.id, "status": m.status, "context_type": c.context_type,
            "context_id": c.context_id, "planned_send_at": c.planned_send_at}


def render_draft_summary(m: StoredMessage) -> JasniDraftSummary:
    return JasniDraftSummary(**_summary(m), **_draft_extra(m), text=m.content.text,
                             html=m.content.html)


def render_draft(m: StoredMessage) -> JasniDraft:
    return JasniDraft(**_full(m, with_bcc=True), **_draft_extra(m))


def render_email_summary(m: StoredMessage) -> JasniEmailSummary:
    return JasniEmailSummary(**_summary(m))


def render_email(m: StoredMessage, *, with_bcc: bool) -> JasniEmail:
    return JasniEmail(**_full(m, with_bcc=with_bcc))


def _account(principal: Principal, ref: str | None) -> AccountConfig:
    return resolve_account(principal, ref, "account")


# ----------------------------------------------------------------------------- drafts

async def create_draft(request: web.Request) -> web.Response:
    """POST /api/v1/emails/drafts -> 201 {uid, id, account, message} (ETag of the draft).

    With an Idempotency-Key, a retry returns the draft the first call created, again with 201.
    """
    principal = authorize(request, "write")
    body = validate_body(JasniDraftCreate, await read_json_object(request))
    account = _account(principal, body.account)
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
    account = _account(principal, query_text(request, "account"))
    limit = query_limit(request)
    page = await request.app[DRAFTS].list(account, DraftQuery(limit=limit))
    data = JasniDraftList(drafts=[render_draft_summary(m) for m in page.items], total=page.total,
                          account=account.email)
    return ok(data)


async def get_draft(request: web.Request) -> web.Response:
    """GET /api/v1/emails/drafts/{uid}?account= -> {draft} (ETag of the draft)."""
    principal = authorize(request, "read")
    account = _account(principal, query_text(request, "account"))
    ref = parse_ref(request.match_info["uid"], integers=True)
    draft = await request.app[DRAFTS].get(account, ref)
    return with_etag(ok(JasniDraftData(draft=render_draft(draft))), draft)


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
    account = _account(principal, body.account or query_text(request, "account"))
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
    account = _account(principal, query_text(request, "account"))
    ref = _draft_ref(request)
    draft = await request.app[DRAFTS].delete(account, ref, expected=if_match(request))
    return ok(JasniDraftDeleted(uid=draft.uid, account=account.email, message="Draft deleted"))


async def send_draft(request: web.Request) -> web.Response:
    """POST /api/v1/emails/drafts/{uid}/send {account} -> {uid (in Sent), messageId, account,
    message}. Sends exactly once: a retry, or a send of a draft already sent, returns the same
    result and delivers nothing. If-Match and Idempotency-Key honoured; 409 while another send
    of the draft is in flight; 422 for a draft without valid recipients; 502 when the SMTP
    server refused it (the draft is kept, status failed); 503 when it could not be reached
    (the draft is kept unchanged)."""
    principal = authorize(request, "send")
    data = await read_json_object(request) if request.can_read_body else {}
    body = validate_body(JasniSendRequest, data)
    account = _account(principal, body.account or query_text(request, "account"))
    ref = parse_ref(request.match_info["uid"], integers=True)
    sent = await request.app[SENDING].send(account, ref, expected=if_match(request),
                                          idempotency_key=idempotency_key(request, principal))
    return ok(_sent_answer(account, sent))


async def send_email(request: web.Request) -> web.Response:
    """POST /api/v1/emails/send {from, to, subject, text, html, cc, bcc, replyTo, ...} -> what a
    draft's send answers. A draft made and sent in one call, with a draft's guarantees: once
    per Idempotency-Key, a copy in Sent; a failed send leaves it in Drafts (status failed)."""
    principal = authorize(request, "send")
    key = idempotency_key(request, principal)
    body = validate_body(JasniSendEmail, await read_json_object(request))
    account = _account(principal, body.from_)
    extra: list[tuple[str, str]] = []
    if body.reply_to is not None:
        addresses = parse_address_list(body.reply_to, "replyTo")
        if len(addresses) != 1:
            raise InvalidInput("replyTo must be one email address", field="replyTo")
        extra.append(("Reply-To", format_address(addresses[0])))
    content = draft_content(draft_input(body), limits_of(request))
    del body
    sent = await request.app[SENDING].send_new(account, content, extra_headers=extra,
                                              idempotency_key=key)
    return ok(_sent_answer(account, sent))


def _sent_fields(account: AccountConfig, sent: StoredMessage,
                 message: str = "Email sent") -> dict[str, Any]:
    """What every send answers (a draft's, a new message's, a reply, a forward)."""
    c = sent.content
    return {"uid": sent.uid or None, "message_id": message_id(sent.parsed.message_id) or "",
            "account": account.email, "message": message, "from_": account.email,
            "to": [a.email for a in c.to], "cc": [a.email for a in c.cc], "subject": c.subject,
            "saved_to_sent": sent.uid != 0}


def _sent_answer(account: AccountConfig, sent: StoredMessage) -> JasniSent:
    return JasniSent(**_sent_fields(account, sent))


# ----------------------------------------------------------------------------- any folder

async def _folder(request: web.Request, account: AccountConfig) -> str:
    """The ``folder`` parameter as a mailbox name (``Drafts``... mean the account's folder of
    that role: :meth:`~mailbridge.messages.MessageService.folder_named`)."""
    return await request.app[MESSAGES].folder_named(account, query_folder(request))


async def list_emails(request: web.Request) -> web.Response:
    """GET /api/v1/emails?account=&folder=INBOX&limit=50 -> {emails, folder, total, account}."""
    principal = authorize(request, "read")
    account = _account(principal, query_text(request, "account"))
    folder = await _folder(request, account)
    limit = query_limit(request)
    page = await request.app[MESSAGES].list_folder(account, folder, limit)
    data = JasniEmailList(emails=[render_email_summary(m) for m in page.items], folder=folder,
                          total=page.total, account=account.email)
    return ok(data)


THREAD_LIMIT = 100
"""How many of a folder's newest messages GET /emails/threads groups when ``limit`` is not given
(the Jasni SDK's default)."""


async def list_threads(request: web.Request) -> web.Response:
    """GET /api/v1/emails/threads?account=&folder=INBOX&limit=100 -> {threads, folder,
    totalThreads, totalEmails}."""
    principal = authorize(request, "read")
    account = _account(principal, query_text(request, "account"))
    folder = await _folder(request, account)
    limit = query_limit(request, default=THREAD_LIMIT, maximum=WINDOW)
    threads, count = await request.app[MESSAGES].threads(account, folder, limit)
    previews = [JasniThreadPreview(
        thread_id=t.id, subject=t.messages[0].content.subject,
        message_count=len(t.messages), unread_count=sum(not m.seen for m in t.messages),
        last_message_date=_summary(t.messages[-1])["date"], participants=_participants(t),
        snippet=t.messages[-1].snippet or None, email_uids=[m.uid for m in t.messages])
        for t in threads]
    return ok(JasniThreadList(threads=previews, folder=folder, total_threads=len(previews),
                              total_emails=count))


async def get_thread(request: web.Request) -> web.Response:
    """GET /api/v1/emails/threads/{threadId}?account=&folder=INBOX -> the thread's messages."""
    principal = authorize(request, "read")
    account = _account(principal, query_text(request, "account"))
    folder = await _folder(request, account)
    thread = await request.app[MESSAGES].thread(account, folder, request.match_info["thread_id"])
    with_bcc = await _holds_own_mail(request, account, folder)
    return ok(JasniThread(
        thread_id=thread.id, subject=thread.messages[0].content.subject,
        participants=_participants(thread), message_count=len(thread.messages),
        unread_count=sum(not m.seen for m in thread.messages),
        emails=[render_email(m, with_bcc=with_bcc) for m in thread.messages]))


def _participants(thread: Thread) -> list[JasniAddress]:
    seen: dict[str, JasniAddress] = {}
    for m in thread.messages:
        for a in (m.parsed.sender, *m.content.to, *m.content.cc):
            if a is not None and a.email.lower() not in seen:
                seen[a.email.lower()] = _address(a)
    return list(seen.values())


async def get_email(request: web.Request) -> web.Response:
    """GET /api/v1/emails/{uid}?account=&folder=INBOX -> {email}; bcc only in Drafts and Sent."""
    principal = authorize(request, "read")
    account = _account(principal, query_text(request, "account"))
    folder = await _folder(request, account)
    uid = parse_uid(request.match_info["uid"])
    message = await request.app[MESSAGES].get(account, folder, uid)
    with_bcc = await _holds_own_mail(request, account, folder)
    return ok(JasniEmailData(email=render_email(message, with_bcc=with_bcc)))


async def change_email(request: web.Request) -> web.Response:
    """PATCH /api/v1/emails/{uid}?account=&folder=INBOX {action: read|unread} -> {uid, account,
    folder, seen, message}: marks the message read (\\Seen) or unread."""
    principal = authorize(request, "write")
    body = validate_body(JasniEmailAction, await read_json_object(request))
    account = _account(principal, query_text(request, "account"))
    folder = await _folder(request, account)
    uid = parse_uid(request.match_info["uid"])
    message = await request.app[MESSAGES].set_seen(account, folder, uid, body.action == "read")
    return ok(JasniEmailChanged(uid=uid, account=account.email, folder=folder, seen=message.seen,
                                message=f"Email marked as {body.action}"))


async def delete_email(request: web.Request) -> web.Response:
    """DELETE /api/v1/emails/{uid}?account=&folder=INBOX -> {uid, account, folder, movedTo,
    message}: into Trash, or for good when there is no Trash or the message is in it."""
    principal = authorize(request, "write")
    account = _account(principal, query_text(request, "account"))
    folder = await _folder(request, account)
    uid = parse_uid(request.match_info["uid"])
    removal = await request.app[MESSAGES].delete(account, folder, uid)
    trash = (await request.app[ACCOUNTS].pool(account).folders()).trash if removal == "trash" \
        else None
    return ok(JasniEmailDeleted(uid=uid, account=account.email, folder=folder, moved_to=trash,
                                message="Email moved to Trash" if trash else "Email deleted"))


async def get_raw(request: web.Request) -> web.Response:
    """GET /api/v1/emails/{uid}/raw?account=&folder=INBOX -> {raw, uid, account}."""
    principal = authorize(request, "read")
    account = _account(principal, query_text(request, "account"))
    folder = await _folder(request, account)
    uid = parse_uid(request.match_info["uid"])
    message = await request.app[MESSAGES].get(account, folder, uid)
    return ok(JasniRaw(raw=(message.raw or b"").decode("utf-8", "replace"), uid=uid,
                       account=account.email))


async def list_attachments(request: web.Request) -> web.Response:
    """GET /api/v1/emails/{uid}/attachments?account=&folder=INBOX -> {attachments: [{filename,
    contentType, size, content (base64)}], uid, account}."""
    principal = authorize(request, "read")
    account = _account(principal, query_text(request, "account"))
    folder = await _folder(request, account)
    uid = parse_uid(request.match_info["uid"])
    parts = await request.app[MESSAGES].attachments(account, folder, uid)
    data = [await _attachment_data(request, account, folder, p) for p in parts]
    return ok(JasniAttachmentList(attachments=data, uid=uid, account=account.email))


async def get_attachment(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/emails/{uid}/attachments/{attachment}?account=&folder=INBOX: one attachment,
    by file name or 0-based index. As JSON ({attachment: {..., content (base64)}, uid,
    account}) unless the Accept header leaves JSON out (``application/octet-stream``, the
    attachment's own type): then its bytes, streamed as they are read from the server."""
    principal = authorize(request, "read")
    account = _account(principal, query_text(request, "account"))
    folder = await _folder(request, account)
    uid = parse_uid(request.match_info["uid"])
    messages = request.app[MESSAGES]
    part = find(await messages.attachments(account, folder, uid), request.match_info["attachment"])
    if accepts_json(request.headers.get("Accept")):
        data = await _attachment_data(request, account, folder, part)
        return ok(JasniAttachmentOne(attachment=data, uid=uid, account=account.email))
    chunks = messages.attachment_bytes(account, folder, part)
    first = await anext(aiter(chunks), b"")  # a message gone by now is still a clean 404/502
    response = web.StreamResponse(headers=_download_headers(part))
    await response.prepare(request)
    try:
        await response.write(first)
        async for chunk in chunks:
            await response.write(chunk)
    except MailbridgeError as exc:  # too late for an error answer: cut the body short
        log.warning("%s: attachment %d of message %d cut short: %s", request.path, part.index,
                    uid, exc.message)
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response


def accepts_json(accept: str | None) -> bool:
    """Whether an Accept header (RFC 9110 section 12.5.1) allows ``application/json``: absent,
    or naming it, ``application/*`` or ``*/*`` with a quality above 0."""
    if accept is None or not accept.strip():
        return True
    for item in accept.split(","):
        kind, *params = (p.strip() for p in item.split(";"))
        zero = any(p.replace(" ", "").lower() in ("q=0", "q=0.0", "q=0.00", "q=0.000")
                   for p in params)
        if kind.lower() in ("application/json", "application/*", "*/*") and not zero:
            return True
    return False


_TOKEN = re.compile(r"[A-Za-z0-9!#$&^_.+-]{1,64}")  # RFC 6838 section 4.2 names


def _download_headers(part: AttachmentPart) -> dict[str, str]:
    # the type as the message declares it, if it is a well-formed one
    maintype, subtype, charset = part.part.maintype, part.part.subtype, part.part.charset
    content_type = f"{maintype}/{subtype}" if _TOKEN.fullmatch(maintype) \
        and _TOKEN.fullmatch(subtype) else "application/octet-stream"
    if charset and _TOKEN.fullmatch(charset):
        content_type += f"; charset={charset}"
    ascii_name = part.filename.encode("ascii", "replace").decode().replace('"', "'")
    ascii_name = "".join(c if " " <= c < "\x7f" and c != "\\" else "_" for c in ascii_name)
    return {
        "Content-Type": content_type,
        "Content-Disposition": f'attachment; filename="{ascii_name}"; '
                               f"filename*={email.utils.encode_rfc2231(part.filename, 'utf-8')}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
    }


async def _attachment_data(request: web.Request, account: AccountConfig, folder: str,
                           part: AttachmentPart) -> JasniAttachmentData:
    chunks = [c async for c in request.app[MESSAGES].attachment_bytes(account, folder, part)]
    data = b"".join(chunks)
    return JasniAttachmentData(filename=part.filename, content_type=part.content_type,
                               size=len(data), content=base64.b64encode(data).decode("ascii"))


@dataclass(frozen=True)
class _Answer:
    """A reply or forward request to dialect 1, read: the account, the original's folder and
    UID, the Idempotency-Key, and how to build the answer from the original."""

    account: AccountConfig
    folder: str
    uid: int
    key: str | None
    make: Callable[[StoredMessage], DraftContent]


async def _answer(request: web.Request, scope: Scope, *, forward: bool) -> _Answer:
    principal = authorize(request, scope)
    key = idempotency_key(request, principal)
    data = await read_json_object(request)
    body: JasniReplyRequest | JasniForwardRequest = (
        validate_body(JasniForwardRequest, data) if forward
        else validate_body(JasniReplyRequest, data))
    account = _account(principal, query_text(request, "account"))
    folder = await _folder(request, account)
    given = draft_changes(draft_input(body), limits_of(request))  # addresses checked, limits
    reply_all = isinstance(body, JasniReplyRequest) and body.reply_all
    return _Answer(account, folder, parse_uid(request.match_info["uid"]), key,
                   lambda original: answer_content(original, account, given, forward=forward,
                                                   reply_all=reply_all,
                                                   include_original=body.include_original))


async def reply_email(request: web.Request) -> web.Response:
    """POST /api/v1/emails/{uid}/reply?account=&folder=INBOX {text, html, replyAll,
    includeOriginal} -> what was sent and how it threads. Sent as emails.send sends (once per
    Idempotency-Key, a copy in Sent); the original (in INBOX) gets \\Answered."""
    a = await _answer(request, "send", forward=False)
    original = await request.app[MESSAGES].get(a.account, a.folder, a.uid)
    sent = await request.app[SENDING].send_new(a.account, a.make(original), idempotency_key=a.key)
    c = sent.content
    return ok(JasniReplied(
        **_sent_fields(a.account, sent, "Reply sent"), in_reply_to=message_id(c.in_reply_to) or "",
        references=" ".join(filter(None, map(message_id, c.references)))))


async def forward_email(request: web.Request) -> web.Response:
    """POST /api/v1/emails/{uid}/forward?account=&folder=INBOX {to, cc, bcc, text, html,
    includeOriginal} -> what was sent, and what it forwards. Sent as emails.send sends; the
    original gets $Forwarded."""
    a = await _answer(request, "send", forward=True)
    original = await request.app[MESSAGES].get(a.account, a.folder, a.uid)
    sent = await request.app[SENDING].send_new(a.account, a.make(original), idempotency_key=a.key,
                                               extra_headers=forwarding_headers(original))
    await request.app[MESSAGES].add_flag(a.account, a.folder, a.uid, "$Forwarded")
    summary = _summary(original)  # its sender and date as a list shows them
    forwarded_from = JasniForwardedFrom(**{"uid": a.uid, "from_": summary["from_"],
                                           "subject": summary["subject"],
                                           "date": summary["date"]})
    return ok(JasniForwarded(**_sent_fields(a.account, sent, "Email forwarded"),
                             forwarded_from=forwarded_from))


async def reply_draft(request: web.Request) -> web.Response:
    """POST /api/v1/emails/{uid}/reply/draft?account=&folder=INBOX {text, html, replyAll,
    includeOriginal} -> 201 {uid, id, account, message}: the reply as a draft, to review, edit
    and send like any other (ETag; Idempotency-Key as a create)."""
    return await _answer_draft(request, forward=False)


async def forward_draft(request: web.Request) -> web.Response:
    """POST /api/v1/emails/{uid}/forward/draft?account=&folder=INBOX {to, cc, bcc, text, html,
    includeOriginal} -> 201 {uid, id, account, message}: the forward as a draft."""
    return await _answer_draft(request, forward=True)


async def _answer_draft(request: web.Request, *, forward: bool) -> web.Response:
    a = await _answer(request, "write", forward=forward)
    draft, _created = await request.app[MESSAGES].answer_draft(
        a.account, a.folder, a.uid, a.make, forward=forward, idempotency_key=a.key)
    saved = JasniDraftSaved(uid=draft.uid, id=draft.id, account=a.account.email,
                            message=f"{'Forward' if forward else 'Reply'} draft saved")
    return with_etag(ok(saved, status=201), draft)


async def _holds_own_mail(request: web.Request, account: AccountConfig, folder: str) -> bool:
    """True for the account's Drafts and Sent folders, where Bcc is the sender's own data."""
    pool = request.app[ACCOUNTS].pool(account)
    for role in ("drafts", "sent"):
        try:
            if await pool.folder(role) == folder:
                return True
        except ImapNotFound:
            continue
    return False


# ----------------------------------------------------------------------------- labels

def _label_out(label: Label, count: int | None = None) -> JasniLabel:
    return JasniLabel(id=label.id, name=label.name, color=label.color,
                      description=label.description, created_at=label.created_at,
                      email_count=count)


def _registry_accounts(request: web.Request, principal: Principal) -> list[AccountConfig]:
    """The accounts a registry call acts on: ``account`` when given, else every one the token
    may use (the Jasni SDK's label calls name none)."""
    ref = query_text(request, "account")
    return [_account(principal, ref)] if ref is not None else list(principal.accounts)


async def list_labels(request: web.Request) -> web.Response:
    """GET /api/v1/labels?include_count=&account= -> {labels, total}: every account's labels,
    one entry per id (counts summed)."""
    principal = authorize(request, "read")
    with_count = query_bool(request, "include_count")
    service = request.app[LABELS]
    labels: dict[str, Label] = {}
    counts: dict[str, int] = {}
    for account in _registry_accounts(request, principal):
        registry = await service.registry(account)
        for label in registry:
            labels.setdefault(label.id, label)
        if with_count:
            for key, n in (await service.count(account, registry)).items():
                counts[key] = counts.get(key, 0) + n
    out = [_label_out(lb, counts.get(lb.id, 0) if with_count else None) for lb in labels.values()]
    return ok(JasniLabelList(labels=out, total=len(out)))


async def create_label(request: web.Request) -> web.Response:
    """POST /api/v1/labels?account= {name, color, description} -> 201 {label, message}: in
    every account the token may use (or ``account``), under the same id."""
    principal = authorize(request, "write")
    body = validate_body(JasniLabelCreate, await read_json_object(request))
    accounts = _registry_accounts(request, principal)
    service = request.app[LABELS]
    label: Label | None = None
    for account in accounts:  # 409 before anything is written when any account has it
        if any(lb.name.casefold() == body.name.strip().casefold()
               for lb in await service.registry(account)):
            raise Conflict(f"{account.email} has a label {body.name.strip()!r} already",
                           field="name")
    for account in accounts:
        made = await service.create(account, body.name, body.color, body.description)
        label = label or made
    assert label is not None
    return ok(JasniLabelCreated(label=_label_out(label), message="Label created"), status=201)


async def delete_label(request: web.Request) -> web.Response:
    """DELETE /api/v1/labels?id=&account= -> {deleted_id, deleted_name, message}: from the
    registry and from every message, in every account that has it."""
    principal = authorize(request, "write")
    label_id = query_text(request, "id")
    if not label_id:
        raise InvalidInput("id is required: the label's id", field="id")
    service = request.app[LABELS]
    deleted: Label | None = None
    for account in _registry_accounts(request, principal):
        with contextlib.suppress(NotFound):
            deleted = await service.delete(account, label_id)
    if deleted is None:
        raise NotFound(f"no label {label_id!r}", field="id")
    return ok(JasniLabelDeleted(deleted_id=deleted.id, deleted_name=deleted.name,
                                message="Label deleted successfully"))


def _email_label(label: Label, by: str = "", at: str = "",
                 metadata: dict[str, Any] | None = None) -> JasniEmailLabel:
    return JasniEmailLabel(**_label_out(label).model_dump(), applied_by=by, applied_at=at,
                           metadata=metadata)


async def list_email_labels(request: web.Request) -> web.Response:
    """GET /api/v1/emails/{uid}/labels?account=&folder=INBOX -> {labels, message_id, account}."""
    principal = authorize(request, "read")
    account = _account(principal, query_text(request, "account"))
    folder = await _folder(request, account)
    uid = parse_uid(request.match_info["uid"])
    labels, mid = await request.app[LABELS].on_message(account, folder, uid)
    return ok(JasniEmailLabels(labels=[_email_label(lb) for lb in labels], message_id=mid,
                               account=account.email))


async def assign_email_labels(request: web.Request) -> web.Response:
    """POST /api/v1/emails/{uid}/labels?account=&folder=INBOX {label_ids, labels, agent_name,
    metadata} -> the labels the message carries now, and those created."""
    principal = authorize(request, "write")
    body = validate_body(JasniLabelAssign, await read_json_object(request))
    if not body.label_ids and not body.labels:
        raise InvalidInput("give label_ids or labels (names)", field="labels")
    account = _account(principal, query_text(request, "account"))
    folder = await _folder(request, account)
    uid = parse_uid(request.match_info["uid"])
    on, created, mid = await request.app[LABELS].assign(account, folder, uid,
                                                         body.label_ids or [], body.labels or [])
    given = {lb.id for lb in on} & {*(body.label_ids or []),
                                    *(keyword_of(n.strip()) for n in body.labels or [])}
    at = rfc3339(utcnow())
    out = [_email_label(lb, body.agent_name or "", at, body.metadata) if lb.id in given
           else _email_label(lb) for lb in on]
    return ok(JasniLabelsAssigned(
        labels=out, created_labels=[JasniCreatedLabel(id=lb.id, name=lb.name, color=lb.color)
                                    for lb in created],
        message_id=mid, account=account.email, message=f"{len(given)} label(s) assigned"))


async def remove_email_labels(request: web.Request) -> web.Response:
    """DELETE /api/v1/emails/{uid}/labels?account=&folder=INBOX&label_ids=a,b ->
    {removed_count, message_id, message}."""
    principal = authorize(request, "write")
    ids = [i.strip() for i in (query_text(request, "label_ids") or "").split(",") if i.strip()]
    if not ids:
        raise InvalidInput("label_ids is required: comma-separated label ids", field="label_ids")
    account = _account(principal, query_text(request, "account"))
    folder = await _folder(request, account)
    uid = parse_uid(request.match_info["uid"])
    removed, mid = await request.app[LABELS].remove(account, folder, uid, ids)
    return ok(JasniLabelsRemoved(removed_count=removed, message_id=mid,
                                 message=f"{removed} label(s) removed"))


# ----------------------------------------------------------------------------- webhooks

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


# ----------------------------------------------------------------------------- accounts

async def list_accounts(request: web.Request) -> web.Response:
    """GET /api/v1/accounts -> {accounts: [{id, email, name}], total}: those the token may use."""
    principal = authorize(request, "read")
    accounts = [JasniAccount(id=a.id, email=a.email, name=a.display_name,
                             created_at=a.created_at) for a in principal.accounts]
    return ok(JasniAccountList(accounts=accounts, total=len(accounts)))


async def change_accounts(request: web.Request) -> web.Response:
    """POST, PATCH and DELETE /api/v1/accounts (the Jasni SDK's accounts.create, update, delete):
    always 403 ``accounts_from_configuration``. A hosted service provisions mailboxes there;
    mailbridge serves the mailboxes its operator configured, so no token can add, change or
    remove one."""
    authorize(request, "read")
    raise AccountsFromConfiguration(
        "accounts come from the operator's configuration ([[accounts]] in mailbridge's config "
        "file): this service cannot create, change or delete mailboxes; ask its operator")


__all__ = ["PREFIX", "ok"]
