"""Draft fields <-> RFC 5322 messages: building, reading, and the small textual edits of sending.

Pure: no I/O. Everything here works on ``bytes`` and the domain objects of :mod:`mailbridge.model`.

Writing (:func:`build_message`) produces a 7-bit clean message with CRLF line endings, ready for
IMAP APPEND: header values are folded by this module (RFC 5322 section 2.2.3) and non-ASCII text is
carried in RFC 2047 encoded-words, so that unfolding and decoding give back every value exactly --
leading and trailing spaces, runs of spaces, tabs and all. The MIME tree is written here as well
(RFC 2045/2046, RFC 2231 for file names), streaming attachments through base64 block by block.

Reading (:func:`parse_message`) accepts any message a mail client or server produced and never
raises. The header block and the multipart structure are split on the raw bytes (offsets, no
copies), so a 20 MB attachment is decoded once, straight from the message into its ``bytes``;
the stdlib's ``email.policy.default`` header classes read the Content-Type and
Content-Disposition parameters (RFC 2231 continuations and charsets).

Conventions, the same in both directions:

* Message-IDs (``message_id``, ``in_reply_to``, ``references``) are passed and returned WITHOUT
  angle brackets; :func:`build_message` adds them. Given ones with brackets are accepted.
* Text and HTML bodies use ``"\\n"`` line endings (CRLF and lone CR are normalised to ``"\\n"``);
  an empty body is ``None``. On the wire every line ends in CRLF.
* Subjects and other free-text header values come back exactly as given (no stripping).
* Display names come back exactly as given, with whitespace at their ends removed.
* Attachments with a ``content_id`` are written inline inside ``multipart/related`` next to the
  HTML body, so they come back before the other attachments (each group keeps its order) and
  with ``inline=True``.
* Addresses with an internationalised domain and an ASCII local part are written with the
  domain's IDNA A-label (``xn--...``), which is what comes back; a non-ASCII local part makes the
  message an RFC 6532 one (UTF-8 in the address headers).
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy as _policy
from email.utils import format_datetime, parsedate_to_datetime
from html.parser import HTMLParser
from typing import NamedTuple
from uuid import UUID

import idna
from email_validator import EmailNotValidError, validate_email

from mailbridge.errors import HeaderInjection, InvalidInput
from mailbridge.mime.decoding import (
    BAD_HEADER_CHARS,
    SURROGATE,
    attachment_filename,
    clean,
    decode_8bit,
    decode_text_part,
    decode_transfer,
    decode_words,
    fix_surrogates,
)
from mailbridge.model import Address, Attachment, DraftContent, DraftState, ParsedMessage

__all__ = [
    "HEADER_CONTEXT_ID",
    "HEADER_CONTEXT_TYPE",
    "HEADER_CREATED_AT",
    "HEADER_ID",
    "HEADER_LAST_ERROR",
    "HEADER_PLANNED_SEND_AT",
    "HEADER_UPDATED_AT",
    "INTERNAL_HEADER_PREFIX",
    "build_message",
    "check_header_value",
    "client_headers",
    "make_message_id",
    "parse_address_list",
    "parse_message",
    "set_header",
    "snippet",
    "state_headers",
    "strip_for_sending",
]

log = logging.getLogger(__name__)

INTERNAL_HEADER_PREFIX = "X-Mailbridge-"
"""Every header mailbridge keeps its own state in starts with this; none reaches a recipient."""
HEADER_ID = "X-Mailbridge-Id"
HEADER_CREATED_AT = "X-Mailbridge-Created-At"
HEADER_UPDATED_AT = "X-Mailbridge-Updated-At"
HEADER_CONTEXT_TYPE = "X-Mailbridge-Context-Type"
HEADER_CONTEXT_ID = "X-Mailbridge-Context-Id"
HEADER_PLANNED_SEND_AT = "X-Mailbridge-Planned-Send-At"
HEADER_LAST_ERROR = "X-Mailbridge-Last-Error"

# Headers build_message writes itself; extra_headers may not name them.
_OWN_HEADERS = frozenset({
    "date", "from", "to", "cc", "bcc", "subject", "message-id", "in-reply-to", "references",
    "mime-version",
})
# Trace headers of a delivered message: meaningless on a rewritten draft.
_TRACE_HEADERS = frozenset({"received", "return-path", "delivered-to", "x-original-to"})

_MAX_LINE = 78  # RFC 5322 2.1.1: SHOULD; 998 is the MUST
_CRLF = b"\r\n"

# What str.splitlines() and the email package's folding take for a line break: in a header
# value, any of them could start a header of its own.
LINE_BREAKS = frozenset("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_CONTENT_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}")
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext
_MSG_ID = re.compile(r"[!-;=?-~]+")  # printable ASCII without < and >
_MSG_ID_IN_TEXT = re.compile(r"<([!-;=?-~]+)>")

_ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]"
_ATOM_PHRASE = re.compile(rf"{_ATEXT}{{1,900}}(?: {_ATEXT}{{1,900}})*")
_DOT_ATOM_UTF8 = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff]+"
                            r"(?:\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff]+)*")
_SIMPLE_TEXT = re.compile(r"[!-~]{1,900}(?: [!-~]{1,900})*")
_QUOTABLE = re.compile(r"[ -~]{1,900}")
_SIMPLE_PARAM = re.compile(r"[!#-\[\]-~]{1,60}(?: [!#-\[\]-~]{1,60})*")
_FOLD_POINT = re.compile(r"(?<=[^ \t])[ \t]+(?=[^ \t])")


# --------------------------------------------------------------------------------------------
# Validation


def check_header_value(field: str, value: str) -> None:
    """Refuses a value that cannot go into a mail header as one line.

    Raises :class:`HeaderInjection` (naming ``field``) for CR, LF and every other control
    character except TAB -- C0, DEL and C1 (NEL), and U+2028/U+2029 -- because each is a line
    break or a smuggling vector to some mail software (RFC 5322 section 2.2: a field body is one
    line). Raises :class:`InvalidInput` for a lone surrogate (not encodable as UTF-8).
    """
    bad = BAD_HEADER_CHARS.search(value)
    if bad is not None:
        char = bad.group()
        what = "a line break" if char in LINE_BREAKS else "a control character"
        raise HeaderInjection(
            f"{field} must not contain {what} (U+{ord(char):04X}): it goes into a mail header, "
            "which is a single line", field=field)
    if SURROGATE.search(value) is not None:
        raise InvalidInput(f"{field} is not valid Unicode (it contains a lone surrogate)", field=field)


def _check_body(field: str, value: str) -> None:
    if SURROGATE.search(value) is not None:
        raise InvalidInput(f"{field} is not valid Unicode (it contains a lone surrogate)", field=field)


def _check_msg_id(field: str, value: str) -> str:
    """Returns the id without brackets; refuses what is not one RFC 5322 msg-id."""
    check_header_value(field, value)
    ident = value.strip()
    if len(ident) >= 2 and ident.startswith("<") and ident.endswith(">"):
        ident = ident[1:-1]
    if _MSG_ID.fullmatch(ident) is None or len(ident) > 900:
        raise InvalidInput(
            f"{field} must be a Message-ID like 'abc@example.test' (printable ASCII, no spaces or "
            f"angle brackets inside), got {value!r}", field=field)
    return ident


def _check_content_type(field: str, value: str) -> str:
    check_header_value(field, value)
    ctype = value.strip().lower()
    if _CONTENT_TYPE.fullmatch(ctype) is None:
        raise InvalidInput(f"{field} must be a MIME type like 'application/pdf', got {value!r}",
                           field=field)
    return ctype


# --------------------------------------------------------------------------------------------
# Writing header fields


def _fold(name: str, value: str) -> str:
    """``name: value`` folded before whitespace (RFC 5322 2.2.3); unfolding gives ``value`` back.

    Lines are kept within 78 characters where a fold point allows; a fold is never placed so
    that a line ends in whitespace or a continuation line is whitespace only.
    """
    line = f"{name}: {value}"
    if len(line) <= _MAX_LINE:
        return line
    points = [m.start() for m in _FOLD_POINT.finditer(line, len(name) + 2)]
    pieces: list[str] = []
    start = 0
    index = 0
    while len(line) - start > _MAX_LINE and index < len(points):
        best = -1
        while index < len(points) and points[index] - start <= _MAX_LINE:
            if points[index] > start:
                best = points[index]
            index += 1
        if best < 0:  # one overlong word: break after it
            best = points[index]
            index += 1
        pieces.append(line[start:best])
        start = best
    pieces.append(line[start:])
    return "\r\n".join(pieces)


_Q_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_EW_PAYLOAD = 62  # 74 - len("=?utf-8?q?") - len("?="): RFC 2047 allows 75


def _encoded_words(value: str, first: int = _EW_PAYLOAD) -> list[str]:
    """``value`` as RFC 2047 encoded-words (UTF-8), each at most 74 characters (the first one's
    payload at most ``first``, to fit after the field name) and holding whole characters. Q,
    readable in the raw message, is chosen unless B is much shorter; the Q alphabet is the one
    allowed in a phrase (RFC 2047 5(3)), so the words serve display names as well."""
    q_chars = []
    for char in value:
        if char == " ":
            q_chars.append("_")
        elif char in _Q_SAFE:
            q_chars.append(char)
        else:
            q_chars.append("".join(f"={byte:02X}" for byte in char.encode("utf-8")))
    q_len = sum(map(len, q_chars))
    b_len = (len(value.encode("utf-8")) + 2) // 3 * 4
    words: list[str] = []
    limit = max(12, min(first, _EW_PAYLOAD))
    if 2 * q_len <= 3 * b_len:
        chunk = ""
        for q in q_chars:
            if chunk and len(chunk) + len(q) > limit:
                words.append(f"=?utf-8?q?{chunk}?=")
                chunk = ""
                limit = _EW_PAYLOAD
            chunk += q
        words.append(f"=?utf-8?q?{chunk}?=")
    else:
        max_bytes = limit // 4 * 3
        raw = b""
        for char in value:
            encoded = char.encode("utf-8")
            if raw and len(raw) + len(encoded) > max_bytes:
                words.append(f"=?utf-8?b?{base64.b64encode(raw).decode('ascii')}?=")
                raw = b""
                max_bytes = _EW_PAYLOAD // 4 * 3
            raw += encoded
        words.append(f"=?utf-8?b?{base64.b64encode(raw).decode('ascii')}?=")
    return words


def _unstructured(value: str, name: str = "") -> str:
    """A free-text value (Subject, X-...) as it goes on the wire: as is when it is plain ASCII
    words separated by single spaces, otherwise entirely as encoded-words (exact round trip,
    including leading/trailing/multiple whitespace and text that looks like an encoded-word)."""
    if value == "" or (_SIMPLE_TEXT.fullmatch(value) is not None and "=?" not in value):
        return value
    return " ".join(_encoded_words(value, _MAX_LINE - len(name) - 2 - 12))


def _verbatim(value: str) -> str:
    """An extra header's value: ASCII goes as given (it may carry encoded-words already)."""
    value = value.strip(" \t")
    if value.isascii():
        return value
    return " ".join(_encoded_words(value))


