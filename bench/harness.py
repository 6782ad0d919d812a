"""Benchmark harness: a real mailbridge dev stack in its own process, measured from outside.

The service runs as ``python -m mailbridge dev`` (Dovecot + dev SMTP + API) with its state on
tmpfs (/dev/shm) when that is available; the load comes from this process over HTTP with aiohttp.
Figures are printed, never asserted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

from mailbridge.devstack.dovecot import free_port

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "dev-token"
ALICE = "alice@example.test"


@dataclass
class Service:
    proc: subprocess.Popen[str]
    state: Path
    api: str
    imap_port: int
    smtp_port: int
    on_tmpfs: bool

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kib(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) of the service process in KiB: current and peak resident memory."""
        fields = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0])
        return fields["VmRSS"], fields["VmHWM"]

    def reset_peak(self) -> None:
        """Resets VmHWM to the current RSS (Linux: write 5 to /proc/PID/clear_refs)."""
        with contextlib.suppress(OSError):
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def maildir(self, user: str, folder: str) -> Path:
        return self.state / "dovecot" / "mail" / user / "Maildir" / f".{folder}"


def state_root() -> tuple[Path, bool]:
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return Path(tempfile.mkdtemp(prefix="mailbridge-bench-", dir=shm)), True
    return Path(tempfile.mkdtemp(prefix="mailbridge-bench-", dir="/var/tmp")), False


@contextlib.contextmanager
def running_service() -> Iterator[Service]:
    """Starts ``python -m mailbridge dev`` on free ports; stops it (SIGTERM) afterwards."""
    root, on_tmpfs = state_root()
    root.chmod(0o755)
    ports = {k: free_port() for k in ("API", "IMAP", "SMTP", "LMTP")}
    env = dict(os.environ, MAILBRIDGE_DEV_DIR=str(root),
               **{f"MAILBRIDGE_{k}_PORT": str(v) for k, v in ports.items()})
    proc = subprocess.Popen([sys.executable, "-m", "mailbridge", "--log-level", "warning", "dev"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                raise RuntimeError("the service exited during start")
            if line.startswith("  curl -s http"):
                break
        yield Service(proc, root, f"http://127.0.0.1:{ports['API']}", ports["IMAP"],
                      ports["SMTP"], on_tmpfs)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        subprocess.run([sys.executable, "-m", "mailbridge", "dev", "--wipe"], cwd=ROOT, env=env,
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def seed_drafts(service: Service, user: str, count: int, start: int = 0) -> None:
    """Writes ``count`` mailbridge-style drafts straight into the user's Drafts maildir.

    Much faster than APPEND for building a big folder; Dovecot indexes them on next access.
    Flag ``D`` is \\Draft, ``S`` is \\Seen.
    """
    folder = service.maildir(user, "Drafts")
    cur = folder / "cur"
    cur.mkdir(parents=True, exist_ok=True)
    for sub in ("new", "tmp"):
        (folder / sub).mkdir(exist_ok=True)
    now = int(time.time())
    for i in range(start, start + count):
        msg = EmailMessage(policy=default_policy)
        msg["From"] = f"Alice <{user}>"
        msg["To"] = f"customer{i}@example.test"
        msg["Subject"] = f"Seeded draft {i}"
        msg["Message-ID"] = f"<seed-{i}-{uuid.uuid4().hex}@example.test>"
        msg["Date"] = "Sat, 21 Nov 2026 10:00:00 +0000"
        msg["X-Mailbridge-Id"] = str(uuid.uuid4())
        msg["X-Mailbridge-Created-At"] = "2026-11-21T10:00:00Z"
        msg["X-Mailbridge-Updated-At"] = "2026-11-21T10:00:00Z"
        msg.set_content(f"Body of seeded draft {i}.\n")
        (cur / f"{now}.S{i}.bench:2,DS").write_bytes(msg.as_bytes().replace(b"\n", b"\r\n"))
    if os.geteuid() == 0:  # Dovecot's mail processes (nobody) must own what we made
        mail_root = service.state / "dovecot" / "mail"
        made = [p for p in folder.parents if mail_root in p.parents]
        for path in [*made, folder, *folder.iterdir(), *cur.iterdir()]:
            os.chown(path, 65534, 65534)
