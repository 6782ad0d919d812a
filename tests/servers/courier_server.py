"""Courier-IMAP 5.0, run from the unpacked courier-imap package (never installed: it would remove
Dovecot's IMAP) with courier-authlib's userdb, in a private mount namespace whose /etc/courier
and /run/courier are folders of the fixture (their paths are compiled in). No CONDSTORE, no
SPECIAL-USE (folders are INBOX.Drafts, INBOX.Sent, INBOX.Trash), no MOVE, no LITERAL+."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from servers import Mailbox, ServerProcess, ServerUnavailable, unpacked, wait_for_imap

MAIL_UID = 8  # Debian's "mail" user and group own the mailboxes

_START = """set -e
mount --bind "$STATE/etc" /etc/courier
mount --bind "$STATE/run" /run/courier
mkdir -p /run/courier/authdaemon
/usr/sbin/authdaemond start
set -a
. "$PKG/etc/courier/imapd"
set +a
exec /usr/sbin/couriertcpd -address=127.0.0.1 -nodnslookup -noidentlookup -maxprocs=100 \\
    -maxperip=100 "$LISTEN_PORT" "$PKG/usr/lib/courier/courier/imaplogin" "$PKG/usr/bin/imapd" \
    Maildir
"""


class CourierServer(ServerProcess):
    kind = "courier"


    def start(self) -> None:
        for tool in ("unshare", "nsenter", "/usr/sbin/authdaemond", "/usr/sbin/couriertcpd",
                     "/usr/sbin/makeuserdb", "maildirmake", "openssl"):
            if shutil.which(tool) is None:
                raise ServerUnavailable(f"{tool} is missing (courier-base, courier-authlib, "
                                        "courier-authdaemon, courier-authlib-userdb; "
                                        "scripts/install-system-deps.sh --test installs them)")
        if not Path("/etc/courier").is_dir():
            raise ServerUnavailable("/etc/courier is missing (courier-authlib)")
        package = unpacked("courier-imap")
        etc, run = self.root / "etc", self.root / "run"
        shutil.copytree("/etc/courier", etc, symlinks=True)
        shutil.copytree(package / "etc/courier", etc, dirs_exist_ok=True, symlinks=True)
        run.mkdir(parents=True)
        Path("/run/courier").mkdir(exist_ok=True)
        rc = (etc / "authdaemonrc").read_text()
        rc = "\n".join('authmodulelist="authuserdb"' if line.startswith("authmodulelist=")
                       else line for line in rc.splitlines()) + "\n"
        (etc / "authdaemonrc").write_text(rc)
        (etc / "userdb").write_text("")
        (etc / "userdb").chmod(0o600)
        os.chmod(self.root, 0o755)
        self._log = (self.root / "courier.log").open("wb")
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", _START],
            env={**os.environ, "STATE": str(self.root), "PKG": str(package),
                 "LISTEN_PORT": str(self.port)},  # (the imapd file sets PORT)
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_imap(self.proc, self.port, self.root / "courier.log", "Courier")

    def _inside(self, *command: str) -> None:
        """Runs ``command`` in the server's mount namespace (its /etc/courier)."""
        assert self.proc is not None
        subprocess.run(["nsenter", "--target", str(self.proc.pid), "--mount", *command],
                       check=True, capture_output=True)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:  # authdaemond runs in the namespace too
                self._inside("/usr/sbin/authdaemond", "stop")
            except (subprocess.CalledProcessError, OSError):
                pass
        super().stop()

    def add_user(self, email: str, password: str) -> Mailbox:
        home = self.root / "homes" / email
        home.mkdir(parents=True)
        maildir = home / "Maildir"
        subprocess.run(["maildirmake", str(maildir)], check=True)
        for folder in ("Drafts", "Sent", "Trash"):
            subprocess.run(["maildirmake", "-f", folder, str(maildir)], check=True)
        subprocess.run(["chown", "-R", f"{MAIL_UID}:{MAIL_UID}", str(home.parent)], check=True)
        hashed = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password.encode(),
                                capture_output=True, check=True).stdout.decode().strip()
        with (self.root / "etc" / "userdb").open("a") as userdb:
            userdb.write(f"{email}\tuid={MAIL_UID}|gid={MAIL_UID}|home={home}|mail={maildir}"
                         f"|systempw={hashed}\n")
        self._inside("/usr/sbin/makeuserdb")
        return Mailbox(email, password, "127.0.0.1", self.port,
                       folders={"drafts": "INBOX.Drafts", "sent": "INBOX.Sent",
                                "trash": "INBOX.Trash"})
