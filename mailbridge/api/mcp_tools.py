"""MCP tools at ``/mcp``: an agent lists, writes and sends drafts, and reads the mail it answers.

The official ``mcp`` SDK serves them (its ``MCPServer``, the tools' schemas made from the
signatures below) on the streamable HTTP transport, stateless and answering JSON: any instance
answers any call, as with the HTTP API. Its ASGI app runs inside the aiohttp app, bridged by
``aiohttp-asgi``, behind the same bearer tokens: the route handler authenticates the request
first (401 without a valid token, 403 without ``read``), and each tool checks its own scope as
the API's call does (``write`` for changes). ``send_draft`` by a token without ``send``, or in
an account that requires approval, puts the draft up for approval (mailbridge.approvals).

Results are structured: a draft is dialect 2's record, a message has the same snake_case
names. A failure is an MCP tool error (``isError``) whose text is the API's message, with
``{"error": {"code", "message", "field"}}`` as its structured content, as dialect 2 answers.
"""

# no `from __future__ import annotations`: the SDK reads the tools' annotations at runtime

import asyncio
import contextlib
import functools
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, ParamSpec
from uuid import UUID

from aiohttp import web
from aiohttp_asgi.resource import ASGIContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from mailbridge import __version__
from mailbridge.api.access import authorize, resolve_account
from mailbridge.api.bodies import validate_body
from mailbridge.api.conversion import (
    draft_changes,
    draft_content,
    draft_input,
    format_address,
    message_id,
)
from mailbridge.api.exante import answer_draft, attachments_out, find_draft, render_draft
from mailbridge.api.keys import APPROVALS, CONFIG, DRAFTS, MESSAGES
from mailbridge.api.params import (
    MAX_LIMIT,
    MAX_UID,
    check_limit,
    decode_cursor,
    encode_cursor,
    parse_draft_id,
    parse_status,
    parse_uid,
    scoped_key,
)
from mailbridge.api.schemas import (
    ExanteDraft,
    ExanteDraftList,
    ExanteDraftUpsert,
    ExanteErrorBody,
    ExanteReplyDraft,
    McpDraftDeleted,
    McpEmail,
    McpEmailList,
    McpEmailSummary,
)
from mailbridge.auth import Principal
from mailbridge.config import AccountConfig, Limits, Scope
from mailbridge.errors import MailbridgeError, RequestError
from mailbridge.model import Status
from mailbridge.views import DraftQuery, StoredMessage

__all__ = ["ENDPOINT", "PATH", "McpEndpoint", "mcp_server", "serve"]

PATH = "/mcp"
_CALL = "mailbridge.call"
"""The ASGI scope key under which the route handler hands the caller (a _Call) to the tools."""

INSTRUCTIONS = """\
mailbridge keeps email drafts in the user's own mailbox (its Drafts folder), where people \
review them in their mail client or on mailbridge's review page. Write a draft with \
create_draft (or reply_draft to answer a message found with list_emails), change it with \
update_draft, and ask for it to be sent with send_draft: unless your token may send without \
approval, that puts the draft up for a person's approval (status awaiting_approval) and \
nothing is delivered until they approve it. A draft is named by its stable id (uid), which \
never changes. Every tool but list_drafts/get_draft/list_emails/get_email changes the mailbox."""

P = ParamSpec("P")

# --- the parameters the tools share

Account = Annotated[str | None, Field(
    description="The account (its email address or id). May be left out when the token may "
                "use exactly one account.")]
# Ids, numbers and states arrive as the schema says but are checked by the API's own parsers,
# so a wrong one gets the API's message, not the SDK's validation report.
DraftId = Annotated[str, Field(json_schema_extra={"format": "uuid"},
                               description="The draft's stable id: `uid` of its record.")]
Folder = Annotated[str, Field(
    min_length=1, max_length=1000,
    description="A mailbox name; `Drafts`, `Sent`, `Trash`, `Junk` and `Archive` (any case) "
                "mean the account's folder of that role.")]
MessageUid = Annotated[int, Field(json_schema_extra={"minimum": 1, "maximum": MAX_UID},
                                  description="The message's IMAP UID in `folder` (`uid` of "
                                              "list_emails' entries).")]
