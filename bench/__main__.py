"""`make bench`: mailbridge side by side with the raw protocols, on a fresh private mail stack.

Prints tables and PASS/FAIL per target, writes the same figures as JSON to bench/results/.
Options: ``--quick`` (short runs, for trying the bench itself), ``--only create,list,...``,
``--seconds N`` (length of each throughput run), ``--profile`` (py-spy records the service during
the main runs; see bench/profiling.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from bench import fastpaths
from bench.harness import ROOT, bench_root, filesystem_of, running_service, running_stack
from bench.scenarios import PHASES, Settings, run_all

RESULTS = ROOT / "bench" / "results"


def _git() -> dict[str, Any]:
    def run(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": run("rev-parse", "--short", "HEAD"),
            "dirty": [line[3:] for line in run("status", "--porcelain", "mailbridge").splitlines()]}


def _dovecot_version() -> str:
    try:
        return subprocess.run(["dovecot", "--version"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


# ------------------------------------------------------------------------------ tables

def _cell(fig: dict[str, Any] | None) -> str:
    if not fig:
        return f"{'-':>22}"
    err = f" E{fig['errors']}" if fig.get("errors") else ""
    return f"{fig['ops_s']:>6.0f}/s {fig['p50_ms']:>6.1f}/{fig['p99_ms']:<6.1f}{err}"


def _ratio(value: Any) -> str:
    return f"{value:>5.2f}" if isinstance(value, int | float) else f"{'-':>5}"


def _cpu(fig: dict[str, Any], who: tuple[str, ...] = ("service", "dovecot", "client", "smtp")
         ) -> str:
    return " ".join(f"{w} {fig.get(f'cpu_ms_per_op_{w}', 0):.2f}" for w in who
                    if fig.get(f"cpu_ms_per_op_{w}", 0) >= 0.005)


def tables(results: dict[str, Any]) -> str:
    out: list[str] = []
    head = (f"{'':8}| {'raw protocol':<22} | {'dialect 1 (/api/v1)':<22} {'ratio':>5} "
            f"| {'dialect 2 (/api/email)':<22} {'ratio':>5}")
    sub = f"{'':8}| {'ops/s  p50/p99 ms':<22} | {'':<28} | {'':<28}"

    def row(label: str, r: dict[str, Any], raw: str = "raw", d1: str = "dialect1",
            d2: str = "dialect2") -> str:
        return (f"{label:<8}| {_cell(r.get(raw))} | {_cell(r.get(d1))} {_ratio(r.get('ratio_d1'))} "
                f"| {_cell(r.get(d2))} {_ratio(r.get('ratio_d2'))}")

    c = results.get("create", {})
    if "rows" in c:
        out += [f"1. create: drafts/s vs raw APPEND/s of the same {c['message_bytes']}-byte "
                "message (1 IMAP connection per raw client)", head, sub]
        out += [row(f"{r['clients']:>3} cl", r) for r in c["rows"]]
        out.append("   CPU ms per op (service / Dovecot / load generator):")
        for r in c["rows"]:
            out.append(f"   {r['clients']:>3} cl  raw: {_cpu(r['raw'])} | d1: {_cpu(r['dialect1'])}"
                       f" | d2: {_cpu(r['dialect2'])}")
        cc = c.get("client_check")
        if cc:
            two = cc["two_processes"]
            out.append(f"   load generator check @{cc['clients']} (d2): 1 process "
                       f"{cc['one_process_ops_s']}/s (its CPU {cc['one_process_client_cpu_util']:.0%}"
                       f" of a core), 2 processes {two['ops_s']}/s "
                       f"(x{cc['two_over_one']}); p50/p99 {two['p50_ms']}/{two['p99_ms']} ms")
        out.append("")
    elif c:
        out += [f"1. create: {c}", ""]

    crud = results.get("crud", {})
    if "get" in crud:
        out += [f"2. get / update / delete at {crud['clients']} clients", head, sub]
        g = crud["get"]
        out.append(row("get", g, d1="dialect1_by_uid", d2="dialect2_by_id"))
        out.append(f"{'  +acct':<8}| {'':<22} | {'':<28} | "
                   f"{_cell(g.get('dialect2_by_id_with_account'))} "
                   f"{_ratio(g.get('ratio_d2_with_account'))}   (d2 with ?from_account_id=)")
        out.append(row("update", crud["update"]))
        out.append(row("delete", crud["delete"]))
        out.append("   raw: get = UID FETCH BODY.PEEK[]; update = APPEND + UID STORE \\Deleted + "
                   "UID EXPUNGE; delete = UID STORE + UID EXPUNGE")
        out.append("   CPU ms per op (service / Dovecot / load generator):")
        for name, key1, key2 in (("get", "dialect1_by_uid", "dialect2_by_id"),
                                 ("update", "dialect1", "dialect2"),
                                 ("delete", "dialect1", "dialect2")):
            r = crud[name]
            out.append(f"   {name:<7} raw: {_cpu(r['raw'])} | d1: {_cpu(r[key1])} | "
                       f"d2: {_cpu(r[key2])}")
        out.append("")
    elif crud:
        out += [f"2. get/update/delete: {crud}", ""]

    lst = results.get("list", {})
    if "rows" in lst:
        out += [f"3. list, first page ({lst['page']}), median of {lst['rounds']} calls, 1 client",
                f"{'drafts':>8} | {'d2 ms':>8} {'ratio':>6} {'d2 p99':>7} | {'d1 ms':>8} "
                f"{'ratio':>6} | first call after seeding (Dovecot indexes the new files)"]
        for r in lst["rows"]:
            out.append(f"{r['drafts']:>8} | {r['dialect2_median_ms']:>8.1f} {r['ratio_d2']:>6.2f} "
                       f"{r['dialect2_p99_ms']:>7.1f} | {r['dialect1_median_ms']:>8.1f} "
                       f"{r['ratio_d1']:>6.2f} | {r['first_call_ms']:.0f} ms")
        out.append("")
    elif lst:
        out += [f"3. list: {lst}", ""]

    snd = results.get("send", {})
    if "rows" in snd:
        out += ["4. send: sends/s vs raw aiosmtplib submission + APPEND to Sent (dev SMTP, "
                "delivered by LMTP)", head, sub]
        out += [row(f"{r['clients']:>3} cl", r) for r in snd["rows"]]
        out += [f"{r['clients']:>3} cl  | {_cell(r['raw_draft'])} | ratio to it: d1 "
                f"{_ratio(r.get('ratio_d1_vs_raw_draft'))}, d2 "
                f"{_ratio(r.get('ratio_d2_vs_raw_draft'))}   (raw draft send)"
                for r in snd["rows"] if "raw_draft" in r]
        out.append("   raw draft send = the raw send + UID STORE \\Deleted + UID EXPUNGE of a draft in "
                   "a Drafts folder of the API's size: what a mail client does")
        out.append("   CPU ms per op (service / Dovecot / load generator / dev SMTP):")
        for r in snd["rows"]:
            draft = f" | raw draft: {_cpu(r['raw_draft'])}" if "raw_draft" in r else ""
            out.append(f"   {r['clients']:>3} cl  raw: {_cpu(r['raw'])}{draft} | "
                       f"d1: {_cpu(r['dialect1'])} | d2: {_cpu(r['dialect2'])}")
        for r in snd["rows"]:
            for d in ("raw_draft", "dialect1", "dialect2"):
                if r.get(d, {}).get("note"):
                    out.append(f"   note {r['clients']} cl {d}: {r[d]['note']}")
        out.append("")
    elif snd:
        out += [f"4. send: {snd}", ""]

    mem = results.get("memory", {})
    att = results.get("attachment", {})
    out.append("5. memory (service process RSS)")
    if "rss_warm_mib" in mem:
        out.append(f"   after warm-up ({mem['creates_before_warm_rss']} creates so far, cache bound "
                   f"10,000): {mem['rss_warm_mib']} MiB; after {mem['creates']} creates more: "
                   f"{mem['rss_after_mib']} MiB; growth {mem['growth_mib']} MiB "
                   f"(tolerance {mem['tolerance_mib']} MiB; {mem['create_ops_s']} creates/s)")
        out.append("   RSS every 10%: " + ", ".join(f"{s['rss_mib']}" for s in mem["samples"]))
    elif mem:
        out.append(f"   steady state: {mem}")
    if "rss_peak_mib" in att:
        out.append(f"   {att['attachment_mb']} MB attachment: RSS {att['rss_before_mib']} -> peak "
                   f"{att['rss_peak_mib']} MiB = {att['growth_x_attachment']}x the attachment "
                   f"(create {att['create_s']} s, read {att['read_s']} s, bytes identical: "
                   f"{att['bytes_identical']})")
    for name, d in att.get("download", {}).items():
        out.append(f"   the same attachment downloaded ({name}): {d['s']} s = {d['vs_raw_imap']}x "
                   f"the speed of a raw IMAP read of it, peak RSS growth "
                   f"{d['growth_x_attachment']}x the attachment, bytes identical: "
                   f"{d['bytes_identical']}")
    if "rss_peak_mib" not in att and att:
        out.append(f"   attachment: {att}")
    out.append("")

    sc = results.get("scale", {})
    if "accounts_1" in sc:
        out += [f"6. scale: d2 creates, {sc['clients_per_account']} clients per account",
                f"{'':8}| {'raw APPEND':<22} | {'dialect 2':<22} {'ratio':>5}"]
        for n in (1, 4):
            r = sc[f"accounts_{n}"]
            out.append(f"{n} acct  | {_cell(r['raw'])} | {_cell(r['dialect2'])} "
                       f"{_ratio(r['ratio'])}")
        out.append(f"   4 accounts / 1 account: API x{sc['api_4_over_1']}, raw x{sc['raw_4_over_1']}")
        out.append("")
    elif sc:
        out += [f"6. scale: {sc}", ""]

    pool = results.get("pool", {})
    if "pool_size" in pool:
        big = f"pool_{pool['pool_size']}"
        out += ["7. IMAP pool size A/B at 8 clients (same folders, back to back)",
                f"{'':8}| {'get d1 (by UID)':<22} | {'create d2':<22}"]
        for label in ("pool_4", big):
            r = pool[label]
            out.append(f"{label:<8}| {_cell(r['get_d1_8'])} | {_cell(r['create_d2_8'])}")
        out.append("")
    elif pool:
        out += [f"7. pool A/B: {pool}", ""]

    ana = results.get("anatomy", {})
    if "routes" in ana:
        out += ["8. anatomy: one client, one request after the other (bench.traced); ms per "
                "request", "   folders: " + ", ".join(f"{k} {v}" for k, v in ana["folders"].items()),
                f"{'request':<58} {'total':>7} {'IMAP':>7} {'cmds':>5} {'SMTP':>6} {'rest':>6}"
                "  top IMAP commands (ms)"]
        for name, r in ana["routes"].items():
            top = ", ".join(f"{k} {v['ms_per_request']:.1f}"
                            for k, v in list(r["commands"].items())[:3])
            out.append(f"{name[:58]:<58} {r['wall_ms']:>7.1f} {r['imap_ms']:>7.1f} "
                       f"{r['imap_commands']:>5.1f} {r['smtp_ms']:>6.1f} {r['rest_ms']:>6.1f}  {top}")
        idle = ana["idle_3s"]
        out.append(f"   idle service: the scheduler sends {idle['scheduler_imap_commands_per_s']} "
                   f"IMAP commands/s taking {idle['scheduler_imap_ms_per_s']} ms/s; Dovecot CPU "
                   f"while 2 instances idle: {idle['cpu_util_dovecot_both_schedulers']:.0%} of a core")
        out.append("")
    if "fastpaths" in results:
        out += ["9. " + fastpaths.render(results["fastpaths"]), ""]
    w = results.get("watching", {})
    if "watch_on" in w:
        out += [f"10. idle cost of watching: {w['instances']} instances x {w['accounts']} "
                f"accounts, idle for {w['window_s']:g} s (IMAP commands from the services' "
                "metrics; CPU in % of one core)",
                f"{'':10}| {'IMAP cmds/s':>11} | {'Dovecot CPU':>11} | {'services CPU':>12} "
                f"| {'RSS/service':>11}"]
        for label in ("watch_off", "watch_on"):
            r = w[label]
            out.append(f"{label:<10}| {r['imap_commands_per_s']:>11} | "
                       f"{r['cpu_util_dovecot']:>11.2%} | {r['cpu_util_services']:>12.2%} | "
                       f"{r['rss_mib_per_service']:>8} MiB")
        out.append("")
    elif w:
        out += [f"10. watching: {w}", ""]
    a = results.get("agents", {})
    if "get_per_s" in a:
        out += [f"11. agents (issue 13) at {a['clients']} clients: MCP tools beside the API "
                "calls they stand for (the SDK's own client), and the review page's list",
                f"{'':26}| {'API':>9} | {'MCP/page':>9} | {'ratio':>6}"]
        for label, key, unit in (("get a draft", "get_per_s", "/s"),
                                 ("create a draft", "create_per_s", "/s")):
            r = a[key]
            out.append(f"{label + ' (' + unit + ')':<26}| {r['api']:>9} | {r['mcp']:>9} | "
                       f"{_ratio(r['ratio']):>6}")
        r = a["review_list_ms"]
        out.append(f"{'list page (ms, median)':<26}| {r['api_list_median']:>9} | "
                   f"{r['review_median']:>9} | {_ratio(r['ratio']):>6}")
        out.append("")
    elif a:
        out += [f"11. agents: {a}", ""]
    return "\n".join(out)


def other_load(results: dict[str, Any]) -> dict[str, float]:
    """Per phase, the most CPU (cores) that processes outside the bench used during one of its
    runs: this machine may be shared (another test suite), which slows every figure."""
    found: dict[str, float] = {}

    def walk(phase: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if k == "cpu_util_other_processes" and isinstance(v, int | float):
                    found[phase] = max(found.get(phase, 0.0), float(v))
                else:
                    walk(phase, v)
        elif isinstance(value, list):
            for v in value:
                walk(phase, v)

    for phase, value in results.items():
        walk(phase, value)
    return found


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def add(name: str, value: Any, target: str, ok: bool | None) -> None:
        found.append({"name": name, "value": value, "target": target, "pass": ok})

    def at(rows: list[dict[str, Any]], clients: int) -> dict[str, Any] | None:
        return next((r for r in rows if r["clients"] == clients), None)

    r8 = at(results.get("create", {}).get("rows", []), 8)
    for d in (1, 2):
        v = r8.get(f"ratio_d{d}") if r8 else None
        add(f"create ratio API/raw @8 clients, dialect {d}", v, ">= 0.6",
            None if v is None else v >= 0.6)
    get = results.get("crud", {}).get("get")
    for d, key in ((1, "dialect1_by_uid"), (2, "dialect2_by_id")):
        v = get[key]["p99_ms"] if get else None
        ok = None if v is None else (v < 25 and not get[key]["errors"])
        add(f"get p99 @8 clients, dialect {d}", v, "< 25 ms", ok)
    rows = results.get("list", {}).get("rows", [])
    last = rows[-1] if rows else None
    for d in (2, 1):
        v = last.get(f"ratio_d{d}") if last else None
        add(f"list {last['drafts'] if last else 10000:,} vs 100, dialect {d}", v, "<= 2.0",
            None if v is None else v <= 2.0)
    s8 = at(results.get("send", {}).get("rows", []), 8)
    for d in (1, 2):
        v = s8.get(f"ratio_d{d}") if s8 else None
        add(f"send ratio API/raw @8 clients, dialect {d}", v, ">= 0.6",
            None if v is None else v >= 0.6)
    att = results.get("attachment", {})
    add("memory: peak RSS growth, 20 MB attachment", att.get("growth_x_attachment"),
        "< 6x the attachment", att.get("pass"))
    stream = att.get("download", {}).get("stream", {})
    add("memory: peak RSS growth, 20 MB attachment streamed", stream.get("growth_x_attachment"),
        att.get("stream_target", "< 0.5x the attachment"), att.get("stream_pass"))
    mem = results.get("memory", {})
    add(f"memory: RSS growth over {mem.get('creates', 10_000):,} creates after warm-up",
        f"{mem['growth_mib']} MiB" if "growth_mib" in mem else None,
        f"none (<= {mem.get('tolerance_mib', 2.0)} MiB noise)", mem.get("pass"))
    return found


def render_targets(found: list[dict[str, Any]]) -> str:
    lines = ["targets"]
    for t in found:
        mark = {True: "PASS", False: "FAIL", None: "----"}[t["pass"]]
        lines.append(f"{mark}  {t['name']:<52} {t['value']!s:>10}   ({t['target']})")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ main

def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs (check the bench)")
    parser.add_argument("--only", default=",".join(PHASES),
                        help=f"comma-separated phases of: {', '.join(PHASES)}")
    parser.add_argument("--seconds", type=float, default=None, help="length of each run")
    parser.add_argument("--profile", action="store_true",
                        help="record the service with py-spy during the main runs")
    parser.add_argument("--dovecot", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra setting for the bench's Dovecot, e.g. "
                        "maildir_very_dirty_syncs=yes (repeatable; recorded with the figures)")
    parser.add_argument("--budget", type=float, default=460.0,
                        help="no phase starts after this many seconds (keeps `make bench` "
                             "under 10 minutes)")
    args = parser.parse_args()
    only = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(only) - set(PHASES)
    if unknown:
        parser.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    settings = Settings()
    if args.quick:
        settings = Settings(seconds=1.0, list_rounds=10, memory_creates=2_000)
    if args.seconds:
        settings.seconds = args.seconds
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    if args.profile:
        from bench.profiling import py_spy

        if py_spy() is None:
            parser.error("--profile needs py-spy: .venv/bin/pip install py-spy")
        settings.profile = True
        settings.profile_dir = RESULTS / "profiles" / stamp

    dovecot_settings: dict[str, str] = {}
    for item in args.dovecot:
        key, eq, value = item.partition("=")
        if not eq or not re.fullmatch(r"[a-z_]+", key.strip()) or "\n" in value:
            parser.error(f"--dovecot wants KEY=VALUE, got {item!r}")
        dovecot_settings[key.strip()] = value.strip()
    begun = time.monotonic()
    with bench_root() as root, running_stack(root, dovecot_settings) as stack, \
            running_service(root, stack) as service:
        fs = filesystem_of(stack.mail_dir)
        storage = "tmpfs" if fs == "tmpfs" else f"disk ({fs})"
        meta = {
            "mail_storage": storage, "mail_dir": str(stack.mail_dir), "cpus": os.cpu_count(),
            "python": platform.python_version(), "dovecot": _dovecot_version(),
            "aioimaplib": metadata.version("aioimaplib"), "aiohttp": metadata.version("aiohttp"),
            "git": _git(), "service": "python -m mailbridge serve --config (pool_size 4, "
            "the default), its own process", "stack": "bench.stack: DevStack (Dovecot + dev "
            "SMTP) in its own process", "load": "this process: aiohttp client / aioimaplib / "
            "aiosmtplib, closed loop", "settings": {k: str(v) for k, v in vars(settings).items()},
            "dovecot_settings": dovecot_settings or "defaults (see mailbridge/devstack/dovecot.py)",
        }
        print(f"mailbridge bench: mail on {storage} ({stack.mail_dir}); {os.cpu_count()} CPUs; "
              f"Dovecot {meta['dovecot']}"
              f"{''.join(f', {k} = {v}' for k, v in dovecot_settings.items())}; "
              f"service pid {service.pid}; git "
              f"{meta['git']['commit']}{' +local changes' if meta['git']['dirty'] else ''}",
              flush=True)
        results, times = asyncio.run(run_all(root, stack, service, settings, only,
                                             args.budget))
        rss, hwm = service.rss_kib()
        meta["service_rss_end_mib"] = round(rss / 1024, 1)
        meta["service_rss_peak_mib"] = round(hwm / 1024, 1)
    elapsed = time.monotonic() - begun
    found = targets(results)
    others = other_load(results)
    meta["other_processes_max_cores_per_phase"] = others
    print()
    print(tables(results))
    busy = {k: v for k, v in others.items() if v >= 0.15}
    if busy:
        print("NOTE: the machine was shared: other processes used up to "
              + ", ".join(f"{v:.2f} cores during {k}" for k, v in busy.items())
              + f" (of {os.cpu_count()}); those figures are low and noisy\n")
    print(render_targets(found))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"bench-{stamp}.json"
    path.write_text(json.dumps({"when": stamp, "run_seconds": round(elapsed, 1),
                                "phase_seconds": times, "meta": meta, "targets": found,
                                "results": results}, indent=2))
    print(f"\nrun time {elapsed:.0f} s (phases: "
          + ", ".join(f"{k} {v:.0f}s" for k, v in times.items()) + ")")
    print(f"figures written to {path.relative_to(ROOT)}")
    if settings.profile_dir is not None:
        print(f"profiles in {settings.profile_dir.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
