"""Benchmark harness: the mail stack and the service in their own processes, measured from outside.

Three processes besides this one (which only generates load and measures):

- the *stack* process (``python -m bench.stack``): ``mailbridge.devstack.stack.DevStack``, i.e. a
  private Dovecot (its own child processes) and the dev SMTP server (aiosmtpd in a thread), with
  the dev users plus the bench's own (more accounts, raw-baseline mailboxes);
- the *service* process: ``python -m mailbridge serve --config FILE``, the API alone, with a
  config generated here (``tomli_w.dumps``). Its pid is what RSS, CPU and
  py-spy look at. (``python -m mailbridge dev`` would run the dev SMTP server inside the API
  process, mixing its CPU and memory into the service's figures.)

State (mail, indexes, logs) lives on tmpfs (/dev/shm) when writable, else on disk (/var/tmp);
:func:`filesystem_of` tells which. Figures are printed, never asserted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from mailbridge.config import parse_config
from mailbridge.devstack.dovecot import free_port
from mailbridge.devstack.stack import ALICE_ID, BOB_ID, DEV_TOKEN, DEV_USERS

ROOT = Path(__file__).resolve().parent.parent
TOKEN = DEV_TOKEN
ALL_TOKEN = "bench-all-token"
ALICE = "alice@example.test"
BOB = "bob@example.test"

# The bench's accounts: the dev stack's two, two more for the 4-account scale test, one whose
# Drafts folder the list test fills. The dev token sees alice and bob only (as on `make run`);
# ALL_TOKEN sees every account.
CAROL = "carol@example.test"
DAVE = "dave@example.test"
LISTER = "lister@example.test"
ACCOUNTS: tuple[tuple[uuid.UUID, str, str], ...] = (
    (ALICE_ID, ALICE, "Alice Example"),
    (BOB_ID, BOB, "Bob Example"),
    (uuid.UUID("ca201000-0000-4000-8000-000000000003"), CAROL, "Carol Example"),
    (uuid.UUID("da7e0000-0000-4000-8000-000000000004"), DAVE, "Dave Example"),
    (uuid.UUID("11573000-0000-4000-8000-000000000005"), LISTER, "Lister Example"),
)
SCALE_ACCOUNTS = (ALICE, BOB, CAROL, DAVE)
# Mailboxes (no mailbridge account) for the raw aioimaplib / aiosmtplib baselines.
RAW_USERS = tuple(f"raw{i}@example.test" for i in range(1, 5))
USERS: dict[str, str] = {
    **DEV_USERS,
    **{email: email.split("@")[0] + "-bench-pass" for email, in
       [(CAROL,), (DAVE,), (LISTER,), *((r,) for r in RAW_USERS)]},
}


def password(email: str) -> str:
    return USERS[email]


def filesystem_of(path: Path) -> str:
    """The type of the filesystem holding ``path`` (tmpfs, ext4, overlay...), from /proc/mounts."""
    best, kind = "", "unknown"
    target = str(path.resolve())
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) < 3:
                continue
            mount = parts[1].replace("\\040", " ")
            if (target == mount or target.startswith(mount.rstrip("/") + "/")) \
                    and len(mount) > len(best):
                best, kind = mount, parts[2]
    return kind


def state_root() -> Path:
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path("/var/tmp")
    root = Path(tempfile.mkdtemp(prefix="mailbridge-bench-", dir=base))
    root.chmod(0o755)  # Dovecot's unprivileged mail processes must traverse it
    return root


# ------------------------------------------------------------------------- process figures

def _proc_stat(pid: int) -> tuple[int, float] | None:
    """(ppid, CPU seconds incl. reaped children) of ``pid``, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    ticks = os.sysconf("SC_CLK_TCK")
    # fields[0] is state; utime, stime, cutime, cstime are fields 14-17 of the line (1-based)
    return int(fields[1]), sum(int(fields[i]) for i in (11, 12, 13, 14)) / ticks


