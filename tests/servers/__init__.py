"""IMAP servers other than Dovecot, each started privately by a test fixture on a free port.

Each kind says how to start it, how to add a mailbox user with Drafts, Sent and Trash, and why
it cannot run on this machine when it cannot (then its tests skip, saying so; in CI they must
run: see ``require_all_servers``). See ``shared/imap-servers.md`` for what was measured.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

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
