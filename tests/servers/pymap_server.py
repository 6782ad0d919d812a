"""pymap (PyPI, pure Python): no CONDSTORE, SPECIAL-USE, ESEARCH, ENABLE or UNSELECT."""

from __future__ import annotations

import asyncio
import imaplib
import subprocess
import sys
import uuid
from pathlib import Path

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

    def add_user(self, email: str, password: str) -> Mailbox:
        from pymap.backend.maildir.users import PasswordsFile, UsersFile
        from pymap.config import IMAPConfig

        hashed = IMAPConfig._get_hash_context(None).hash(password)

        async def write() -> None:
            async with UsersFile.with_write(str(self.root)) as users, \
                    PasswordsFile.with_write(str(self.root)) as passwords:
                users.set(UsersFile.build_record(email, uuid.uuid4().hex))
                passwords.set(PasswordsFile.build_record(email, hashed))

        asyncio.run(write())
        client = imaplib.IMAP4("127.0.0.1", self.port)
        try:
            client.login(email, password)
            for name in ("Drafts", "Sent", "Trash"):
                client.create(name)
        finally:
            client.logout()
        return Mailbox(email, password, "127.0.0.1", self.port,
                       folders={"drafts": "Drafts", "sent": "Sent", "trash": "Trash"})
