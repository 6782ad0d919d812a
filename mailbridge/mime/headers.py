"""Header fields: mailbridge's own header names, the check that refuses a value which cannot
go into a header as one line (CR, LF and every other line break or control character), and the
scanner that finds the fields of a header block in raw bytes (offsets, no copies)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Literal, NamedTuple

from mailbridge.errors import HeaderInjection, InvalidInput
from mailbridge.mime.decoding import (
    BAD_HEADER_CHARS,
    SURROGATE,
    decode_8bit,
)

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

_CRLF = b"\r\n"

# What str.splitlines() and the email package's folding take for a line break: in a header
# value, any of them could start a header of its own.
LINE_BREAKS = frozenset("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"

_CONTENT_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}")

_HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext

_MSG_ID = re.compile(r"[!-;=?-~]+")  # printable ASCII without < and >


def header_time(moment: datetime, timespec: Literal["auto", "milliseconds"] = "auto") -> str:
    """``moment`` as mailbridge writes a time into its own headers: RFC 3339 in UTC, ending in
    ``Z`` (a naive ``moment`` is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_header_time(value: str | None) -> datetime | None:
    """A time from one of mailbridge's headers (RFC 3339, any offset; one without an offset is
    taken as UTC); None when there is none or it cannot be read."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


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


class _Field(NamedTuple):
    name: str  # "" for a line that is not a field (an mbox "From " line, a stray continuation)
    start: int  # offset of the field's first line
    value_start: int  # offset after the colon
    end: int  # offset after the field's last line break


_FIELD_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:")
_FIELD_LINES = re.compile(rb"([!-9;-~]+)[ \t]*(:)[^\n]*(?:\n[ \t][^\n]*)*\n?")
"""A field line with all its continuation lines: what the line loop of _scan_headers finds for
a field whose name and colon lie within its first 1,000 bytes, in one match."""


def _scan_headers(raw: bytes, start: int, end: int) -> tuple[list[_Field], int]:
    """The header fields of the entity in ``raw[start:end]`` and the offset its body starts at.

    The block ends at the first empty line (which belongs to neither) or, in a malformed
    message, at the first line that is neither a field nor a continuation (the body starts
    there, as the stdlib parser does).
    """
    fields: list[_Field] = []
    pos = start
    match_field = _FIELD_LINES.match
    while pos < end:
        whole = match_field(raw, pos, end)
        if whole is not None:
            value_start = whole.end(2)
            if value_start - pos <= 1000:
                stop = whole.end()
                fields.append(_Field(whole.group(1).decode("ascii"), pos, value_start, stop))
                pos = stop
                continue
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
