"""The measurements of `make bench`: mailbridge's API beside the raw protocols it stands on.

Every phase returns plain figures (dicts); ``bench.__main__`` prints them and writes the JSON.
Each measurement is a closed loop bounded in time (``Settings.seconds``) and count.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench import fastpaths
from bench.api import BODY_TEXT, Api, ApiError, create, session
from bench.harness import (
    ACCOUNTS,
    ALICE,
    ALL_TOKEN,
    BOB,
    CAROL,
    LISTER,
    RAW_USERS,
    ROOT,
    SCALE_ACCOUNTS,
    TOKEN,
    Service,
    Stack,
    password,
    running_service,
    seed_drafts,
)
from bench.load import Exhausted, Probe, Run, closed_loop
from bench.raw import RawImap, RawSmtp, Template
from mailbridge.devstack.stack import CATCHALL
from mailbridge.mime import strip_for_sending

RAW = RAW_USERS[0]
CACHE_BOUND = 10_000
"""DraftService's location cache holds at most this many entries (mailbridge/drafts.py,
``DraftService(cache_size=10_000)``): the memory phase fills it before it measures growth."""
RECENT = 2_000
"""get/update/delete by stable id use the most recently created drafts: cache hits."""


@dataclass
class Settings:
    seconds: float = 3.0
    """Timed length of one throughput measurement."""
    max_ops: int = 4000
    concurrency: tuple[int, ...] = (1, 8, 32)
    list_sizes: tuple[int, ...] = (100, 1_000, 10_000)
    list_rounds: int = 30
    memory_creates: int = 10_000
    memory_seconds: float = 150.0
    """Upper bound of each of the memory phase's two create runs."""
    attachment_mb: int = 20
    profile: bool = False
    profile_dir: Path | None = None


@dataclass
class Ctx:
    root: Path
    stack: Stack
    service: Service
    settings: Settings
    http: aiohttp.ClientSession
    api: Api
    """The dev token (alice and bob, as on `make run`)."""
    api_all: Api
    """ALL_TOKEN: every bench account."""
    template: Template | None = None
    d1_refs: list[tuple[int, str]] = field(default_factory=list)
    """Drafts of alice created through dialect 1: (IMAP UID, stable id)."""
    d2_ids: list[str] = field(default_factory=list)
    """Drafts of alice created through dialect 2: stable ids."""
    raw_uids: list[int] = field(default_factory=list)
    """UIDs in RAW's Drafts (raw baseline)."""
    creates: int = 0
    """Drafts the service created (each fills one entry of its location cache)."""
    profiles: dict[str, Any] = field(default_factory=dict)

    @property
    def probe(self) -> Probe:
        return Probe(self.stack, self.service)

    def log(self, text: str) -> None:
        print(f"  {text}", flush=True)

    @contextlib.asynccontextmanager
    async def profiled(self, name: str) -> AsyncIterator[None]:
        """py-spy records the service while the block runs (``--profile`` only)."""
        if not self.settings.profile or self.settings.profile_dir is None:
            yield
            return
        from bench.profiling import Spy

        spy = Spy(self.service.pid, self.settings.profile_dir / f"{name}.txt")
        await asyncio.to_thread(spy.start)
        try:
            yield
        finally:
            self.profiles[name] = await asyncio.to_thread(spy.stop)


async def run_profiled(ctx: Ctx, profile_name: str | None, name: str, clients: int,
                       op: Callable[[int], Any], **kwargs: Any) -> Run:
    if profile_name is None:
        return await closed_loop(name, clients, op, ctx.probe, **kwargs)
    async with ctx.profiled(profile_name):
        return await closed_loop(name, clients, op, ctx.probe, **kwargs)


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


async def _raw_conns(ctx: Ctx, n: int, user: str = RAW, folder: str | None = "Drafts"
                     ) -> list[RawImap]:
    return list(await asyncio.gather(*(RawImap.connect(ctx.stack.imap_port, user, password(user),
                                                       folder) for _ in range(n))))


async def _close_all(conns: list[Any]) -> None:
    await asyncio.gather(*(c.close() for c in conns))


# ------------------------------------------------------------------------------ create

async def fetch_template(ctx: Ctx, stable_id: str) -> Template:
    """The bytes mailbridge stored for draft ``stable_id`` (alice's Drafts), as the template
    of the raw baseline's messages."""
    conn = (await _raw_conns(ctx, 1, ALICE))[0]
    try:
        uids = await conn.search_header("X-Mailbridge-Id", stable_id)
        return Template(await conn.fetch(uids[-1]))
    finally:
        await conn.close()


async def api_creates(ctx: Ctx, dialect: int, clients: int, *, account: str = ALICE,
                      api: Api | None = None, seconds: float | None = None,
                      max_ops: int | None = None, profile: str | None = None,
                      on_progress: Callable[[int], None] | None = None,
                      to: str = "Bob Example <bob@example.test>",
                      keep: list[Any] | None = None) -> Run:
    api = api or ctx.api
    counter = itertools.count()
    keep_d1 = ctx.d1_refs if keep is None else keep
    keep_d2 = ctx.d2_ids if keep is None else keep

    async def op(i: int) -> None:
        uid, sid = await create(api, dialect, account, f"{i}-{next(counter)}", to)
        ctx.creates += 1
        if dialect == 1 and uid is not None:
            keep_d1.append((uid, sid))
        else:
            keep_d2.append(sid)

    return await run_profiled(ctx, profile, f"create d{dialect}", clients, op,
                              seconds=seconds or ctx.settings.seconds,
                              max_ops=max_ops or ctx.settings.max_ops, on_progress=on_progress)


async def raw_creates(ctx: Ctx, clients: int, users: tuple[str, ...] = (RAW,)) -> Run:
    """APPEND of template messages, one connection per client; client i uses users[i % n]."""
    assert ctx.template is not None
    template = ctx.template
    conns = list(await asyncio.gather(*(
        RawImap.connect(ctx.stack.imap_port, users[i % len(users)],
                        password(users[i % len(users)])) for i in range(clients))))

    async def op(i: int) -> None:
        data, _ = template.make()
        uid = await conns[i].append(data)
        if users[i % len(users)] == RAW:
            ctx.raw_uids.append(uid)

    try:
        return await closed_loop("raw APPEND", clients, op, ctx.probe,
                                 seconds=ctx.settings.seconds, max_ops=ctx.settings.max_ops)
    finally:
        await _close_all(conns)