def _format_address(address: Address, field: str) -> tuple[str, bool]:
    """RFC 5322 ``mailbox`` for one address; the flag says UTF-8 is needed (RFC 6532)."""
    check_header_value(field, address.name)
    check_header_value(field, address.email)
    email = address.email.strip()
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain:
        raise InvalidInput(f"{field}: {address.email!r} is not an email address", field=field)
    if not (len(local) >= 2 and local.startswith('"') and local.endswith('"')) \
            and _DOT_ATOM_UTF8.fullmatch(local) is None:
        local = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if not domain.isascii() and local.isascii():
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            pass  # not IDNA-encodable: it stays UTF-8 (RFC 6532)
    addr_spec = f"{local}@{domain}"
    needs_utf8 = not addr_spec.isascii()
    name = address.name.strip(" \t")
    if not name:
        return addr_spec, needs_utf8
    if _ATOM_PHRASE.fullmatch(name) is not None and "=?" not in name:
        phrase = name
    elif _QUOTABLE.fullmatch(name) is not None and "=?" not in name:
        phrase = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    else:
        phrase = " ".join(_encoded_words(name))
    return f"{phrase} <{addr_spec}>", needs_utf8


def state_headers(state: DraftState) -> list[tuple[str, str]]:
    """The X-Mailbridge-* fields that hold ``state`` (id, created_at, updated_at)."""
    return [(HEADER_ID, str(state.id)), (HEADER_CREATED_AT, _rfc3339_utc(state.created_at)),
            (HEADER_UPDATED_AT, _rfc3339_utc(state.updated_at))]