def tree_cpu(root_pid: int) -> float:
    """CPU seconds of ``root_pid`` and every live descendant (exited ones count in their
    parent's cutime/cstime once reaped)."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _proc_stat(int(entry))
            if st is not None:
                stats[int(entry)] = st
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root_pid]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
        todo.extend(children.get(pid, ()))
    return total


def machine_busy() -> float:
    """CPU seconds all cores of the machine spent busy since boot (/proc/stat, every process:
    ours and whatever else runs here, e.g. another test suite)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def self_cpu() -> float:
    """CPU seconds of this (load generating) process, all threads."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in KiB: current and peak resident memory."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


# ------------------------------------------------------------------------- the processes

@dataclass
class Stack:
    """The stack process: Dovecot + dev SMTP (bench.stack)."""

    proc: subprocess.Popen[bytes]
    state: Path
    imap_port: int
    smtp_port: int
    lmtp_port: int
    dovecot_pid: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def mail_dir(self) -> Path:
        return self.state / "dovecot" / "mail"

    def maildir(self, user: str, folder: str) -> Path:
        return self.mail_dir / user / "Maildir" / f".{folder}"

    def dovecot_cpu(self) -> float:
        return tree_cpu(self.dovecot_pid)

    def smtp_cpu(self) -> float:
        """CPU seconds of the stack process itself (the dev SMTP server's thread and LMTP client
        threads; Dovecot is not included, it is its own process group)."""
        st = _proc_stat(self.pid)
        return st[1] if st else 0.0


@dataclass
class Service:
    """The service under test: ``python -m mailbridge serve --config FILE``."""

    proc: subprocess.Popen[bytes]
    api: str
    config: Path
    log: Path
    pool_size: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kib(self) -> tuple[int, int]:
        return rss_kib(self.pid)

    def reset_peak(self) -> None:
        """Resets VmHWM to the current RSS (Linux: write 5 to /proc/PID/clear_refs)."""
        with contextlib.suppress(OSError):
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def cpu(self) -> float:
        st = _proc_stat(self.pid)
        return st[1] if st else 0.0


def _die_with_parent() -> None:
    """In a child before exec: SIGTERM it when the bench process dies (Linux prctl
    PR_SET_PDEATHSIG), so a killed bench leaves no service or stack process behind."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def _wait_for(check: Any, what: str, timeout: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} did not come up within {timeout:g}s\n{tail}")


