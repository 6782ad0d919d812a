"""What every dialect-1 handler uses: the envelope, how a message is shown, and the account
and folder a request names."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from mailbridge.api.access import authorize, resolve_account
from mailbridge.api.conversion import (
    message_id,
    render_approval,
)
from mailbridge.api.keys import MESSAGES
from mailbridge.api.params import (
    query_folder,
    query_text,
)
from mailbridge.api.schemas import (
    JasniAddress,
    JasniAttachmentOut,
    JasniDraft,
    JasniDraftSummary,
    JasniEmail,
    JasniEmailSummary,
    JasniSent,
)
from mailbridge.auth import Principal
from mailbridge.config import AccountConfig, Scope
from mailbridge.model import Address
from mailbridge.views import StoredMessage

PREFIX = "/api/v1"
log = logging.getLogger("mailbridge.api")

# ----------------------------------------------------------------------------- rendering

def ok(data: BaseModel, status: int = 200) -> web.Response:
    """The success envelope (:class:`~mailbridge.api.schemas.JasniOk`) around ``data``."""
    body = {"success": True, "data": data.model_dump(mode="json", by_alias=True)}
    return web.json_response(body, status=status)


def address(a: Address) -> JasniAddress:
    return JasniAddress(address=a.email, name=a.name or None)


def summary(m: StoredMessage) -> dict[str, Any]:
    c = m.content
    return {
        "uid": m.uid, "message_id": message_id(m.parsed.message_id) or "",
        "from_": address(m.parsed.sender) if m.parsed.sender is not None else "",
        "to": [address(a) for a in c.to], "subject": c.subject,
        "date": m.date, "seen": m.seen,
        "has_attachments": m.has_attachments, "snippet": m.snippet, "flags": list(m.flags),
    }


def full(m: StoredMessage, *, with_bcc: bool) -> dict[str, Any]:
    c = m.content
    return {
        **summary(m), "cc": [address(a) for a in c.cc],
        "bcc": [address(a) for a in c.bcc] if with_bcc else None,
        "text": c.text, "html": c.html,
        "attachments": [JasniAttachmentOut(filename=a.filename, content_type=a.content_type,
                                           size=a.size) for a in m.attachments],
        "in_reply_to": message_id(c.in_reply_to),
        "references": " ".join(filter(None, map(message_id, c.references))) or None,
    }


def draft_extra(m: StoredMessage) -> dict[str, Any]:
    c = m.content
    return {"id": m.id, "status": m.status, "context_type": c.context_type,
            "context_id": c.context_id, "planned_send_at": c.planned_send_at,
            "approval": render_approval(m)}


def render_draft_summary(m: StoredMessage) -> JasniDraftSummary:
    return JasniDraftSummary(**summary(m), **draft_extra(m), text=m.content.text,
                             html=m.content.html)


def render_draft(m: StoredMessage) -> JasniDraft:
    return JasniDraft(**full(m, with_bcc=True), **draft_extra(m))


def render_email_summary(m: StoredMessage) -> JasniEmailSummary:
    return JasniEmailSummary(**summary(m))


def render_email(m: StoredMessage, *, with_bcc: bool) -> JasniEmail:
    return JasniEmail(**full(m, with_bcc=with_bcc))


def account_of(principal: Principal, ref: str | None) -> AccountConfig:
    return resolve_account(principal, ref, "account")



async def folder_in(request: web.Request, scope: Scope) -> tuple[AccountConfig, str]:
    """The account (``account``) and folder (``folder``) a call on mail names, once the token
    is found to have ``scope`` and that account."""
    principal = authorize(request, scope)
    account = account_of(principal, query_text(request, "account"))
    return account, await folder_of(request, account)


async def folder_of(request: web.Request, account: AccountConfig) -> str:
    """The ``folder`` parameter as a mailbox name (``Drafts``... mean the account's folder of
    that role: :meth:`~mailbridge.messages.MessageService.folder_named`)."""
    return await request.app[MESSAGES].folder_named(account, query_folder(request))



def sent_fields(account: AccountConfig, sent: StoredMessage,
                 message: str = "Email sent") -> dict[str, Any]:
    """What every send answers (a draft's, a new message's, a reply, a forward)."""
    c = sent.content
    return {"uid": sent.uid or None, "message_id": message_id(sent.parsed.message_id) or "",
            "account": account.email, "message": message, "from_": account.email,
            "to": [a.email for a in c.to], "cc": [a.email for a in c.cc], "subject": c.subject,
            "saved_to_sent": sent.uid != 0}


def sent_answer(account: AccountConfig, sent: StoredMessage) -> JasniSent:
    return JasniSent(**sent_fields(account, sent))