async def phase_create(ctx: Ctx) -> dict[str, Any]:
    """Drafts/s through both dialects vs raw APPENDs/s of the same bytes at 1, 8, 32 clients."""
    _, sid = await create(ctx.api, 2, ALICE, "template")
    ctx.creates += 1
    ctx.template = await fetch_template(ctx, sid)
    rows = []
    for clients in ctx.settings.concurrency:
        raw = await raw_creates(ctx, clients)
        d1 = await api_creates(ctx, 1, clients,
                               profile="create_d1_8" if clients == 8 else None)
        d2 = await api_creates(ctx, 2, clients,
                               profile="create_d2_8" if clients == 8 else None)
        row = {"clients": clients, "raw": raw.figures(), "dialect1": d1.figures(),
               "dialect2": d2.figures(), "ratio_d1": _ratio(d1.rate, raw.rate),
               "ratio_d2": _ratio(d2.rate, raw.rate)}
        rows.append(row)
        ctx.log(f"create @{clients}: raw {raw.rate:.0f}/s, d1 {d1.rate:.0f}/s, "
                f"d2 {d2.rate:.0f}/s")
    out: dict[str, Any] = {"message_bytes": len(ctx.template.raw), "rows": rows}
    # Is one Python client process the bottleneck at 32 clients? The same load from 2 processes.
    top = max(ctx.settings.concurrency)
    multi = await multi_process_creates(ctx, procs=2, clients=top, dialect=2)
    single = next(r for r in rows if r["clients"] == top)["dialect2"]
    out["client_check"] = {
        "clients": top, "one_process_ops_s": single["ops_s"],
        "one_process_client_cpu_util": single["cpu_util_client"],
        "two_processes": multi.figures(),
        "two_over_one": _ratio(multi.rate, single["ops_s"]),
    }
    ctx.log(f"create d2 @{top} from 2 client processes: {multi.rate:.0f}/s "
            f"(1 process: {single['ops_s']}/s)")
    return out


