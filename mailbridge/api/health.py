"""GET /healthz (the process answers) and GET /readyz (every account's IMAP logs in)."""

from __future__ import annotations

from aiohttp import web

from mailbridge.api.keys import ACCOUNTS


async def healthz(request: web.Request) -> web.Response:
    """Always 200 while the process serves HTTP; no authentication, no I/O."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 when every configured account's IMAP server is reachable and accepts the login.

    Otherwise 503, naming each failing account (id and email) and why, e.g. "authentication
    failed" or "server unavailable"; never a password. No authentication: it reveals only the
    account addresses an operator configured, which a load balancer's probe needs to report.
    """
    results = await request.app[ACCOUNTS].check_all()
    body = {
        "status": "ready" if all(r.ok for r in results) else "unavailable",
        "accounts": [
            {"id": str(r.account.id), "email": r.account.email, "imap": "ok"} if r.ok else
            {"id": str(r.account.id), "email": r.account.email, "imap": "error",
             "code": r.code, "error": r.error}
            for r in results
        ],
    }
    return web.json_response(body, status=200 if all(r.ok for r in results) else 503)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
