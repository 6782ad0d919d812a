"""Dialect 1 mail that goes out without a draft first (emails.send, reply, forward), and replies
and forwards kept as drafts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from mailbridge.api.access import authorize, limits_of
from mailbridge.api.bodies import read_json_object, validate_body
from mailbridge.api.conversion import (
    draft_changes,
    draft_content,
    draft_input,
    format_address,
    message_id,
)
from mailbridge.api.jasni.common import (
    account_of,
    folder_of,
    ok,
    sent_answer,
    sent_fields,
    summary,
)
from mailbridge.api.keys import MESSAGES, SENDING
from mailbridge.api.params import (
    idempotency_key,
    parse_uid,
    query_text,
    with_etag,
)
from mailbridge.api.schemas import (
    JasniDraftSaved,
    JasniForwarded,
    JasniForwardedFrom,
    JasniForwardRequest,
    JasniReplied,
    JasniReplyRequest,
    JasniSendEmail,
)
from mailbridge.config import AccountConfig, Scope
from mailbridge.errors import (
    InvalidInput,
)
from mailbridge.mime import parse_address_list
from mailbridge.model import DraftContent
from mailbridge.replies import answer_content, forwarding_headers
from mailbridge.views import StoredMessage


async def send_email(request: web.Request) -> web.Response:
    """POST /api/v1/emails/send {from, to, subject, text, html, cc, bcc, replyTo, ...} -> what a
    draft's send answers. A draft made and sent in one call, with a draft's guarantees: once
    per Idempotency-Key, a copy in Sent; a failed send leaves it in Drafts (status failed)."""
    principal = authorize(request, "send")
    key = idempotency_key(request, principal)
    body = validate_body(JasniSendEmail, await read_json_object(request))
    account = account_of(principal, body.from_)
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
    return ok(sent_answer(account, sent))


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
    account = account_of(principal, query_text(request, "account"))
    folder = await folder_of(request, account)
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
        **sent_fields(a.account, sent, "Reply sent"), in_reply_to=message_id(c.in_reply_to) or "",
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
    shown = summary(original)  # its sender and date as a list shows them
    forwarded_from = JasniForwardedFrom(**{"uid": a.uid, "from_": shown["from_"],
                                           "subject": shown["subject"],
                                           "date": shown["date"]})
    return ok(JasniForwarded(**sent_fields(a.account, sent, "Email forwarded"),
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
