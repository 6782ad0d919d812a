"""The configured accounts at run time: each with its IMAP connection pool."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from mailbridge.config import AccountConfig, Config
from mailbridge.errors import ImapError
from mailbridge.imap import ImapEndpoint, ImapPool
from mailbridge.metrics import Metrics

RECORD_POOL_SIZE = 2
"""Connections per account to mailbridge's own mailbox (opened when first needed)."""


@dataclass(frozen=True)
class AccountHealth:
    """The outcome of one account's readiness check; ``error`` never holds a secret."""

    account: AccountConfig
    ok: bool
    code: str | None = None
    error: str | None = None


def imap_endpoint(account: AccountConfig,
                  observe: Callable[[str, float], None] | None = None) -> ImapEndpoint:
    """Returns the IMAP endpoint of ``account``, its password read now (password_env included);
    ``observe`` is told each command's name and duration.

    Raises ConfigError when password_env names an unset variable.
    """
    imap = account.imap
    return ImapEndpoint(
        host=imap.host, port=imap.port, security=imap.security, username=imap.username,
        password=imap.password_value(), timeout=imap.timeout_seconds, tls_verify=imap.tls_verify,
        ca_file=imap.ca_file, label=account.email, observe=observe,
    )


class Accounts:
    """Every configured account and its IMAP pool, looked up by id or email address."""

    def __init__(self, config: Config, metrics: Metrics | None = None) -> None:
        self.config = config
        self._pools: dict[str, ImapPool] = {}
        self._record_pools: dict[str, ImapPool] = {}
        for account in config.accounts:
            observe = metrics.imap_command(account.email) if metrics is not None else None
            endpoint = imap_endpoint(account, observe)
            overrides = account.folders.model_dump()
            self._pools[str(account.id)] = ImapPool(endpoint, size=account.pool_size,
                                                    folder_overrides=overrides)
            self._record_pools[str(account.id)] = ImapPool(endpoint, size=RECORD_POOL_SIZE,
                                                           folder_overrides=overrides)
        if metrics is not None:
            metrics.watch_pools((a.email, self.pool(a)) for a in config.accounts)

    def __iter__(self) -> Iterator[AccountConfig]:
        return iter(self.config.accounts)

    def find(self, ref: str) -> AccountConfig | None:
        """The account whose id or email (case-insensitive) is ``ref``, else None."""
        return self.config.account(ref)

    def pool(self, account: AccountConfig) -> ImapPool:
        return self._pools[str(account.id)]

    def record_pool(self, account: AccountConfig) -> ImapPool:
        """The connections of mailbridge's own mailbox (mailbridge.records), apart from the
        account's pool: a claim made while a caller holds a connection of that pool (a delete
        claims its removal before it expunges) never waits for that very connection."""
        return self._record_pools[str(account.id)]

    async def check(self, account: AccountConfig) -> AccountHealth:
        """Logs in to the account's IMAP server (or reuses a live connection) and says NOOP."""
        try:
            await self.pool(account).check()
        except ImapError as exc:
            return AccountHealth(account, ok=False, code=exc.code, error=exc.message)
        return AccountHealth(account, ok=True)

    async def check_all(self) -> list[AccountHealth]:
        """Checks every account concurrently; returns one AccountHealth per account, in order."""
        return list(await asyncio.gather(*(self.check(a) for a in self.config.accounts)))

    async def close(self) -> None:
        await asyncio.gather(*(p.close() for p in (*self._pools.values(),
                                                   *self._record_pools.values())))
