"""Builds the aiohttp application from a configuration."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping

from aiohttp import web
from aiohttp.typedefs import Handler

from mailbridge.accounts import Accounts
from mailbridge.api import jasni, routes
from mailbridge.api.events import payload
from mailbridge.api.keys import (
    ACCOUNTS,
    APPROVALS,
    AUTH,
    CONFIG,
    DELIVERY,
    DRAFTS,
    LABELS,
    MESSAGES,
    METRICS,
    SENDING,
    WATCHER,
    WEBHOOKS,
)
from mailbridge.api.mcp_tools import ENDPOINT, McpEndpoint
from mailbridge.api.schemas import ExanteError, ExanteErrorBody, JasniError
from mailbridge.api.statuses import WWW_AUTHENTICATE, status_of
from mailbridge.approvals import ApprovalService
from mailbridge.auth import Authenticator
from mailbridge.config import Config
from mailbridge.delivery import Dispatcher
from mailbridge.drafts import DraftService
from mailbridge.errors import MailbridgeError, RequestError, Unauthorized
from mailbridge.labels import LabelService
from mailbridge.ledger import Ledger
from mailbridge.logs import REQUEST_ID, request_id_from
from mailbridge.messages import MessageService
from mailbridge.metrics import Metrics
from mailbridge.records import RecordBox
from mailbridge.scheduler import Scheduler
from mailbridge.sending import SendService
from mailbridge.smtp import Sender
from mailbridge.subscriptions import SubscriptionService
from mailbridge.watching import Watcher

log = logging.getLogger("mailbridge.api")

# Machine codes for the errors aiohttp itself raises (no route, wrong method, body too large...).
_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 406: "not_acceptable", 408: "request_timeout",
               411: "length_required", 413: "payload_too_large", 414: "uri_too_long",
               415: "unsupported_media_type", 431: "headers_too_large", 501: "not_implemented"}


def _in(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def error_response(path: str, status: int, code: str, message: str, field: str | None = None,
                   headers: Mapping[str, str] | None = None) -> web.Response:
    """An error in the shape of the dialect ``path`` belongs to.

    ``/api/v1``: ``{"success": false, "error", "code"}`` (+ ``field`` when known); everything
    else (``/api/email`` and the rest): ``{"error": {"code", "message", "field"}}``.
    """
    if _in(path, jasni.PREFIX):
        body = JasniError(error=message, code=code, field=field).model_dump(
            mode="json", by_alias=True, exclude_none=True)
    else:
        body = ExanteError(error=ExanteErrorBody(code=code, message=message, field=field)
                           ).model_dump(mode="json")
    return web.json_response(body, status=status, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turns every error into a JSON error in the shape of the request's dialect.

    A MailbridgeError gets its code, and the status mailbridge.api.statuses gives its class
    (401 adds WWW-Authenticate); aiohttp's own HTTP errors (no such route, method not allowed,
    request too large) keep their status and headers. Anything else becomes a 500 whose body
    says nothing about the cause (the log has it).
    """
    path = request.path
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items()
                   if k.lower() not in ("content-type", "content-length")}
        if isinstance(exc, web.HTTPRequestEntityTooLarge):
            message = "the request body is larger than this service accepts"
        else:
            message = exc.reason
        return error_response(path, exc.status, _HTTP_CODES.get(exc.status, "http_error"),
                              message, headers=headers)
    except MailbridgeError as exc:
        field = exc.field if isinstance(exc, RequestError) else None
        challenge = {"WWW-Authenticate": WWW_AUTHENTICATE} if isinstance(exc, Unauthorized) else None
        status = status_of(exc, dialect_1=_in(path, jasni.PREFIX))
        if status >= 500:
            log.warning("%s %s: %s: %s", request.method, path, exc.code, exc.message)
        response = error_response(path, status, exc.code, exc.message, field, challenge)
        if getattr(exc, "close_connection", False):
            response.force_close()
        return response
    except Exception:
        log.exception("unhandled error on %s %s", request.method, path)
        return error_response(path, 500, "internal_error", "internal error; see the service log")


