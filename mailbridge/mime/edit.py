"""Small textual edits of a whole message, keeping every other byte: set or replace one header,
strip mailbridge's own headers (and Bcc) before sending, read other clients' headers."""

from __future__ import annotations

from mailbridge.errors import InvalidInput
from mailbridge.mime.build import _fold, _verbatim
from mailbridge.mime.decoding import (
    clean,
    decode_8bit,
)
from mailbridge.mime.headers import (
    _CRLF,
    _HEADER_NAME,
    _OWN_HEADERS,
    INTERNAL_HEADER_PREFIX,
    _Field,
    _scan_headers,
    check_header_value,
)

# Trace headers of a delivered message: meaningless on a rewritten draft.
_TRACE_HEADERS = frozenset({"received", "return-path", "delivered-to", "x-original-to"})


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