Limit = Annotated[int, Field(json_schema_extra={"minimum": 1, "maximum": MAX_LIMIT},
                             description="How many to return.")]
StatusFilter = Annotated[str | None, Field(
    json_schema_extra={"enum": [*(s.value for s in Status), None]},
    description="Only drafts in this state.")]
Recipients = Annotated[list[str] | None, Field(
    description='Addresses, each "a@example.com" or "Name <a@example.com>".')]
Planned = Annotated[str | None, Field(
    json_schema_extra={"format": "date-time"},
    description="When to send it (RFC 3339 with an offset); it is sent then, once approved "
                "where approval is needed.")]
IdempotencyKey = Annotated[str | None, Field(
    description="A key of your choosing (1-200 printable ASCII characters). A retry of this "
                "call with the same key and arguments returns the draft the first call made "
                "instead of making a second one.")]
Context_ = Annotated[str | None, Field(
    max_length=256, description="Links the draft to an entity of the caller (its kind and "
                                "id, such as `ticket` and `T-1042`); list_drafts filters by it.")]


def _result(model: BaseModel) -> CallToolResult:
    data = model.model_dump(mode="json", by_alias=True)
    return CallToolResult(content=[TextContent(type="text",
                                               text=model.model_dump_json(by_alias=True))],
                          structured_content=data)


def _failure(exc: MailbridgeError) -> CallToolResult:
    """A tool error with the API's message, and dialect 2's error body as structured content."""
    field = exc.field if isinstance(exc, RequestError) else None
    body = ExanteErrorBody(code=exc.code, message=exc.message, field=field)
    return CallToolResult(content=[TextContent(type="text", text=exc.message)],
                          structured_content={"error": body.model_dump(mode="json")},
                          is_error=True)


def _answers_errors(tool: Callable[P, Awaitable[CallToolResult]]
                    ) -> Callable[P, Awaitable[CallToolResult]]:
    """The tool, with mailbridge's errors turned into MCP tool errors (the signature is kept:
    the SDK makes the tool's schema from it)."""
    @functools.wraps(tool)
    async def run(*args: P.args, **kwargs: P.kwargs) -> CallToolResult:
        try:
            return await tool(*args, **kwargs)
        except MailbridgeError as exc:
            return _failure(exc)
    run.__doc__ = " ".join((tool.__doc__ or "").split())  # the description: one paragraph
    return run


@dataclass(frozen=True)
class _Call:
    """Who calls a tool, and the app it calls: put in the request by the route handler."""

    principal: Principal
    app: web.Application

    @property
    def limits(self) -> Limits:
        return self.app[CONFIG].server.limits

    def account(self, ref: str | None) -> AccountConfig:
        """The account ``ref`` (id or email) of the caller's; its only one when left out."""
        return resolve_account(self.principal, ref, "account")

    def holders(self, ref: str | None) -> list[AccountConfig]:
        """Where a draft named by id may be: the account ``ref``, else every one of the
        caller's."""
        return [self.account(ref)] if ref is not None else list(self.principal.accounts)


def _caller(ctx: Context, scope: Scope) -> _Call:
    """This tool call's caller and app, if the caller has ``scope`` (Forbidden otherwise)."""
    request = ctx.request_context.request
    call: _Call = request.scope[_CALL]  # type: ignore[union-attr]
    call.principal.require(scope)
    return call


def _draft(text: str) -> UUID:
    return parse_draft_id(text, "draft_id")


def _uid(value: int, field: str) -> int:
    return parse_uid(str(value), field)


def _key(principal: Principal, key: str | None, arguments: dict[str, Any]) -> str | None:
    """The tool call's idempotency key as the services take it: scoped to the token, with a
    digest of the call's other arguments (a reuse with other arguments is refused)."""
    if key is None:
        return None
    digest = hashlib.sha256(json.dumps(arguments, sort_keys=True, default=str).encode())
    return scoped_key(principal, key, digest.hexdigest()[:16], field="idempotency_key")


def _given(**fields: Any) -> dict[str, Any]:
    """The fields a tool call gave (a parameter left out, or null, changes nothing)."""
    return {k: v for k, v in fields.items() if v is not None}


