"""Bearer tokens: which caller may use which accounts, with which scopes.

Tokens are configured as sha256 hashes; a presented token is hashed and compared with every
configured hash in constant time (hmac.compare_digest), so timing tells nothing about which
hash came close. An account outside the token's list is reported as not found, exactly as an
account that does not exist.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from mailbridge.config import AccountConfig, Config, Scope, TokenConfig
from mailbridge.errors import Forbidden, NotFound, Unauthorized


@dataclass(frozen=True)
class Principal:
    """The caller behind a valid token."""

    token: TokenConfig
    accounts: tuple[AccountConfig, ...]

    @property
    def name(self) -> str:
        return self.token.name

    def may(self, scope: Scope) -> bool:
        """Whether the token has ``scope``."""
        return scope in self.token.scopes

    def require(self, scope: Scope) -> None:
        """Raises Forbidden unless the token has ``scope``."""
        if not self.may(scope):
            raise Forbidden(f"this token lacks the {scope!r} scope")

    def account(self, ref: str | None, *, field: str = "account") -> AccountConfig:
        """The account ``ref`` (id or email) if this token may use it; else NotFound.

        With ``ref`` None and exactly one account visible, that account.
        """
        if ref is None or ref == "":
            if len(self.accounts) == 1:
                return self.accounts[0]
            from mailbridge.errors import InvalidInput

            raise InvalidInput(f"{field} is required", field=field)
        needle = ref.strip().lower()
        for account in self.accounts:
            if str(account.id) == needle or account.email.lower() == needle:
                return account
        raise NotFound(f"no account {ref!r}", field=field)


class Authenticator:
    """Turns an Authorization header into a Principal."""

    def __init__(self, config: Config) -> None:
        self._entries: list[tuple[bytes, Principal]] = []
        for token in config.tokens:
            if "*" in token.accounts:
                accounts = tuple(config.accounts)
            else:
                found = (config.account(ref) for ref in token.accounts)
                accounts = tuple(a for a in found if a is not None)
            self._entries.append((bytes.fromhex(token.sha256), Principal(token, accounts)))

    def named(self, name: str) -> Principal | None:
        """The caller behind the token called ``name`` (a webhook's owner); None if gone."""
        return next((p for _, p in self._entries if p.name == name), None)

    def authenticate(self, authorization: str | None) -> Principal:
        """The Principal for ``Authorization: Bearer <token>``; Unauthorized otherwise."""
        if not authorization:
            raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
        scheme, _, presented = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        try:
            digest = hashlib.sha256(presented.strip().encode()).digest()
        except UnicodeEncodeError:  # bytes that are not UTF-8 (aiohttp keeps them as surrogates)
            raise Unauthorized("invalid bearer token") from None
        match: Principal | None = None
        for expected, principal in self._entries:  # no early exit: constant work per request
            if hmac.compare_digest(digest, expected):
                match = principal
        if match is None:
            raise Unauthorized("invalid bearer token")
        return match
