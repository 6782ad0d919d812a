"""Reading messages from the server: the one way a message becomes a StoredMessage.

Whole (:func:`fetch_whole`: one FETCH of the full message, parsed by :mod:`mailbridge.mime`), as a
summary for lists (:func:`fetch_summaries`: headers, BODYSTRUCTURE and the text parts only, no
attachment bytes), by its address headers alone (:func:`fetch_headlines`, what a watcher
remembers of every message), or from the bytes just stored (:func:`written`). Text parts are decoded by the
one decoder of :mod:`mailbridge.mime.decoding` in every case, so a list and a GET of a message say
the same. Reading never changes a message.
"""

from __future__ import annotations

import dataclasses
import email.parser
import email.policy
import logging
from collections.abc import Sequence

from mailbridge.config import AccountConfig
from mailbridge.errors import ImapNotFound, ImapProtocolError, InvalidInput, NotFound
from mailbridge.imap import FetchItem, ImapConnection, SelectInfo
from mailbridge.imap.bodystructure import (
    BodyPart,
    attachment_names,
    choose_parts,
    decoded_size_estimate,
    parse_bodystructure,
)
from mailbridge.mime import (
    HEADER_CONTEXT_ID,
    HEADER_CONTEXT_TYPE,
    HEADER_CREATED_AT,
    HEADER_ID,
    HEADER_LAST_ERROR,
    HEADER_PLANNED_SEND_AT,
    HEADER_UPDATED_AT,
    parse_message,
)
from mailbridge.mime.decoding import decode_text_part
from mailbridge.mime.headers import _scan_headers
from mailbridge.model import AttachmentInfo, DraftContent, DraftState, ParsedMessage
from mailbridge.views import StoredMessage, has_flag

log = logging.getLogger("mailbridge.reading")
_header_parser = email.parser.BytesHeaderParser(policy=email.policy.default)

# Headers of a message that a replace keeps although DraftContent has no field for them: mail
# client draft markers and settings (mailbridge's own X-Mailbridge-* headers are kept as well).
KEPT_HEADER_PREFIXES = ("x-mozilla-", "x-uniform-type-identifier", "x-apple-", "user-agent",
                        "x-mailer", "reply-to", "disposition-notification-to",
                        "return-receipt-to", "x-forwarded-message-id")


def lasting_flags(item: FetchItem) -> tuple[str, ...]:
    """A message's flags without \\Recent, which only tells which IMAP session saw the message
    first (RFC 3501 2.3.2; gone from IMAP4rev2): a message must not read differently depending
    on the pooled connection that read it."""
    return tuple(f for f in item.flags or () if f.lower() != "\\recent")


def fetch_items(conn: ImapConnection, *extra: str) -> str:
    """The FETCH items every read asks for (UID, flags, MODSEQ where kept, date, size), and
    ``extra``."""
    modseq = " MODSEQ" if conn.condstore_enabled else ""
    return f"(UID FLAGS{modseq} INTERNALDATE RFC822.SIZE {' '.join(extra)})"


def parse_stored(raw: bytes) -> ParsedMessage:
    """A message from the server as parse_message reads it. One that the reader fails on (a bug
    in it) is logged and shown empty: it must not make a whole folder unreadable."""
    try:
        return parse_message(raw)
    except Exception:
        log.exception("could not read a message of %d bytes; shown empty", len(raw))
        return ParsedMessage(content=DraftContent(), sender=None, message_id=None, date=None,
                             state=None, draft_marker=False)


def decode_part(raw: bytes, part: BodyPart) -> str:
    """A text part's bytes, as the server stores them, as text: the one decoder GET uses too."""
    return decode_text_part(raw, subtype=part.subtype, charset=part.charset,
                            encoding=part.encoding, params=part.params)


MIME_STATE_HEADERS = frozenset(h.lower() for h in (
    HEADER_ID, HEADER_CREATED_AT, HEADER_UPDATED_AT, HEADER_CONTEXT_TYPE, HEADER_CONTEXT_ID,
    HEADER_PLANNED_SEND_AT, HEADER_LAST_ERROR))


def kept_headers(header_block: bytes) -> tuple[tuple[str, str], ...]:
    """Headers a new version carries over: other clients' (KEPT_HEADER_PREFIXES) and
    mailbridge's own bookkeeping beyond what the MIME layer writes from DraftState."""
    fields, _ = _scan_headers(header_block, 0, len(header_block))
    fast: list[tuple[str, str]] = []
    for f in fields:
        lowered = f.name.lower()
        if not f.name or lowered in MIME_STATE_HEADERS:
            continue
        if not lowered.startswith("x-mailbridge-"):
            if lowered.startswith(KEPT_HEADER_PREFIXES):
                break  # another client's header: the stdlib reading below
            continue
        value = header_block[f.value_start:f.end]
        if not value.isascii() or b"=?" in value:
            break
        fast.append((f.name, value.decode("ascii").replace("\r\n", "").replace("\n", "").strip()))
    else:  # only mailbridge's own plain ASCII headers: as the stdlib would read them, faster
        return tuple(fast)
    return kept_headers_by_stdlib(header_block)


