"""``python -m bench.traced --config FILE``: mailbridge's API with every IMAP command timed.

The same application as ``python -m mailbridge serve`` (``mailbridge.api.create_app``), plus,
from the outside (no change to mailbridge): ``ImapConnection.command`` / ``append`` and
``ImapPool._acquire`` and ``Sender.send`` are wrapped to record, per HTTP request (a contextvar set by an
outermost middleware), which IMAP commands ran, how long each took (wall time, i.e. the round
trip to Dovecot including its work) and how long the request waited for a pooled connection.
Commands outside a request (the scheduler) are recorded under ``(background)``.

``GET /__bench/trace`` returns the totals per route and resets them. Used by the bench's
``anatomy`` phase (one client, so the times are uncontended) and by ``--profile``.
"""

from __future__ import annotations

import argparse
import contextvars
import re
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from mailbridge.api import create_app
from mailbridge.cli import _serve, _setup_logging
from mailbridge.config import load_config
from mailbridge.imap import connection as imap_connection
from mailbridge.imap import pool as imap_pool
from mailbridge.smtp import Sender


class Trace:
    def __init__(self) -> None:
        self.commands: list[tuple[str, float]] = []
        self.pool_wait = 0.0
        self.smtp = 0.0


_current: contextvars.ContextVar[Trace | None] = contextvars.ContextVar("trace", default=None)


def _new_route() -> dict[str, Any]:
    return {"requests": 0, "wall_s": 0.0, "imap_s": 0.0, "pool_wait_s": 0.0, "smtp_s": 0.0,
            "commands": 0,
            "by_command": defaultdict(lambda: [0, 0.0])}


_routes: dict[str, dict[str, Any]] = defaultdict(_new_route)


def label(name: str, args: tuple[str, ...], prefix: str) -> str:
    """A command's name with what decides its cost: the HEADER searched, the FETCH items."""
    text = f"{prefix} {name}".strip()
    if name == "SEARCH":
        headers = [args[i + 1] for i, a in enumerate(args[:-1]) if a.upper() == "HEADER"]
        keys = [a for a in args if a.upper() in ("UID", "ALL", "DRAFT")]
        extra = " ".join(f"HEADER {h}" for h in headers) or " ".join(keys[:1])
        return f"{text} {extra}".strip()
    if name == "FETCH" and len(args) >= 2:
        items = args[1]
        for word in ("BODY.PEEK[]", "BODYSTRUCTURE", "HEADER.FIELDS", "BODY.PEEK[HEADER]"):
            if word in items:
                return f"{text} {word}"
        return f"{text} {items[:40]}"
    if name == "STORE":
        return re.sub(r"\d+", "n", f"{text} {' '.join(args[1:])}")[:70]
    return text


def _record(what: str, seconds: float) -> None:
    trace = _current.get()
    if trace is None:
        route = _routes["(background)"]
        route["imap_s"] += seconds
        route["commands"] += 1
        entry = route["by_command"][what]
        entry[0] += 1
        entry[1] += seconds
    else:
        trace.commands.append((what, seconds))


def install() -> None:
    conn_cls = imap_connection.ImapConnection
    pool_cls = imap_pool.ImapPool
    command = conn_cls.command
    append = conn_cls.append
    acquire = pool_cls._acquire

    async def timed_command(self: Any, name: str, *args: str, prefix: str = "",
                            untagged: str | None = None, timeout: float | None = None
                            ) -> list[bytes]:
        started = time.perf_counter()
        try:
            result: list[bytes] = await command(self, name, *args, prefix=prefix,
                                                untagged=untagged, timeout=timeout)
            return result
        finally:
            _record(label(name, args, prefix), time.perf_counter() - started)

    async def timed_append(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await append(self, *args, **kwargs)
        finally:
            _record("APPEND", time.perf_counter() - started)

    async def timed_acquire(self: Any, fresh: bool = False) -> Any:
        started = time.perf_counter()
        try:
            return await acquire(self, fresh)
        finally:
            trace = _current.get()
            if trace is not None:
                trace.pool_wait += time.perf_counter() - started

    send = Sender.send

    async def timed_send(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await send(self, *args, **kwargs)
        finally:
            trace = _current.get()
            if trace is not None:
                trace.smtp += time.perf_counter() - started

    Sender.send = timed_send  # type: ignore[method-assign]
    conn_cls.command = timed_command  # type: ignore[method-assign]
    conn_cls.append = timed_append  # type: ignore[method-assign]
    pool_cls._acquire = timed_acquire  # type: ignore[method-assign]


@web.middleware
async def trace_middleware(request: web.Request,
                           handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                           ) -> web.StreamResponse:
    if request.path.startswith("/__bench"):
        return await handler(request)
    resource = request.match_info.route.resource
    name = f"{request.method} {resource.canonical if resource is not None else request.path}"
    trace = Trace()
    token = _current.set(trace)
    started = time.perf_counter()
    try:
        return await handler(request)
    finally:
        wall = time.perf_counter() - started
        _current.reset(token)
        route = _routes[name]
        route["requests"] += 1
        route["wall_s"] += wall
        route["pool_wait_s"] += trace.pool_wait
        route["smtp_s"] += trace.smtp
        for what, seconds in trace.commands:
            route["imap_s"] += seconds
            route["commands"] += 1
            entry = route["by_command"][what]
            entry[0] += 1
            entry[1] += seconds


async def trace_handler(request: web.Request) -> web.Response:
    out = {}
    for name, r in _routes.items():
        out[name] = {**{k: v for k, v in r.items() if k != "by_command"},
                     "by_command": {k: {"count": c, "seconds": s}
                                    for k, (c, s) in r["by_command"].items()}}
    if request.query.get("reset", "1") != "0":
        _routes.clear()
    return web.json_response(out)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    _setup_logging("warning")
    install()
    config = load_config(args.config)
    app = create_app(config)
    app.middlewares.insert(0, trace_middleware)
    app.router.add_get("/__bench/trace", trace_handler)
    host, port = config.server.host, config.server.port
    _serve(app, host, port, on_ready=f"mailbridge (traced) listening on http://{host}:{port}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
