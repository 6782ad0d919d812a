"""The mailbridge HTTP API as the bench's clients call it (aiohttp client, keep-alive)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

BODY_TEXT = "\n".join(
    f"Line {i}: the quarterly figures are attached as discussed; please check them before "
    "Friday." for i in range(12)
)
"""About 1 KB of plain text: a typical short draft."""


class ApiError(Exception):
    def __init__(self, method: str, path: str, status: int, body: bytes) -> None:
        super().__init__(f"{method} {path} answered {status}: {body[:200]!r}")
        self.status = status


class Api:
    def __init__(self, session: aiohttp.ClientSession, base: str, token: str) -> None:
        self.session = session
        self.base = base
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, *, expect: int | tuple[int, ...] = 200,
                   json_body: Any = None, params: dict[str, str] | None = None) -> Any:
        """Sends the request; returns the decoded JSON body (None when empty). ApiError when the
        status is not ``expect``."""
        async with self.session.request(method, self.base + path, json=json_body, params=params,
                                        headers=self.headers) as resp:
            raw = await resp.read()
            wanted = expect if isinstance(expect, tuple) else (expect,)
            if resp.status not in wanted:
                raise ApiError(method, path, resp.status, raw)
        return json.loads(raw) if raw else None


def session(clients: int, timeout: float = 60) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=max(clients * 2, 100)),
        timeout=aiohttp.ClientTimeout(total=timeout))


def create_body(dialect: int, account: str, n: int | str, to: str = "Bob Example <bob@example.test>"
                ) -> dict[str, Any]:
    """A create request of a ~1 KB draft in ``dialect`` (1: /api/v1, 2: /api/email)."""
    if dialect == 1:
        return {"account": account, "to": to, "subject": f"Bench draft {n}", "text": BODY_TEXT}
    return {"from_account_id": account, "to": [to], "subject": f"Bench draft {n}",
            "body_text": BODY_TEXT, "context_type": "bench", "context_id": str(n)}


async def create(api: Api, dialect: int, account: str, n: int | str,
                 to: str = "Bob Example <bob@example.test>") -> tuple[int | None, str]:
    """Creates a draft; returns (IMAP UID if the dialect says it, stable id)."""
    if dialect == 1:
        data = await api.call("POST", "/api/v1/emails/drafts", expect=201,
                              json_body=create_body(1, account, n, to))
        return int(data["data"]["uid"]), str(data["data"]["id"])
    data = await api.call("POST", "/api/email/drafts", expect=201,
                          json_body=create_body(2, account, n, to))
    return None, str(data["uid"])
