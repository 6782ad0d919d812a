"""Prometheus metrics: the one owner of ``prometheus_client``.

One :class:`Metrics` per application, each with a registry of its own (several apps in one
process, as the tests run them, do not mix). The other layers do not import prometheus: the IMAP
connections and the SMTP sender report through the plain callbacks they are given
(:meth:`Metrics.imap_command`, :meth:`Metrics.smtp_submission`), the HTTP layer through
:meth:`Metrics.http_request`, and the gauges read the pools and the scheduler when scraped.
Every name starts with ``mailbridge_``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The Prometheus text format's media type."""

_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SMTP = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The metric families of one application."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http = Histogram(
            "mailbridge_http_request_duration_seconds",
            "HTTP requests by route (the path template), method and status.",
            ("route", "method", "status"), buckets=_FAST, registry=r)
        self.imap = Histogram(
            "mailbridge_imap_command_duration_seconds",
            "IMAP commands by command name and account, from sending to the tagged reply.",
            ("command", "account"), buckets=_FAST, registry=r)
        self.smtp = Histogram(
            "mailbridge_smtp_submission_duration_seconds",
            "SMTP submissions by outcome (sent, or the error code: smtp_rejected...).",
            ("outcome",), buckets=_SMTP, registry=r)
        self.pool_in_use = Gauge(
            "mailbridge_imap_pool_connections_in_use",
            "IMAP connections lent out by each account's pool.", ("account",), registry=r)
        self.pool_waiting = Gauge(
            "mailbridge_imap_pool_waiting",
            "Operations waiting for a connection of each account's pool.", ("account",),
            registry=r)
        self.pool_open = Gauge(
            "mailbridge_imap_pool_connections_open",
            "IMAP connections open in each account's pool (idle and in use).", ("account",),
            registry=r)
        self.scheduler_lag = Gauge(
            "mailbridge_scheduler_lag_seconds",
            "How long the oldest draft that was due at the scheduler's last look had been due "
            "(0 when none was).", registry=r)
        self.webhook_deliveries = Counter(
            "mailbridge_webhook_deliveries",
            "Webhook delivery attempts by outcome.", ("outcome",), registry=r)
        self.events = Counter(
            "mailbridge_events", "Events by type.", ("type",), registry=r)

    def http_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.http.labels(route, method, str(status)).observe(seconds)

    def imap_command(self, account: str) -> Callable[[str, float], None]:
        """The callback an account's IMAP connections report each command's time through."""
        def observe(command: str, seconds: float) -> None:
            self.imap.labels(command, account).observe(seconds)
        return observe

    def smtp_submission(self, outcome: str, seconds: float) -> None:
        self.smtp.labels(outcome).observe(seconds)

    def watch_pools(self, pools: Iterable[tuple[str, _PoolLike]]) -> None:
        """Gauges that read each pool when scraped."""
        for account, pool in pools:
            self.pool_in_use.labels(account).set_function(_reader(pool, "in_use"))
            self.pool_waiting.labels(account).set_function(_reader(pool, "waiting"))
            self.pool_open.labels(account).set_function(_reader(pool, "open_connections"))

    def watch_scheduler_lag(self, lag: Callable[[], float]) -> None:
        self.scheduler_lag.set_function(lag)

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)


def _reader(pool: _PoolLike, name: str) -> Callable[[], float]:
    def read() -> float:
        return float(getattr(pool, name))
    return read


class _PoolLike(Protocol):
    """What the pool gauges read (mailbridge.imap.ImapPool)."""

    @property
    def in_use(self) -> int: ...

    @property
    def waiting(self) -> int: ...

    @property
    def open_connections(self) -> int: ...
