"""The review page at ``/review``: people see what agents drafted, edit it, approve or reject it.

Server-rendered HTML (Jinja2 templates with autoescaping, shipped in the package with the
page's script and style sheet; no build step, no CDN). The page itself holds no data: it asks
for a token, keeps it in the browser tab's sessionStorage, and fetches two HTML fragments
with it, rendered here from the same draft records as dialect 2's:

- ``GET /review/drafts``: the drafts of every account of the token, those awaiting approval
  first (oldest request first), then the others (newest first), with subject, recipients,
  account, status, age and context (a link where ``[review] context_links`` has one); an
  account that cannot be read is named with the reason, the others are shown;
- ``GET /review/drafts/{uid}``: one draft with its ETag, its text in a form, its HTML version
  in a sandboxed frame that loads nothing remote, its attachments (each downloaded through
  dialect 1's attachment call, with the token) and the exact envelope recipients (Bcc
  included).

The reviewer's actions go to the API itself (update, approve, reject of dialect 2), each with
the draft's ETag in If-Match: a page that is no longer current (someone else saved the draft,
or a mail client did) gets 412 and says so, and nothing is overwritten.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import jinja2
from aiohttp import web

from mailbridge.api.access import authorize
from mailbridge.api.exante import find_draft, render_draft
from mailbridge.api.keys import CONFIG, DRAFTS, SENDING
from mailbridge.api.params import MAX_LIMIT, parse_draft_id, query_text
from mailbridge.api.schemas import ExanteDraft
from mailbridge.approvals import REVIEWABLE
from mailbridge.config import AccountConfig
from mailbridge.errors import MailbridgeError
from mailbridge.model import Status
from mailbridge.views import DraftQuery, StoredMessage, utcnow

__all__ = ["DRAFT_PATH", "LIST_PATH", "PAGE_PATH", "SCRIPT_PATH", "STYLE_PATH", "add_assets",
           "draft_fragment", "drafts_fragment", "page"]

PAGE_PATH = "/review"
LIST_PATH = "/review/drafts"
DRAFT_PATH = "/review/drafts/{uid}"
SCRIPT_PATH = "/review/page.js"
STYLE_PATH = "/review/page.css"
PER_ACCOUNT = 50
"""How many of each account's newest drafts the list shows, besides all awaiting approval."""

PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; frame-src 'self'; form-action 'none'; "
            "base-uri 'none'; frame-ancestors 'none'")
"""The page runs its own script only and talks to this service only. A draft's HTML (which
may style itself inline) is shown in a frame that inherits this policy and adds its own."""
HTML_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:"
"""The draft's HTML version: nothing remote (no image, font or style sheet from elsewhere),
no script (the frame is sandboxed as well)."""

_HEADERS = {"Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
_STATIC = Path(__file__).resolve().parent / "static"
_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("mailbridge.api", "templates"),
    autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
    trim_blocks=True, lstrip_blocks=True)


@dataclass(frozen=True)
class Row:
    """One line of the list."""

    draft: ExanteDraft
    recipients: str
    since: datetime
    """When it was asked to be approved, for a draft awaiting approval; else its last change."""
    age: str
    context: str
    context_url: str | None