@contextlib.contextmanager
def running_stack(root: Path, dovecot: dict[str, str] | None = None) -> Iterator[Stack]:
    """Starts bench.stack (Dovecot + dev SMTP) in its own process; stops and wipes it after.
    ``dovecot``: extra Dovecot settings (``python -m bench --dovecot KEY=VALUE``)."""
    ports = {"imap": free_port(), "smtp": free_port(), "lmtp": free_port()}
    state = root / "stack"
    ready = root / "stack-ready.json"
    log = root / "stack.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.stack", "--state", str(state), "--ready", str(ready),
             "--users", json.dumps(USERS), "--dovecot", json.dumps(dovecot or {}),
             *[f"--{k}={v}" for k, v in ports.items()]],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent)
    try:
        _wait_for(lambda: ready.exists() or proc.poll() is not None, "the mail stack", 60, log)
        if proc.poll() is not None:
            raise RuntimeError(f"the mail stack exited at start:\n{log.read_text()[-3000:]}")
        info = json.loads(ready.read_text())
        yield Stack(proc, state, ports["imap"], ports["smtp"], ports["lmtp"], info["dovecot_pid"])
    finally:
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # the stack stops (and wipes) when its stdin ends
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def write_config(root: Path, stack: Stack, api_port: int, *, pool_size: int = 4,
                 name: str = "config",
                 accounts: tuple[tuple[uuid.UUID, str, str], ...] = ACCOUNTS,
                 server: dict[str, Any] | None = None) -> Path:
    """A mailbridge config for the stack: ``accounts`` (the bench's), the dev token (alice and
    bob, as on `make run`) and ALL_TOKEN (every account, and metrics). ``pool_size`` 4 is
    mailbridge's default; ``server``: more of ``[server]``."""
    def endpoint(email: str) -> dict[str, Any]:
        return {"host": "127.0.0.1", "security": "none", "username": email,
                "password": password(email)}

    entries = [{"id": str(i), "email": e, "display_name": n, "pool_size": pool_size,
                "imap": {**endpoint(e), "port": stack.imap_port},
                "smtp": {**endpoint(e), "port": stack.smtp_port}}
               for i, e, n in accounts]
    tokens = [
        {"name": "dev", "sha256": hashlib.sha256(TOKEN.encode()).hexdigest(),
         "accounts": [ALICE, BOB], "scopes": ["read", "write", "send"]},
        {"name": "bench-all", "sha256": hashlib.sha256(ALL_TOKEN.encode()).hexdigest(),
         "accounts": ["*"], "scopes": ["read", "write", "send", "metrics"]},
    ]
    data = {"server": {"host": "127.0.0.1", "port": api_port, **(server or {})},
            "accounts": entries, "tokens": tokens}
    parse_config(data, source="bench")  # fails here, not in the service, when wrong
    path = root / f"{name}.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def _healthy(api: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/healthz", timeout=1) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def running_service(root: Path, stack: Stack, *, pool_size: int = 4,
                    traced: bool = False, name: str | None = None,
                    accounts: tuple[tuple[uuid.UUID, str, str], ...] = ACCOUNTS,
                    server: dict[str, Any] | None = None) -> Iterator[Service]:
    """Starts ``python -m mailbridge serve`` on a free port; SIGTERM afterwards.

    ``traced``: ``python -m bench.traced`` instead, the same app with its IMAP commands timed
    per request (GET /__bench/trace). ``name``, ``accounts``, ``server``: see write_config.
    """
    port = free_port()
    name = name or f"pool{pool_size}{'-traced' if traced else ''}"
    config = write_config(root, stack, port, pool_size=pool_size, name=f"config-{name}",
                          accounts=accounts, server=server)
    log = root / f"service-{name}.log"
    api = f"http://127.0.0.1:{port}"
    command = (["-m", "bench.traced", "--config", str(config)] if traced else
               ["-m", "mailbridge", "--log-level", "warning", "serve", "--config", str(config)])
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, *command], cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    try:
        _wait_for(lambda: proc.poll() is not None or _healthy(api), "the service", 60, log)
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited at start:\n{log.read_text()[-3000:]}")
        yield Service(proc, api, config, log, pool_size)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def bench_root() -> Iterator[Path]:
    root = state_root()
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------------- seeding

def seed_drafts(stack: Stack, user: str, count: int, start: int = 0) -> None:
    """Writes ``count`` mailbridge-style drafts straight into the user's Drafts maildir.

    Much faster than APPEND for building a big folder; Dovecot indexes them on next access.
    Flag ``D`` is \\Draft, ``S`` is \\Seen. The messages are what mailbridge writes (its
    X-Mailbridge-* headers), built from one template rather than by the email package.
    """
    folder = stack.maildir(user, "Drafts")
    cur = folder / "cur"
    cur.mkdir(parents=True, exist_ok=True)
    for sub in ("new", "tmp"):
        (folder / sub).mkdir(exist_ok=True)
    now = int(time.time())
    made = []
    for i in range(start, start + count):
        raw = (
            f"From: Lister Example <{user}>\r\n"
            f"To: customer{i}@example.test\r\n"
            f"Subject: Seeded draft {i}\r\n"
            f"Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n"
            f"Message-ID: <seed-{i}-{uuid.uuid4().hex}@example.test>\r\n"
            f"MIME-Version: 1.0\r\n"
            f"X-Mailbridge-Id: {uuid.uuid4()}\r\n"
            f"X-Mailbridge-Created-At: 2026-11-21T10:00:00Z\r\n"
            f"X-Mailbridge-Updated-At: 2026-11-21T10:00:00Z\r\n"
            f"Content-Type: text/plain; charset=\"utf-8\"\r\n"
            f"Content-Transfer-Encoding: 7bit\r\n\r\n"
            f"Body of seeded draft {i}.\r\n"
        ).encode()
        path = cur / f"{now}.S{i}.bench:2,DS"
        path.write_bytes(raw)
        made.append(path)
    if os.geteuid() == 0:  # Dovecot's mail processes (nobody) must own what we made
        for path in [*[p for p in folder.parents if stack.mail_dir in p.parents], folder,
                     *folder.iterdir(), *made]:
            os.chown(path, 65534, 65534)
