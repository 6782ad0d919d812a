"""Closed-loop load: N clients, each doing one operation after the other, for a bounded time and
count; latencies per operation and the CPU each process spent (load generator, service,
Dovecot, dev SMTP) per operation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bench.harness import Service, Stack, machine_busy, self_cpu


class Exhausted(Exception):
    """Raised by an operation when its client has nothing left to work on (e.g. no draft left to
    delete): the client stops, which is not an error."""


@dataclass
class Probe:
    """CPU seconds of every process taking part, read before and after a run."""

    stack: Stack
    service: Service | None
    extra_client_cpu: Callable[[], float] | None = None

    def snap(self) -> dict[str, float]:
        client = self_cpu() + (self.extra_client_cpu() if self.extra_client_cpu else 0.0)
        return {"client": client, "service": self.service.cpu() if self.service else 0.0,
                "dovecot": self.stack.dovecot_cpu(), "smtp": self.stack.smtp_cpu(),
                "machine": machine_busy()}


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..1)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


@dataclass
class Run:
    name: str
    clients: int
    ops: int
    errors: int
    seconds: float
    latencies: list[float] = field(repr=False)
    cpu: dict[str, float]
    error_samples: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def rate(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else 0.0

    def figures(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        out: dict[str, Any] = {
            "clients": self.clients, "ops": self.ops, "errors": self.errors,
            "seconds": round(self.seconds, 2), "ops_s": round(self.rate, 1),
            "p50_ms": round(percentile(lat, 0.50) * 1000, 2),
            "p99_ms": round(percentile(lat, 0.99) * 1000, 2),
        }
        ops = max(self.ops, 1)
        ours = 0.0
        for who, spent in self.cpu.items():
            if who == "machine":
                continue
            ours += spent
            out[f"cpu_ms_per_op_{who}"] = round(spent * 1000 / ops, 3)
            out[f"cpu_util_{who}"] = round(spent / self.seconds, 2) if self.seconds else 0.0
        if "machine" in self.cpu and self.seconds:
            # CPU that processes outside this bench used meanwhile (cores): a shared machine
            out["cpu_util_other_processes"] = round(
                max(0.0, self.cpu["machine"] - ours) / self.seconds, 2)
        if self.error_samples:
            out["error_samples"] = self.error_samples[:3]
        if self.note:
            out["note"] = self.note
        return out


Op = Callable[[int], Awaitable[Any]]


async def closed_loop(name: str, clients: int, op: Op, probe: Probe, *, seconds: float,
                      max_ops: int, warmup: int = 1,
                      on_progress: Callable[[int], None] | None = None) -> Run:
    """Runs ``op(client_index)`` in ``clients`` concurrent loops for ``seconds`` or until
    ``max_ops`` operations were started, after ``warmup`` untimed operations per client.

    Returns the Run: completed operations, failures (not counted as operations), latencies of
    the completed ones, CPU seconds per process during the timed part.
    """
    async def warm(i: int) -> None:
        for _ in range(warmup):
            try:
                await op(i)
            except Exhausted:
                return

    await asyncio.gather(*(warm(i) for i in range(clients)))
    latencies: list[float] = []
    samples: list[str] = []
    errors = 0
    started = 0
    done = 0
    before = probe.snap()
    t0 = time.perf_counter()
    deadline = t0 + seconds
    last_end = t0

    async def loop(i: int) -> None:
        nonlocal started, errors, done, last_end
        while started < max_ops and time.perf_counter() < deadline:
            started += 1
            begun = time.perf_counter()
            try:
                await op(i)
            except Exhausted:
                started -= 1
                return
            except Exception as exc:
                errors += 1
                if len(samples) < 5:
                    samples.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                continue
            end = time.perf_counter()
            latencies.append(end - begun)
            last_end = max(last_end, end)
            done += 1
            if on_progress is not None:
                on_progress(done)

    await asyncio.gather(*(loop(i) for i in range(clients)))
    elapsed = max(last_end, time.perf_counter()) - t0
    after = probe.snap()
    cpu = {k: after[k] - before[k] for k in before}
    return Run(name, clients, len(latencies), errors, elapsed, latencies, cpu, samples)