async def multi_process_creates(ctx: Ctx, *, procs: int, clients: int, dialect: int) -> Run:
    """The same closed loop split over ``procs`` bench.worker processes (clients / procs each)."""
    cfg = {"api": ctx.service.api, "token": TOKEN, "dialect": dialect, "account": ALICE,
           "seconds": ctx.settings.seconds, "max_ops": ctx.settings.max_ops // procs}
    workers = []
    for p in range(procs):
        share = clients // procs + (1 if p < clients % procs else 0)
        args = json.dumps({**cfg, "clients": share, "tag": f"w{p}"})
        workers.append(await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.worker", args, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, cwd=ROOT))
    try:
        for w in workers:
            assert w.stdout is not None
            line = await asyncio.wait_for(w.stdout.readline(), 60)
            if line.strip() != b"READY":
                raise RuntimeError(f"bench.worker did not start: {line!r}")
        before = ctx.probe.snap()
        for w in workers:
            assert w.stdin is not None
            w.stdin.write(b"GO\n")
            await w.stdin.drain()
        results = []
        for w in workers:
            assert w.stdout is not None
            results.append(json.loads(await asyncio.wait_for(w.stdout.readline(), 120)))
        after = ctx.probe.snap()
    finally:
        for w in workers:
            if w.stdin is not None:
                w.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(w.wait(), 30)
    cpu = {k: after[k] - before[k] for k in before}
    cpu["client"] += sum(r["cpu"] for r in results)
    latencies = [x for r in results for x in r["latencies"]]
    start = min(r["t0"] for r in results)
    end = max(r["t1"] for r in results)
    ctx.creates += len(latencies)
    return Run(f"create d{dialect} x{procs} processes", clients, len(latencies),
               sum(r["errors"] for r in results), end - start, latencies, cpu,
               [s for r in results for s in r["error_samples"]])


# ------------------------------------------------------------------------ get/update/delete

async def _ensure_d1(ctx: Ctx, n: int) -> None:
    if len(ctx.d1_refs) < n:
        await api_creates(ctx, 1, 16, max_ops=n - len(ctx.d1_refs), seconds=120)


async def _ensure_d2(ctx: Ctx, n: int) -> None:
    if len(ctx.d2_ids) < n:
        await api_creates(ctx, 2, 16, max_ops=n - len(ctx.d2_ids), seconds=120)


def _slices(items: list[Any], clients: int, per: int) -> tuple[list[list[Any]], list[Any]]:
    """``clients`` disjoint slices of ``per`` items from the end of ``items``; the rest."""
    taken = items[-clients * per:] if per else []
    rest = items[:len(items) - len(taken)]
    return [taken[i::clients] for i in range(clients)], rest


async def phase_crud(ctx: Ctx, clients: int = 8) -> dict[str, Any]:
    """get by id, update, delete at ``clients`` clients, each beside its raw IMAP equivalent."""
    s = ctx.settings
    rnd = random.Random(42)
    out: dict[str, Any] = {"clients": clients}
    await _ensure_d1(ctx, 2500)
    await _ensure_d2(ctx, 2500)

    # ---- get
    conns = await _raw_conns(ctx, clients)
    raw_uids = list(ctx.raw_uids)

    async def raw_get(i: int) -> None:
        await conns[i].fetch(rnd.choice(raw_uids))

    try:
        raw = await closed_loop("raw UID FETCH BODY.PEEK[]", clients, raw_get, ctx.probe,
                                seconds=s.seconds, max_ops=s.max_ops * 3)
    finally:
        await _close_all(conns)
    d1_uids = [u for u, _ in ctx.d1_refs]
    # The most recent ids: in the service's location cache (bounded to CACHE_BOUND entries, so
    # ids made more than that many creates ago would miss it and cost a full-folder header
    # SEARCH each: the anatomy phase measures that case on its own).
    d2_ids = ctx.d2_ids[-RECENT:]

    async def get_d1(i: int) -> None:
        await ctx.api.call("GET", f"/api/v1/emails/drafts/{rnd.choice(d1_uids)}",
                           params={"account": ALICE})

    async def get_d2(i: int) -> None:
        await ctx.api.call("GET", f"/api/email/drafts/{rnd.choice(d2_ids)}")

    async def get_d2_hint(i: int) -> None:
        await ctx.api.call("GET", f"/api/email/drafts/{rnd.choice(d2_ids)}",
                           params={"from_account_id": ALICE})

    g1 = await run_profiled(ctx, "get_d1_8", "get d1", clients, get_d1, seconds=s.seconds,
                            max_ops=s.max_ops)
    g2 = await run_profiled(ctx, "get_d2_8", "get d2", clients, get_d2, seconds=s.seconds,
                            max_ops=s.max_ops)
    g2h = await closed_loop("get d2 +from_account_id", clients, get_d2_hint, ctx.probe,
                            seconds=s.seconds, max_ops=s.max_ops)
    out["get"] = {"raw": raw.figures(), "dialect1_by_uid": g1.figures(),
                  "dialect2_by_id": g2.figures(), "dialect2_by_id_with_account": g2h.figures(),
                  "ratio_d1": _ratio(g1.rate, raw.rate), "ratio_d2": _ratio(g2.rate, raw.rate),
                  "ratio_d2_with_account": _ratio(g2h.rate, raw.rate)}
    ctx.log(f"get @{clients}: raw {raw.rate:.0f}/s, d1 {g1.rate:.0f}/s p99 "
            f"{g1.figures()['p99_ms']} ms, d2 {g2.rate:.0f}/s p99 {g2.figures()['p99_ms']} ms, "
            f"d2+account {g2h.rate:.0f}/s")

    # ---- update (each client owns its drafts; one draft after the other, round robin)
    assert ctx.template is not None
    template = ctx.template
    raw_slices, raw_rest = _slices(ctx.raw_uids, clients, 40)
    conns = await _raw_conns(ctx, clients)
    turn = [0] * clients

    async def raw_update(i: int) -> None:
        mine = raw_slices[i]
        k = turn[i] % len(mine)
        turn[i] += 1
        data, _ = template.make()
        new = await conns[i].append(data)
        await conns[i].store_deleted(mine[k])
        await conns[i].uid_expunge(mine[k])
        mine[k] = new

    try:
        raw_u = await closed_loop("raw APPEND+STORE+EXPUNGE", clients, raw_update, ctx.probe,
                                  seconds=s.seconds, max_ops=s.max_ops)
    finally:
        await _close_all(conns)
    ctx.raw_uids = raw_rest + [u for sl in raw_slices for u in sl]

    d1_slices, d1_rest = _slices(ctx.d1_refs, clients, 40)
    d2_slices, _ = _slices(ctx.d2_ids, clients, 40)
    turn1, turn2 = [0] * clients, [0] * clients
    n = itertools.count()

    async def update_d1(i: int) -> None:
        mine = d1_slices[i]
        k = turn1[i] % len(mine)
        turn1[i] += 1
        uid, sid = mine[k]
        data = await ctx.api.call("PUT", f"/api/v1/emails/drafts/{uid}",
                                  json_body={"account": ALICE, "subject": f"Updated {next(n)}"})
        mine[k] = (int(data["data"]["uid"]), sid)

    async def update_d2(i: int) -> None:
        mine = d2_slices[i]
        k = turn2[i] % len(mine)
        turn2[i] += 1
        await ctx.api.call("POST", "/api/email/drafts",
                           json_body={"uid": mine[k], "subject": f"Updated {next(n)}"})

    u1 = await closed_loop("update d1", clients, update_d1, ctx.probe, seconds=s.seconds,
                           max_ops=s.max_ops)
    u2 = await run_profiled(ctx, "update_d2_8", "update d2", clients, update_d2,
                            seconds=s.seconds, max_ops=s.max_ops)
    ctx.d1_refs = d1_rest + [r for sl in d1_slices for r in sl]
    out["update"] = {"raw": raw_u.figures(), "dialect1": u1.figures(), "dialect2": u2.figures(),
                     "ratio_d1": _ratio(u1.rate, raw_u.rate),
                     "ratio_d2": _ratio(u2.rate, raw_u.rate)}
    ctx.log(f"update @{clients}: raw {raw_u.rate:.0f}/s, d1 {u1.rate:.0f}/s, d2 {u2.rate:.0f}/s")

    # ---- delete (each client deletes its own drafts)
    def split(items: list[Any]) -> list[list[Any]]:
        return [items[i::clients] for i in range(clients)]

    updated = {sid for sl in d2_slices for sid in sl}
    raw_del = split(list(ctx.raw_uids))
    d1_del = split(list(ctx.d1_refs))
    d2_del = split([sid for sid in ctx.d2_ids[-RECENT:] if sid not in updated])
    conns = await _raw_conns(ctx, clients)

    async def raw_delete(i: int) -> None:
        if not raw_del[i]:
            raise Exhausted
        uid = raw_del[i].pop()
        await conns[i].store_deleted(uid)
        await conns[i].uid_expunge(uid)

    try:
        raw_d = await closed_loop("raw STORE+EXPUNGE", clients, raw_delete, ctx.probe,
                                  seconds=s.seconds, max_ops=s.max_ops)
    finally:
        await _close_all(conns)

    async def delete_d1(i: int) -> None:
        if not d1_del[i]:
            raise Exhausted
        uid, _ = d1_del[i].pop()
        await ctx.api.call("DELETE", f"/api/v1/emails/drafts/{uid}", params={"account": ALICE})

    async def delete_d2(i: int) -> None:
        if not d2_del[i]:
            raise Exhausted
        await ctx.api.call("DELETE", f"/api/email/drafts/{d2_del[i].pop()}", expect=204)

    x1 = await closed_loop("delete d1", clients, delete_d1, ctx.probe, seconds=s.seconds,
                           max_ops=s.max_ops)
    x2 = await run_profiled(ctx, "delete_d2_8", "delete d2", clients, delete_d2,
                            seconds=s.seconds, max_ops=s.max_ops)
    ctx.raw_uids = [u for sl in raw_del for u in sl]
    ctx.d1_refs = [r for sl in d1_del for r in sl]
    left = {r for sl in d2_del for r in sl} | updated
    ctx.d2_ids = [r for r in ctx.d2_ids[:-RECENT]] + [r for r in ctx.d2_ids[-RECENT:] if r in left]
    out["delete"] = {"raw": raw_d.figures(), "dialect1": x1.figures(), "dialect2": x2.figures(),
                     "ratio_d1": _ratio(x1.rate, raw_d.rate),
                     "ratio_d2": _ratio(x2.rate, raw_d.rate)}
    ctx.log(f"delete @{clients}: raw {raw_d.rate:.0f}/s, d1 {x1.rate:.0f}/s, d2 {x2.rate:.0f}/s")
    return out


# ------------------------------------------------------------------------------ send

async def phase_send(ctx: Ctx, levels: tuple[int, ...] = (1, 8)) -> dict[str, Any]:
    """Sends/s through the API vs aiosmtplib submission + APPEND to Sent (one SMTP and one IMAP
    connection per client, logged in once), to the dev SMTP server.

    A second baseline, ``raw_draft``, is what a mail client does to send a draft: the same
    submission and APPEND to Sent, then UID STORE \\Deleted + UID EXPUNGE of a draft in a Drafts
    folder of about the same size as the API's (raw1's, filled by the raw creates)."""
    assert ctx.template is not None
    wire = strip_for_sending(ctx.template.raw)
    rows = [await _send_level(ctx, clients, wire) for clients in levels]
    return {"message_bytes": len(wire), "rows": rows}


async def _send_level(ctx: Ctx, clients: int, wire: bytes) -> dict[str, Any]:
    s = ctx.settings
    budget = 60 * clients if clients > 1 else 150  # drafts made ready for each dialect
    smtps = list(await asyncio.gather(*(RawSmtp.connect(ctx.stack.smtp_port, RAW,
                                                        password(RAW))
                                        for _ in range(clients))))
    imaps = await _raw_conns(ctx, clients, folder=None)

    async def raw_send(i: int) -> None:
        await smtps[i].send(RAW, [BOB], wire)
        await imaps[i].append(wire, folder="Sent", flags="(\\Seen)")

    drafts = await _raw_conns(ctx, clients)  # Drafts selected
    per = 200  # raw drafts to remove per client; a run that uses them up still has its rate
    for _ in range(clients * per - len(ctx.raw_uids)):  # only when the create phase did not run
        ctx.raw_uids.append(await drafts[0].append(ctx.template.make()[0]))
    slices, rest = _slices(ctx.raw_uids, clients, per)

    async def raw_draft_send(i: int) -> None:
        if not slices[i]:
            raise Exhausted
        uid = slices[i].pop()
        await smtps[i].send(RAW, [BOB], wire)
        await drafts[i].append(wire, folder="Sent", flags="(\\Seen)")
        await drafts[i].store_deleted(uid)
        await drafts[i].uid_expunge(uid)

    try:
        raw = await closed_loop("raw SMTP + APPEND Sent", clients, raw_send, ctx.probe,
                                seconds=s.seconds, max_ops=s.max_ops)
        raw_draft = await closed_loop("raw draft send", clients, raw_draft_send, ctx.probe,
                                      seconds=s.seconds, max_ops=s.max_ops)
        if not any(slices):
            raw_draft.note = "ran out of raw drafts before the time was up"
    finally:
        ctx.raw_uids = rest + [u for sl in slices for u in sl]
        await _close_all(smtps)
        await _close_all(imaps)
        await _close_all(drafts)

    ready1: list[tuple[int, str]] = []
    ready2: list[str] = []
    await api_creates(ctx, 1, 16, max_ops=budget, seconds=120, keep=ready1)
    await api_creates(ctx, 2, 16, max_ops=budget, seconds=120, keep=ready2)
    q1 = [ready1[i::clients] for i in range(clients)]
    q2 = [ready2[i::clients] for i in range(clients)]

    async def send_d1(i: int) -> None:
        if not q1[i]:
            raise Exhausted
        uid, _ = q1[i].pop()
        await ctx.api.call("POST", f"/api/v1/emails/drafts/{uid}/send",
                           json_body={"account": ALICE})

    async def send_d2(i: int) -> None:
        if not q2[i]:
            raise Exhausted
        await ctx.api.call("POST", f"/api/email/drafts/{q2[i].pop()}/send")

    s1 = await closed_loop("send d1", clients, send_d1, ctx.probe, seconds=s.seconds,
                           max_ops=s.max_ops)
    s2 = await run_profiled(ctx, f"send_d2_{clients}", "send d2", clients, send_d2,
                            seconds=s.seconds, max_ops=s.max_ops)
    for run, left in ((s1, q1), (s2, q2)):
        if not any(left):
            run.note = "ran out of prepared drafts before the time was up"
    row = {"clients": clients, "raw": raw.figures(), "dialect1": s1.figures(),
           "dialect2": s2.figures(), "ratio_d1": _ratio(s1.rate, raw.rate),
           "ratio_d2": _ratio(s2.rate, raw.rate), "raw_draft": raw_draft.figures(),
           "ratio_d1_vs_raw_draft": _ratio(s1.rate, raw_draft.rate),
           "ratio_d2_vs_raw_draft": _ratio(s2.rate, raw_draft.rate)}
    ctx.log(f"send @{clients}: raw {raw.rate:.0f}/s, raw draft send {raw_draft.rate:.0f}/s, "
            f"d1 {s1.rate:.0f}/s, d2 {s2.rate:.0f}/s")
    return row


# ------------------------------------------------------------------------------ list

async def _time_list(api: Api, dialect: int, rounds: int) -> tuple[float, list[float]]:
    """(ms of the first call, ms of the next ``rounds`` calls) for the first page (50)."""
    if dialect == 2:
        path, params = "/api/email/drafts", {"from_account_id": LISTER, "limit": "50"}
    else:
        path, params = "/api/v1/emails/drafts", {"account": LISTER, "limit": "50"}
    samples = []
    first = 0.0
    for i in range(rounds + 1):
        started = time.perf_counter()
        await api.call("GET", path, params=params)
        ms = (time.perf_counter() - started) * 1000
        if i:
            samples.append(ms)
        else:
            first = ms
    return first, samples


async def phase_list(ctx: Ctx) -> dict[str, Any]:
    """First list page with 100, 1,000 and 10,000 drafts in the folder (one client)."""
    s = ctx.settings
    await _time_list(ctx.api_all, 2, 0)  # logs lister in once: Dovecot makes its mailboxes
    rows = []
    seeded = 0
    for size in s.list_sizes:
        seed_drafts(ctx.stack, LISTER, size - seeded, start=seeded)
        seeded = size
        first2, d2 = await _time_list(ctx.api_all, 2, s.list_rounds)
        _, d1 = await _time_list(ctx.api_all, 1, s.list_rounds)
        if size == max(s.list_sizes) and s.profile:  # extra calls, not in the figures
            async with ctx.profiled(f"list_d2_{size}"):
                await _time_list(ctx.api_all, 2, 2 * s.list_rounds)
        d2.sort()
        d1.sort()
        rows.append({"drafts": size, "first_call_ms": round(first2, 1),
                     "dialect2_median_ms": round(statistics.median(d2), 2),
                     "dialect2_p99_ms": round(d2[-1] if len(d2) < 100 else
                                              d2[int(len(d2) * 0.99)], 2),
                     "dialect1_median_ms": round(statistics.median(d1), 2)})
        ctx.log(f"list {size}: d2 {rows[-1]['dialect2_median_ms']} ms, "
                f"d1 {rows[-1]['dialect1_median_ms']} ms (first call {first2:.0f} ms)")
    base = rows[0]
    for row in rows:
        row["ratio_d2"] = _ratio(row["dialect2_median_ms"], base["dialect2_median_ms"])
        row["ratio_d1"] = _ratio(row["dialect1_median_ms"], base["dialect1_median_ms"])
    return {"page": 50, "rounds": s.list_rounds, "rows": rows}


# ------------------------------------------------------------------------------ scale

async def phase_scale(ctx: Ctx, per_account: int = 8) -> dict[str, Any]:
    """Creates at ``per_account`` clients on 1 account vs on each of 4 accounts at once."""
    s = ctx.settings
    out: dict[str, Any] = {"clients_per_account": per_account}
    for n in (1, 4):
        accounts = SCALE_ACCOUNTS[:n]
        raw = await raw_creates(ctx, per_account * n, RAW_USERS[:n])
        counter = itertools.count()

        async def op(i: int, accounts: tuple[str, ...] = accounts,
                     c: itertools.count[int] = counter) -> None:
            await create(ctx.api_all, 2, accounts[i % len(accounts)], f"s{next(c)}")
            ctx.creates += 1

        api = await closed_loop(f"create d2 x{n} accounts", per_account * n, op, ctx.probe,
                                seconds=s.seconds, max_ops=s.max_ops)
        out[f"accounts_{n}"] = {"raw": raw.figures(), "dialect2": api.figures(),
                                "ratio": _ratio(api.rate, raw.rate)}
        ctx.log(f"scale {n} account(s) x {per_account} clients: raw {raw.rate:.0f}/s, "
                f"d2 {api.rate:.0f}/s")
    one, four = out["accounts_1"], out["accounts_4"]
    out["api_4_over_1"] = _ratio(four["dialect2"]["ops_s"], one["dialect2"]["ops_s"])
    out["raw_4_over_1"] = _ratio(four["raw"]["ops_s"], one["raw"]["ops_s"])
    return out


# ------------------------------------------------------------------------------ pool variant

async def phase_pool(ctx: Ctx, pool_size: int = 32) -> dict[str, Any]:
    """A/B of the accounts' IMAP pool size: the main service (pool_size 4, the default) and a
    second one with ``pool_size`` connections, back to back on the same folders: get by UID
    (no cache involved) and create, at 8 clients. Is the pool the limit?"""
    s = ctx.settings
    out: dict[str, Any] = {"pool_size": pool_size}
    uids = [u for u, _ in ctx.d1_refs]
    if len(uids) < 100:
        await _ensure_d1(ctx, 500)
        uids = [u for u, _ in ctx.d1_refs]
    rnd = random.Random(7)
    with running_service(ctx.root, ctx.stack, pool_size=pool_size) as other:
        for label, service in (("pool_4", ctx.service), (f"pool_{pool_size}", other)):
            api = Api(ctx.http, service.api, TOKEN)
            probe = Probe(ctx.stack, service)

            async def get(i: int, api: Api = api) -> None:
                await api.call("GET", f"/api/v1/emails/drafts/{rnd.choice(uids)}",
                               params={"account": ALICE})

            g = await closed_loop("get d1", 8, get, probe, seconds=s.seconds, max_ops=s.max_ops)
            saved, ctx.service = ctx.service, service
            try:
                c = await api_creates(ctx, 2, 8, api=api, keep=[])
            finally:
                ctx.service = saved
            out[label] = {"get_d1_8": g.figures(), "create_d2_8": c.figures()}
            ctx.log(f"{label}: get d1 @8 {g.rate:.0f}/s p99 {g.figures()['p99_ms']} ms; "
                    f"create d2 @8 {c.rate:.0f}/s p99 {c.figures()['p99_ms']} ms")
    return out


# ------------------------------------------------------------------------------ anatomy

async def folder_sizes(ctx: Ctx) -> dict[str, int]:
    """Messages in the folders the operations touch (header SEARCHes cost in proportion)."""
    out = {}
    for user, folders in ((ALICE, ("Drafts", "Sent")), (BOB, ("INBOX",)), (RAW, ("Drafts",))):
        conn = (await _raw_conns(ctx, 1, user, folder=None))[0]
        try:
            for folder in folders:
                out[f"{user.split('@')[0]}/{folder}"] = await conn.messages(folder)
        finally:
            await conn.close()
    return out


def _anatomy_row(trace: dict[str, Any]) -> dict[str, Any]:
    """The per-request figures of one group of requests (every route but the background)."""
    r: dict[str, Any] = {"requests": 0, "wall_s": 0.0, "imap_s": 0.0, "pool_wait_s": 0.0,
                         "smtp_s": 0.0, "commands": 0, "by_command": {}}
    for route, t in trace.items():
        if route == "(background)":
            continue
        for k in ("requests", "wall_s", "imap_s", "pool_wait_s", "smtp_s", "commands"):
            r[k] += t[k]
        for name, c in t["by_command"].items():
            have = r["by_command"].setdefault(name, {"count": 0, "seconds": 0.0})
            have["count"] += c["count"]
            have["seconds"] += c["seconds"]
    n = max(r["requests"], 1)
    top = sorted(r["by_command"].items(), key=lambda kv: -kv[1]["seconds"])
    return {
        "requests": r["requests"],
        "wall_ms": round(r["wall_s"] * 1000 / n, 2),
        "imap_commands": round(r["commands"] / n, 1),
        "imap_ms": round(r["imap_s"] * 1000 / n, 2),
        "pool_wait_ms": round(r["pool_wait_s"] * 1000 / n, 2),
        "smtp_ms": round(r["smtp_s"] * 1000 / n, 2),
        "rest_ms": round((r["wall_s"] - r["imap_s"] - r["pool_wait_s"] - r["smtp_s"]) * 1000 / n,
                         2),
        "commands": {k: {"per_request": round(v["count"] / n, 2),
                         "ms_per_request": round(v["seconds"] * 1000 / n, 2)} for k, v in top},
    }


async def phase_anatomy(ctx: Ctx, n: int = 30) -> dict[str, Any]:
    """One client, one operation after the other, on a traced copy of the service
    (bench.traced): IMAP commands per operation, the time in them (round trip including
    Dovecot's work), waiting for a pooled connection, in SMTP submission, and the rest
    (mailbridge's own code, HTTP, JSON; negative when lookups in several accounts ran in
    parallel). Then 3 s idle: what the scheduler does in the background."""
    out: dict[str, Any] = {"folders": await folder_sizes(ctx)}
    rows: dict[str, Any] = {}
    with running_service(ctx.root, ctx.stack, traced=True) as traced:
        api = Api(ctx.http, traced.api, TOKEN)
        api_all = Api(ctx.http, traced.api, ALL_TOKEN)
        d1: list[tuple[int, str]] = []
        d2: list[str] = []
        await api.call("GET", "/__bench/trace")

        async def group(name: str, calls: Any) -> None:
            for call in calls:
                await call()
            rows[name] = _anatomy_row(await api.call("GET", "/__bench/trace"))

        async def c1(i: int) -> None:
            uid, sid = await create(api, 1, ALICE, f"a{i}")
            d1.append((uid or 0, sid))

        async def c2(i: int) -> None:
            d2.append((await create(api, 2, ALICE, f"a{i}"))[1])

        async def u1(i: int) -> None:
            data = await api.call("PUT", f"/api/v1/emails/drafts/{d1[i][0]}",
                                  json_body={"account": ALICE, "subject": f"changed {i}"})
            d1[i] = (int(data["data"]["uid"]), d1[i][1])

        half = range(n // 2)
        rest = range(n // 2, n)
        await group("create d1", [lambda i=i: c1(i) for i in range(n)])
        await group("create d2", [lambda i=i: c2(i) for i in range(n)])
        await group("get d1 (by UID)", [
            lambda i=i: api.call("GET", f"/api/v1/emails/drafts/{d1[i][0]}",
                                 params={"account": ALICE}) for i in range(n)])
        await group("get d2 (by id)", [
            lambda i=i: api.call("GET", f"/api/email/drafts/{d2[i]}") for i in range(n)])
        await group("get d2 (by id, ?from_account_id)", [
            lambda i=i: api.call("GET", f"/api/email/drafts/{d2[i]}",
                                 params={"from_account_id": ALICE}) for i in range(n)])
        missing = ctx.d2_ids[:n]  # made by the main service: not in this instance's cache
        await group("get d2 (by id, ?from_account_id, not in this instance's cache)", [
            lambda sid=sid: api.call("GET", f"/api/email/drafts/{sid}",
                                     params={"from_account_id": ALICE}) for sid in missing])
        await group("update d1", [lambda i=i: u1(i) for i in half])
        await group("update d2", [
            lambda i=i: api.call("POST", "/api/email/drafts",
                                 json_body={"uid": d2[i], "subject": f"changed {i}"})
            for i in half])
        await group("send d1", [
            lambda i=i: api.call("POST", f"/api/v1/emails/drafts/{d1[i][0]}/send",
                                 json_body={"account": ALICE}) for i in half])
        await group("send d2", [
            lambda i=i: api.call("POST", f"/api/email/drafts/{d2[i]}/send") for i in half])
        await group("delete d1", [
            lambda i=i: api.call("DELETE", f"/api/v1/emails/drafts/{d1[i][0]}",
                                 params={"account": ALICE}) for i in rest])
        await group("delete d2", [
            lambda i=i: api.call("DELETE", f"/api/email/drafts/{d2[i]}", expect=204)
            for i in rest])
        await group("list d2 (lister's folder)", [
            lambda: api_all.call("GET", "/api/email/drafts",
                                 params={"from_account_id": LISTER, "limit": "50"})
            for _ in range(n)])
        before = Probe(ctx.stack, traced).snap()
        main_before = ctx.service.cpu()
        await asyncio.sleep(3.0)
        after = Probe(ctx.stack, traced).snap()
        idle = await api.call("GET", "/__bench/trace")
    background = idle.get("(background)", {"commands": 0, "imap_s": 0.0, "by_command": {}})
    out["routes"] = rows
    out["idle_3s"] = {
        "scheduler_imap_commands_per_s": round(background["commands"] / 3, 1),
        "scheduler_imap_ms_per_s": round(background["imap_s"] * 1000 / 3, 1),
        "commands": {k: v["count"] for k, v in background["by_command"].items()},
        "cpu_util_traced_service": round((after["service"] - before["service"]) / 3, 3),
        "cpu_util_main_service": round((ctx.service.cpu() - main_before) / 3, 3),
        "cpu_util_dovecot_both_schedulers": round((after["dovecot"] - before["dovecot"]) / 3, 3),
    }
    for name, row in rows.items():
        top = ", ".join(f"{k} {v['per_request']}x {v['ms_per_request']}ms"
                        for k, v in list(row["commands"].items())[:3])
        ctx.log(f"{name}: {row['wall_ms']} ms = IMAP {row['imap_ms']} ms "
                f"({row['imap_commands']} cmds) + pool wait {row['pool_wait_ms']} + SMTP "
                f"{row['smtp_ms']} + rest {row['rest_ms']}; top: {top}")
    ctx.log(f"idle: {out['idle_3s']}")
    return out


# ------------------------------------------------------------------------------ memory

async def phase_memory_steady(ctx: Ctx, clients: int = 8) -> dict[str, Any]:
    """RSS after warm-up (the location cache filled to its bound) and after 10,000 creates more.

    Creates go to carol's account (the ALL token) so alice's folder stays as the other phases
    left it.
    """
    s = ctx.settings
    warm_ops = max(1_000, CACHE_BOUND - ctx.creates)
    warm = await api_creates(ctx, 2, clients, account=CAROL, api=ctx.api_all,
                             max_ops=warm_ops, seconds=s.memory_seconds, keep=[])
    await asyncio.sleep(1.0)
    rss_warm, _ = ctx.service.rss_kib()
    samples: list[tuple[int, int]] = [(0, rss_warm)]
    step = max(1, s.memory_creates // 10)

    def progress(done: int) -> None:
        if done % step == 0:
            samples.append((done, ctx.service.rss_kib()[0]))

    run = await api_creates(ctx, 2, clients, account=CAROL, api=ctx.api_all,
                            max_ops=s.memory_creates, seconds=s.memory_seconds,
                            on_progress=progress, keep=[])
    await asyncio.sleep(1.0)
    rss_after, _ = ctx.service.rss_kib()
    growth = rss_after - rss_warm
    half = samples[len(samples) // 2:]
    slope = None
    if len(half) >= 2 and half[-1][0] > half[0][0]:
        slope = round((half[-1][1] - half[0][1]) / (half[-1][0] - half[0][0]) * 1000, 1)
    tolerance_kib = max(2048, rss_warm // 50)  # allocator noise: 2 MiB or 2 %
    return {"warmup_creates": warm.ops, "creates_before_warm_rss": ctx.creates - run.ops,
            "creates": run.ops, "create_ops_s": round(run.rate, 1), "errors": run.errors,
            "rss_warm_mib": round(rss_warm / 1024, 1), "rss_after_mib": round(rss_after / 1024, 1),
            "growth_mib": round(growth / 1024, 2),
            "growth_kib_per_1000_creates_second_half": slope,
            "samples": [{"creates": c, "rss_mib": round(r / 1024, 1)} for c, r in samples],
            "tolerance_mib": round(tolerance_kib / 1024, 1),
            "pass": run.ops >= s.memory_creates and growth <= tolerance_kib}


async def phase_attachment(ctx: Ctx) -> dict[str, Any]:
    """Peak RSS of the service while it creates and reads back a draft with a big attachment."""
    from bench.imap_read import fetch_attachment

    size = ctx.settings.attachment_mb * 1024 * 1024
    data = os.urandom(size)
    body = {"from_account_id": ALICE, "to": ["bob@example.test"], "subject": "big attachment",
            "body_text": "see attachment",
            "attachments": [{"filename": "big.bin", "content_type": "application/octet-stream",
                             "data_base64": base64.b64encode(data).decode()}]}
    payload = json.dumps(body).encode()
    del body
    rss_before, _ = ctx.service.rss_kib()
    ctx.service.reset_peak()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    started = time.perf_counter()
    async with ctx.http.post(f"{ctx.service.api}/api/email/drafts", data=payload,
                             headers=headers) as resp:
        created = await resp.json()
        if resp.status != 201:
            raise ApiError("POST", "/api/email/drafts", resp.status, str(created).encode())
    create_s = time.perf_counter() - started
    _, peak_create = ctx.service.rss_kib()
    started = time.perf_counter()
    record = await ctx.api.call("GET", f"/api/email/drafts/{created['uid']}")
    read_s = time.perf_counter() - started
    # the record lists attachments without bytes: read them back from the mail server itself
    started = time.perf_counter()
    back = await fetch_attachment(ctx.stack.imap_port, ALICE, password(ALICE), "big.bin")
    raw_s = time.perf_counter() - started
    _, peak = ctx.service.rss_kib()
    growth = (peak - rss_before) * 1024
    same = hashlib.sha256(back).digest() == hashlib.sha256(data).digest()
    del back
    # ... and through the API: the bytes streamed, then the JSON (base64) the Jasni SDK reads
    draft = await ctx.api.call("GET", f"/api/v1/emails/drafts/{created['uid']}?account={ALICE}")
    url = (f"{ctx.service.api}/api/v1/emails/{draft['data']['draft']['uid']}/attachments/0"
           f"?account={ALICE}&folder=Drafts")
    downloads: dict[str, dict[str, Any]] = {}
    for name, accept in (("stream", "application/octet-stream"), ("json", "application/json")):
        rss_start, _ = ctx.service.rss_kib()
        ctx.service.reset_peak()
        started = time.perf_counter()
        async with ctx.http.get(url, headers={"Authorization": f"Bearer {TOKEN}",
                                              "Accept": accept}) as resp:
            got = await resp.read()
        took = time.perf_counter() - started
        _, peak_read = ctx.service.rss_kib()
        if accept == "application/json":
            got = base64.b64decode(json.loads(got)["data"]["attachment"]["content"])
        downloads[name] = {
            "s": round(took, 2), "vs_raw_imap": _ratio(raw_s, took),
            "growth_x_attachment": round((peak_read - rss_start) * 1024 / size, 2),
            "bytes_identical": hashlib.sha256(got).digest() == hashlib.sha256(data).digest()}
        del got
    stream = downloads["stream"]
    return {"attachment_mb": ctx.settings.attachment_mb, "create_s": round(create_s, 2),
            "read_s": round(read_s, 2), "bytes_identical": same,
            "listed_size": record["attachments"][0]["size"] if record.get("attachments") else None,
            "rss_before_mib": round(rss_before / 1024, 1), "rss_peak_mib": round(peak / 1024, 1),
            "growth_create_x": round((peak_create - rss_before) * 1024 / size, 2),
            "growth_x_attachment": round(growth / size, 2), "target": "< 6.0",
            "raw_imap_read_s": round(raw_s, 2), "download": downloads,
            "stream_target": "< 0.5x the attachment",
            "stream_pass": stream["bytes_identical"] and stream["growth_x_attachment"] < 0.5,
            "pass": same and growth / size < 6.0}


# ------------------------------------------------------------------------------ watching

WATCH_ACCOUNTS = ACCOUNTS + tuple(
    (uuid.uuid5(uuid.NAMESPACE_DNS, email), email, email.split("@")[0].title())
    for email in (*RAW_USERS, CATCHALL))
"""Ten accounts: the bench's five, the four raw users, the dev stack's catch-all."""


async def _imap_commands(http: aiohttp.ClientSession, service: Service) -> float:
    """IMAP commands the service has sent so far (its mailbridge_imap_command_duration_seconds
    count, every account and command: IDLE and the watchers' syncs included)."""
    async with http.get(f"{service.api}/metrics",
                        headers={"Authorization": f"Bearer {ALL_TOKEN}"}) as reply:
        text = await reply.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("mailbridge_imap_command_duration_seconds_count{"))


async def phase_watching(ctx: Ctx, window: float = 20.0) -> dict[str, Any]:
    """The idle cost of watching (issue 12): two instances with ten accounts each, both idle,
    once with ``watch_mailboxes = false`` (the baseline) and once with it on (20 IMAP
    connections per instance, IDLE on Dovecot): IMAP commands per second from the services'
    own metrics, and the CPU of Dovecot and of the two services over ``window`` seconds."""
    out: dict[str, Any] = {"accounts": len(WATCH_ACCOUNTS), "instances": 2,
                           "window_s": window}
    for label, watch in (("watch_off", False), ("watch_on", True)):
        with running_service(ctx.root, ctx.stack, name=f"{label}-a", accounts=WATCH_ACCOUNTS,
                             server={"watch_mailboxes": watch}) as first, \
                running_service(ctx.root, ctx.stack, name=f"{label}-b",
                                accounts=WATCH_ACCOUNTS,
                                server={"watch_mailboxes": watch}) as second:
            services = (first, second)
            await asyncio.sleep(5.0)  # logins, and the watches' first look at every folder
            commands = [await _imap_commands(ctx.http, s) for s in services]
            dovecot, cpu = ctx.stack.dovecot_cpu(), sum(s.cpu() for s in services)
            started = time.monotonic()
            await asyncio.sleep(window)
            took = time.monotonic() - started
            sent = sum([await _imap_commands(ctx.http, s) for s in services]) - sum(commands)
            out[label] = {
                "imap_commands_per_s": round(sent / took, 2),
                "cpu_util_dovecot": round((ctx.stack.dovecot_cpu() - dovecot) / took, 4),
                "cpu_util_services": round((sum(s.cpu() for s in services) - cpu) / took, 4),
                "rss_mib_per_service": round(first.rss_kib()[0] / 1024, 1),
            }
        ctx.log(f"{label}: {out[label]}")
    return out


# ------------------------------------------------------------------------------ agents

@contextlib.asynccontextmanager
async def _mcp_client(ctx: Ctx) -> AsyncIterator[Any]:
    """An MCP client (the official SDK's) of the service's /mcp, with the dev token."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"},
                                  timeout=60) as http:
        async with Client(streamable_http_client(f"{ctx.service.api}/mcp",
                                                 http_client=http)) as client:
            yield client


async def _rate(calls: list[Callable[[], Any]], clients: int) -> float:
    """Calls per second of ``calls`` spread over ``clients`` concurrent clients."""
    slices = [calls[i::clients] for i in range(clients)]

    async def run(mine: list[Callable[[], Any]]) -> None:
        for call in mine:
            await call()

    started = time.perf_counter()
    await asyncio.gather(*(run(mine) for mine in slices))
    return len(calls) / (time.perf_counter() - started)


async def phase_agents(ctx: Ctx, clients: int = 8, per_client: int = 40,
                       rounds: int = 20) -> dict[str, Any]:
    """Issue 13's surfaces beside the API calls they stand for, in the same run: get_draft and
    create_draft over MCP (the SDK's own client, one session per client) against GET and POST
    /api/email/drafts at ``clients`` clients; the review page's list fragment (every draft
    awaiting approval and the 50 newest of each of the token's two accounts, as HTML) against
    the API's list page of one account (50)."""
    await _ensure_d2(ctx, clients * per_client)
    ids = ctx.d2_ids[-clients * per_client:]
    creates = clients * per_client // 4
    out: dict[str, Any] = {"clients": clients, "gets": len(ids), "creates": creates}

    def api_get(i: str) -> Callable[[], Any]:
        return lambda: ctx.api.call("GET", f"/api/email/drafts/{i}")

    def api_create(n: int) -> Callable[[], Any]:
        return lambda: create(ctx.api, 2, ALICE, f"agents-api-{n}")

    api_get_rate = await _rate([api_get(i) for i in ids], clients)
    api_create_rate = await _rate([api_create(n) for n in range(creates)], clients)
    async with contextlib.AsyncExitStack() as stack:
        sessions = [await stack.enter_async_context(_mcp_client(ctx)) for _ in range(clients)]
        turn = itertools.count()

        async def checked(tool: str, args: dict[str, Any]) -> None:
            result = await sessions[next(turn) % clients].call_tool(tool, args)
            if result.is_error:
                raise RuntimeError(f"{tool}: {result.content}")

        def mcp_get(i: str) -> Callable[[], Any]:
            return lambda: checked("get_draft", {"draft_id": i})

        def mcp_create(n: int) -> Callable[[], Any]:
            return lambda: checked("create_draft", {
                "account": ALICE, "to": ["Bob Example <bob@example.test>"],
                "subject": f"Bench draft agents-mcp-{n}", "body_text": BODY_TEXT,
                "context_type": "bench", "context_id": f"agents-mcp-{n}"})

        mcp_get_rate = await _rate([mcp_get(i) for i in ids], clients)
        mcp_create_rate = await _rate([mcp_create(n) for n in range(creates)], clients)
    ctx.creates += 2 * creates
    out["get_per_s"] = {"api": round(api_get_rate, 1), "mcp": round(mcp_get_rate, 1),
                        "ratio": _ratio(mcp_get_rate, api_get_rate)}
    out["create_per_s"] = {"api": round(api_create_rate, 1), "mcp": round(mcp_create_rate, 1),
                           "ratio": _ratio(mcp_create_rate, api_create_rate)}

    async def timed(path: str, params: dict[str, str] | None = None) -> float:
        started = time.perf_counter()
        async with ctx.http.get(ctx.service.api + path, params=params,
                                headers=ctx.api.headers) as reply:
            await reply.read()
            if reply.status != 200:
                raise ApiError("GET", path, reply.status, b"")
        return (time.perf_counter() - started) * 1000

    page, listed = [], []
    for _ in range(rounds):
        page.append(await timed("/review/drafts"))
        listed.append(await timed("/api/email/drafts", {"from_account_id": ALICE,
                                                        "limit": "50"}))
    out["review_list_ms"] = {"api_list_median": round(statistics.median(listed), 1),
                             "review_median": round(statistics.median(page), 1),
                             "ratio": _ratio(statistics.median(page), statistics.median(listed))}
    ctx.log(f"agents: {out}")
    return out


async def phase_fastpaths(ctx: Ctx) -> dict[str, Any]:
    """Each remaining hand-written fast path A/B against its twin, alone (bench.fastpaths)."""
    return await asyncio.to_thread(fastpaths.phase_fastpaths)


# ------------------------------------------------------------------------------ driver

PHASES: dict[str, Callable[[Ctx], Any]] = {
    "create": phase_create,
    "crud": phase_crud,
    "send": phase_send,
    "list": phase_list,
    "scale": phase_scale,
    "anatomy": phase_anatomy,
    "pool": phase_pool,
    "memory": phase_memory_steady,
    "attachment": phase_attachment,
    "fastpaths": phase_fastpaths,
    "watching": phase_watching,
    "agents": phase_agents,
}


@contextlib.contextmanager
def _timer(times: dict[str, float], name: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        times[name] = round(time.monotonic() - started, 1)


async def run_all(root: Path, stack: Stack, service: Service, settings: Settings,
                  only: list[str], budget_s: float) -> tuple[dict[str, Any], dict[str, float]]:
    """Runs the phases in order; a phase that would start after ``budget_s`` is skipped."""
    results: dict[str, Any] = {}
    times: dict[str, float] = {}
    begun = time.monotonic()
    async with session(64, timeout=300) as http:
        ctx = Ctx(root, stack, service, settings, http, Api(http, service.api, TOKEN),
                  Api(http, service.api, ALL_TOKEN))
        for name, phase in PHASES.items():
            if name not in only:
                continue
            if name != "create" and ctx.template is None:
                _, sid = await create(ctx.api, 2, ALICE, "template")
                ctx.template = await fetch_template(ctx, sid)
            if time.monotonic() - begun > budget_s:
                results[name] = {"skipped": f"time budget of {budget_s:.0f}s used up"}
                continue
            print(f"[{name}]", flush=True)
            with _timer(times, name):
                try:
                    results[name] = await phase(ctx)
                except Exception as exc:
                    results[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
                    print(f"  phase {name} failed: {results[name]['error']}", flush=True)
        if ctx.profiles:
            results["profiles"] = ctx.profiles
    return results, times