def _email_summary(m: StoredMessage) -> dict[str, Any]:
    c = m.content
    return {"uid": m.uid, "message_id": message_id(m.parsed.message_id),
            "from": format_address(m.parsed.sender) if m.parsed.sender is not None else "",
            "to": [format_address(a) for a in c.to], "subject": c.subject,
            "date": m.date, "seen": m.seen,
            "has_attachments": m.has_attachments, "snippet": m.snippet}


class McpEndpoint:
    """The MCP endpoint of one app: a session manager of the SDK's, serving the process's
    MCP server (mcp_server) from startup to shutdown."""

    def __init__(self, app: web.Application) -> None:
        limits = app[CONFIG].server.limits
        server = mcp_server()
        # The SDK's own app is not mounted (our route handler is); making it gives a session
        # manager of this app's own, which serves the transport. Bearer tokens guard every
        # call, so a page of another origin cannot use the endpoint (DNS rebinding protection
        # would only refuse the Host names a proxy puts in front).
        server.streamable_http_app(
            json_response=True, stateless_http=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            max_request_body_size=limits.max_request_bytes)
        self.manager: StreamableHTTPSessionManager = server.session_manager

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """One HTTP request of the transport, from a caller with a valid token and ``read``."""
        call = _Call(authorize(request, "read"), request.app)

        async def app(scope: Any, receive: Any, send: Any) -> None:
            scope[_CALL] = call
            await self.manager.handle_request(scope, receive, send)

        return await ASGIContext(app, request, "").get_response()

    async def run(self, app: web.Application) -> AsyncIterator[None]:
        """aiohttp cleanup_ctx: the session manager's task group, from startup to shutdown (in
        a task of its own, which enters and leaves it)."""
        started, stop = asyncio.Event(), asyncio.Event()

        async def serve() -> None:
            async with self.manager.run():
                started.set()
                await stop.wait()

        task = asyncio.create_task(serve())
        waiting = asyncio.create_task(started.wait())
        await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            waiting.cancel()
            task.result()  # its failure, raised at startup
        yield
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    # ------------------------------------------------------------------------------ tools

