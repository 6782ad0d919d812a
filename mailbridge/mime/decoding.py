"""Reading what a message holds: charsets, RFC 2047 encoded words, RFC 2231 parameters,
transfer encodings, format=flowed, and the names of attachments. The one decoder of each,
used alike by the whole-message reader (:func:`mailbridge.mime.parse_message`, a GET) and by
the BODYSTRUCTURE reader (:mod:`mailbridge.imap.bodystructure`, a list). Pure, never raises.
"""

from __future__ import annotations

import binascii
import codecs
import mimetypes
import re
from email.utils import collapse_rfc2231_value, unquote
from email.utils import decode_params as _stdlib_decode_params

__all__ = [
    "attachment_filename",
    "b64decode",
    "clean",
    "decode_8bit",
    "decode_params",
    "decode_text",
    "decode_text_part",
    "decode_transfer",
    "decode_words",
    "fix_surrogates",
    "unflow",
]

BAD_HEADER_CHARS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
"""What must not reach a header: controls (but tab), C1 controls, Unicode line separators."""
SURROGATE = re.compile("[\ud800-\udfff]")


def decode_8bit(data: bytes) -> str:
    """Header or unlabelled bytes: ASCII, else UTF-8, else Windows-1252 (what clients assume)."""
    if data.isascii():
        return data.decode("ascii")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return _decode_cp1252(data)


def _decode_cp1252(data: bytes) -> str:
    return data.decode("cp1252", errors="replace")  # five bytes are undefined in it


_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_WSP_ONLY = re.compile(r"[ \t]*")


def b64decode(data: bytes | memoryview) -> bytes:
    try:
        return binascii.a2b_base64(data)
    except (binascii.Error, ValueError):
        cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", bytes(data))
        if len(cleaned) % 4 == 1:
            cleaned = cleaned[:-1]
        cleaned += b"=" * (-len(cleaned) % 4)
        try:
            return binascii.a2b_base64(cleaned)
        except (binascii.Error, ValueError):
            return b""


def decode_words(text: str) -> str:
    """Decodes RFC 2047 encoded-words in ``text``; whitespace between adjacent encoded-words is
    dropped (RFC 2047 6.2) and adjacent words in one charset are decoded together, so a
    character split across words by a sloppy encoder survives. Undecodable words stay as they
    are."""
    if "=?" not in text:
        return text
    pieces: list[str] = []
    pending = b""
    pending_charset: str | None = None
    pos = 0
    for match in _ENCODED_WORD.finditer(text):
        gap = text[pos:match.start()]
        charset = match.group(1).split("*", 1)[0].lower()
        payload = match.group(3).encode("utf-8")
        if match.group(2) in "bB":
            data = b64decode(payload)
            if payload and not data:  # nothing of it is base64: not an encoded-word after all
                if pending_charset is not None:
                    pieces.append(decode_text(pending, pending_charset))
                    pending, pending_charset = b"", None
                pieces.append(gap + match.group(0))
                pos = match.end()
                continue
        else:
            data = binascii.a2b_qp(payload, header=True)
        if pending_charset is not None and _WSP_ONLY.fullmatch(gap) is not None:
            if charset == pending_charset:
                pending += data
            else:
                pieces.append(decode_text(pending, pending_charset))
                pending, pending_charset = data, charset
        else:
            if pending_charset is not None:
                pieces.append(decode_text(pending, pending_charset))
            pieces.append(gap)
            pending, pending_charset = data, charset
        pos = match.end()
    if pending_charset is not None:
        pieces.append(decode_text(pending, pending_charset))
    pieces.append(text[pos:])
    return "".join(pieces)


_LATIN1_NAMES = frozenset({"iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "latin-1", "l1", "cp819",
                           "ibm819", "iso-ir-100", "windows-1252", "cp1252", "x-cp1252"})
_ASCII_NAMES = frozenset({"", "us-ascii", "ascii", "us_ascii", "ansi_x3.4-1968", "iso646-us",
                          "unknown-8bit", "x-unknown", "unknown", "default", "8bit"})


def decode_text(data: bytes, charset: str | None) -> str:
    """Decodes body or header bytes in the declared charset like a mail client: Latin-1 labels
    mean Windows-1252 (WHATWG), ASCII or no label means "try UTF-8", unknown or broken labels
    fall back to UTF-8/Windows-1252; undecodable bytes become U+FFFD. Never raises."""
    name = (charset or "").strip().strip("\"'").lower()
    if name in _ASCII_NAMES:
        return decode_8bit(data)
    if name in _LATIN1_NAMES:
        return _decode_cp1252(data)
    codec = _codec(name)
    if codec is None:
        return decode_8bit(data)
    try:
        return data.decode(codec, errors="replace")
    except Exception:  # a codec that rejects "replace" or chokes on the data
        return decode_8bit(data)


# Python text codecs that no mail charset means (and that mangle or refuse ordinary bytes)
_NOT_CHARSETS = frozenset({"idna", "punycode", "undefined", "unicode-escape", "raw-unicode-escape"})


def _codec(charset: str) -> str | None:
    """The Python codec of a MIME charset name (``charset*language`` allowed, RFC 2231 5);
    None when unknown or no charset (base64, zlib, rot13, idna ...)."""
    try:
        info = codecs.lookup(charset.split("*", 1)[0].strip())
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        return None
    return info.name


