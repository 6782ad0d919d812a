"""Draft fields -> an RFC 5322 message (:func:`build_message`): 7-bit clean, CRLF, ready for
IMAP APPEND. Header values are folded here (RFC 5322 2.2.3) and non-ASCII text goes in RFC 2047
encoded-words, so unfolding and decoding give back every value exactly; the MIME tree is written
here too (RFC 2045/2046, RFC 2231 file names), attachments streamed through base64."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

import idna

from mailbridge.errors import InvalidInput
from mailbridge.mime.decoding import (
    clean,
    fix_surrogates,
)
from mailbridge.mime.headers import (
    _CRLF,
    _HEADER_NAME,
    _MSG_ID,
    _OWN_HEADERS,
    HEADER_CONTEXT_ID,
    HEADER_CONTEXT_TYPE,
    HEADER_CREATED_AT,
    HEADER_ID,
    HEADER_LAST_ERROR,
    HEADER_PLANNED_SEND_AT,
    HEADER_UPDATED_AT,
    INTERNAL_HEADER_PREFIX,
    _check_body,
    _check_content_type,
    _check_msg_id,
    check_header_value,
    header_time,
)
from mailbridge.model import Address, Attachment, DraftContent, DraftState

_MAX_LINE = 78  # RFC 5322 2.1.1: SHOULD; 998 is the MUST

_ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]"

_ATOM_PHRASE = re.compile(rf"{_ATEXT}{{1,900}}(?: {_ATEXT}{{1,900}})*")

_DOT_ATOM_UTF8 = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff]+"
                            r"(?:\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff]+)*")

_SIMPLE_TEXT = re.compile(r"[!-~]{1,900}(?: [!-~]{1,900})*")

_QUOTABLE = re.compile(r"[ -~]{1,900}")

_SIMPLE_PARAM = re.compile(r"[!#-\[\]-~]{1,60}(?: [!#-\[\]-~]{1,60})*")

_FOLD_POINT = re.compile(r"(?<=[^ \t])[ \t]+(?=[^ \t])")


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
    return [(HEADER_ID, str(state.id)), (HEADER_CREATED_AT, header_time(state.created_at)),
            (HEADER_UPDATED_AT, header_time(state.updated_at))]


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


def _new_boundary(literal: list[bytes], where: str) -> str:
    """A boundary no part contains: QP and base64 never produce "=_", and the parts written as
    they are (7bit text, message/rfc822) are checked. All have the same length, so none is a
    prefix of another. Made from the parts themselves and ``where`` the multipart is in the tree
    (nested ones differ), so that one content is always built into the same bytes (a preview of
    a send is what the send delivers)."""
    seed = hashlib.sha256(where.encode() + b"\0" + b"\0".join(literal))
    while True:
        boundary = f"=_mailbridge_{seed.hexdigest()[:24]}"
        if not any(boundary.encode("ascii") in body for body in literal):
            return boundary
        seed.update(b"again")


def _write_base64(out: io.BytesIO, data: bytes) -> None:
    block = 57 * 16 * 1024  # whole 76-character lines per block
    for start in range(0, len(data), block):
        out.write(base64.encodebytes(data[start:start + block]).replace(b"\n", _CRLF))


def _write_entity(out: io.BytesIO, node: _Leaf | _Multipart, literal: list[bytes],
                  where: str = "") -> None:
    """Writes the part's MIME headers, the blank line and its body (``where``: the part's
    place in the tree, e.g. ``.0.1``)."""
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
    boundary = _new_boundary(literal, where)
    out.write(_fold("Content-Type", f'multipart/{node.subtype}; boundary="{boundary}"{node.params}')
              .encode("ascii") + _CRLF)
    out.write(_CRLF)
    delimiter = b"--" + boundary.encode("ascii")
    for i, part in enumerate(node.parts):
        out.write(delimiter + _CRLF if i == 0 else _CRLF + delimiter + _CRLF)
        _write_entity(out, part, literal, f"{where}.{i}")
    out.write(_CRLF + delimiter + b"--" + _CRLF)


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


