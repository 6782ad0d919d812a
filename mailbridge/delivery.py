"""Webhook delivery: each event to each subscription that wants it, signed, retried, logged.

The :class:`Dispatcher` is the application's :class:`~mailbridge.events.EventSink`. An event is
wanted by a subscription that is active, names its type, and whose owner token may read the
event's account (with the ``read`` scope). Each delivery is a POST of the JSON body:

- ``jasni`` subscriptions (dialect 1): ``X-Jasni-Signature: t=<unix>,v1=<hex HMAC-SHA256 of
  "<t>.<body>">``, the scheme the Jasni SDK's ``verify_signature`` checks;
- ``standard`` subscriptions (dialect 2): ``webhook-id``, ``webhook-timestamp``,
  ``webhook-signature: v1,<base64>`` per the Standard Webhooks spec, made by its own library.

A delivery that times out, cannot connect or gets a 5xx (or 429) is tried again after 1, 2,
4... seconds (at most 5 minutes apart) until ``[server] webhook_retry_seconds`` have passed
since the first attempt; any other answer ends it, and so does a name that resolves to a
private address while those are not allowed. Deliveries run in tasks of their own: a
slow or dead receiver never delays an API call. Each attempt (status, latency) is counted in
``mailbridge_webhook_deliveries_total`` and kept as a record in the event's account
(mailbridge.records, kind ``delivery-attempt``, for 7 days), so :meth:`Dispatcher.attempts`
shows every instance's.

aiohttp's server is the API's (:mod:`mailbridge.api`); its client is used here only.

Which instance delivers an event: the one that made the change through the API, or, for a
change a watcher saw (:mod:`mailbridge.watching`), the one whose claim came first
(:mod:`mailbridge.ledger`). A delivery being retried lives in that instance's memory: one that
dies with a delivery still being retried does not retry it further (its attempts so far stay
recorded).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit
from uuid import UUID

import aiohttp
from standardwebhooks.webhooks import Webhook

from mailbridge import __version__
from mailbridge.auth import Authenticator
from mailbridge.config import AccountConfig, Config
from mailbridge.errors import ImapError
from mailbridge.events import Event
from mailbridge.ledger import Ledger
from mailbridge.metrics import Metrics
from mailbridge.subscriptions import (
    Scheme,
    Subscription,
    SubscriptionService,
    is_private_host,
    static_subscriptions,
)
from mailbridge.views import utcnow

__all__ = ["Attempt", "Dispatcher", "signature_headers"]

log = logging.getLogger("mailbridge.delivery")

KEEP_ATTEMPTS = 100
"""Attempts shown (and remembered in memory) per subscription."""
ATTEMPT = "delivery-attempt"
"""The kind of the records that keep delivery attempts (mailbridge.records)."""
KEEP_DAYS = 7
"""How long attempt records are kept."""
PRUNE_EVERY = 3600.0
"""How often an instance prunes an account's old attempt records (seconds)."""
MAX_DELAY = 300.0
CLOSE_SECONDS = 5.0
"""How long closing waits for the events in hand to find their subscriptions."""
CACHE_SECONDS = 5.0
"""How long the subscriptions read from the mail server are used before they are read again
(changes made through this instance are seen at once)."""

