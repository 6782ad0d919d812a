"""Logging: one line per record, as text or as JSON (``[logging] format``), each with the id of
the HTTP request it belongs to.

The request id is the caller's ``X-Request-Id`` when it is a short token, else a new one; the
API's request-id middleware sets :data:`REQUEST_ID` for the request's task (and the tasks it
starts) and answers with the id in ``X-Request-Id``, so a caller can quote it and an operator
find the request's lines. JSON lines come from ``python-json-logger``: ``time``, ``level``,
``logger``, ``message``, ``request_id``, and the traceback when there is one. mailbridge's own
messages never hold a password or a token; that holds for either format.
"""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar
from typing import Literal

from pythonjsonlogger.json import JsonFormatter

__all__ = ["REQUEST_ID", "LogFormat", "new_request_id", "request_id_from", "setup"]

LogFormat = Literal["text", "json"]

REQUEST_ID: ContextVar[str] = ContextVar("mailbridge_request_id", default="-")
"""The id of the HTTP request being served (``-`` outside one)."""

_GIVEN_ID = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
_TEXT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_id_from(header: str | None) -> str:
    """The caller's ``X-Request-Id`` when it is a token of at most 128 safe characters (it goes
    into logs and a response header), else a new id."""
    if header is not None and _GIVEN_ID.fullmatch(header):
        return header
    return new_request_id()


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


def setup(level: str = "info", fmt: LogFormat = "text") -> None:
    """Configures the root logger: ``level`` and ``fmt`` (replacing what was set before)."""
    handler = logging.StreamHandler()
    handler.addFilter(_RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            timestamp=False))
    else:
        handler.setFormatter(logging.Formatter(_TEXT))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler],
                        force=True)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # aiosmtpd (the dev SMTP server) logs every connection and command at INFO
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    # the MCP SDK logs each tool call's failure and its session manager's start at INFO
    logging.getLogger("mcp").setLevel(logging.WARNING)