def kept_headers_by_stdlib(header_block: bytes) -> tuple[tuple[str, str], ...]:
    """:func:`kept_headers` as the stdlib's email parser reads them: the twin of its fast path."""
    msg = _header_parser.parsebytes(header_block)
    kept = []
    for name, value in msg.raw_items():
        lowered = name.lower()
        if lowered in MIME_STATE_HEADERS:
            continue
        if lowered.startswith(KEPT_HEADER_PREFIXES) or lowered.startswith("x-mailbridge-"):
            kept.append((name, str(value).replace("\r\n", "").replace("\n", "").strip()))
    return tuple(kept)


def header_block(raw: bytes) -> bytes:
    """The header block of the message ``raw``, with the blank line's first line break."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    return raw if end < 0 else raw[:end + 2]


def whole(account: AccountConfig, folder: str, uidvalidity: int,
          item: FetchItem) -> StoredMessage:
    """The message a FETCH of ``BODY.PEEK[]`` returned as ``item``."""
    raw = item.sections.get("", b"")
    parsed = parse_stored(raw)
    return StoredMessage(
        account=account, folder=folder, uid=item.uid or 0, uidvalidity=uidvalidity,
        modseq=item.modseq, flags=lasting_flags(item), size=item.size or len(raw),
        internaldate=item.internaldate, parsed=parsed,
        attachments=tuple(AttachmentInfo(a.filename, a.content_type, a.size, a.inline,
                                         a.content_id)
                          for a in parsed.content.attachments),
        kept_headers=kept_headers(header_block(raw)), complete=True, raw=raw,
    )


async def fetch_whole(conn: ImapConnection, account: AccountConfig, folder: str,
                      uid: int) -> StoredMessage | None:
    """The message ``uid`` of ``folder``, read whole; None when it is gone or being removed."""
    info = await conn.select(folder, sync=False)
    items = await conn.uid_fetch([uid], fetch_items(conn, "BODY.PEEK[]"))
    if not items or not items[0].sections.get(""):
        # stored by another connection just now, and this session has not synced since: most
        # servers answer a FETCH of a UID the session does not know yet with nothing (pymap
        # with an empty body); or expunged meanwhile. After a NOOP the session knows which.
        await conn.noop()
        items = await conn.uid_fetch([uid], fetch_items(conn, "BODY.PEEK[]"))
    # no body: expunged by another session but not yet reported to this one (Dovecot
    # answers such a message with its old flags and an empty body)
    if not items or has_flag(items[0].flags or (), "\\Deleted") \
            or not items[0].sections.get(""):
        return None
    return whole(account, folder, info.uidvalidity, items[0])


async def written(conn: ImapConnection, account: AccountConfig, folder: str,
                  uid: int, raw: bytes, content: DraftContent,
                  state: DraftState) -> StoredMessage | None:
    """The message we just stored as ``raw`` (built from ``content``), without fetching its
    body back: a 20 MB attachment is not read again. None when it is gone already."""
    info = await conn.select(folder, sync=False)
    modseq = " MODSEQ" if conn.modseq_available else ""
    items = await conn.uid_fetch([uid], f"(UID FLAGS{modseq} INTERNALDATE RFC822.SIZE)")
    if not items or has_flag(items[0].flags or (), "\\Deleted"):
        return None
    item = items[0]
    header = header_block(raw)
    head = parse_message(header + b"\r\n")
    parsed = dataclasses.replace(head, content=dataclasses.replace(
        head.content, text=content.text, html=content.html,
        attachments=content.attachments), state=state)
    return StoredMessage(
        account=account, folder=folder, uid=uid, uidvalidity=info.uidvalidity,
        modseq=item.modseq, flags=lasting_flags(item), size=item.size or len(raw),
        internaldate=item.internaldate, parsed=parsed,
        attachments=tuple(AttachmentInfo(a.filename, a.content_type, a.size, a.inline,
                                         a.content_id) for a in content.attachments),
        kept_headers=kept_headers(header), complete=True, raw=raw)


async def fetch_summaries(conn: ImapConnection, account: AccountConfig, folder: str,
                          uidvalidity: int, uids: Sequence[int]) -> list[StoredMessage]:
    """Headers, structure and text bodies of ``uids`` (no attachment bytes): two FETCHes."""
    if not uids:
        return []
    items = await conn.uid_fetch(uids, fetch_items(conn, "BODYSTRUCTURE BODY.PEEK[HEADER]"))
    plans: list[tuple[FetchItem, ParsedMessage, BodyPart | None, BodyPart | None,
                      tuple[AttachmentInfo, ...]]] = []
    wanted: dict[tuple[str, ...], list[int]] = {}
    for item in items:
        header = item.sections.get("HEADER", b"")
        parsed = parse_stored(_blank_line(header))
        text = html = None
        infos: tuple[AttachmentInfo, ...] = ()
        if item.bodystructure is not None:
            choice = choose_parts(parse_bodystructure(item.bodystructure))
            text, html = choice.text, choice.html
            infos = tuple(
                AttachmentInfo(name, p.content_type,
                               decoded_size_estimate(p), inline=p.disposition == "inline"
                               or (p.content_id is not None and p.disposition != "attachment"),
                               content_id=p.content_id.strip("<>") if p.content_id else None)
                for name, p in zip(attachment_names(choice.attachments), choice.attachments,
                                   strict=True))
        plans.append((item, parsed, text, html, infos))
        parts = tuple(p.part for p in (text, html) if p is not None)
        if parts and item.uid is not None:
            wanted.setdefault(parts, []).append(item.uid)
    bodies: dict[tuple[int, str], bytes] = {}
    for parts, group in wanted.items():
        sections = " ".join(f"BODY.PEEK[{p}]" for p in parts)
        for got in await conn.uid_fetch(group, f"(UID {sections})"):
            for p in parts:
                bodies[(got.uid or 0, p)] = got.sections.get(p, b"")
    result = []
    for item, parsed, text, html, infos in plans:
        uid = item.uid or 0
        content = dataclasses.replace(
            parsed.content,
            text=decode_part(bodies.get((uid, text.part), b""), text) if text else None,
            html=decode_part(bodies.get((uid, html.part), b""), html) if html else None,
        )
        result.append(StoredMessage(
            account=account, folder=folder, uid=uid, uidvalidity=uidvalidity,
            modseq=item.modseq, flags=lasting_flags(item), size=item.size or 0,
            internaldate=item.internaldate,
            parsed=dataclasses.replace(parsed, content=content), attachments=infos,
            kept_headers=kept_headers(item.sections.get("HEADER", b"")), complete=False,
        ))
    return result


HEADLINE_FIELDS = ("Message-ID", "From", "To", "Cc", "Subject", "Date", HEADER_ID,
                   HEADER_CREATED_AT, HEADER_UPDATED_AT, HEADER_CONTEXT_TYPE, HEADER_CONTEXT_ID,
                   HEADER_PLANNED_SEND_AT)
_HEADLINES = f"HEADER.FIELDS ({' '.join(HEADLINE_FIELDS)})".upper()


async def fetch_headlines(conn: ImapConnection, account: AccountConfig, folder: str,
                          uidvalidity: int, uids: Sequence[int]) -> list[StoredMessage]:
    """Flags and :data:`HEADLINE_FIELDS` of ``uids`` only: who, what, which draft (a few
    hundred bytes a message, for keeping many in memory); no body, no structure."""
    if not uids:
        return []
    items = await conn.uid_fetch(uids, fetch_items(conn, f"BODY.PEEK[{_HEADLINES}]"))
    return [StoredMessage(
        account=account, folder=folder, uid=item.uid or 0, uidvalidity=uidvalidity,
        modseq=item.modseq, flags=lasting_flags(item), size=item.size or 0,
        internaldate=item.internaldate,
        parsed=parse_stored(_blank_line(_fields(item))), attachments=(),
        kept_headers=(), complete=False) for item in items]


def _fields(item: FetchItem) -> bytes:
    """The one HEADER.FIELDS section asked for (pymap answers it with the names sorted)."""
    return next((v for k, v in item.sections.items() if k.startswith("HEADER.FIELDS")), b"")


def _blank_line(header: bytes) -> bytes:
    return header + (b"" if header.endswith(b"\r\n\r\n") else b"\r\n")


async def select_named(conn: ImapConnection, account: AccountConfig, folder: str) -> SelectInfo:
    """SELECT a folder a caller named: NotFound when there is none, InvalidInput (400) when the
    server refuses the name or the folder (NO or BAD), without the server's own words."""
    try:
        return await conn.select(folder)
    except ImapNotFound:
        raise NotFound(f"no folder {folder!r} in {account.email}", field="folder") from None
    except ImapProtocolError:
        raise InvalidInput(f"the mail server of {account.email} refuses the folder {folder!r}: "
                           "the name is not valid there, or the folder cannot be opened",
                           field="folder") from None