def _add_tools(server: MCPServer) -> None:
    """Registers the tools on ``server``: any app's, since each call finds its app (and its
    caller) in the request (see _caller)."""
    reading = ToolAnnotations(read_only_hint=True, open_world_hint=False)
    writing = ToolAnnotations(read_only_hint=False, destructive_hint=False,
                              idempotent_hint=False, open_world_hint=False)

    @server.tool(annotations=reading)
    @_answers_errors
    async def list_drafts(ctx: Context, account: Account = None,
                          status: StatusFilter = None,
                          context_type: Context_ = None, context_id: Context_ = None,
                          limit: Limit = 20,
                          cursor: Annotated[str | None, Field(
                              description="`next_cursor` of the previous page.")] = None,
                          ) -> Annotated[CallToolResult, ExanteDraftList]:
        """The account's drafts, newest first, a page at a time (`next_cursor` is null on
        the last page). Each record has the draft's `uid`, recipients, subject, text,
        `status` (draft, scheduled, awaiting_approval, rejected, sent...) and `approval`."""
        call = _caller(ctx, "read")
        query = DraftQuery(limit=check_limit(limit), after=decode_cursor(cursor),
                           context_type=context_type, context_id=context_id,
                           status=parse_status(status))
        page = await call.app[DRAFTS].list(call.account(account), query)
        return _result(ExanteDraftList(items=[render_draft(m) for m in page.items],
                                       next_cursor=encode_cursor(page.next)))

    @server.tool(annotations=reading)
    @_answers_errors
    async def get_draft(ctx: Context, draft_id: DraftId, account: Account = None
                        ) -> Annotated[CallToolResult, ExanteDraft]:
        """One draft's record, as it is now (also after a person edited it in a mail
        client)."""
        call = _caller(ctx, "read")
        principal = call.principal
        return _result(render_draft(await find_draft(call.app[DRAFTS], principal, _draft(draft_id), account)))

    @server.tool(annotations=writing)
    @_answers_errors
    async def create_draft(ctx: Context, to: Recipients = None, cc: Recipients = None,
                           bcc: Recipients = None, subject: str | None = None,
                           body_text: str | None = None, body_html: str | None = None,
                           context_type: Context_ = None, context_id: Context_ = None,
                           planned_send_at: Planned = None, account: Account = None,
                           idempotency_key: IdempotencyKey = None,
                           ) -> Annotated[CallToolResult, ExanteDraft]:
        """Writes a new draft into the account's Drafts folder (nothing is sent): its
        record, with the `uid` that names it from now on."""
        call = _caller(ctx, "write")
        principal = call.principal
        given = _given(to=to, cc=cc, bcc=bcc, subject=subject, body_text=body_text,
                       body_html=body_html, context_type=context_type,
                       context_id=context_id, planned_send_at=planned_send_at)
        body = validate_body(ExanteDraftUpsert, given)
        content = draft_content(draft_input(body), call.limits)
        held = call.account(account)
        key = _key(principal, idempotency_key, {**given, "account": str(held.id)})
        draft, _created = await call.app[DRAFTS].create(held, content, idempotency_key=key)
        return _result(render_draft(draft))

    @server.tool(annotations=writing)
    @_answers_errors
    async def update_draft(ctx: Context, draft_id: DraftId, to: Recipients = None,
                           cc: Recipients = None, bcc: Recipients = None,
                           subject: str | None = None, body_text: str | None = None,
                           body_html: str | None = None, context_type: Context_ = None,
                           context_id: Context_ = None, planned_send_at: Planned = None,
                           account: Account = None,
                           ) -> Annotated[CallToolResult, ExanteDraft]:
        """Changes the fields given; the others are kept (an empty list empties a
        recipient field, an empty string a text field; planned_send_at "" unschedules
        it). A draft awaiting approval, or approved, goes back to review: a person
        approves what is sent."""
        call = _caller(ctx, "write")
        given = _given(to=to, cc=cc, bcc=bcc, subject=subject, body_text=body_text,
                       body_html=body_html, context_type=context_type,
                       context_id=context_id, planned_send_at=planned_send_at)
        if planned_send_at == "":
            given["planned_send_at"] = None  # a null clears it (no more planned time)
        body = validate_body(ExanteDraftUpsert, given)
        changes = draft_changes(draft_input(body), call.limits)

        ref = _draft(draft_id)

        async def update(held: AccountConfig) -> StoredMessage:
            return await call.app[DRAFTS].replace(held, ref, changes)

        return _result(render_draft(await call.app[DRAFTS].in_holder(
            call.holders(account), ref, update)))

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True,
                                             idempotent_hint=False, open_world_hint=False))
    @_answers_errors
    async def delete_draft(ctx: Context, draft_id: DraftId, account: Account = None
                           ) -> Annotated[CallToolResult, McpDraftDeleted]:
        """Removes the draft from the Drafts folder. A draft being sent cannot be deleted."""
        call = _caller(ctx, "write")

        ref = _draft(draft_id)

        async def delete(held: AccountConfig) -> StoredMessage:
            return await call.app[DRAFTS].delete(held, ref)

        await call.app[DRAFTS].in_holder(call.holders(account), ref, delete)
        return _result(McpDraftDeleted(uid=ref, deleted=True))

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False,
                                             idempotent_hint=True, open_world_hint=True))
    @_answers_errors
    async def send_draft(ctx: Context, draft_id: DraftId, account: Account = None
                         ) -> Annotated[CallToolResult, ExanteDraft]:
        """Asks for the draft to be sent. With a token that may not send, or in an account
        that requires approval, this puts it up for a person's approval: the record comes
        back with status `awaiting_approval` and nothing is delivered until they approve
        it (then `sent`, or `scheduled` with a planned time). Otherwise it is sent now,
        exactly once (status `sent`). A later update sends it back to review."""
        call = _caller(ctx, "write")
        principal = call.principal

        ref = _draft(draft_id)

        async def send(held: AccountConfig) -> tuple[StoredMessage, bool]:
            return await call.app[APPROVALS].send_or_request(
                held, ref, by=principal.name, may_send=principal.may("send"))

        draft, _sent = await call.app[DRAFTS].in_holder(call.holders(account), ref, send)
        return _result(render_draft(draft))

    @server.tool(annotations=writing)
    @_answers_errors
    async def reply_draft(ctx: Context, message_uid: MessageUid, folder: Folder = "INBOX",
                          body_text: Annotated[str | None, Field(
                              description="Your answer, above the quoted original.")] = None,
                          body_html: str | None = None,
                          reply_all: Annotated[bool, Field(
                              description="Also to everybody the original went to.")] = False,
                          include_original: Annotated[bool, Field(
                              description="Quote the original below.")] = True,
                          context_type: Context_ = None, context_id: Context_ = None,
                          planned_send_at: Planned = None, account: Account = None,
                          idempotency_key: IdempotencyKey = None,
                          ) -> Annotated[CallToolResult, ExanteDraft]:
        """A draft answering a received message (found with list_emails): addressed to its
        sender (and its other recipients with reply_all), `Re:` subject, threaded. It is
        a draft like any other: review, update_draft, send_draft."""
        call = _caller(ctx, "write")
        principal = call.principal
        given = _given(message_uid=_uid(message_uid, "message_uid"), folder=folder,
                       body_text=body_text, body_html=body_html, reply_all=reply_all,
                       include_original=include_original, context_type=context_type,
                       context_id=context_id, planned_send_at=planned_send_at)
        body = validate_body(ExanteReplyDraft, given)
        held = call.account(account)
        draft = await answer_draft(call.app[MESSAGES], held, body, call.limits, _key(
            principal, idempotency_key, {**given, "account": str(held.id)}))
        return _result(render_draft(draft))

    @server.tool(annotations=reading)
    @_answers_errors
    async def list_emails(ctx: Context, folder: Folder = "INBOX", limit: Limit = 20,
                          account: Account = None
                          ) -> Annotated[CallToolResult, McpEmailList]:
        """The newest messages of a folder (INBOX by default), newest first: sender,
        subject, date, whether read, and a snippet. get_email reads one whole."""
        call = _caller(ctx, "read")
        held = call.account(account)
        messages = call.app[MESSAGES]
        name = await messages.folder_named(held, folder)
        page = await messages.list_folder(held, name, check_limit(limit))
        return _result(McpEmailList(
            account=held.email, folder=name, total=page.total,
            emails=[McpEmailSummary.model_validate(_email_summary(m)) for m in page.items]))

    @server.tool(annotations=reading)
    @_answers_errors
    async def get_email(ctx: Context, uid: MessageUid, folder: Folder = "INBOX",
                        account: Account = None) -> Annotated[CallToolResult, McpEmail]:
        """One message, whole: its text and html, recipients (Bcc only in Drafts and
        Sent) and attachments (names, types, sizes)."""
        call = _caller(ctx, "read")
        held = call.account(account)
        messages = call.app[MESSAGES]
        name = await messages.folder_named(held, folder)
        m = await messages.get(held, name, _uid(uid, "uid"))
        c = m.content
        with_bcc = await messages.holds_own_mail(held, name)
        return _result(McpEmail.model_validate({
            **_email_summary(m), "folder": name, "cc": [format_address(a) for a in c.cc],
            "bcc": [format_address(a) for a in c.bcc] if with_bcc else None,
            "body_text": c.text, "body_html": c.html, "in_reply_to": message_id(c.in_reply_to),
            "attachments": attachments_out(m)}))


@functools.cache
def mcp_server() -> MCPServer:
    """The MCP server and its tools, built once per process (making the tools' schemas takes
    about 20 ms) and shared by every app, each with its own session manager."""
    server: MCPServer = MCPServer("mailbridge", version=__version__, instructions=INSTRUCTIONS)
    _add_tools(server)
    return server


ENDPOINT = web.AppKey("mcp", McpEndpoint)
"""The app's MCP endpoint."""


async def serve(request: web.Request) -> web.StreamResponse:
    """POST /mcp: one message of the MCP streamable HTTP transport (see McpEndpoint)."""
    return await request.app[ENDPOINT].handle(request)
