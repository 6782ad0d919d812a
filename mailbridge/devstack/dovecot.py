"""A private, throw-away Dovecot (IMAP + LMTP) for `make run` and the test suite.

The configuration is generated into a state folder of our own and Dovecot is started with
``dovecot -F -c FILE``; /etc/dovecot is never read or touched. Measured on Debian 12 with
Dovecot 2.3.19: start to greeting takes about 0.2 s, a clean stop 2.5-3 s (so the tests share one
instance per session). See ``shared/mail-stack-notes.md`` for why each setting is there.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("mailbridge.devstack")

APT_HINT = "apt-get install -y dovecot-imapd dovecot-lmtpd"


class DovecotMissing(RuntimeError):
    """Dovecot's binaries are not installed."""


class DovecotFailed(RuntimeError):
    """Dovecot did not start; the message quotes the end of its log."""


@dataclass(frozen=True)
class TlsFiles:
    """A certificate and key for Dovecot's TLS (STARTTLS and implicit TLS)."""

    cert: Path
    key: Path


def free_port(host: str = "127.0.0.1") -> int:
    """Returns a TCP port on ``host`` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def make_self_signed_cert(folder: Path, hostname: str = "localhost") -> TlsFiles:
    """Creates (once) a self-signed certificate for ``hostname`` and 127.0.0.1 in ``folder``.

    Returns the paths. Uses the ``openssl`` command, which Debian installs with Dovecot.
    """
    folder.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(cert=folder / "cert.pem", key=folder / "key.pem")
    if files.cert.exists() and files.key.exists():
        return files
    openssl = shutil.which("openssl")
    if openssl is None:
        raise DovecotMissing("openssl is not installed: apt-get install -y openssl")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
         "-subj", f"/CN={hostname}", "-addext", f"subjectAltName=DNS:{hostname},IP:127.0.0.1",
         "-keyout", str(files.key), "-out", str(files.cert)],
        check=True, capture_output=True,
    )
    files.key.chmod(0o644)  # read by Dovecot's unprivileged login processes in this dev setup
    return files


def _traversable_by_others(path: Path) -> bool:
    """True if every folder from / down to ``path`` lets other users pass (o+x)."""
    for p in [path, *path.parents]:
        with contextlib.suppress(FileNotFoundError):
            if not p.stat().st_mode & stat.S_IXOTH:
                return False
    return True


class Dovecot:
    """One private Dovecot instance: IMAP (plain + STARTTLS when TLS files are given, optional
    implicit-TLS port) and LMTP, all on 127.0.0.1, users in a passwd-file that may change while
    it runs (Dovecot re-reads the file when it changes).

    ``state_dir`` holds the generated config, the users file, the logs and (when reachable by the
    unprivileged mail user) the mail itself; it survives a restart, so a second start sees the
    same mailboxes.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        imap_port: int,
        lmtp_port: int,
        users: Mapping[str, str],
        imaps_port: int = 0,
        tls: TlsFiles | None = None,
        extra_folders: tuple[str, ...] = (),
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.imap_port = imap_port
        self.lmtp_port = lmtp_port
        self.imaps_port = imaps_port
        self.tls = tls
        self.extra_folders = extra_folders
        self.settings: dict[str, str] = dict(settings or {})
        """Extra top-level settings appended to the generated config (the bench's experiments)."""
        self._users: dict[str, str] = dict(users)
        self._extra: dict[str, str] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        digest = hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:10]
        self.instance_name = f"mailbridge-{digest}"
        # Unix socket paths are limited to ~108 bytes and must be reachable by the login
        # processes, so the run folder is short and lives under /tmp whatever state_dir is.
        self.base_dir = Path(f"/tmp/mailbridge-dovecot-{digest}")
        # Dovecot's auth and mail processes run unprivileged: the users file and the mail live
        # where they can reach them, which a folder under a private home directory may not be.
        if _traversable_by_others(self.state_dir):
            self.shared_dir = self.state_dir
        else:
            self.shared_dir = Path(f"/var/tmp/mailbridge-{digest}")
        self.mail_dir = self.shared_dir / "mail"

    @property
    def config_path(self) -> Path:
        return self.state_dir / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "dovecot.log"

    @property
    def users_path(self) -> Path:
        return self.shared_dir / "users.d"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc is not None else None

    # ------------------------------------------------------------------ users

    def add_user(self, email: str, password: str, extra: str = "") -> None:
        """Adds (or changes the password of) a user; effective for the next login.

        ``extra``: passwd-file extra fields, e.g. ``userdb_mail=maildir:~/Maildir:INDEX=MEMORY``
        (a user whose mailboxes keep no mod-sequences).
        """
        self._users[email] = password
        if extra:
            self._extra[email] = extra
        self._write_users()

    def _write_users(self) -> None:
        # One passwd-file per user: Dovecot re-reads a changed passwd-file at most once a second,
        # but a file it has not seen yet is read at once, so a user added by a test can log in
        # immediately.
        folder = self.users_path
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o750)
        gid = self._mail_owner()[2]
        if os.geteuid() == 0:
            os.chown(folder, 0, gid)
        for email, password in self._users.items():
            if any(c in email + password for c in ":/\r\n") or email.startswith("."):
                raise ValueError(f"user {email!r}: ':', '/' and line breaks are not allowed")
            path = folder / email
            line = f"{email}:{{PLAIN}}{password}::::::{self._extra.get(email, '')}\n"
            if path.exists() and path.read_text() == line:
                continue
            tmp = folder / f".{email}.tmp"
            tmp.write_text(line)
            tmp.chmod(0o640)
            if os.geteuid() == 0:
                os.chown(tmp, 0, gid)
            os.replace(tmp, path)

    # ---------------------------------------------------------------- config

    def _mail_owner(self) -> tuple[str, int, int]:
        """The unprivileged user that owns the mail: nobody when we are root, else ourselves."""
        if os.geteuid() == 0:
            pw = pwd.getpwnam("nobody")
        else:
            pw = pwd.getpwuid(os.geteuid())
        return pw.pw_name, pw.pw_uid, pw.pw_gid

    def render_config(self) -> str:
        """Returns the dovecot.conf text for this instance."""
        user, uid, gid = self._mail_owner()
        group = _group_name(gid)
        tls_lines = ["ssl = no"]
        if self.tls is not None:
            tls_lines = [
                "ssl = yes",
                f"ssl_cert = <{self.tls.cert}",
                f"ssl_key = <{self.tls.key}",
            ]
            if Path("/usr/share/dovecot/dh.pem").exists():
                tls_lines.append("ssl_dh = </usr/share/dovecot/dh.pem")
        folders = "\n".join(
            f'  mailbox "{name}" {{\n    auto = subscribe\n  }}' for name in self.extra_folders
        )
        return f"""# generated by mailbridge.devstack for a private dev/test instance; do not edit
instance_name = {self.instance_name}
base_dir = {self.base_dir}
state_dir = {self.state_dir}/lib
log_path = {self.log_path}
info_log_path = {self.log_path}
listen = 127.0.0.1
protocols = imap lmtp
{chr(10).join(tls_lines)}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = {min(uid, 500)}
first_valid_gid = {min(gid, 500)}
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
mail_location = maildir:~/Maildir
# Dot-locks (dovecot-uidlist.lock) written to a temporary file and linked into place, so a lock
# always holds its owner's pid: with the default O_EXCL create, a process killed between create
# and write leaves an empty lock that Dovecot honours for 2 minutes (the folder hangs after a
# crash); with the pid in it, the next process sees the owner is gone and takes it over at once.
dotlock_use_excl = no
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.users_path}/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.users_path}/%u
  default_fields = uid={uid} gid={gid} home={self.mail_dir}/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
  mailbox Junk {{
    special_use = \\Junk
    auto = subscribe
  }}
{folders}
}}
protocol imap {{
  mail_max_userip_connections = 200
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.imaps_port if self.tls is not None else 0}
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.lmtp_port}
  }}
}}
{chr(10).join(f"{key} = {value}" for key, value in self.settings.items())}
service imap {{
  process_limit = 1024
}}
# no brute-force penalty: tests log in with wrong passwords on purpose, and the penalty (2-15 s
# per later login from 127.0.0.1) would slow every test after them
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""

    # ------------------------------------------------------------- lifecycle

    def start(self, timeout: float = 10.0) -> None:
        """Writes the config and starts Dovecot in the foreground as a child process.

        Returns once the IMAP port greets. Raises DovecotMissing (with the apt-get line) when
        Dovecot is not installed, DovecotFailed with the end of its log when it does not come up.
        """
        binary = shutil.which("dovecot") or (
            "/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None
        )
        if binary is None or not Path("/usr/lib/dovecot/lmtp").exists():
            raise DovecotMissing(f"Dovecot (IMAP + LMTP) is not installed: run `{APT_HINT}` as root")
        if self.running:
            return
        self._kill_leftover()
        _, uid, gid = self._mail_owner()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o755)
        for folder in (self.shared_dir, self.mail_dir, self.base_dir):
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o755)
        if os.geteuid() == 0:
            os.chown(self.mail_dir, uid, gid)
        self._write_users()
        self.config_path.write_text(self.render_config())
        with contextlib.suppress(FileNotFoundError):
            self.log_path.unlink()
        self._proc = subprocess.Popen(
            [binary, "-F", "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: stop() can end every child
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                self._proc = None
                raise DovecotFailed(f"Dovecot exited at start: {err.strip()}\n{self._log_tail()}")
            if _greets(self.imap_port) and self._owns_master():
                log.info("dovecot up: imap 127.0.0.1:%d, lmtp 127.0.0.1:%d, state %s",
                         self.imap_port, self.lmtp_port, self.state_dir)
                return
            time.sleep(0.02)
        self.kill()
        raise DovecotFailed(f"Dovecot did not greet on port {self.imap_port} within {timeout}s\n"
                            f"{self._log_tail()}")

    def _owns_master(self) -> bool:
        """Whether the Dovecot that answers is the one just started (its master.pid names our
        child): another one on the port, or of the same state folder, must not pass for it."""
        assert self._proc is not None
        with contextlib.suppress(OSError, ValueError):
            return int((self.base_dir / "master.pid").read_text().strip()) == self._proc.pid
        return False

    def _kill_leftover(self) -> None:
        """Ends a Dovecot of this same state folder left behind by a process that died (kill -9)."""
        try:
            pid = int((self.base_dir / "master.pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if str(self.config_path).encode() in cmdline:
            log.warning("ending a leftover Dovecot (pid %d) of %s", pid, self.state_dir)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        """Stops Dovecot cleanly (SIGTERM), then forcibly after ``timeout``; no child is left."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self._kill_group(proc)
        self._proc = None

    def kill(self) -> None:
        """Kills Dovecot and all its processes at once (SIGKILL): a crash, as far as clients see."""
        proc = self._proc
        if proc is None:
            return
        self._kill_group(proc)
        self._proc = None

    def _kill_group(self, proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()

    def pause(self) -> None:
        """Freezes every Dovecot process (SIGSTOP): connections stay open but nothing answers."""
        if self._proc is not None:
            os.killpg(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Undoes pause()."""
        if self._proc is not None:
            os.killpg(self._proc.pid, signal.SIGCONT)

    def wipe(self) -> None:
        """Deletes the state (config, users, mail); ends a leftover Dovecot of it first."""
        if self.running:
            raise RuntimeError("stop Dovecot before wiping its state")
        self._kill_leftover()
        for folder in (self.state_dir, self.shared_dir, self.base_dir):
            shutil.rmtree(folder, ignore_errors=True)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no Dovecot log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Dovecot:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGTERM Dovecot's master when our thread dies.

    So a `make run` or a test session that is killed outright leaves no Dovecot behind (its
    children follow the master). Best effort: not every platform has prctl.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _group_name(gid: int) -> str:
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _greets(port: int) -> bool:
    """True if something on 127.0.0.1:port sends an IMAP greeting."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.settimeout(1.0)
            return s.recv(64).startswith(b"* OK")
    except OSError:
        return False


@contextlib.contextmanager
def running_dovecot(state_dir: Path, **kwargs: object) -> Iterator[Dovecot]:
    """Context manager: a started Dovecot that is stopped on exit."""
    d = Dovecot(state_dir, **kwargs)  # type: ignore[arg-type]
    d.start()
    try:
        yield d
    finally:
        d.stop()
