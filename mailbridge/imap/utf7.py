"""Mailbox names on the IMAP wire: modified UTF-7 (RFC 3501 section 5.1.3) and quoting.

Pure functions, no I/O. IMAP4rev1 servers exchange mailbox names in "modified UTF-7": printable
US-ASCII other than ``&`` stands for itself, ``&`` is written ``&-``, and every run of other
characters is written ``&`` + base64 of its UTF-16BE form (with ``,`` for ``/``, no padding) + ``-``.
``Entwürfe 2026`` travels as ``Entw&APw-rfe 2026``.
"""

from __future__ import annotations

import base64
import binascii
import re

__all__ = ["decode_mailbox", "encode_mailbox", "mailbox_arg", "quote_astring"]

_DIRECT = re.compile(r"[\x20-\x25\x27-\x7e]+")  # printable US-ASCII except "&"
_B64_ALPHABET = re.compile(r"[A-Za-z0-9+,]*")


def _b64_body(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",")


def encode_mailbox(name: str) -> str:
    """Returns ``name`` in modified UTF-7 (RFC 3501 section 5.1.3); the result is pure ASCII.

    Raises ValueError when ``name`` is not valid Unicode (a lone surrogate).
    """
    out: list[str] = []
    pos = 0
    while pos < len(name):
        m = _DIRECT.match(name, pos)
        if m:
            out.append(m.group())
            pos = m.end()
        elif name[pos] == "&":
            out.append("&-")
            pos += 1
        else:
            end = pos + 1
            while end < len(name) and not ("\x20" <= name[end] <= "\x7e"):
                end += 1
            # UnicodeEncodeError (a ValueError) on a lone surrogate
            out.append("&" + _b64_body(name[pos:end].encode("utf-16-be")) + "-")
            pos = end
    return "".join(out)


def decode_mailbox(raw: str) -> str:
    """Returns the Unicode name of a modified UTF-7 mailbox name (RFC 3501 section 5.1.3).

    Strict: raises ValueError on anything the RFC forbids an encoder to produce — characters
    outside printable US-ASCII, an ``&`` run without its closing ``-``, characters outside the
    modified base64 alphabet, a run that is not whole UTF-16 (odd length, stray padding bits,
    unpaired surrogates), a run encoding printable US-ASCII, or two runs back to back. So
    ``encode_mailbox(decode_mailbox(raw)) == raw`` for every ``raw`` it accepts.
    """
    out: list[str] = []
    pos = 0
    previous_was_run = False
    while pos < len(raw):
        amp = raw.find("&", pos)
        if amp < 0:
            amp = len(raw)
        direct = raw[pos:amp]
        if direct:
            if not _DIRECT.fullmatch(direct):
                raise ValueError(f"invalid character in modified UTF-7 at offset {pos}")
            out.append(direct)
            previous_was_run = False
        if amp == len(raw):
            break
        dash = raw.find("-", amp + 1)
        if dash < 0:
            raise ValueError(f"unterminated '&' run in modified UTF-7 at offset {amp}")
        b64 = raw[amp + 1:dash]
        pos = dash + 1
        if not b64:
            out.append("&")
            previous_was_run = False
            continue
        if previous_was_run:
            raise ValueError(f"two adjacent '&' runs in modified UTF-7 at offset {amp}")
        out.append(_decode_run(b64, amp))
        previous_was_run = True
    return "".join(out)


def _decode_run(b64: str, offset: int) -> str:
    if not _B64_ALPHABET.fullmatch(b64) or len(b64) % 4 == 1:
        raise ValueError(f"invalid base64 in modified UTF-7 at offset {offset}")
    padded = b64.replace(",", "/") + "=" * (-len(b64) % 4)
    try:
        raw = base64.b64decode(padded, validate=True)
    except binascii.Error:
        raise ValueError(f"invalid base64 in modified UTF-7 at offset {offset}") from None
    if len(raw) % 2 or _b64_body(raw) != b64:
        # odd byte count, or non-zero bits in the final base64 character
        raise ValueError(f"'&' run in modified UTF-7 at offset {offset} is not whole UTF-16")
    try:
        text = raw.decode("utf-16-be")
    except UnicodeDecodeError:
        raise ValueError(f"invalid UTF-16 in modified UTF-7 at offset {offset}") from None
    if any("\x20" <= c <= "\x7e" for c in text):
        raise ValueError(f"modified UTF-7 at offset {offset} encodes printable ASCII")
    return text


def quote_astring(s: str) -> str:
    """Returns ``s`` as an IMAP quoted string (RFC 3501 section 4.3): ``"`` + s + ``"``,
    with ``\\`` and ``"`` escaped by a backslash.

    Raises ValueError when ``s`` contains CR, LF or NUL, which no quoted string can carry (a
    literal would be needed; mailbridge never needs one for names or search terms). Other
    characters are kept: non-ASCII text must be encoded by the caller as the command requires
    (mailbox names with :func:`encode_mailbox`, search strings under ``CHARSET UTF-8``).
    """
    if any(c in s for c in "\r\n\x00"):
        raise ValueError("an IMAP quoted string cannot contain CR, LF or NUL")
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def mailbox_arg(name: str) -> str:
    """Returns the mailbox ``name`` as a command argument: modified UTF-7, then quoted.

    ``mailbox_arg("Entwürfe 2026") == '"Entw&APw-rfe 2026"'``. Raises ValueError on a name that
    is not valid Unicode.
    """
    return quote_astring(encode_mailbox(name))