Render = Callable[[Event, Scheme], Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Attempt:
    event_id: str
    type: str
    attempt: int
    at: datetime
    status: int | None
    """The receiver's HTTP status; None when there was no answer."""
    latency_ms: float
    outcome: Literal["delivered", "retrying", "failed"]
    error: str | None = None


class _Refused(Exception):
    """The target may not be called (a private address); not tried again."""


def signature_headers(sub: Subscription, event: Event, body: bytes,
                      now: float | None = None) -> dict[str, str]:
    """The headers that sign ``body`` for ``sub``'s scheme."""
    stamp = int(time.time() if now is None else now)
    if sub.scheme == "jasni":
        digest = hmac.new(sub.secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
        return {"X-Jasni-Signature": f"t={stamp},v1={digest.hexdigest()}"}
    signature = Webhook(sub.secret).sign(event.id, datetime.fromtimestamp(stamp, UTC),
                                         body.decode())
    return {"webhook-id": event.id, "webhook-timestamp": str(stamp),
            "webhook-signature": signature}


class Dispatcher:
    """Delivers this instance's events to the subscriptions that want them."""

    def __init__(self, subscriptions: SubscriptionService, config: Config, auth: Authenticator,
                 render: Render, metrics: Metrics, ledger: Ledger | None = None) -> None:
        self.subscriptions = subscriptions
        self.ledger = ledger
        """Where changes are claimed; None: no instance watches (tests of delivery alone)."""
        self.config = config
        self.auth = auth
        self.render = render
        self.metrics = metrics
        self.timeout = config.server.webhook_timeout_seconds
        self.retry_seconds = config.server.webhook_retry_seconds
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        """Deliveries under way."""
        self._fan_outs: set[asyncio.Task[None]] = set()
        """Events looking for their subscriptions."""
        self._attempts: dict[UUID, deque[Attempt]] = {}
        self._cache: tuple[float, list[Subscription]] | None = None
        self.static = static_subscriptions(config)
        self._reading = asyncio.Lock()
        self._pruned: dict[UUID, float] = {}

    # ------------------------------------------------------------------ the sink

    def emit(self, event: Event) -> None:
        self.metrics.events.labels(event.type).inc()
        self._spawn(self._fan_out(event), self._fan_outs)

    async def report(self, event: Event, key: str) -> bool:
        """Delivers ``event``, the change ``key`` that a watcher saw, if some subscription
        wants it and this instance's claim of it comes first; returns whether it did."""
        if self.ledger is None or not await self.wants(event.account, (event.type,)):
            return False
        if not await self.ledger.claim(event.account, key):
            return False
        self.emit(event)
        return True

    @asynccontextmanager
    async def taking(self, account: AccountConfig, folder: str, uidvalidity: int,
                     uids: Sequence[int]) -> AsyncIterator[None]:
        """See :meth:`EventSink.taking <mailbridge.events.EventSink.taking>`: claims the
        removal (:meth:`Ledger.taking`) when a watcher could report it to some subscription."""
        if self.ledger is None or not uids \
                or not await self.wants(account, ("draft.deleted", "email.deleted")):
            yield
            return
        async with self.ledger.taking(account, folder, uidvalidity, uids):
            yield

    async def wants(self, account: AccountConfig, types: Collection[str]) -> bool:
        """Whether some subscription wants events of one of ``types`` in ``account`` (True
        when the subscriptions cannot be read: better a claim too many than an event lost)."""
        try:
            subs = await self._current()
        except ImapError:
            return True
        return any(self._wants(sub, kind, account) for sub in subs for kind in types)

    def forget(self) -> None:
        """Reads the subscriptions again for the next event (one was made or changed)."""
        self._cache = None

    async def attempts(self, sub_id: UUID,
                       accounts: Sequence[AccountConfig]) -> list[Attempt]:
        """The latest attempts of a subscription's deliveries, by every instance, newest first:
        the records of ``accounts`` (those the owner may read), and this instance's own that
        are not recorded yet."""
        found: dict[tuple[str, int], Attempt] = {}
        for account in accounts:
            try:
                records = await self.subscriptions.records.read(account, ATTEMPT,
                                                                prefix=f"{sub_id}/")
            except ImapError as exc:
                log.warning("%s: delivery attempts not read: %s", account.email, exc)
                continue
            for record in records:
                attempt = _attempt_of(record.data)
                if attempt is not None:
                    found[(attempt.event_id, attempt.attempt)] = attempt
        for attempt in self._attempts.get(sub_id, ()):
            found.setdefault((attempt.event_id, attempt.attempt), attempt)
        newest = sorted(found.values(), key=lambda a: (a.at, a.attempt), reverse=True)
        return newest[:KEEP_ATTEMPTS]

    async def close(self) -> None:
        """Lets the events in hand find their subscriptions (an IMAP read cut short leaves the
        IMAP library's tasks behind), then stops the deliveries under way."""
        if self._fan_outs:
            await asyncio.wait(set(self._fan_outs), timeout=CLOSE_SECONDS)
        for task in [*self._fan_outs, *self._tasks]:
            task.cancel()
        await asyncio.gather(*self._fan_outs, *self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    # ------------------------------------------------------------------ the work

    def _spawn(self, work: Any, tasks: set[asyncio.Task[None]] | None = None) -> None:
        into = self._tasks if tasks is None else tasks
        task = asyncio.get_running_loop().create_task(work)
        into.add(task)
        task.add_done_callback(into.discard)

    async def _fan_out(self, event: Event) -> None:
        try:
            subs = await self._current()
        except Exception:
            log.exception("webhooks: the subscriptions could not be read; %s %s is not delivered",
                          event.type, event.id)
            return
        for sub in subs:
            if self._wants(sub, event.type, event.account):
                self._spawn(self._deliver(sub, event))

    async def _current(self) -> list[Subscription]:
        """The subscriptions, read at most once per CACHE_SECONDS however many events come at
        once (one read at a time: the others wait for its result)."""
        async with self._reading:
            now = time.monotonic()
            if self._cache is None or now - self._cache[0] > CACHE_SECONDS:
                self._cache = (now, [*self.static, *await self.subscriptions.all(
                    self.config.accounts)])
            return self._cache[1]

    def _wants(self, sub: Subscription, kind: str, account: AccountConfig) -> bool:
        if not sub.active or kind not in sub.events:
            return False
        if sub.static_accounts is not None:
            return account.id in sub.static_accounts
        owner = self.auth.named(sub.owner)
        return owner is not None and owner.may("read") \
            and any(a.id == account.id for a in owner.accounts)

    async def _deliver(self, sub: Subscription, event: Event) -> None:
        body = json.dumps(self.render(event, sub.scheme), ensure_ascii=False,
                          separators=(",", ":")).encode()
        deadline = time.monotonic() + self.retry_seconds
        delay = 1.0
        attempt = 0
        while True:
            attempt += 1
            status, error, took, refused = await self._post(sub, event, body)
            delivered = status is not None and 200 <= status < 300
            again = not delivered and not refused \
                and (status is None or status >= 500 or status == 429) \
                and time.monotonic() + delay <= deadline
            outcome: Literal["delivered", "retrying", "failed"] = \
                "delivered" if delivered else "retrying" if again else "failed"
            await self._record(sub, event, Attempt(event.id, event.type, attempt, utcnow(),
                                                   status, round(took * 1000, 1), outcome,
                                                   error))
            if not again:
                if outcome == "failed":
                    log.warning("webhook %s: %s %s not delivered after %d attempt(s): %s",
                                sub.id, event.type, event.id, attempt, error or status)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY)

    async def _post(self, sub: Subscription, event: Event,
                    body: bytes) -> tuple[int | None, str | None, float, bool]:
        """The receiver's status (None: no answer), what went wrong, the time taken, and
        whether the target was refused (no retry then)."""
        started = time.monotonic()
        try:
            if not self.subscriptions.allow_private:
                await self._check_public(sub.url)
        except _Refused as exc:
            return None, str(exc), time.monotonic() - started, True
        except OSError as exc:  # the name does not resolve (now): tried again
            return None, f"{type(exc).__name__}: {exc}"[:300], time.monotonic() - started, False
        try:
            headers = {"Content-Type": "application/json",
                       "User-Agent": f"mailbridge/{__version__}",
                       **signature_headers(sub, event, body)}
            async with self._client().post(
                    sub.url, data=body, headers=headers, allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=self.timeout)) as answer:
                await answer.content.read(64 * 1024)  # the answer's body is not needed
                return answer.status, None, time.monotonic() - started, False
        except TimeoutError:
            return None, f"no answer within {self.timeout:g}s", time.monotonic() - started, False
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return None, f"{type(exc).__name__}: {exc}"[:300], time.monotonic() - started, False

    async def _check_public(self, url: str) -> None:
        """Refuses a name that resolves to a private address (the URL was checked as written)."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        found = await asyncio.get_running_loop().getaddrinfo(
            host, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM)
        if any(is_private_host(str(info[4][0])) for info in found):
            raise _Refused(f"{host} resolves to a private address, which "
                           "[server] allow_private_webhooks does not allow")

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _record(self, sub: Subscription, event: Event, attempt: Attempt) -> None:
        """Keeps the attempt in memory and as a record in the event's account, where every
        instance reads it (GET .../deliveries); records older than KEEP_DAYS are pruned."""
        self._attempts.setdefault(sub.id, deque(maxlen=KEEP_ATTEMPTS)).append(attempt)
        self.metrics.webhook_deliveries.labels(attempt.outcome).inc()
        account = event.account
        records = self.subscriptions.records
        try:
            await records.add(account, ATTEMPT, f"{sub.id}/{event.id}/{attempt.attempt}", {
                "event_id": attempt.event_id, "type": attempt.type, "attempt": attempt.attempt,
                "at": attempt.at.isoformat(), "status": attempt.status,
                "latency_ms": attempt.latency_ms, "outcome": attempt.outcome,
                "error": attempt.error})
            if time.monotonic() - self._pruned.get(account.id, 0.0) > PRUNE_EVERY:
                self._pruned[account.id] = time.monotonic()
                await records.prune(account, ATTEMPT, KEEP_DAYS * 86400)
        except ImapError as exc:
            log.warning("%s: delivery attempt of %s not recorded: %s", account.email,
                        event.id, exc)


def _attempt_of(data: Mapping[str, Any]) -> Attempt | None:
    """The attempt an attempt record holds; None for one that cannot be read."""
    try:
        outcome = data["outcome"]
        if outcome not in ("delivered", "retrying", "failed"):
            return None
        status = data.get("status")
        return Attempt(str(data["event_id"]), str(data["type"]), int(data["attempt"]),
                       datetime.fromisoformat(str(data["at"])),
                       int(status) if status is not None else None,
                       float(data["latency_ms"]), outcome,
                       str(data["error"]) if data.get("error") is not None else None)
    except (KeyError, TypeError, ValueError):
        return None