def _age(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return "just now"  # pragma: no cover


def _context(request: web.Request, d: ExanteDraft) -> tuple[str, str | None]:
    """The draft's context as text, and the link to it where the configuration has one."""
    if d.context_type is None and d.context_id is None:
        return "", None
    text = " ".join(v for v in (d.context_type, d.context_id) if v)
    template = request.app[CONFIG].review.context_links.get(d.context_type or "")
    if template is None or not d.context_id:
        return text, None
    return text, template.replace("{id}", quote(d.context_id, safe=""))


def _row(request: web.Request, m: StoredMessage, now: datetime) -> Row:
    d = render_draft(m)
    since = (d.approval.requested_at if d.approval is not None and d.status
             is Status.AWAITING_APPROVAL and d.approval.requested_at is not None
             else d.updated_at)
    shown = [*d.to, *d.cc]
    if d.bcc:
        shown.append("Bcc: " + ", ".join(d.bcc))
    context, url = _context(request, d)
    return Row(d, ", ".join(shown), since, _age(now - since), context, url)


def _html(template: str, status: int = 200, **values: object) -> web.Response:
    return web.Response(text=_TEMPLATES.get_template(template).render(**values),
                        content_type="text/html", status=status, headers=_HEADERS)


async def page(request: web.Request) -> web.Response:
    """GET /review: the page (no data in it; no token needed)."""
    return _html("review.html", script_path=SCRIPT_PATH.lstrip("/"),
                 style_path=STYLE_PATH.lstrip("/"))


async def drafts_fragment(request: web.Request) -> web.Response:
    """GET /review/drafts: the list, as an HTML fragment (needs read)."""
    principal = authorize(request, "read")
    drafts = request.app[DRAFTS]

    async def of(account: AccountConfig) -> tuple[list[StoredMessage], list[StoredMessage]]:
        try:
            waiting = await drafts.list(account, DraftQuery(limit=MAX_LIMIT,
                                                            status=Status.AWAITING_APPROVAL))
            newest = await drafts.list(account, DraftQuery(limit=PER_ACCOUNT))
        except MailbridgeError as exc:  # the other accounts are still shown
            problems.append(f"{account.email} could not be read: {exc.message}")
            return [], []
        return waiting.items, newest.items

    problems: list[str] = []
    found = await asyncio.gather(*(of(a) for a in principal.accounts))
    now = utcnow()
    waiting = [_row(request, m, now) for items, _ in found for m in items]
    waiting.sort(key=lambda r: r.since)
    shown = {r.draft.uid for r in waiting}
    others = [_row(request, m, now) for _, items in found for m in items if m.id not in shown]
    others.sort(key=lambda r: r.draft.updated_at, reverse=True)
    return _html("review_list.html", rows=[*waiting, *others], awaiting=len(waiting),
                 problems=sorted(problems),
                 accounts=[a.email for a in principal.accounts],
                 selected=query_text(request, "selected") or "",
                 truncated=any(len(items) >= PER_ACCOUNT for _, items in found),
                 per_account=PER_ACCOUNT)


async def draft_fragment(request: web.Request) -> web.Response:
    """GET /review/drafts/{uid}: one draft, as an HTML fragment with its ETag (needs read)."""
    principal = authorize(request, "read")
    ref = parse_draft_id(request.match_info["uid"])
    m = await find_draft(request.app[DRAFTS], principal, ref, None)
    d = render_draft(m)
    try:
        envelope, envelope_problem = request.app[SENDING].recipients(m), ""
    except MailbridgeError as exc:
        envelope, envelope_problem = [], exc.message
    context, context_url = _context(request, d)
    html_doc = (f'<!doctype html><meta charset="utf-8"><meta http-equiv="Content-Security-'
                f'Policy" content="{HTML_CSP}">{d.body_html}'
                if d.body_html else "")
    response = _html(
        "review_draft.html", d=d, etag=m.etag, imap_uid=m.uid, envelope=envelope,
        envelope_problem=envelope_problem, context=context, context_url=context_url,
        html_doc=html_doc, editable=principal.may("write") and m.status in REVIEWABLE,
        approvable=principal.may("approve") and m.status in REVIEWABLE,
        max_header=request.app[CONFIG].server.limits.max_header_chars)
    response.headers["ETag"] = m.etag
    return response


async def _script(request: web.Request) -> web.FileResponse:
    return web.FileResponse(_STATIC / "review.js", headers={
        **_HEADERS, "Content-Type": "text/javascript; charset=utf-8", "Cache-Control": "no-cache"})


async def _style(request: web.Request) -> web.FileResponse:
    return web.FileResponse(_STATIC / "review.css", headers={
        **_HEADERS, "Content-Type": "text/css; charset=utf-8", "Cache-Control": "no-cache"})


def add_assets(app: web.Application) -> None:
    """Serves the page's script and style sheet (not in the route table: they are the page's
    parts, not API operations)."""
    app.router.add_get(SCRIPT_PATH, _script)
    app.router.add_get(STYLE_PATH, _style)