def clean(text: str, replacement: str = " ") -> str:
    """What came from a message, made safe to write back into a header."""
    return SURROGATE.sub("\ufffd", BAD_HEADER_CHARS.sub(replacement, text))


def fix_surrogates(text: str) -> str:
    if SURROGATE.search(text) is None:
        return text
    return decode_8bit(text.encode("utf-8", "surrogateescape"))


def unflow(text: str, delsp: bool) -> str:
    """Joins the soft line breaks of format=flowed (RFC 3676 4.2): a line ending in a space
    continues on the next line of the same quote depth; space-stuffing is removed."""
    out: list[str] = []
    paragraph: str | None = None
    paragraph_depth = 0
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        body = line[depth:]
        if body.startswith(" "):
            body = body[1:]
        flowed = body.endswith(" ") and body != "-- "
        if flowed and delsp:
            body = body[:-1]
        if paragraph is not None and depth == paragraph_depth:
            paragraph += body
        else:
            if paragraph is not None:
                out.append(_quoted_line(paragraph_depth, paragraph))
            paragraph, paragraph_depth = body, depth
        if not flowed:
            out.append(_quoted_line(paragraph_depth, paragraph))
            paragraph = None
    if paragraph is not None:
        out.append(_quoted_line(paragraph_depth, paragraph))
    return "\n".join(out)


def _quoted_line(depth: int, body: str) -> str:
    if not depth:
        return body
    return ">" * depth + (" " + body if body else "")


def decode_transfer(raw: bytes, start: int, end: int, cte: str) -> bytes:
    """The part's body with its Content-Transfer-Encoding undone (RFC 2045 6); unknown
    encodings are returned as they are."""
    view = memoryview(raw)[start:end]
    if cte == "base64":
        return b64decode(view)
    if cte == "quoted-printable":
        return binascii.a2b_qp(view)
    return bytes(view)


def decode_text_part(data: bytes, *, subtype: str, charset: str | None, encoding: str | None,
                     params: dict[str, str]) -> str:
    """A text/plain or text/html body as stored (``data``, in transfer ``encoding``) as text:
    decoded in its charset (:func:`decode_text`), line breaks made ``\\n``, format=flowed
    unflowed (RFC 3676)."""
    body = decode_text(decode_transfer(data, 0, len(data), (encoding or "").strip().lower()),
                       charset)
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    if subtype == "plain" and params.get("format", "").strip('"').lower() == "flowed":
        body = unflow(body, params.get("delsp", "").strip('"').lower() == "yes")
    return body


def decode_params(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """MIME parameters given as (name, value) pairs (IMAP's body-fld-param) -> {lower-case
    name: value}, RFC 2231 continuations joined and decoded (by the stdlib's decode_params;
    the charset by :func:`decode_text`). The extended form wins over a plain one of the same
    name, as RFC 2231 readers do."""
    pairs = [(n.strip().lower(), v) for n, v in pairs]
    # A plain section of an encoded value holds text, not octets: as octets in the value's
    # charset (UTF-8 when unusable) it joins the percent-decoded ones (the stdlib would join
    # its characters, which are octets only when ASCII)
    charsets = {n.split("*", 1)[0]: v.partition("'")[0] for n, v in pairs
                if n.endswith("*") and v.count("'") >= 2}
    pairs = [(n + "*", _percent(v, charsets[base]))
             if not n.endswith("*") and "*" in n and not v.isascii()
             and (base := n.split("*", 1)[0]) in charsets else (n, v) for n, v in pairs]
    result: dict[str, str] = {}
    for name, value in _stdlib_decode_params([("", ""), *pairs])[1:]:
        if isinstance(value, tuple):
            charset, _, text = value
            result[name] = decode_text(unquote(text).encode("latin-1", "replace"), charset)
        else:
            result.setdefault(name, collapse_rfc2231_value(value))
    return result


def _percent(text: str, charset: str) -> str:
    codec = _codec(charset) or "utf-8"
    try:
        data = text.encode(codec)
    except (LookupError, ValueError, UnicodeError):
        data = text.encode("utf-8", "surrogateescape")
    return "".join(f"%{b:02X}" for b in data)


_MIME_TYPES = mimetypes.MimeTypes()  # the built-in table only: same names on every machine
_FILENAME_JUNK = re.compile(r'[\\/:*?"<>|]+')


def attachment_filename(filename: str | None, content_type: str, *, unnamed: int,
                        subject: str | None = None) -> str:
    """The name an attachment is shown under: its own ``filename`` (decoded; control characters
    removed, surrounding blanks stripped), else
    for message/rfc822 its ``subject`` + ``.eml`` (``message.eml``), else ``attachment.<ext>``
    for the first unnamed one and ``attachment-<unnamed>.<ext>`` after it (``.bin`` for types
    without an extension)."""
    if filename is not None:
        filename = clean(filename, "").strip()
        if filename:
            return filename
    if content_type == "message/rfc822":
        if subject:
            stem = _FILENAME_JUNK.sub("_", clean(decode_words(subject), "_")).strip(" ._")[:100]
            if stem:
                return f"{stem}.eml"
        return "message.eml"
    extension = _MIME_TYPES.guess_extension(content_type, strict=False) or ".bin"
    return f"attachment{extension}" if unnamed == 1 else f"attachment-{unnamed}{extension}"
