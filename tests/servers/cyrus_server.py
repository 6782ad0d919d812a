"""Cyrus IMAP 3.6, run from the unpacked cyrus-imapd package (never installed: it would remove
Dovecot's IMAP), with the parts that do not conflict installed (scripts/install-system-deps.sh:
cyrus-common, cyrus-admin, sasl2-bin). See shared/imap-servers.md."""

from __future__ import annotations

import imaplib
import os
import subprocess
import uuid
from pathlib import Path

from servers import Mailbox, ServerProcess, ServerUnavailable, unpacked, wait_for_imap

ADMIN = "cyrus"
MASTER = Path("/usr/lib/cyrus/bin/master")
CTL_CYRUSDB = Path("/usr/lib/cyrus/bin/ctl_cyrusdb")


class CyrusServer(ServerProcess):
    kind = "cyrus"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.admin_password = uuid.uuid4().hex

    def start(self) -> None:
        for tool in (MASTER, CTL_CYRUSDB, Path("/usr/sbin/saslpasswd2")):
            if not tool.exists():
                raise ServerUnavailable(f"{tool} is missing (apt-get install cyrus-common "
                                        "sasl2-bin; scripts/install-system-deps.sh does)")
        try:
            import pwd
            pwd.getpwnam("cyrus")
        except KeyError:
            raise ServerUnavailable("there is no cyrus user (cyrus-common creates it)") from None
        imapd = unpacked("cyrus-imapd") / "usr/lib/cyrus/bin/imapd"
        if not imapd.exists():
            raise ServerUnavailable(f"{imapd} is missing from the unpacked cyrus-imapd")
        root = self.root
        for sub in ("config", "partition", "proc", "lock", "socket", "sieve"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.sasldb = root / "config" / "sasldb2"
        conf = root / "imapd.conf"
        conf.write_text("\n".join([
            f"configdirectory: {root / 'config'}",
            f"partition-default: {root / 'partition'}",
            f"proc_path: {root / 'proc'}",
            f"mboxname_lockpath: {root / 'lock'}",
            f"sievedir: {root / 'sieve'}",
            f"lmtpsocket: {root / 'socket' / 'lmtp'}",
            f"idlesocket: {root / 'socket' / 'idle'}",
            f"notifysocket: {root / 'socket' / 'notify'}",
            "altnamespace: yes", "unixhierarchysep: yes", f"admins: {ADMIN}",
            "allowplaintext: yes", "sasl_pwcheck_method: auxprop",
            "sasl_auxprop_plugin: sasldb", f"sasl_sasldb_path: {self.sasldb}",
            "sasl_mech_list: PLAIN LOGIN", "specialusealways: yes", "syslog_prefix: mbcyrus",
            "virtdomains: userid",
            "",
        ]))
        (root / "cyrus.conf").write_text(
            "START {\n"
            f'  recover cmd="{CTL_CYRUSDB} -C {conf} -r"\n'
            "}\nSERVICES {\n"
            f'  imap cmd="{imapd} -C {conf}" listen="127.0.0.1:{self.port}" prefork=0\n'
            "}\nEVENTS {\n}\n")
        self._saslpasswd(ADMIN, self.admin_password)
        subprocess.run(["chown", "-R", "cyrus:mail", str(root)], check=True)
        os.chmod(root, 0o755)
        self._log = (root / "master.log").open("wb")
        self.proc = subprocess.Popen(
            [str(MASTER), "-C", str(conf), "-M", str(root / "cyrus.conf"),
             "-p", str(root / "master.pid"), "-D"],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        def admin_login() -> None:
            client = imaplib.IMAP4("127.0.0.1", self.port)
            try:
                client.login(ADMIN, self.admin_password)
            finally:
                client.logout()

        wait_for_imap(self.proc, self.port, root / "master.log", "Cyrus", ready=admin_login)

    def _saslpasswd(self, user: str, password: str) -> None:
        """A SASL user: ``local@domain`` goes into realm ``domain`` (virtdomains: userid)."""
        local, _, domain = user.partition("@")
        realm = ["-u", domain] if domain else []
        subprocess.run(["saslpasswd2", "-p", "-c", "-f", str(self.sasldb), *realm, local],
                       input=password.encode(), check=True)
        if self.sasldb.exists():
            subprocess.run(["chown", "cyrus:mail", str(self.sasldb)], check=True)

    def add_user(self, email: str, password: str) -> Mailbox:
        self._saslpasswd(email, password)
        admin = imaplib.IMAP4("127.0.0.1", self.port)
        try:
            admin.login(ADMIN, self.admin_password)
            typ, data = admin.create(f'"user/{email}"')
            assert typ == "OK", data
        finally:
            admin.logout()
        client = imaplib.IMAP4("127.0.0.1", self.port)
        try:
            client.login(email, password)
            for name, use in (("Drafts", "\\Drafts"), ("Sent", "\\Sent"), ("Trash", "\\Trash")):
                typ, data = client._simple_command("CREATE", name, f"(USE ({use}))")  # type: ignore[attr-defined]
                assert typ == "OK", data
        finally:
            client.logout()
        return Mailbox(email, password, "127.0.0.1", self.port)
