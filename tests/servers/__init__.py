"""IMAP servers other than Dovecot, each started privately by a test fixture on a free port.

Each kind says how to start it, how to add a mailbox user with Drafts, Sent and Trash, and why
it cannot run on this machine when it cannot (then its tests skip, saying so; in CI they must
run: see ``require_all_servers``). See ``shared/imap-servers.md`` for what was measured.
"""

from __future__ import annotations

import imaplib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

REQUIRE_ALL = os.environ.get("CI") == "true" or os.environ.get("MAILBRIDGE_REQUIRE_SERVERS") == "1"
"""In CI every server must run: a server that cannot be set up fails its tests instead of
skipping them."""

DEB_CACHE = Path("/var/tmp/mailbridge-debs")
"""Where the conflicting Debian packages (cyrus-imapd, courier-imap) are downloaded to, and
unpacked, without installing them (installing either would remove Dovecot's IMAP)."""


class ServerUnavailable(Exception):
    """This kind of server cannot run on this machine; the message says why."""


@dataclass
class Mailbox:
    """A user on a running server, with what an [[accounts]] entry needs."""

    email: str
    password: str
    host: str
    port: int
    folders: dict[str, str] = field(default_factory=dict)
    """Folder overrides, when the server has no SPECIAL-USE."""


def unpacked(package: str) -> Path:
    """The files of the Debian package ``package``, downloaded and unpacked under DEB_CACHE
    (``apt-get download`` + ``dpkg-deb -x``), never installed."""
    root = DEB_CACHE / package
    if (root / ".unpacked").exists():
        return root
    DEB_CACHE.mkdir(parents=True, exist_ok=True)
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise ServerUnavailable(f"{package}: apt-get and dpkg-deb are needed to fetch it")
    got = subprocess.run(["apt-get", "download", package], cwd=DEB_CACHE, capture_output=True,
                         text=True)
    if got.returncode != 0:  # no package lists yet: fetch them once and try again
        subprocess.run(["apt-get", "update", "-q"], capture_output=True)
        got = subprocess.run(["apt-get", "download", package], cwd=DEB_CACHE,
                             capture_output=True, text=True)
    debs = sorted(DEB_CACHE.glob(f"{package}_*.deb"))
    if not debs:
        raise ServerUnavailable(f"{package}: apt-get download failed: {got.stderr.strip()[-300:]}")
    root.mkdir(exist_ok=True)
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(root)], check=True)
    (root / ".unpacked").touch()
    return root


class Server(Protocol):
    root: Path

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def add_user(self, email: str, password: str) -> Mailbox: ...


def running(make: Callable[[Path], Server], prefix: str) -> Iterator[Server | str]:
    """A session fixture's body: the server ``make`` builds in a fresh folder under /var/tmp
    (readable by the servers' unprivileged processes), started; or, when it cannot run here,
    the reason as a string."""
    base = Path(tempfile.mkdtemp(prefix=f"mailbridge-{prefix}-", dir="/var/tmp"))
    base.chmod(0o755)
    server = make(base / "state")
    try:
        server.start()
    except ServerUnavailable as exc:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
        yield str(exc)
        return
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def wait_for_imap(proc: subprocess.Popen[bytes], port: int, log: Path, name: str,
                  ready: Callable[[], None] | None = None, timeout: float = 20) -> None:
    """Waits until the server ``proc`` answers on ``port`` (and ``ready`` passes);
    ServerUnavailable with the end of its log when it exits or does not answer in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerUnavailable(f"{name} exited: {log.read_text(errors='replace')[-800:]}")
        try:
            if ready is None:
                imaplib.IMAP4("127.0.0.1", port).logout()
            else:
                ready()
            return
        except (OSError, imaplib.IMAP4.error):
            time.sleep(0.1)
    raise ServerUnavailable(f"{name} did not answer within {timeout:g} s: "
                            f"{log.read_text(errors='replace')[-800:]}")


def stop_group(proc: subprocess.Popen[bytes] | None, log: IO[Any] | None) -> None:
    """Ends the process group ``proc`` leads (SIGTERM, then SIGKILL) and closes its log."""
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if log is not None:
        log.close()


class ServerProcess:
    """What every kind shares: a folder of its own, a free port, and a process group (with its
    log) that stop() ends before removing the folder."""

    def __init__(self, root: Path) -> None:
        from mailbridge.devstack.dovecot import free_port

        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[Any] | None = None

    def stop(self) -> None:
        stop_group(self.proc, self._log)
        shutil.rmtree(self.root, ignore_errors=True)
