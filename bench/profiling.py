"""py-spy against the service process while a measurement runs (``python -m bench --profile``).

py-spy (``.venv/bin/pip install py-spy``; not a project dependency) samples the service's Python
stacks from outside (``record --pid --nonblocking``: the process is never paused). Idle time
(the event loop waiting in epoll) is not sampled, so the samples are where the service's CPU
goes. The raw collapsed stacks are written to ``bench/results/profiles/NAME.txt`` (feed them to
flamegraph.pl or speedscope) and summarised in ``NAME.summary.txt``: share of samples by the
package of the innermost frame, by the nearest mailbridge function on the stack, and the top
functions.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

RATE = 250
_ENTRY = frozenset({"mailbridge/cli.py", "mailbridge/__main__.py"})
"""Frames every sample has (asyncio.run in cmd_serve): left out of the per-function views."""
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


class Spy:
    def __init__(self, pid: int, out: Path) -> None:
        self.pid = pid
        self.out = out
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self) -> None:
        binary = py_spy()
        if binary is None:
            raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [binary, "record", "--pid", str(self.pid), "--rate", str(RATE), "--format", "raw",
             "--nonblocking", "-o", str(self.out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)  # attached and sampling
        self.started = time.monotonic()

    def stop(self) -> dict[str, Any]:
        assert self.proc is not None
        seconds = time.monotonic() - self.started
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        summary = summarize(self.out, seconds)
        self.out.with_suffix(".summary.txt").write_text(render(summary))
        return {k: v for k, v in summary.items() if k != "stacks"}


def _parse(frame: str) -> tuple[str, str]:
    m = _FRAME.match(frame.strip())
    if m is None:
        return frame.strip(), ""
    return m.group("func"), m.group("file")


def category(file: str) -> str:
    """The package a frame's file belongs to, coarse: where the CPU goes."""
    f = file.replace("\\", "/")
    if f.startswith("mailbridge/imap/"):
        return "mailbridge.imap (connection, parsing)"
    if f.startswith("mailbridge/api/"):
        return "mailbridge.api (handlers, pydantic models)"
    if f.startswith("mailbridge/mime"):
        return "mailbridge.mime (build/parse)"
    if f.startswith("mailbridge/"):
        return "mailbridge (drafts, sending, other)"
    for prefix, name in (("aioimaplib/", "aioimaplib"), ("aiohttp/", "aiohttp (HTTP server)"),
                         ("aiosmtplib/", "aiosmtplib"), ("asyncio/", "asyncio (event loop)"),
                         ("email/", "stdlib email"), ("json/", "json"),
                         ("pydantic", "pydantic"), ("email_validator/", "email_validator"),
                         ("multidict/", "aiohttp (HTTP server)"),
                         ("yarl/", "aiohttp (HTTP server)")):
        if f.startswith(prefix):
            return name
    if f in ("selectors.py", "socket.py", "ssl.py"):
        return "asyncio (event loop)"
    return f"other ({f.split('/')[0] or '?'})"


def summarize(path: Path, seconds: float) -> dict[str, Any]:
    stacks: list[tuple[list[tuple[str, str]], int]] = []
    for line in path.read_text(errors="replace").splitlines():
        head, _, count = line.rpartition(" ")
        if not head or not count.isdigit():
            continue
        stacks.append(([_parse(f) for f in head.split(";")], int(count)))
    total = sum(c for _, c in stacks) or 1
    by_cat: Counter[str] = Counter()
    self_fn: Counter[str] = Counter()
    incl_mb: Counter[str] = Counter()
    nearest_mb: Counter[str] = Counter()
    for frames, count in stacks:
        leaf_func, leaf_file = frames[-1]
        by_cat[category(leaf_file)] += count
        self_fn[f"{leaf_func} ({leaf_file})"] += count
        seen = set()
        for func, file in frames:
            if file.startswith("mailbridge/") and file not in _ENTRY:
                key = f"{func} ({file})"
                if key not in seen:
                    seen.add(key)
                    incl_mb[key] += count
        for func, file in reversed(frames):
            if file.startswith("mailbridge/") and file not in _ENTRY:
                nearest_mb[f"{func} ({file})"] += count
                break
        else:
            nearest_mb["(no mailbridge frame: aiohttp/asyncio plumbing)"] += count

    def share(counter: Counter[str], n: int) -> list[tuple[str, float]]:
        return [(k, round(v * 100 / total, 1)) for k, v in counter.most_common(n)]

    return {"samples": total, "seconds": round(seconds, 1), "rate_hz": RATE,
            "busy_share_of_one_core": round(total / (RATE * seconds), 2) if seconds else None,
            "by_package_pct": share(by_cat, 20), "self_top_pct": share(self_fn, 25),
            "nearest_mailbridge_caller_pct": share(nearest_mb, 20),
            "inclusive_mailbridge_pct": share(incl_mb, 30), "stacks": stacks}


def render(summary: dict[str, Any]) -> str:
    lines = [f"samples {summary['samples']} in {summary['seconds']} s at {summary['rate_hz']} Hz "
             f"(busy share of one core ~{summary['busy_share_of_one_core']})", ""]
    for key, title in (("by_package_pct", "innermost frame's package"),
                       ("nearest_mailbridge_caller_pct", "nearest mailbridge function"),
                       ("inclusive_mailbridge_pct", "inclusive, mailbridge functions"),
                       ("self_top_pct", "self time, top functions")):
        lines.append(f"== {title} (% of samples)")
        lines += [f"{pct:6.1f}  {name}" for name, pct in summary[key]]
        lines.append("")
    return "\n".join(lines)
