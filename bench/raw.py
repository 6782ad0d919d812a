"""The raw-protocol baselines: stock aioimaplib (and aiosmtplib) against the same Dovecot and dev
SMTP server, one connection per client, the same message bytes mailbridge stores."""

from __future__ import annotations

import re
import secrets
import uuid

import aioimaplib
import aiosmtplib

_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")
_ID = re.compile(rb"^X-Mailbridge-Id: ([0-9a-fA-F-]{36})\r?$", re.M | re.I)
_MID = re.compile(rb"^Message-ID: <([^@>]+)@", re.M | re.I)


class RawError(Exception):
    pass


class Template:
    """One stored draft's bytes, re-used with a fresh stable id and Message-ID each time (same
    length, so the same bytes on the wire as mailbridge's own message)."""

    def __init__(self, raw: bytes) -> None:
        found = _ID.search(raw)
        mid = _MID.search(raw)
        if found is None or mid is None:
            raise ValueError("the template has no X-Mailbridge-Id or Message-ID")
        self.raw = raw
        self._id = found.group(1)
        self._mid = mid.group(1)

    def make(self) -> tuple[bytes, str]:
        """(message bytes, its stable id)."""
        new_id = str(uuid.uuid4())
        new_mid = secrets.token_hex(len(self._mid) // 2 + 1)[:len(self._mid)].encode()
        return self.raw.replace(self._id, new_id.encode()).replace(self._mid, new_mid), new_id


class RawImap:
    """One logged-in stock aioimaplib connection with a mailbox selected."""

    def __init__(self, client: aioimaplib.IMAP4) -> None:
        self.client = client

    @classmethod
    async def connect(cls, port: int, user: str, password: str,
                      folder: str | None = "Drafts") -> RawImap:
        client = aioimaplib.IMAP4("127.0.0.1", port, timeout=30)
        await client.wait_hello_from_server()
        _ok(await client.login(user, password), "LOGIN")
        if folder is not None:
            _ok(await client.select(folder), "SELECT")
        return cls(client)

    async def append(self, data: bytes, folder: str = "Drafts",
                     flags: str = "(\\Draft \\Seen)") -> int:
        """APPEND; returns the new UID (APPENDUID, RFC 4315)."""
        resp = _ok(await self.client.append(data, mailbox=folder, flags=flags), "APPEND")
        for line in resp.lines:
            m = _APPENDUID.search(bytes(line))
            if m:
                return int(m.group(2))
        raise RawError("APPEND answered no APPENDUID")

    async def fetch(self, uid: int) -> bytes:
        """UID FETCH uid BODY.PEEK[]: the message bytes."""
        resp = _ok(await self.client.uid("fetch", str(uid), "(BODY.PEEK[])"), "UID FETCH")
        for line in resp.lines:
            if isinstance(line, bytearray):
                return bytes(line)
        raise RawError(f"UID FETCH {uid} answered no body")

    async def store_deleted(self, uid: int) -> None:
        _ok(await self.client.uid("store", str(uid), "+FLAGS.SILENT (\\Deleted)"), "UID STORE")

    async def uid_expunge(self, uid: int) -> None:
        # aioimaplib's uid('expunge') checks the pre-login capabilities, which lack UIDPLUS
        proto = self.client.protocol
        cmd = aioimaplib.Command("EXPUNGE", proto.new_tag(), str(uid), prefix="UID",
                                 loop=proto.loop)
        _ok(await proto.execute(cmd), "UID EXPUNGE")

    async def search_header(self, name: str, value: str) -> list[int]:
        resp = _ok(await self.client.uid_search("HEADER", name, f'"{value}"'), "UID SEARCH")
        # aioimaplib strips the "SEARCH" keyword: the first line is the UIDs (or empty)
        words = bytes(resp.lines[0]).split() if resp.lines else []
        if words[:1] == [b"SEARCH"]:
            words = words[1:]
        return [int(x) for x in words if x.isdigit()]

    async def messages(self, folder: str) -> int:
        """STATUS folder (MESSAGES)."""
        resp = _ok(await self.client.status(f'"{folder}"', "(MESSAGES)"), "STATUS")
        m = re.search(rb"MESSAGES (\d+)", b" ".join(bytes(x) for x in resp.lines))
        return int(m.group(1)) if m else -1

    async def close(self) -> None:
        try:
            await self.client.logout()
        except (aioimaplib.Abort, aioimaplib.CommandTimeout, OSError, TimeoutError):
            pass


def _ok(resp: aioimaplib.Response, what: str) -> aioimaplib.Response:
    if resp.result != "OK":
        raise RawError(f"{what} answered {resp.result}: {resp.lines[-1:]!r}")
    return resp


class RawSmtp:
    """One logged-in aiosmtplib connection, kept for every message of a client."""

    def __init__(self, smtp: aiosmtplib.SMTP) -> None:
        self.smtp = smtp

    @classmethod
    async def connect(cls, port: int, user: str, password: str) -> RawSmtp:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, use_tls=False, start_tls=False,
                               timeout=30)
        await smtp.connect()
        await smtp.login(user, password)
        return cls(smtp)

    async def send(self, mail_from: str, rcpts: list[str], data: bytes) -> None:
        errors, _ = await self.smtp.sendmail(mail_from, rcpts, data)
        if errors:
            raise RawError(f"recipients refused: {errors}")

    async def close(self) -> None:
        try:
            await self.smtp.quit()
        except (aiosmtplib.SMTPException, OSError):
            self.smtp.close()
