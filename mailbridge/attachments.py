"""The attachments of any stored message, read part by part and in pieces.

A message's attachments are the parts :func:`~mailbridge.imap.bodystructure.choose_parts` calls
attachments, in document order and under the names a read of the whole message shows
(:func:`~mailbridge.imap.bodystructure.attachment_names`), so index 0 here is the first entry of
``attachments`` in a GET of the message. One is found by its file name or its index
(:func:`find`), from BODYSTRUCTURE alone. Its bytes are read with partial FETCHes
(``BODY.PEEK[<part>]<offset.length>``, RFC 3501 section 6.4.5) of :data:`CHUNK` octets and
decoded as they come (:class:`TransferDecoder`), so a 25 MB attachment is never held whole. Each
piece borrows a pool connection only for its FETCH: a slow reader of the bytes does not keep a
connection from other requests.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from mailbridge.config import AccountConfig
from mailbridge.errors import ImapProtocolError, NotFound
from mailbridge.imap import ImapConnection
from mailbridge.imap.bodystructure import (
    BodyPart,
    attachment_names,
    choose_parts,
    decoded_size_estimate,
    parse_bodystructure,
)
from mailbridge.imap.pool import ImapPool
from mailbridge.reading import select_named
from mailbridge.views import has_flag

__all__ = ["CHUNK", "AttachmentPart", "TransferDecoder", "find", "list_parts", "read"]

CHUNK = 256 * 1024
"""Encoded octets per partial FETCH."""


@dataclass(frozen=True, slots=True)
class AttachmentPart:
    """One attachment of the message ``uid`` (in a folder whose UIDVALIDITY was
    ``uidvalidity``): its position, its name as shown, and the MIME part holding it."""

    uid: int
    uidvalidity: int
    index: int
    filename: str
    part: BodyPart

    @property
    def content_type(self) -> str:
        return self.part.content_type

    @property
    def size_estimate(self) -> int:
        return decoded_size_estimate(self.part)


async def list_parts(conn: ImapConnection, account: AccountConfig, folder: str,
                     uid: int) -> list[AttachmentPart]:
    """The attachments of message ``uid`` of ``folder``; NotFound when there is no such message."""
    info = await select_named(conn, account, folder)
    items = await conn.uid_fetch([uid], "(UID FLAGS BODYSTRUCTURE)")
    if not items:
        await conn.noop()  # stored by another session just now (see reading.fetch_whole)
        items = await conn.uid_fetch([uid], "(UID FLAGS BODYSTRUCTURE)")
    if not items or items[0].bodystructure is None or has_flag(items[0].flags or (), "\\Deleted"):
        raise NotFound(f"no message {uid} in {folder!r} of {account.email}", field="uid")
    parts = choose_parts(parse_bodystructure(items[0].bodystructure)).attachments
    return [AttachmentPart(uid, info.uidvalidity, i, name, p)
            for i, (name, p) in enumerate(zip(attachment_names(parts), parts, strict=True))]


def find(parts: list[AttachmentPart], wanted: str) -> AttachmentPart:
    """The attachment named ``wanted`` (its file name exactly as listed; the first when several
    share it), else the one at index ``wanted`` (0-based decimal); NotFound otherwise. A name
    is tried first, so a file called ``1`` is found by its name."""
    for p in parts:
        if p.filename == wanted:
            return p
    if re.fullmatch(r"[0-9]{1,6}", wanted) and int(wanted) < len(parts):
        return parts[int(wanted)]
    raise NotFound(f"the message has no attachment named {wanted!r}"
                   + (f" and only {len(parts)} attachments (index 0 to {len(parts) - 1})"
                      if parts else " and no attachments"), field="attachment")


async def read(pool: ImapPool, account: AccountConfig, folder: str,
               attachment: AttachmentPart, chunk: int = CHUNK) -> AsyncIterator[bytes]:
    """Yields the decoded bytes of ``attachment``, one partial FETCH at a time.

    Raises ImapProtocolError (a 502) when the message disappears (or the folder's UIDVALIDITY changes)
    between two pieces: what was yielded so far is then all there is.
    """
    decoder = TransferDecoder(attachment.part.encoding)
    section = attachment.part.part or "1"
    offset = 0
    while True:
        async with pool.connection() as conn:
            info = await select_named(conn, account, folder)
            items = [] if info.uidvalidity != attachment.uidvalidity else await conn.uid_fetch(
                [attachment.uid], f"(UID BODY.PEEK[{section}]<{offset}.{chunk}>)")
        if not items or section not in items[0].sections:
            raise ImapProtocolError(f"message {attachment.uid} of {folder!r} of {account.email} "
                                "went away while its attachment was read")
        piece = items[0].sections[section]
        offset += len(piece)
        out = decoder.feed(piece)
        if len(piece) < chunk:
            out += decoder.close()
        if out:
            yield out
        if len(piece) < chunk:
            return


class TransferDecoder:
    """Undoes a Content-Transfer-Encoding (RFC 2045 section 6) on bytes that arrive in pieces
    cut anywhere. The stdlib decodes whole strings only (``binascii``); this keeps what a
    piece ends with that cannot be decoded yet (a partial base64 quantum, a partial
    quoted-printable line) for the next one."""

    def __init__(self, encoding: str | None) -> None:
        self.encoding = (encoding or "7BIT").upper()
        self._rest = b""

    def feed(self, data: bytes) -> bytes:
        if self.encoding == "BASE64":
            chars = self._rest + data.translate(None, _NOT_BASE64)
            cut = len(chars) - len(chars) % 4
            self._rest = chars[cut:]
            return _b64(chars[:cut])
        if self.encoding == "QUOTED-PRINTABLE":
            text = self._rest + data
            cut = text.rfind(b"\n") + 1
            self._rest = text[cut:]
            return binascii.a2b_qp(text[:cut])
        return data

    def close(self) -> bytes:
        rest, self._rest = self._rest, b""
        if self.encoding == "BASE64":
            return _b64(rest + b"=" * (-len(rest) % 4)) if rest.strip(b"=") else b""
        if self.encoding == "QUOTED-PRINTABLE":
            return binascii.a2b_qp(rest)
        return b""


_NOT_BASE64 = bytes(sorted(set(range(256)) - set(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")))
"""Line breaks and anything else outside the base64 alphabet, which decoders skip (RFC 2045
section 6.8)."""


def _b64(chars: bytes) -> bytes:
    try:
        return binascii.a2b_base64(chars)
    except binascii.Error:
        return b""
