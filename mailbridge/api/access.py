"""Who is asking: the bearer token of a request, its scopes, and the accounts it may use."""

from __future__ import annotations

from aiohttp import web

from mailbridge.api.keys import AUTH, CONFIG
from mailbridge.auth import Principal
from mailbridge.config import AccountConfig, Limits, Scope
from mailbridge.errors import Unprocessable


def authorize(request: web.Request, scope: Scope) -> Principal:
    """The caller behind the request's bearer token, if it has ``scope``.

    Raises Unauthorized (401) without a valid token, Forbidden (403) without the scope.
    """
    principal = request.app[AUTH].authenticate(request.headers.get("Authorization"))
    principal.require(scope)
    return principal


def resolve_account(principal: Principal, ref: str | None, field: str) -> AccountConfig:
    """The account ``ref`` (id or email) the token may use; NotFound for any other.

    ``ref`` may be omitted when the token sees exactly one account; otherwise its absence is a 422.
    """
    if ref is None or ref == "":
        if len(principal.accounts) != 1:
            raise Unprocessable(f"{field} is required (this token may use several accounts)",
                               field=field)
        return principal.accounts[0]
    return principal.account(ref, field=field)


def limits_of(request: web.Request) -> Limits:
    return request.app[CONFIG].server.limits
