"""A real HTTP receiver of webhook deliveries, for the tests of webhooks."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class Receiver:
    """An HTTP server that records every POST; ``fail`` answers 500 that many times first,
    ``hang`` makes it never answer."""

    got: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    fail: int = 0
    hang: bool = False
    server: TestServer | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        async with self.arrived:
            self.got.append((request.path, dict(request.headers), body))
            self.arrived.notify_all()
        if self.hang:
            await asyncio.sleep(30)
        if self.fail > 0:
            self.fail -= 1
            return web.Response(status=500)
        return web.Response(status=204)

    def url(self, path: str) -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    def events(self, path: str) -> list[dict[str, Any]]:
        return [json.loads(body) for p, _, body in self.got if p == path]

    async def wait_for(self, path: str, n: int, seconds: float = 5.0) -> None:
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: len(self.events(path)) >= n),
                                   seconds)
        await asyncio.sleep(0.3)  # and nothing more comes


async def start_receiver() -> Receiver:
    """A receiver listening on a free port of 127.0.0.1 (close its ``server``)."""
    r = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", r.handle)
    r.server = TestServer(app)
    await r.server.start_server()
    return r
