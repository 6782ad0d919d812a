"""Dialect 1 reading and acting on any message of any folder: list, get, read/unread, delete,
raw source, attachments, threads."""

from __future__ import annotations

import base64
import email.utils
import re

from aiohttp import web

from mailbridge.api.bodies import read_json_object, validate_body
from mailbridge.api.jasni.common import (
    address,
    folder_in,
    log,
    ok,
    render_email,
    render_email_summary,
    summary,
)
from mailbridge.api.keys import ACCOUNTS, MESSAGES
from mailbridge.api.params import (
    accepts_json,
    parse_uid,
    query_limit,
)
from mailbridge.api.schemas import (
    JasniAddress,
    JasniAttachmentData,
    JasniAttachmentList,
    JasniAttachmentOne,
    JasniEmailAction,
    JasniEmailChanged,
    JasniEmailData,
    JasniEmailDeleted,
    JasniEmailList,
    JasniRaw,
    JasniThread,
    JasniThreadList,
    JasniThreadPreview,
)
from mailbridge.attachments import AttachmentPart, find
from mailbridge.config import AccountConfig
from mailbridge.errors import (
    MailbridgeError,
)
from mailbridge.threads import WINDOW, Thread


async def list_emails(request: web.Request) -> web.Response:
    """GET /api/v1/emails?account=&folder=INBOX&limit=50 -> {emails, folder, total, account}."""
    account, folder = await folder_in(request, "read")
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
    account, folder = await folder_in(request, "read")
    limit = query_limit(request, default=THREAD_LIMIT, maximum=WINDOW)
    threads, count = await request.app[MESSAGES].threads(account, folder, limit)
    previews = [JasniThreadPreview(
        thread_id=t.id, subject=t.messages[0].content.subject,
        message_count=len(t.messages), unread_count=sum(not m.seen for m in t.messages),
        last_message_date=summary(t.messages[-1])["date"], participants=_participants(t),
        snippet=t.messages[-1].snippet or None, email_uids=[m.uid for m in t.messages])
        for t in threads]
    return ok(JasniThreadList(threads=previews, folder=folder, total_threads=len(previews),
                              total_emails=count))


async def get_thread(request: web.Request) -> web.Response:
    """GET /api/v1/emails/threads/{threadId}?account=&folder=INBOX -> the thread's messages."""
    account, folder = await folder_in(request, "read")
    thread = await request.app[MESSAGES].thread(account, folder, request.match_info["thread_id"])
    with_bcc = await request.app[MESSAGES].holds_own_mail(account, folder)
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
                seen[a.email.lower()] = address(a)
    return list(seen.values())


async def get_email(request: web.Request) -> web.Response:
    """GET /api/v1/emails/{uid}?account=&folder=INBOX -> {email}; bcc only in Drafts and Sent."""
    account, folder = await folder_in(request, "read")
    uid = parse_uid(request.match_info["uid"])
    message = await request.app[MESSAGES].get(account, folder, uid)
    with_bcc = await request.app[MESSAGES].holds_own_mail(account, folder)
    return ok(JasniEmailData(email=render_email(message, with_bcc=with_bcc)))


async def change_email(request: web.Request) -> web.Response:
    """PATCH /api/v1/emails/{uid}?account=&folder=INBOX {action: read|unread} -> {uid, account,
    folder, seen, message}: marks the message read (\\Seen) or unread."""
    account, folder = await folder_in(request, "write")
    body = validate_body(JasniEmailAction, await read_json_object(request))
    uid = parse_uid(request.match_info["uid"])
    message = await request.app[MESSAGES].set_seen(account, folder, uid, body.action == "read")
    return ok(JasniEmailChanged(uid=uid, account=account.email, folder=folder, seen=message.seen,
                                message=f"Email marked as {body.action}"))


async def delete_email(request: web.Request) -> web.Response:
    """DELETE /api/v1/emails/{uid}?account=&folder=INBOX -> {uid, account, folder, movedTo,
    message}: into Trash, or for good when there is no Trash or the message is in it."""
    account, folder = await folder_in(request, "write")
    uid = parse_uid(request.match_info["uid"])
    removal = await request.app[MESSAGES].delete(account, folder, uid)
    trash = (await request.app[ACCOUNTS].pool(account).folders()).trash if removal == "trash" \
        else None
    return ok(JasniEmailDeleted(uid=uid, account=account.email, folder=folder, moved_to=trash,
                                message="Email moved to Trash" if trash else "Email deleted"))


async def get_raw(request: web.Request) -> web.Response:
    """GET /api/v1/emails/{uid}/raw?account=&folder=INBOX -> {raw, uid, account}."""
    account, folder = await folder_in(request, "read")
    uid = parse_uid(request.match_info["uid"])
    message = await request.app[MESSAGES].get(account, folder, uid)
    return ok(JasniRaw(raw=(message.raw or b"").decode("utf-8", "replace"), uid=uid,
                       account=account.email))


async def list_attachments(request: web.Request) -> web.Response:
    """GET /api/v1/emails/{uid}/attachments?account=&folder=INBOX -> {attachments: [{filename,
    contentType, size, content (base64)}], uid, account}."""
    account, folder = await folder_in(request, "read")
    uid = parse_uid(request.match_info["uid"])
    parts = await request.app[MESSAGES].attachments(account, folder, uid)
    data = [await _attachment_data(request, account, folder, p) for p in parts]
    return ok(JasniAttachmentList(attachments=data, uid=uid, account=account.email))


async def get_attachment(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/emails/{uid}/attachments/{attachment}?account=&folder=INBOX: one attachment,
    by file name or 0-based index. As JSON ({attachment: {..., content (base64)}, uid,
    account}) unless the Accept header leaves JSON out (``application/octet-stream``, the
    attachment's own type): then its bytes, streamed as they are read from the server."""
    account, folder = await folder_in(request, "read")
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
