"""``python -m bench.dovecot_costs``: what single IMAP commands cost Dovecot as a folder grows.

Not part of `make bench` (about 40 s). A private stack (bench.stack), one maildir Drafts
folder filled with mailbridge-style drafts (1,000, 5,000, 13,000), and per size the wall
time (median of 7, one connection, nothing else running) of the commands mailbridge's
operations are made of: SELECT, NOOP, UID SEARCH HEADER (the header searches of
write_version, _locate_by_id and the scheduler), UID STORE of a system flag and of a keyword,
UID EXPUNGE, APPEND. Stock aioimaplib, as the raw baselines.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aioimaplib

from bench.harness import RAW_USERS, bench_root, password, running_stack, seed_drafts
from bench.raw import RawImap

USER = RAW_USERS[1]
SIZES = (1_000, 5_000, 13_000)


async def timed(fn: Callable[[], Awaitable[Any]], n: int = 7) -> float:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        resp = await fn()
        samples.append((time.perf_counter() - started) * 1000)
        if getattr(resp, "result", "OK") != "OK":
            raise RuntimeError(f"command failed: {resp}")
    return round(statistics.median(samples), 2)


async def measure(port: int) -> dict[str, float]:
    conn = await RawImap.connect(port, USER, password(USER), folder=None)
    c = conn.client
    proto = c.protocol

    def raw(name: str, *args: str, prefix: str = "") -> Callable[[], Awaitable[Any]]:
        return lambda: proto.execute(aioimaplib.Command(name, proto.new_tag(), *args,
                                                        prefix=prefix, loop=proto.loop))

    out: dict[str, float] = {}
    await proto.execute(aioimaplib.Command("ENABLE", proto.new_tag(), "CONDSTORE",
                                           loop=proto.loop))
    out["SELECT (CONDSTORE on)"] = await timed(raw("SELECT", '"Drafts"'))
    proto.state = "SELECTED"
    out["NOOP"] = await timed(raw("NOOP"))
    out["UID SEARCH HEADER X-Mailbridge-Replaces (no match)"] = await timed(
        raw("SEARCH", "HEADER", "X-Mailbridge-Replaces", '"<1.1>"', prefix="UID"))
    out["UID SEARCH HEADER X-Mailbridge-Id (no match)"] = await timed(
        raw("SEARCH", "HEADER", "X-Mailbridge-Id", '"00000000-0000-4000-8000-000000000000"',
            prefix="UID"))
    out["UID SEARCH UNDELETED (index only)"] = await timed(
        raw("SEARCH", "UNDELETED", prefix="UID"))
    uids = await conn.search_header("Subject", "Seeded")
    pick = iter(uids[-60:])
    out["UID STORE +FLAGS.SILENT (\\Seen) [system flag]"] = await timed(
        lambda: c.uid("store", str(next(pick)), "+FLAGS.SILENT (\\Seen)"))
    out["UID STORE +FLAGS.SILENT ($BenchKeyword) [keyword]"] = await timed(
        lambda: c.uid("store", str(next(pick)), "+FLAGS.SILENT ($BenchKeyword)"))
    out["UID STORE -FLAGS.SILENT ($BenchKeyword) [keyword]"] = await timed(
        lambda: c.uid("store", str(next(pick)), "-FLAGS.SILENT ($BenchKeyword)"))

    async def delete_one() -> Any:
        uid = str(next(pick))
        await c.uid("store", uid, "+FLAGS.SILENT (\\Deleted)")
        started = time.perf_counter()
        resp = await raw("EXPUNGE", uid, prefix="UID")()
        delete_one.last = (time.perf_counter() - started) * 1000  # type: ignore[attr-defined]
        return resp

    samples = []
    for _ in range(7):
        await delete_one()
        samples.append(delete_one.last)  # type: ignore[attr-defined]
    out["UID EXPUNGE (1 message)"] = round(statistics.median(samples), 2)
    data = b"Subject: x\r\nX-Mailbridge-Id: 1\r\n\r\nbody\r\n"
    out["APPEND (small)"] = await timed(lambda: c.append(data, mailbox="Drafts",
                                                         flags="(\\Draft \\Seen)"))
    await conn.close()
    return out


async def main_async() -> dict[str, Any]:
    results: dict[str, Any] = {}
    with bench_root() as root, running_stack(root) as stack:
        conn = await RawImap.connect(stack.imap_port, USER, password(USER), folder="Drafts")
        await conn.close()  # Dovecot made the mailbox folders
        seeded = 0
        for size in SIZES:
            seed_drafts(stack, USER, size - seeded, start=seeded)
            seeded = size
            warm = await RawImap.connect(stack.imap_port, USER, password(USER))  # indexes
            await warm.search_header("X-Mailbridge-Replaces", "<1.1>")  # header cache
            await warm.close()
            results[str(size)] = await measure(stack.imap_port)
            print(f"{size} drafts: {json.dumps(results[str(size)])}", flush=True)
    return results


def main() -> int:
    results = asyncio.run(main_async())
    names = list(next(iter(results.values())))
    print(f"\n{'ms, median of 7':<52}" + "".join(f"{s:>9}" for s in results))
    for name in names:
        print(f"{name:<52}" + "".join(f"{results[s][name]:>9.2f}" for s in results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
