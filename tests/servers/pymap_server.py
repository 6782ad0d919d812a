"""pymap (PyPI, pure Python): no CONDSTORE, SPECIAL-USE, ESEARCH, ENABLE or UNSELECT."""

from __future__ import annotations

import asyncio
import imaplib
import subprocess
import sys
import uuid
from pathlib import Path

from mailbridge.store import OWN_KEYWORDS
from servers import Mailbox, ServerProcess, ServerUnavailable, wait_for_imap


class PymapServer(ServerProcess):
    kind = "pymap"


    def start(self) -> None:
        try:
            import pymap  # noqa: F401
        except ImportError as exc:
            raise ServerUnavailable(f"pymap is not installed ({exc})") from None
        self.root.mkdir(parents=True, exist_ok=True)
        log = self._log = (self.root / "pymap.log").open("wb")
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("pymap")), "--host", "127.0.0.1", "--port",
             str(self.port), "--no-tls", "maildir", str(self.root)], stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_imap(self.proc, self.port, self.root / "pymap.log", "pymap")

    def add_user(self, email: str, password: str, *, keywords: bool = True) -> Mailbox:
        """A user with Drafts, Sent and Trash. pymap's maildir keeps only the keywords a
        ``dovecot-keywords`` file of the folder defines: with ``keywords`` (what an operator of
        pymap must do for mailbridge, see README) it defines mailbridge's own."""
        from pymap.backend.maildir.users import PasswordsFile, UsersFile
        from pymap.config import IMAPConfig

        hashed = IMAPConfig._get_hash_context(None).hash(password)
        home = uuid.uuid4().hex

        async def write() -> None:
            async with UsersFile.with_write(str(self.root)) as users, \
                    PasswordsFile.with_write(str(self.root)) as passwords:
                users.set(UsersFile.build_record(email, home))
                passwords.set(PasswordsFile.build_record(email, hashed))

        asyncio.run(write())
        client = imaplib.IMAP4("127.0.0.1", self.port)
        try:
            client.login(email, password)
            for name in ("Drafts", "Sent", "Trash"):
                client.create(name)
                if keywords:
                    (self.root / home / f".{name}" / "dovecot-keywords").write_text(
                        "".join(f"{i} {k}\n" for i, k in enumerate(OWN_KEYWORDS)))
        finally:
            client.logout()
        return Mailbox(email, password, "127.0.0.1", self.port,
                       folders={"drafts": "Drafts", "sent": "Sent", "trash": "Trash"})