def _rfc3339_utc(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


# --------------------------------------------------------------------------------------------
# Writing bodies


@dataclass
class _Leaf:
    headers: list[str]
    body: bytes
    base64: bool = False  # body is raw data still to be base64-encoded
    raw_headers: tuple[bytes, ...] = ()  # written first, as they are (CRLF-terminated)


@dataclass
class _Multipart:
    subtype: str
    parts: list[_Leaf | _Multipart]
    params: str = ""


_7BIT_TEXT = re.compile(rb"[\t\n\x20-\x7e]*")
_RISKY_LINE = re.compile(rb"^(?:From |\.)|[ \t]$", re.MULTILINE)


def _qp_line_slow(line: bytes) -> list[bytes]:
    """Quoted-printable for one line, escaping a leading "." or "From " on every physical line."""
    last = len(line) - 1
    physical: list[bytes] = []
    current = b""
    for i, byte in enumerate(line):
        if byte == 0x3D or byte > 0x7E or (byte < 0x20 and byte != 0x09) or (byte in (0x20, 0x09)
                                                                               and i == last):
            token = b"=%02X" % byte
        else:
            token = bytes((byte,))
        if current and len(current) + len(token) > 75:
            physical.append(current + b"=")
            current = b""
        if not current and (token == b"." or (token == b"F" and line.startswith(b"From ", i))):
            token = b"=%02X" % byte
        current += token
    physical.append(current)
    return physical


def _quoted_printable(lines: list[bytes]) -> bytes:
    """RFC 2045 6.7 with CRLF; physical lines never start with "From " or "." (mbox and SMTP)."""
    out: list[bytes] = []
    for line in lines:
        # the line holds no line break, so the only ones in what b2a_qp makes are soft ones
        physical = binascii.b2a_qp(line, False, False, False).split(b"\n")
        if any(p.startswith((b".", b"From ")) for p in physical):
            physical = _qp_line_slow(line)
        out.extend(physical)
    return _CRLF.join(out)


def _text_leaf(subtype: str, text: str) -> _Leaf:
    """A text/plain or text/html part, UTF-8, with the lightest transfer encoding that keeps
    every byte: 7bit for short plain ASCII lines; otherwise quoted-printable, or base64 when most
    of the text is non-ASCII. The body ends exactly where the text ends (no added newline)."""
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    lines = data.split(b"\n")
    headers = [f'Content-Type: text/{subtype}; charset="utf-8"']
    if (_7BIT_TEXT.fullmatch(data) is not None and max(map(len, lines)) <= 76
            and _RISKY_LINE.search(data) is None):
        return _Leaf([*headers, "Content-Transfer-Encoding: 7bit"], _CRLF.join(lines))
    non_ascii = len(data) - len(data.translate(None, bytes(range(0x80, 0x100))))
    if non_ascii * 3 > len(data):
        return _Leaf([*headers, "Content-Transfer-Encoding: base64"], _CRLF.join(lines), base64=True)
    return _Leaf([*headers, "Content-Transfer-Encoding: quoted-printable"], _quoted_printable(lines))


_ATTR_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$&+-.^_`|~")


def _param(name: str, value: str) -> str:
    """One MIME parameter: a quoted-string when plain ASCII, else RFC 2231 (UTF-8, split into
    numbered sections of at most 60 characters so no line grows long)."""
    if _SIMPLE_PARAM.fullmatch(value) is not None and "=?" not in value:
        return f'{name}="{value}"'
    encoded = "".join(chr(b) if b in _ATTR_CHARS else f"%{b:02X}" for b in value.encode("utf-8"))
    if len(encoded) <= 60:
        return f"{name}*=utf-8''{encoded}"
    sections: list[str] = []
    while encoded:
        cut = min(60, len(encoded))
        if "%" in encoded[max(0, cut - 2):cut]:  # do not split a %XX triplet
            cut = encoded.rindex("%", 0, cut)
        sections.append(encoded[:cut])
        encoded = encoded[cut:]
    return "; ".join(f"{name}*{i}*={'utf-8' + chr(39) * 2 if i == 0 else ''}{section}"
                     for i, section in enumerate(sections))


def _attachment_leaf(attachment: Attachment, index: int) -> _Leaf:
    prefix = f"attachments[{index}]"
    check_header_value(f"{prefix}.filename", attachment.filename)
    if not attachment.filename.strip():
        raise InvalidInput(f"{prefix}.filename must not be empty", field=f"{prefix}.filename")
    ctype = _check_content_type(f"{prefix}.content_type", attachment.content_type)
    inline = attachment.inline or attachment.content_id is not None
    headers = [
        f"Content-Type: {ctype}; {_param('name', attachment.filename)}",
        f"Content-Disposition: {'inline' if inline else 'attachment'}; "
        f"{_param('filename', attachment.filename)}",
    ]
    verbatim = _verbatim_fields(attachment.mime_headers)
    if verbatim:  # as another client wrote them: parameters survive byte for byte
        headers = []
    if attachment.content_id is not None:
        cid = _check_msg_id(f"{prefix}.content_id", attachment.content_id)
        headers.append(f"Content-ID: <{cid}>")
    if ctype.startswith("message/") and _is_plain_message(attachment.data):
        # RFC 2046 5.2.1: message/rfc822 may not be base64-encoded; readers parse it in place.
        cte = "7bit" if attachment.data.isascii() else "8bit"
        return _Leaf([*headers, f"Content-Transfer-Encoding: {cte}"], attachment.data,
                     raw_headers=verbatim)
    return _Leaf([*headers, "Content-Transfer-Encoding: base64"], attachment.data, base64=True,
                 raw_headers=verbatim)


def _verbatim_fields(fields: Sequence[bytes]) -> tuple[bytes, ...]:
    """Header fields read from a stored part, to write back as they were: each ends in CRLF,
    its continuation lines begin with white space, and none is a field mailbridge writes
    itself (so nothing can be added or doubled)."""
    kept = []
    for field_ in fields:
        lines = field_.replace(b"\r\n", b"\n").rstrip(b"\n").split(b"\n")
        name = lines[0].split(b":", 1)[0].strip().lower()
        folded = all(line[:1] in (b" ", b"\t") for line in lines[1:])
        if name not in (b"content-type", b"content-disposition") or not folded \
                or any(b"\r" in line or b"\0" in line for line in lines):
            return ()
        kept.append(b"\r\n".join(lines) + b"\r\n")
    return tuple(kept)


_LONG_LINE = re.compile(rb"[^\r\n]{999}")


def _is_plain_message(data: bytes) -> bool:
    """True when ``data`` can travel as 7bit/8bit unchanged: CRLF lines of at most 998 octets."""
    crlf = data.count(_CRLF)
    if b"\x00" in data or data.count(b"\n") != crlf or data.count(b"\r") != crlf:
        return False
    return _LONG_LINE.search(data) is None


def _body_tree(content: DraftContent) -> _Leaf | _Multipart:
    text = content.text or None
    html = content.html or None
    if text is not None:
        _check_body("text", text)
    if html is not None:
        _check_body("html", html)
    leaves = [(a, _attachment_leaf(a, i)) for i, a in enumerate(content.attachments)]
    related = [leaf for a, leaf in leaves if html is not None and a.content_id is not None]
    mixed = [leaf for a, leaf in leaves if not (html is not None and a.content_id is not None)]
    html_part: _Leaf | _Multipart | None = None
    if html is not None:
        html_part = _text_leaf("html", html)
        if related:
            html_part = _Multipart("related", [html_part, *related], params='; type="text/html"')
    main: _Leaf | _Multipart
    if text is not None and html_part is not None:
        main = _Multipart("alternative", [_text_leaf("plain", text), html_part])
    elif html_part is not None:
        main = html_part
    else:
        main = _text_leaf("plain", text or "")
    if mixed:
        return _Multipart("mixed", [main, *mixed])
    return main


def _literal_bodies(node: _Leaf | _Multipart) -> list[bytes]:
    if isinstance(node, _Leaf):
        return [] if node.base64 else [node.body]
    return [body for part in node.parts for body in _literal_bodies(part)]


def _new_boundary(literal: list[bytes]) -> str:
    """A boundary no part contains: QP and base64 never produce "=_", and the parts written as
    they are (7bit text, message/rfc822) are checked. All have the same length, so none is a
    prefix of another."""
    while True:
        boundary = f"=_mailbridge_{secrets.token_hex(12)}"
        if not any(boundary.encode("ascii") in body for body in literal):
            return boundary


def _write_base64(out: io.BytesIO, data: bytes) -> None:
    block = 57 * 16 * 1024  # whole 76-character lines per block
    for start in range(0, len(data), block):
        out.write(base64.encodebytes(data[start:start + block]).replace(b"\n", _CRLF))


def _write_entity(out: io.BytesIO, node: _Leaf | _Multipart, literal: list[bytes]) -> None:
    """Writes the part's MIME headers, the blank line and its body."""
    if isinstance(node, _Leaf):
        for line in node.raw_headers:
            out.write(line)
        for header in node.headers:
            out.write(_fold(*header.split(": ", 1)).encode("ascii") + _CRLF)
        out.write(_CRLF)
        if node.base64:
            _write_base64(out, node.body)
        else:
            out.write(node.body)
        return
    boundary = _new_boundary(literal)
    out.write(_fold("Content-Type", f'multipart/{node.subtype}; boundary="{boundary}"{node.params}')
              .encode("ascii") + _CRLF)
    out.write(_CRLF)
    delimiter = b"--" + boundary.encode("ascii")
    for i, part in enumerate(node.parts):
        out.write(delimiter + _CRLF if i == 0 else _CRLF + delimiter + _CRLF)
        _write_entity(out, part, literal)
    out.write(_CRLF + delimiter + b"--" + _CRLF)


# --------------------------------------------------------------------------------------------
# build_message


def build_message(
    content: DraftContent,
    *,
    sender: Address,
    message_id: str,
    date: datetime,
    state: DraftState | None,
    extra_headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    """Returns the draft as an RFC 5322 message with CRLF line endings, for IMAP APPEND.

    Headers: Date (RFC 5322 3.3; a naive ``date`` is taken as UTC), From, To, Cc, Bcc (kept: this
    is the mailbox copy; :func:`strip_for_sending` makes the wire copy), Subject, Message-ID
    (``message_id`` without brackets; they are added), In-Reply-To, References,
    ``X-Mailbridge-*`` (``state`` and the context/schedule fields of ``content``; timestamps in
    RFC 3339), then ``extra_headers`` in their order (e.g. another client's X-Mozilla-Draft-Info,
    see :func:`client_headers`; ASCII values are written as given, so encoded-words pass
    unchanged, non-ASCII ones are RFC 2047-encoded), then MIME-Version and the body's Content-*
    headers.

    Body (RFC 2046): text -> text/plain; html -> text/html; both -> multipart/alternative;
    neither -> an empty text/plain; attachments with a ``content_id`` go inline into a
    multipart/related around the HTML; other attachments make a multipart/mixed. Attachments are
    base64 with RFC 2231 file names (message/* ones stay 7bit/8bit when they can, RFC 2046 5.2.1).

    ``state.last_error`` is made one line (line breaks and control characters become spaces):
    it is a server reply, not caller input.

    Raises :class:`HeaderInjection` for a control character in any header-bound value, naming the
    field (``subject``, ``to[0]``, ``attachments[2].filename``, ``references[1]``,
    ``extra_headers[0]``, ...), and :class:`InvalidInput` for other malformed values (a content
    type that is not ``type/subtype``, a bad Message-ID, an address without ``@``, a naive
    ``planned_send_at``, an empty file name, an extra header that mailbridge writes itself).
    """
    headers: list[str] = []
    utf8 = False

    def add(name: str, value: str) -> None:
        headers.append(_fold(name, value))

    def add_addresses(name: str, field_name: str, addresses: Sequence[Address]) -> None:
        nonlocal utf8
        formatted = []
        for i, address in enumerate(addresses):
            where = field_name if name == "From" else f"{field_name}[{i}]"
            text, needs_utf8 = _format_address(address, where)
            utf8 = utf8 or needs_utf8
            formatted.append(text)
        if formatted:
            add(name, ", ".join(formatted))

    if date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
    add("Date", format_datetime(date))
    add_addresses("From", "from", [sender])
    add_addresses("To", "to", content.to)
    add_addresses("Cc", "cc", content.cc)
    add_addresses("Bcc", "bcc", content.bcc)
    check_header_value("subject", content.subject)
    if content.subject:
        add("Subject", _unstructured(content.subject, "Subject"))
    add("Message-ID", f"<{_check_msg_id('message_id', message_id)}>")
    if content.in_reply_to is not None:
        add("In-Reply-To", f"<{_check_msg_id('in_reply_to', content.in_reply_to)}>")
    if content.references:
        add("References", " ".join(f"<{_check_msg_id(f'references[{i}]', ref)}>"
                                    for i, ref in enumerate(content.references)))
    if state is not None:
        for name, value in state_headers(state):
            add(name, value)
    if content.context_type is not None:
        check_header_value("context_type", content.context_type)
        add(HEADER_CONTEXT_TYPE, _unstructured(content.context_type, HEADER_CONTEXT_TYPE))
    if content.context_id is not None:
        check_header_value("context_id", content.context_id)
        add(HEADER_CONTEXT_ID, _unstructured(content.context_id, HEADER_CONTEXT_ID))
    if content.planned_send_at is not None:
        if content.planned_send_at.utcoffset() is None:
            raise InvalidInput("planned_send_at needs a time zone offset (RFC 3339)",
                               field="planned_send_at")
        add(HEADER_PLANNED_SEND_AT, content.planned_send_at.isoformat())
    if state is not None and state.last_error is not None:
        one_line = clean(state.last_error.replace("\r\n", " "))
        add(HEADER_LAST_ERROR, _unstructured(one_line, HEADER_LAST_ERROR))
    for i, (name, value) in enumerate(extra_headers):
        field_name = f"extra_headers[{i}]"
        check_header_value(field_name, name)
        if _HEADER_NAME.fullmatch(name) is None:
            raise InvalidInput(f"{field_name}: {name!r} is not a header field name", field=field_name)
        lowered = name.lower()
        if lowered in _OWN_HEADERS or lowered.startswith(("content-", INTERNAL_HEADER_PREFIX.lower())):
            raise InvalidInput(f"{field_name}: {name} is written by mailbridge itself", field=field_name)
        value = fix_surrogates(value)  # a raw value read with surrogateescape (8-bit header)
        check_header_value(field_name, value)
        add(name, _verbatim(value))

    tree = _body_tree(content)
    out = io.BytesIO()
    out.write(_CRLF.join(h.encode("utf-8" if utf8 else "ascii") for h in headers) + _CRLF)
    out.write(b"MIME-Version: 1.0\r\n")
    _write_entity(out, tree, _literal_bodies(tree))
    return out.getvalue()


# --------------------------------------------------------------------------------------------
# Reading: header blocks


class _Field(NamedTuple):
    name: str  # "" for a line that is not a field (an mbox "From " line, a stray continuation)
    start: int  # offset of the field's first line
    value_start: int  # offset after the colon
    end: int  # offset after the field's last line break


_FIELD_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:")


def _scan_headers(raw: bytes, start: int, end: int) -> tuple[list[_Field], int]:
    """The header fields of the entity in ``raw[start:end]`` and the offset its body starts at.

    The block ends at the first empty line (which belongs to neither) or, in a malformed
    message, at the first line that is neither a field nor a continuation (the body starts
    there, as the stdlib parser does).
    """
    fields: list[_Field] = []
    pos = start
    while pos < end:
        newline = raw.find(b"\n", pos, end)
        line_end = end if newline < 0 else newline + 1
        head = raw[pos:min(line_end, pos + 1000)]
        if head in (b"\r\n", b"\n") or (line_end == end and head in (b"", b"\r")):
            return fields, line_end
        if head[:1] in (b" ", b"\t"):
            if fields and fields[-1].name:
                last = fields[-1]
                fields[-1] = _Field(last.name, last.start, last.value_start, line_end)
            else:
                fields.append(_Field("", pos, pos, line_end))
            pos = line_end
            continue
        match = _FIELD_NAME.match(head)
        if match is not None:
            fields.append(_Field(match.group(1).decode("ascii"), pos, pos + match.end(), line_end))
        elif pos == start and head.startswith(b"From "):
            fields.append(_Field("", pos, pos, line_end))
        else:
            return fields, pos
        pos = line_end
    return fields, end


class _Headers:
    """The first field of each name (lowercased), its value decoded when asked for."""

    __slots__ = ("_first", "_raw")

    def __init__(self, raw: bytes, fields: list[_Field]) -> None:
        self._raw = raw
        self._first: dict[str, _Field] = {}
        for f in fields:
            if f.name:
                self._first.setdefault(f.name.lower(), f)

    def get(self, name: str) -> str | None:
        f = self._first.get(name)
        if f is None:
            return None
        value = decode_8bit(self._raw[f.value_start:f.end])
        return value.replace("\r", "").replace("\n", "").strip(" \t")


# --------------------------------------------------------------------------------------------
# Reading: addresses


def _split_address_list(value: str) -> list[str]:
    """Splits an address list on the commas (and group ``:``/``;``) that are outside quotes,
    comments, angle brackets and domain literals; group names are dropped.

    Damage is repaired the way mail clients do: an unterminated quote or comment is taken as a
    literal character, an unterminated ``<`` ends at the next comma.
    """
    literal: set[int] = set()
    angle_to_comma: set[int] = set()
    for _ in range(len(value) + 1):
        items, open_at = _scan_address_list(value, literal, angle_to_comma)
        if open_at < 0:
            return items
        if value[open_at] == "<":
            angle_to_comma.add(open_at)
        else:
            literal.add(open_at)
    return [value]  # not reached: every round fixes one opener


def _scan_address_list(value: str, literal: set[int], angle_to_comma: set[int]) -> tuple[list[str], int]:
    """One pass of :func:`_split_address_list`: the items and the offset of an opener left
    unterminated (-1 if none)."""
    items: list[str] = []
    buf: list[str] = []
    quote = False
    comment = 0
    closer = ""
    opened = -1
    lenient_angle = False
    i = 0
    while i < len(value):
        char = value[i]
        if quote or comment:
            buf.append(char)
            if char == "\\" and i + 1 < len(value):
                buf.append(value[i + 1])
                i += 1
            elif quote and char == '"':
                quote = False
                opened = -1 if not closer else opened
            elif comment and char == "(":
                comment += 1
            elif comment and char == ")":
                comment -= 1
                if not comment:
                    opened = -1
        elif closer:
            if char == "," and lenient_angle:
                closer = ""
                opened = -1
                items.append("".join(buf))
                buf = []
            else:
                buf.append(char)
                if char == closer:
                    closer = ""
                    opened = -1
        elif i in literal:
            buf.append(char)
        elif char == '"':
            quote = True
            opened = i
            buf.append(char)
        elif char == "(":
            comment = 1
            opened = i
            buf.append(char)
        elif char in "<[":
            closer = ">" if char == "<" else "]"
            lenient_angle = i in angle_to_comma
            opened = i
            buf.append(char)
        elif char in ",;":
            items.append("".join(buf))
            buf = []
        elif char == ":":
            buf = []
        else:
            buf.append(char)
        i += 1
    items.append("".join(buf))
    return items, opened if (quote or comment or closer) else -1


def _parse_mailbox(item: str) -> tuple[str, str] | None:
    """``(display name, addr-spec)`` of one ``mailbox`` (RFC 5322 3.4), leniently; None if there
    is no address at all. Encoded-words in the name are decoded, also inside quotes (as mail
    clients do); comments are dropped (an old-style ``a@b (Name)`` comment becomes the name)."""
    segments: list[tuple[str, str]] = []  # (kind, text): raw / quoted / comment / angle
    raw: list[str] = []
    i = 0
    n = len(item)
    while i < n:
        char = item[i]
        if char in '"(<':
            if raw:
                segments.append(("raw", "".join(raw)))
                raw = []
            kind = {'"': "quoted", "(": "comment", "<": "angle"}[char]
            depth = 1
            j = i + 1
            text: list[str] = []
            while j < n:
                c = item[j]
                if c == "\\" and kind != "angle" and j + 1 < n:
                    text.append(item[j + 1])
                    j += 2
                    continue
                if kind == "quoted" and c == '"':
                    break
                if kind == "comment" and c == "(":
                    depth += 1
                elif kind == "comment" and c == ")":
                    depth -= 1
                    if depth == 0:
                        break
                if kind == "angle" and c == ">":
                    break
                text.append(c)
                j += 1
            if j >= n and kind != "angle":  # unterminated quote or comment: a literal character
                if kind == "comment":
                    raw.append(char)
                i += 1
                continue
            segments.append((kind, "".join(text)))
            i = j + 1
            continue
        raw.append(char)
        i += 1
    if raw:
        segments.append(("raw", "".join(raw)))

    angles = [k for k, (kind, _) in enumerate(segments) if kind == "angle"]
    if angles:
        last = angles[-1]
        addr = segments[last][1]
        if addr.startswith("@") and ":" in addr:  # obsolete route: <@relay:user@host>
            addr = addr.split(":", 1)[1]
        addr = "".join(addr.split())
        name_segments = [s for s in segments[:last] if s[0] != "comment" and s[0] != "angle"]
    else:
        addr = "".join(
            ('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"') if kind == "quoted" else text
            for kind, text in segments if kind in ("raw", "quoted"))
        addr = "".join(addr.split()) if '"' not in addr else addr.strip()
        comments = [text for kind, text in segments if kind == "comment" and text.strip()]
        name_segments = [("quoted", comments[0])] if comments else []
    if not addr:
        return None
    # The phrase: whitespace outside the words at both ends is not part of it.
    while name_segments and name_segments[0][0] == "raw" and not name_segments[0][1].strip(" \t"):
        name_segments.pop(0)
    while name_segments and name_segments[-1][0] == "raw" and not name_segments[-1][1].strip(" \t"):
        name_segments.pop()
    if name_segments and name_segments[0][0] == "raw":
        name_segments[0] = ("raw", name_segments[0][1].lstrip(" \t"))
    if name_segments and name_segments[-1][0] == "raw":
        name_segments[-1] = ("raw", name_segments[-1][1].rstrip(" \t"))
    name = "".join(decode_words(text) for _, text in name_segments)
    return name, addr


def _addresses_from_header(value: str | None) -> tuple[Address, ...]:
    if not value:
        return ()
    found: list[Address] = []
    for item in _split_address_list(value):
        parsed = _parse_mailbox(item)
        if parsed is None:
            continue
        name, addr = parsed[0], clean(parsed[1], "")
        local, at, domain = addr.rpartition("@")
        if not at or not local or not domain:
            continue  # not deliverable in any way: dropped
        found.append(Address(email=addr, name=clean(name)))
    return tuple(found)


def parse_address_list(value: str | Sequence[str], field: str) -> tuple[Address, ...]:
    """Reads recipients given by a caller: ``a@b``, ``Name <a@b>``, ``"Last, First" <a@b>``, a
    comma-separated string of those, or a list with one address per item.

    Each address is checked with email-validator (syntax only, no DNS; ``*.test`` allowed,
    SMTPUTF8 allowed) and returned in its normalised form (domain lowercased, Unicode NFC).
    Raises :class:`HeaderInjection` for a control character and :class:`InvalidInput` for a bad
    address; the field is ``field[i]`` (list item or position in the string) or just ``field``
    for a string holding one address. Empty entries of a comma-separated string are skipped.
    """
    if isinstance(value, str):
        check_header_value(field, value)
        items = [item for item in _split_address_list(value) if item.strip()]
        names = [field] if len(items) == 1 else [f"{field}[{i}]" for i in range(len(items))]
    else:
        items = []
        names = []
        for i, item in enumerate(value):
            name = f"{field}[{i}]"
            if not isinstance(item, str):
                raise InvalidInput(f"{name} must be a string like 'Name <a@example.test>'", field=name)
            check_header_value(name, item)
            items.append(item)
            names.append(name)
    result: list[Address] = []
    for item, name in zip(items, names, strict=True):
        parsed = _parse_mailbox(item.strip())
        if parsed is None:
            raise InvalidInput(f"{name}: {item.strip()!r} is not an email address", field=name)
        display, addr = parsed
        try:
            checked = validate_email(addr, check_deliverability=False, test_environment=True,
                                     allow_smtputf8=True)
        except EmailNotValidError as exc:
            raise InvalidInput(f"{name}: {addr!r} is not a valid email address: {exc}", field=name) from exc
        check_header_value(name, display)
        result.append(Address(email=checked.normalized, name=display))
    return tuple(result)


# --------------------------------------------------------------------------------------------
# Reading: bodies


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


# --------------------------------------------------------------------------------------------
# parse_message


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except Exception:  # TypeError/ValueError/IndexError/OverflowError, depending on the damage
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
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
        created = _parse_iso(headers.get(HEADER_CREATED_AT.lower()))
        updated = _parse_iso(headers.get(HEADER_UPDATED_AT.lower()))
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
        planned_send_at=_parse_iso(headers.get(HEADER_PLANNED_SEND_AT.lower())),
    )
    marker = (headers.get("x-mozilla-draft-info") is not None
              or (headers.get("x-uniform-type-identifier") or "").lower() == "com.apple.mail-draft")
    return ParsedMessage(content=content, sender=senders[0] if senders else None,
                         message_id=ids[0] if ids else None, date=date, state=state,
                         draft_marker=marker)


# --------------------------------------------------------------------------------------------
# Textual edits of a whole message


def _line_ending(raw: bytes, fields: list[_Field]) -> bytes:
    first = raw[fields[0].start:fields[0].end] if fields else b""
    return b"\n" if first.endswith(b"\n") and not first.endswith(_CRLF) else _CRLF


def strip_for_sending(raw: bytes) -> bytes:
    """The copy that goes to SMTP: ``raw`` without its Bcc fields and without every
    ``X-Mailbridge-*`` field (each with all its continuation lines). Everything else -- the other
    fields, their folding, the body -- is kept byte for byte. Returns ``raw`` itself when there
    is nothing to remove."""
    fields, _ = _scan_headers(raw, 0, len(raw))
    prefix = INTERNAL_HEADER_PREFIX.lower()
    drop = [f for f in fields if f.name.lower() == "bcc" or f.name.lower().startswith(prefix)]
    if not drop:
        return raw
    view = memoryview(raw)
    pieces: list[memoryview] = []
    pos = 0
    for f in drop:
        pieces.append(view[pos:f.start])
        pos = f.end
    pieces.append(view[pos:])
    return b"".join(pieces)


def set_header(raw: bytes, name: str, value: str) -> bytes:
    """``raw`` with header ``name`` set to ``value``: the first existing field of that name is
    replaced in place and any further ones are removed; without one, the field is added at the
    end of the header block. The rest of the message is kept byte for byte; the new field uses
    the message's line ending. An ASCII ``value`` is written as given (folded at whitespace), so
    a value copied from another message passes unchanged; a non-ASCII one is RFC 2047-encoded.
    Used to set Date at send time.

    Raises :class:`InvalidInput` for a bad field name, :class:`HeaderInjection` for a control
    character in ``value``.
    """
    check_header_value("name", name)
    if _HEADER_NAME.fullmatch(name) is None:
        raise InvalidInput(f"{name!r} is not a header field name", field="name")
    check_header_value(name.lower(), value)
    fields, _ = _scan_headers(raw, 0, len(raw))
    newline = _line_ending(raw, fields)
    line = _fold(name, _verbatim(value)).encode("ascii").replace(_CRLF, newline) + newline
    same = [f for f in fields if f.name.lower() == name.lower()]
    view = memoryview(raw)
    if not same:
        at = fields[-1].end if fields else 0
        if at > 0 and not raw[:at].endswith(b"\n"):
            line = newline + line
        return b"".join([view[:at], line, view[at:]])
    pieces: list[bytes | memoryview] = []
    pos = 0
    for i, f in enumerate(same):
        pieces.append(view[pos:f.start])
        if i == 0:
            pieces.append(line if raw[f.start:f.end].endswith(b"\n") else line[:-len(newline)])
        pos = f.end
    pieces.append(view[pos:])
    return b"".join(pieces)


def client_headers(raw: bytes) -> tuple[tuple[str, str], ...]:
    """The header fields of ``raw`` that :func:`build_message` does not write itself, unfolded
    and as they are (encoded-words left encoded): pass them as ``extra_headers`` when replacing
    a draft another client wrote, so it still recognises it (X-Mozilla-Draft-Info,
    X-Uniform-Type-Identifier, X-Universally-Unique-Identifier, Reply-To, User-Agent...).
    Content-*, MIME-Version, X-Mailbridge-* and trace fields (Received, Return-Path...) are left
    out."""
    fields, _ = _scan_headers(raw, 0, len(raw))
    kept: list[tuple[str, str]] = []
    prefix = INTERNAL_HEADER_PREFIX.lower()
    for f in fields:
        lowered = f.name.lower()
        if (not f.name or lowered in _OWN_HEADERS or lowered in _TRACE_HEADERS
                or lowered.startswith(("content-", prefix))):
            continue
        value = decode_8bit(raw[f.value_start:f.end]).replace("\r", "").replace("\n", "")
        kept.append((f.name, clean(value.strip(" \t"))))
    return tuple(kept)


# --------------------------------------------------------------------------------------------
# Small helpers


def make_message_id(domain: str) -> str:
    """A new globally unique Message-ID (RFC 5322 3.6.4) without angle brackets:
    ``<uuid4 hex>@domain`` (an internationalised domain is IDNA-encoded). Raises ValueError for
    a domain that cannot be one."""
    domain = domain.strip()
    if not domain.isascii():
        domain = idna.encode(domain, uts46=True).decode("ascii")
    if _MSG_ID.fullmatch(domain) is None or "@" in domain:
        raise ValueError(f"{domain!r} cannot be the domain of a Message-ID")
    return f"{uuid.uuid4().hex}@{domain}"


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

