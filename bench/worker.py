"""A load-generating client process: ``python -m bench.worker '<json settings>'``.

Used to check whether one Python client process limits the figures at high concurrency: the
bench runs the same closed loop split over several of these. Protocol on stdin/stdout: the
worker warms up (one create per client), prints ``READY``, waits for a line on stdin, runs, and
prints one JSON line: latencies (s), errors, start and end (time.monotonic, comparable across
processes), CPU seconds it spent.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from typing import Any

from bench.api import Api, create, session
from bench.harness import self_cpu


async def work(cfg: dict[str, Any]) -> dict[str, Any]:
    clients = int(cfg["clients"])
    counter = itertools.count()
    async with session(clients) as http:
        api = Api(http, cfg["api"], cfg["token"])

        async def op(i: int) -> None:
            await create(api, int(cfg["dialect"]), cfg["account"], f"{cfg['tag']}-{next(counter)}")

        await asyncio.gather(*(op(i) for i in range(clients)))
        print("READY", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        latencies: list[float] = []
        samples: list[str] = []
        errors = 0
        started = 0
        cpu0 = self_cpu()
        t0 = time.monotonic()
        deadline = t0 + float(cfg["seconds"])

        async def loop(i: int) -> None:
            nonlocal started, errors
            while started < int(cfg["max_ops"]) and time.monotonic() < deadline:
                started += 1
                begun = time.monotonic()
                try:
                    await op(i)
                except Exception as exc:
                    errors += 1
                    if len(samples) < 3:
                        samples.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                    continue
                latencies.append(time.monotonic() - begun)

        await asyncio.gather(*(loop(i) for i in range(clients)))
        t1 = time.monotonic()
        return {"latencies": latencies, "errors": errors, "error_samples": samples,
                "t0": t0, "t1": t1, "cpu": self_cpu() - cpu0}


def main() -> int:
    result = asyncio.run(work(json.loads(sys.argv[1])))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
