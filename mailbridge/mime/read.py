"""An RFC 5322 message -> draft fields (:func:`parse_message`): accepts any message a mail client
or server produced and never raises on one. The header block and the multipart structure are
split on the raw bytes (offsets, no copies), so a 20 MB attachment is decoded once; text is
decoded by :mod:`mailbridge.mime.decoding`, the one decoder lists and GETs share."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy as _policy
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from uuid import UUID

from mailbridge.mime.addresses import _addresses_from_header
from mailbridge.mime.decoding import (
    attachment_filename,
    clean,
    decode_text_part,
    decode_transfer,
    decode_words,
    fix_surrogates,
)
from mailbridge.mime.headers import (
    _CONTENT_TYPE,
    _MSG_ID,
    HEADER_CONTEXT_ID,
    HEADER_CONTEXT_TYPE,
    HEADER_CREATED_AT,
    HEADER_ID,
    HEADER_LAST_ERROR,
    HEADER_PLANNED_SEND_AT,
    HEADER_UPDATED_AT,
    _Field,
    _Headers,
    _scan_headers,
    parse_header_time,
)
from mailbridge.model import Attachment, DraftContent, DraftState, ParsedMessage

log = logging.getLogger(__name__)

_MSG_ID_IN_TEXT = re.compile(r"<([!-;=?-~]+)>")


# The common case, ``type/subtype; a=b; c="d e"`` in printable ASCII, read without the stdlib's
# header classes (a few microseconds instead of tens); anything else takes _params_slow: RFC 2231
# (``*=``, ``*0=``), comments, encoded words, escapes, non-ASCII, duplicate names, oddities.
# Token characters as the stdlib's parser reads them (RFC 2045 minus its ``*'%`` specials).
_FAST_MAIN = {
    "content-type": re.compile(r"[ \t]*([!#$%&'*+\-.^_`|~0-9A-Za-z]+/[!#$%&'*+\-.^_`|~0-9A-Za-z]+)"
                               r"[ \t]*"),
    "content-disposition": re.compile(r"[ \t]*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)[ \t]*"),
}
_FAST_PARAM = re.compile(
    r";[ \t]*([!#$&+\-.^_`|~0-9A-Za-z]+)[ \t]*=[ \t]*"
    r"(?:([!#$%&+\-.^_`|~0-9A-Za-z]+)|\"([ !#-\[\]-~]*)\")[ \t]*")
_FAST_END = re.compile(r"(?:;[ \t]*)?")


def _params_of(name: str, value: str | None) -> tuple[str | None, dict[str, str]]:
    """(lowercased main value, parameters) of a Content-Type/-Disposition value (RFC 2045,
    RFC 2231 via the stdlib's header classes); (None, {}) when unusable."""
    if not value:
        return None, {}
    main = _FAST_MAIN[name].match(value)
    if main is None or "=?" in value:
        return _params_slow(name, value)
    params: dict[str, str] = {}
    pos, end = main.end(), len(value)
    while pos < end:
        param = _FAST_PARAM.match(value, pos)
        if param is None:
            if _FAST_END.fullmatch(value, pos):
                break
            return _params_slow(name, value)
        key = param.group(1).lower()
        if key in params:
            return _params_slow(name, value)
        token = param.group(2)
        params[key] = param.group(3) if token is None else token
        pos = param.end()
    return main.group(1).lower(), params


def _params_slow(name: str, value: str) -> tuple[str | None, dict[str, str]]:
    """_params_of by the stdlib's header classes."""
    try:
        header = _policy.default.header_factory(name, value)
        if name == "content-type":
            main = str(getattr(header, "content_type", "")).lower()
            if any("invalid content type" in str(d).lower() for d in header.defects):
                main = ""
        else:
            main = str(getattr(header, "content_disposition", "") or "").lower()
        params = {str(k).lower(): fix_surrogates(str(v))
                  for k, v in getattr(header, "params", {}).items()}
        return main or None, params
    except Exception:  # the stdlib header parser has had crash bugs on hostile input
        log.debug("unparsable %s: %r", name, value, exc_info=True)
        main = value.split(";", 1)[0].strip().lower()
        params = {}
        for m in re.finditer(r';\s*([^=;\s]+)\s*=\s*("([^"]*)"|[^;]*)', value):
            params[m.group(1).lower()] = m.group(3) if m.group(3) is not None else m.group(2).strip()
        return main or None, params


_MAX_DEPTH = 40


@dataclass
class _Collector:
    raw: bytes
    text: str | None = None
    html: str | None = None
    text_parent: int = -1
    html_parent: int = -1
    attachments: list[Attachment] = field(default_factory=list)
    unnamed: int = 0
    nodes: int = 0
    root: tuple[list[_Field], int, _Headers] | None = None
    """The top entity's header fields, body offset and headers, when the caller has them."""

    def visit(self, start: int, end: int, depth: int, parent: int, parent_subtype: str,
               default_type: str) -> None:
        self.nodes += 1
        node = self.nodes
        raw = self.raw
        if node == 1 and self.root is not None:
            fields, body_start, headers = self.root
        else:
            fields, body_start = _scan_headers(raw, start, end)
            headers = _Headers(raw, fields)
        ctype, params = _params_of("content-type", headers.get("content-type"))
        if ctype is None or _CONTENT_TYPE.fullmatch(ctype) is None:
            ctype = default_type
        maintype, subtype = ctype.split("/", 1)
        boundary = params.get("boundary", "")
        if maintype == "multipart" and boundary:
            if depth >= _MAX_DEPTH:
                log.warning("skipped MIME parts nested deeper than %d levels", _MAX_DEPTH)
                return
            child_type = "message/rfc822" if subtype == "digest" else "text/plain"
            for part_start, part_end in _split_multipart(raw, body_start, end,
                                                         boundary.encode("utf-8", "replace")):
                self.visit(part_start, part_end, depth + 1, node, subtype, child_type)
            return
        if maintype == "multipart":  # no boundary: what a client shows is the text
            ctype, maintype, subtype = "text/plain", "text", "plain"
        disposition, disp_params = _params_of("content-disposition", headers.get("content-disposition"))
        filename = disp_params.get("filename") or params.get("name")
        if filename is not None:
            raw_disp = (headers.get("content-disposition") or "") + (headers.get("content-type") or "")
            if "*=" not in raw_disp and "*0" not in raw_disp:  # RFC 2231 values are not RFC 2047
                filename = decode_words(filename)
            filename = clean(filename, "")
            if not filename.strip():
                filename = None
        cte = (headers.get("content-transfer-encoding") or "").strip().lower()

        if (maintype == "text" and subtype in ("plain", "html") and disposition != "attachment"
                and filename is None):
            body = decode_text_part(raw[body_start:end], subtype=subtype,
                                    charset=params.get("charset"), encoding=cte, params=params)
            if subtype == "plain":
                if self.text is None:
                    self.text, self.text_parent = body, parent
                    return
                if parent_subtype == "mixed" and self.text_parent == parent:
                    self.text += body if not self.text or self.text.endswith("\n") else "\n" + body
                    return
            else:
                if self.html is None:
                    self.html, self.html_parent = body, parent
                    return
                if parent_subtype == "mixed" and self.html_parent == parent:
                    self.html += body  # Apple Mail: HTML pieces around inline attachments
                    return
            if parent_subtype == "alternative":
                return  # a second rendering of a body we have
        if (parent_subtype == "alternative" and maintype == "text" and subtype != "calendar"
                and filename is None and disposition != "attachment"):
            return  # text/enriched, text/watch-html ...: renderings, not attachments

        if maintype == "message" and cte not in ("base64", "quoted-printable"):
            data = raw[body_start:end]
        else:
            data = decode_transfer(raw, body_start, end, cte)
        if filename is None:
            filename = self._name_for(ctype, data)
        cids = _msg_ids(headers.get("content-id"))
        content_id = cids[0] if cids else None
        inline = disposition == "inline" or (disposition is None and parent_subtype == "related")
        kept = tuple(raw[f.start:f.end] for f in fields
                     if f.name.lower() in ("content-type", "content-disposition"))
        self.attachments.append(Attachment(filename=filename, content_type=ctype, data=data,
                                           content_id=content_id, inline=inline,
                                           mime_headers=kept))

    def _name_for(self, ctype: str, data: bytes) -> str:
        subject = None
        if ctype == "message/rfc822":
            fields, _ = _scan_headers(data, 0, min(len(data), 64 * 1024))
            subject = _Headers(data, fields).get("subject")
        else:
            self.unnamed += 1
        return attachment_filename(None, ctype, unnamed=self.unnamed, subject=subject)


def _split_multipart(raw: bytes, start: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
    """Offsets of the body parts between ``--boundary`` delimiter lines (RFC 2046 5.1.1).

    The line break before a delimiter belongs to the delimiter. A missing close delimiter ends
    the last part at the end of the entity; preamble and epilogue are skipped.
    """
    delimiter = b"--" + boundary
    parts: list[tuple[int, int]] = []
    part_start = -1
    pos = start
    while True:
        found = raw.find(delimiter, pos, end)
        if found < 0:
            break
        if found > start and raw[found - 1:found] != b"\n":
            pos = found + 1
            continue
        after = found + len(delimiter)
        closing = raw[after:after + 2] == b"--"
        rest = after + 2 if closing else after
        newline = raw.find(b"\n", rest, min(end, rest + 1000))
        line_end = newline + 1 if newline >= 0 else (end if end - rest < 1000 else -1)
        if line_end < 0 or raw[rest:line_end].strip(b" \t\r\n"):
            pos = after
            continue
        if part_start >= 0:
            part_end = found
            if part_end > part_start and raw[part_end - 1:part_end] == b"\n":
                part_end -= 1
                if part_end > part_start and raw[part_end - 1:part_end] == b"\r":
                    part_end -= 1
            parts.append((part_start, part_end))
        if closing:
            return parts
        part_start = line_end
        pos = line_end
    if part_start >= 0:
        parts.append((part_start, end))
    return parts


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except Exception:  # TypeError/ValueError/IndexError/OverflowError, depending on the damage
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _msg_ids(value: str | None) -> list[str]:
    if not value:
        return []
    found = _MSG_ID_IN_TEXT.findall(value)
    if found:
        return found
    return [token for token in re.split(r"[\s,]+", value) if _MSG_ID.fullmatch(token)]


def parse_message(raw: bytes) -> ParsedMessage:
    """Reads any message -- a mailbridge draft, another client's draft, anything in a mailbox --
    and never raises: what cannot be read is left empty.

    Bodies are picked as a mail client shows them: the first text/plain and the first text/html
    that are not attachments (no filename, disposition not ``attachment``), walking
    multipart/mixed, alternative and related; further inline pieces of the same kind next to
    them in a multipart/mixed are appended (Apple Mail splits HTML around inline images); a
    second rendering inside multipart/alternative is skipped. Every other leaf is an attachment:
    ``inline`` when its disposition says so or it sits in multipart/related without one,
    ``content_id`` from Content-ID; message/* parts are attachments holding the enclosed message
    (named after its subject, else ``message.eml``); parts without a filename are named from
    their type (``attachment.bin``, ``attachment-2.pdf``). format=flowed text is unflowed
    (RFC 3676). Texts use ``"\\n"``; an empty body is None.

    Message-IDs come back without angle brackets. Address entries without ``local@domain``
    are dropped. ``state`` is set when X-Mailbridge-Id holds a UUID (missing timestamps fall back
    to the Date header, else the epoch). Every value that would go into a header is free of
    control characters, so the content can be written back with :func:`build_message`.
    """
    return _parse(raw)


def _parse(raw: bytes) -> ParsedMessage:
    fields, body_start = _scan_headers(raw, 0, len(raw))
    headers = _Headers(raw, fields)

    def text_of(name: str) -> str | None:
        value = headers.get(name)
        return None if value is None else clean(decode_words(value))

    collector = _Collector(raw, root=(fields, body_start, headers))
    collector.visit(0, len(raw), 0, 0, "", "text/plain")

    senders = _addresses_from_header(headers.get("from"))
    ids = _msg_ids(headers.get("message-id"))
    reply_to = _msg_ids(headers.get("in-reply-to"))
    date = _parse_date(headers.get("date"))

    state = None
    state_id = (headers.get(HEADER_ID.lower()) or "").strip().strip("<>")
    try:
        parsed_id = UUID(state_id) if state_id else None
    except ValueError:
        parsed_id = None
    if parsed_id is not None:
        created = parse_header_time(headers.get(HEADER_CREATED_AT.lower()))
        updated = parse_header_time(headers.get(HEADER_UPDATED_AT.lower()))
        fallback = date or datetime(1970, 1, 1, tzinfo=UTC)
        state = DraftState(id=parsed_id, created_at=created or updated or fallback,
                           updated_at=updated or created or fallback,
                           last_error=text_of(HEADER_LAST_ERROR.lower()))

    content = DraftContent(
        to=_addresses_from_header(headers.get("to")),
        cc=_addresses_from_header(headers.get("cc")),
        bcc=_addresses_from_header(headers.get("bcc")),
        subject=text_of("subject") or "",
        text=collector.text or None,
        html=collector.html or None,
        attachments=tuple(collector.attachments),
        in_reply_to=reply_to[0] if reply_to else None,
        references=tuple(_msg_ids(headers.get("references"))),
        context_type=text_of(HEADER_CONTEXT_TYPE.lower()),
        context_id=text_of(HEADER_CONTEXT_ID.lower()),
        planned_send_at=parse_header_time(headers.get(HEADER_PLANNED_SEND_AT.lower())),
    )
    marker = (headers.get("x-mozilla-draft-info") is not None
              or (headers.get("x-uniform-type-identifier") or "").lower() == "com.apple.mail-draft")
    return ParsedMessage(content=content, sender=senders[0] if senders else None,
                         message_id=ids[0] if ids else None, date=date, state=state,
                         draft_marker=marker)


class _TextOfHtml(HTMLParser):
    _SKIP = frozenset({"script", "style", "head", "title", "template"})
    _BLOCK = frozenset({"p", "div", "br", "li", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6",
                        "blockquote", "table", "ul", "ol", "hr", "pre", "section", "article",
                        "header", "footer", "dt", "dd", "body"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skipping += 1
        elif tag in self._BLOCK:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self._BLOCK:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def snippet(content: DraftContent, length: int = 200) -> str:
    """A one-line preview of at most ``length`` characters: the text body, else the HTML body's
    text (tags, scripts and styles dropped, entities decoded), whitespace collapsed."""
    source = content.text if content.text and content.text.strip() else None
    if source is None and content.html:
        parser = _TextOfHtml()
        parser.feed(content.html)
        parser.close()
        source = "".join(parser.parts)
    if not source:
        return ""
    return " ".join(source.split())[:length].rstrip()
