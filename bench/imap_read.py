"""Reads an attachment back straight from the mail server (as any mail client would)."""

from __future__ import annotations

import asyncio
import email
import imaplib
from email.policy import default as default_policy


def _fetch(port: int, user: str, password: str, filename: str) -> bytes:
    client = imaplib.IMAP4("127.0.0.1", port)
    try:
        client.login(user, password)
        client.select("Drafts", readonly=True)
        _, data = client.uid("SEARCH", "UNDELETED", "SUBJECT", '"big attachment"')
        uid = data[0].split()[-1]
        _, fetched = client.uid("FETCH", uid, "(BODY.PEEK[])")
        raw = fetched[0][1]  # type: ignore[index]
    finally:
        client.logout()
    msg = email.message_from_bytes(raw, policy=default_policy)
    for part in msg.iter_attachments():  # type: ignore[attr-defined]
        if part.get_filename() == filename:
            payload: bytes = part.get_payload(decode=True)
            return payload
    raise LookupError(f"no attachment {filename!r}")


async def fetch_attachment(port: int, user: str, password: str, filename: str) -> bytes:
    return await asyncio.to_thread(_fetch, port, user, password, filename)