SCHEDULER_STOP_SECONDS = 5.0
"""How long a shutdown waits for the scheduler's look in progress before it cuts it short."""


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Gives the request its id (the caller's ``X-Request-Id`` when it is a short token), for
    every log line written while it is served, and answers with it in ``X-Request-Id``."""
    REQUEST_ID.set(request_id_from(request.headers.get("X-Request-Id")))  # the request's task
    return await handler(request)


async def _name_request(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every answer, streamed ones and errors too, says its request id."""
    response.headers["X-Request-Id"] = REQUEST_ID.get()


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Times every request into ``mailbridge_http_request_duration_seconds``, by the route's path
    template (``unmatched`` for a path no route has: no label per random path)."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        request.app[METRICS].http_request(route, request.method, status,
                                          time.perf_counter() - started)


async def run_scheduler(app: web.Application) -> AsyncIterator[None]:
    """The scheduler as a background task of the app (aiohttp cleanup_ctx): started on startup;
    on shutdown told to stop after its look in progress, and awaited."""
    scheduler = Scheduler(app[SENDING])
    app[METRICS].watch_scheduler_lag(lambda: scheduler.lag)
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(list(app[CONFIG].accounts), stop))
    yield
    stop.set()  # let the look in progress finish: a login cut short leaves aioimaplib's tasks
    done, _ = await asyncio.wait({task}, timeout=SCHEDULER_STOP_SECONDS)
    if not done:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def run_watcher(app: web.Application) -> AsyncIterator[None]:
    """The mailbox watches (mailbridge.watching), from startup to shutdown."""
    app[WATCHER].start()
    yield
    await app[WATCHER].close()


def create_app(config: Config, *, scheduler: bool | None = None) -> web.Application:
    """Returns the application for ``config``; IMAP pools open lazily and close on cleanup.

    ``scheduler`` (default: ``[scheduler] enabled``) runs the scheduled-send loop in the app.
    Raises ConfigError when an account's password_env variable is not set.
    """
    if scheduler is None:
        scheduler = config.scheduler.enabled
    app = web.Application(middlewares=[request_id_middleware, metrics_middleware,
                                       error_middleware],
                          client_max_size=config.server.limits.max_request_bytes)
    app.on_response_prepare.append(_name_request)
    app[CONFIG] = config
    app[METRICS] = Metrics()
    app[ACCOUNTS] = Accounts(config, app[METRICS])
    app[DRAFTS] = DraftService(app[ACCOUNTS])
    app[MESSAGES] = MessageService(app[DRAFTS])
    records = RecordBox(app[DRAFTS].store)  # mailbridge's own mailbox, for both
    app[LABELS] = LabelService(app[DRAFTS].store, records)
    app[WEBHOOKS] = SubscriptionService(records,
                                        allow_private=config.server.allow_private_webhooks)
    app[AUTH] = Authenticator(config)
    ledger = Ledger(records)
    dispatcher = app[DELIVERY] = Dispatcher(app[WEBHOOKS], config, app[AUTH], payload,
                                            app[METRICS], ledger)
    app[DRAFTS].events = dispatcher
    app[WEBHOOKS].on_change = dispatcher.forget
    sender = Sender(observe=app[METRICS].smtp_submission)
    app[SENDING] = SendService(app[DRAFTS], sender, config)
    app[APPROVALS] = ApprovalService(app[SENDING])

    async def close_pools(app: web.Application) -> AsyncIterator[None]:
        yield
        await dispatcher.close()
        await sender.close()
        await app[ACCOUNTS].close()

    app.cleanup_ctx.append(close_pools)
    app[ENDPOINT] = McpEndpoint(app)
    app.cleanup_ctx.append(app[ENDPOINT].run)
    if config.server.watch_mailboxes:
        app[WATCHER] = Watcher(app[ACCOUNTS], dispatcher, ledger,
                               poll_seconds=config.server.watch_poll_seconds)
        app.cleanup_ctx.append(run_watcher)
    if scheduler:
        app.cleanup_ctx.append(run_scheduler)
    routes.add_routes(app)
    return app
