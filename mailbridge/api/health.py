"""How the service is doing: GET /healthz (the process answers), GET /readyz (every account's
IMAP logs in), GET /metrics (Prometheus, :mod:`mailbridge.metrics`)."""

from __future__ import annotations

from aiohttp import web

from mailbridge.api.access import authorize
from mailbridge.api.keys import ACCOUNTS, METRICS
from mailbridge.api.schemas import AccountCheck, HealthStatus, Readiness
from mailbridge.metrics import CONTENT_TYPE


async def healthz(request: web.Request) -> web.Response:
    """Always 200 while the process serves HTTP; no authentication, no I/O."""
    return web.json_response(HealthStatus(status="ok").model_dump(mode="json"))


async def readyz(request: web.Request) -> web.Response:
    """200 when every configured account's IMAP server is reachable and accepts the login.

    Otherwise 503, naming each failing account (id and email) and why, e.g. "authentication
    failed" or "server unavailable"; never a password. No authentication: it reveals only the
    account addresses an operator configured, which a load balancer's probe needs to report.
    """
    results = await request.app[ACCOUNTS].check_all()
    ready = all(r.ok for r in results)
    body = Readiness(status="ready" if ready else "unavailable", accounts=[
        AccountCheck(id=r.account.id, email=r.account.email, imap="ok" if r.ok else "error",
                     code=None if r.ok else r.code, error=None if r.ok else r.error)
        for r in results])
    return web.json_response(body.model_dump(mode="json", exclude_none=True),
                             status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    """The metrics in the Prometheus text format, for tokens with the ``metrics`` scope."""
    authorize(request, "metrics")
    return web.Response(body=request.app[METRICS].exposition(),
                        headers={"Content-Type": CONTENT_TYPE})
