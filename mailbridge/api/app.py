"""Builds the aiohttp application from a configuration."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Handler

from mailbridge.accounts import Accounts
from mailbridge.api import health
from mailbridge.api.keys import ACCOUNTS, CONFIG
from mailbridge.config import Config
from mailbridge.errors import MailbridgeError

log = logging.getLogger("mailbridge.api")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turns a MailbridgeError into a JSON error with the status its class names.

    Anything else becomes a 500 whose body says nothing about the cause (the log has it).
    """
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except MailbridgeError as exc:
        return web.json_response({"error": {"code": exc.code, "message": exc.message}},
                                 status=exc.status)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return web.json_response({"error": {"code": "internal_error",
                                            "message": "internal error; see the service log"}},
                                 status=500)


def create_app(config: Config) -> web.Application:
    """Returns the application for ``config``; IMAP pools open lazily and close on cleanup.

    Raises ConfigError when an account's password_env variable is not set.
    """
    app = web.Application(middlewares=[error_middleware],
                          client_max_size=config.server.limits.max_request_bytes)
    app[CONFIG] = config
    app[ACCOUNTS] = Accounts(config)

    async def close_pools(app: web.Application) -> AsyncIterator[None]:
        yield
        await app[ACCOUNTS].close()

    app.cleanup_ctx.append(close_pools)
    health.add_routes(app)
    return app
