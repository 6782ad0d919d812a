"""IMAP replies as aioimaplib delivers them -> typed results. Pure functions over bytes, no I/O.

aioimaplib 2.0.3 hands back a command's reply as ``Response(result, lines)``; this module is the
one place where those ``lines`` are read. Their shape, as captured from Dovecot 2.3.19 (samples in
``tests/data/imap/``):

- Untagged replies come one element per line, without CRLF and with ``* `` removed. For
  commands aioimaplib runs "asynchronously" (CAPABILITY, LIST, STATUS, SEARCH, ...) it also
  removes the reply's name: ``* SEARCH 1 2`` arrives as ``b'1 2'``, ``* LIST () "/" INBOX`` as
  ``b'() "/" INBOX'``. FETCH and EXPUNGE lines keep theirs (``b'1 FETCH (UID 5 ...'``).
  Replies to SELECT, MOVE, LOGIN and other "synchronous" commands keep their names
  (``b'FLAGS (...)'``, ``b'OK [COPYUID ...] Moved UIDs.'``, ``b'5 EXISTS'``).
- A line ending in ``{N}`` is followed by a ``bytearray`` of exactly N bytes (the literal; an
  empty ``bytearray`` for ``{0}``), then by the rest of that reply line as a separate element,
  which starts with a space or ``)`` (``b' BODYSTRUCTURE (...))'``, ``b')'``). When nothing
  follows the literal on its line, no element is added and the next element is the next reply.
- With aioimaplib's ``FetchCommand`` (``uid('fetch')``), once a reply's quoted strings hold
  unbalanced parentheses, later lines of the same command keep their ``* `` prefix.
- The last element is the text of the tagged status line (``b'[APPENDUID 17 5] Append
  completed.'``); the parsers read response codes from it and never parse it as data.

Stock aioimaplib also deletes every ``* `` from the first line of each untagged reply, including
inside quoted strings (a mailbox ``"a * b"`` arrives as ``"a b"``); no parser can undo that, so
:mod:`mailbridge.imap.connection` runs a protocol subclass that removes only the prefix.

Every parser raises :class:`mailbridge.errors.ImapProtocolError` on input it cannot read, with a
short description that never quotes the payload.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TypeAlias

from mailbridge.errors import ImapProtocolError
from mailbridge.imap.utf7 import decode_mailbox

__all__ = [
    "MAX_EXPANDED_UIDS",
    "AppendUid",
    "CopyUid",
    "FetchItem",
    "Lines",
    "MailboxInfo",
    "ResponseCode",
    "SExpr",
    "SearchResult",
    "SelectInfo",
    "expand_uid_set",
    "parse_appenduid",
    "parse_capabilities",
    "parse_copyuid",
    "parse_fetch",
    "parse_internaldate",
    "parse_list",
    "parse_modified",
    "parse_namespace",
    "parse_response_code",
    "parse_search",
    "parse_select",
    "parse_status",
    "parse_thread",
    "text_of",
    "uid_set",
]

Lines: TypeAlias = Sequence[bytes | bytearray]
"""aioimaplib's ``Response.lines``: untagged lines, literals, and the status text last."""

SExpr: TypeAlias = "int | str | bytes | list[SExpr] | None"
"""A parsed IMAP value: NIL -> None, number -> int, other atom -> str, quoted string or literal
-> bytes (undecoded), parenthesised list -> list."""

MAX_EXPANDED_UIDS = 1_000_000
"""expand_uid_set refuses sets larger than this (a server's ``1:4294967295`` would exhaust memory)."""

_MAX_DEPTH = 256  # parenthesis nesting; BODYSTRUCTURE needs a few levels per MIME level
_MAX_NUMBER_DIGITS = 20  # IMAP numbers are at most 2^63 (mod-sequence values)


# ---------------------------------------------------------------------------- result types


@dataclass(frozen=True, slots=True)
class ResponseCode:
    """A response code such as ``[APPENDUID 38505 3955]``: ``name`` upper-cased, ``args`` as sent."""

    name: str
    args: str


@dataclass(frozen=True, slots=True)
class AppendUid:
    """APPENDUID (RFC 4315): the mailbox's UIDVALIDITY and the appended message's UID."""

    uidvalidity: int
    uid: int


@dataclass(frozen=True, slots=True)
class CopyUid:
    """COPYUID (RFC 4315): ``source_uids[i]`` was copied/moved to ``dest_uids[i]``."""

    uidvalidity: int
    source_uids: tuple[int, ...]
    dest_uids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class FetchItem:
    """One untagged FETCH reply (RFC 3501 section 7.4.2; MODSEQ from RFC 7162).

    Fields are None when the reply did not carry the item. ``sections`` maps a body section to
    its bytes; the key is the section spec upper-cased, without ``BODY[...]`` and without the
    partial origin: ``''`` for ``BODY[]`` (also ``RFC822``), ``'HEADER'`` (also
    ``RFC822.HEADER``), ``'TEXT'`` (also ``RFC822.TEXT``), ``'HEADER.FIELDS (SUBJECT FROM)'``,
    ``'1'``, ``'2.MIME'``; NIL becomes ``b''``. ``bodystructure`` and ``envelope`` are the generic
    :data:`SExpr` form. Items this class has no field for (``BINARY[1]``, ``SAVEDATE``, ...) are
    in ``extra`` under their upper-cased name, as SExpr.

    Unsolicited FETCH replies (flag changes made by other clients) are items too, often
    without ``uid``; callers keep the UIDs they asked for.
    """

    seq: int
    uid: int | None = None
    flags: tuple[str, ...] | None = None
    internaldate: datetime | None = None
    modseq: int | None = None
    size: int | None = None
    sections: dict[str, bytes] = field(default_factory=dict)
    bodystructure: SExpr = None
    envelope: SExpr = None
    extra: dict[str, SExpr] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SearchResult:
    """UIDs (ascending, unique) from SEARCH (RFC 3501) or ESEARCH (RFC 4731).

    ``count``, ``min`` and ``max`` are only ever set from ESEARCH (None after a plain SEARCH,
    or when not requested). An ESEARCH without ``ALL`` (e.g. ``RETURN (COUNT)``) leaves
    ``uids`` empty. ``modseq`` is the highest mod-sequence of the matches when the search had
    a MODSEQ criterion (RFC 7162).
    """

    uids: tuple[int, ...]
    count: int | None = None
    min: int | None = None
    max: int | None = None
    modseq: int | None = None


@dataclass(frozen=True, slots=True)
class MailboxInfo:
    """One LIST reply (RFC 3501 section 7.2.2, RFC 6154 special-use attributes).

    ``name`` is decoded from modified UTF-7 (or, if that fails, equal to ``raw_name``);
    ``raw_name`` is what the server sent, unquoted. ``attributes`` keep the server's case;
    use :meth:`has_attribute` to test them.
    """

    name: str
    raw_name: str
    delimiter: str | None
    attributes: frozenset[str]

    def has_attribute(self, a: str) -> bool:
        """Whether the mailbox has attribute ``a`` (e.g. ``'\\\\Drafts'``), ignoring case."""
        wanted = a.lower()
        return any(attr.lower() == wanted for attr in self.attributes)


@dataclass(frozen=True, slots=True)
class SelectInfo:
    """What SELECT/EXAMINE reported (RFC 3501 section 6.3.1, RFC 7162 HIGHESTMODSEQ/NOMODSEQ)."""

    exists: int
    uidvalidity: int
    uidnext: int | None
    highestmodseq: int | None
    nomodseq: bool
    flags: tuple[str, ...]
    permanentflags: tuple[str, ...] | None
    """None when the server did not say: then every flag may be kept (RFC 3501 6.3.1)."""
    read_only: bool

    def keeps(self, keywords: Iterable[str]) -> bool:
        """Whether messages of the mailbox can keep ``keywords`` (PERMANENTFLAGS lists them,
        or ``\\*``: new keywords may be created)."""
        if self.permanentflags is None:
            return True
        kept = {f.lower() for f in self.permanentflags}
        return "\\*" in kept or all(k.lower() in kept for k in keywords)


# --------------------------------------------------------------------------- line grouping


class _Literal:
    """Literal bytes inside a reply (kept apart so they are never scanned as syntax)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


_Part: TypeAlias = "bytes | _Literal"

# aioimaplib treats a line as announcing a literal exactly when it matches .*\{(\d+)\}$
_LITERAL_AT_END = re.compile(rb"\{(\d+)\}\Z")


def _replies(lines: Lines) -> Iterator[tuple[bytes, list[_Part]]]:
    """Yields each untagged reply as (first line, parts): the parts are text, then literal and
    text alternately; the first line is also the first part.

    The status text (last element) is left out. The first line has any ``* `` prefix removed.
    """
    n = len(lines) - 1
    i = 0
    while i < n:
        text = bytes(lines[i])
        i += 1
        if text.startswith(b"* "):
            text = text[2:]
        head = text
        parts: list[_Part] = [text]
        while (m := _LITERAL_AT_END.search(text)) is not None:
            size = _number(m.group(1), "literal size")
            if i >= n:
                raise ImapProtocolError(f"IMAP reply announces a {size}-byte literal that is missing")
            data = lines[i]
            i += 1
            if len(data) != size:
                raise ImapProtocolError(
                    f"IMAP reply announces a {size}-byte literal but {len(data)} bytes followed")
            parts.append(_Literal(bytes(data)))
            # The rest of the reply line after a literal starts with SP or ")"; anything else is
            # the next reply (aioimaplib drops the empty rest of a line that ends with a literal).
            if i < n and lines[i][:1] in (b" ", b")"):
                text = bytes(lines[i])
                i += 1
                parts.append(text)
            else:
                break
        yield head, parts


# --------------------------------------------------------------------------- tokenizer

_TOKEN = re.compile(
    rb"""
    [ ]*  # spaces before a token, or at the end
    (?:
      (?P<open>\()
    | (?P<close>\))
    | "(?P<quoted>(?:[^"\\\r\n]|\\[^\r\n])*)"
    | (?P<literal>~?\{\d+\}\Z)
    | (?P<atom>(?:[^\x00-\x20()"{\[\x7f]|\[[^\]\r\n]*\]|\[)+)
    | \Z
    )
    """,
    re.VERBOSE,
)
_QUOTED_ESCAPE = re.compile(rb"\\(.)")
_OPEN, _CLOSE, _QUOTED, _LITERAL_SIZE, _ATOM = (
    _TOKEN.groupindex[name] for name in ("open", "close", "quoted", "literal", "atom"))


def _values(parts: Sequence[_Part]) -> list[SExpr]:
    """Parses a reply into its top-level values: atoms as str (see :func:`_typed_atoms`), quoted
    strings and literals as bytes, parenthesised lists as lists."""
    stack: list[list[SExpr]] = [[]]
    top = stack[0]
    for part in parts:
        if isinstance(part, _Literal):
            top.append(part.data)
            continue
        pos, end = 0, len(part)
        for m in _TOKEN.finditer(part):
            if m.start() != pos:
                break  # a character no token starts with
            pos = m.end()
            kind = m.lastindex
            if kind is None or kind == _LITERAL_SIZE:
                if pos == end:
                    break
                continue  # a literal's data is the next part
            if kind == _ATOM:
                top.append(m.group(kind).decode("utf-8", "replace"))
            elif kind == _QUOTED:
                raw = m.group(kind)
                top.append(_QUOTED_ESCAPE.sub(rb"\1", raw) if b"\\" in raw else raw)
            elif kind == _OPEN:
                if len(stack) > _MAX_DEPTH:
                    raise ImapProtocolError("IMAP reply nests parentheses too deeply")
                inner: list[SExpr] = []
                top.append(inner)
                stack.append(inner)
                top = inner
            else:
                if len(stack) == 1:
                    raise ImapProtocolError("IMAP reply has an unbalanced ')'")
                stack.pop()
                top = stack[-1]
        if pos != end:
            while part[pos:pos + 1] == b" ":
                pos += 1
            raise ImapProtocolError(
                f"unexpected character {part[pos:pos + 1]!r} at offset {pos} of an IMAP reply")
    if len(stack) != 1:
        raise ImapProtocolError("IMAP reply has an unbalanced '('")
    return stack[0]


def _typed_atoms(value: SExpr) -> SExpr:
    """Converts raw atoms: NIL -> None, digits -> int; strings (bytes) are kept."""
    if isinstance(value, str):
        if value.upper() == "NIL":
            return None
        if value.isdigit() and value.isascii():
            return _number(value)
        return value
    if isinstance(value, list):
        return [_typed_atoms(v) for v in value]
    return value


def _number(text: str | bytes, what: str = "number") -> int:
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_NUMBER_DIGITS:
        raise ImapProtocolError(f"IMAP reply has an invalid {what}")
    return int(text)


def _int(value: SExpr, what: str) -> int:
    if isinstance(value, str):
        return _number(value, what)
    raise ImapProtocolError(f"IMAP reply has an invalid {what}")


def _atoms(value: SExpr, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ImapProtocolError(f"IMAP reply has an invalid {what} list")
    return tuple(v for v in value if isinstance(v, str))


def text_of(value: SExpr) -> str | None:
    """Returns an SExpr string/atom/number as text (UTF-8, undecodable bytes replaced).

    Returns None for NIL. Raises ImapProtocolError for a list. Meant for reading the
    ``bodystructure`` and ``envelope`` of a FetchItem.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, int):
        return str(value)
    raise ImapProtocolError("IMAP reply has a list where a string was expected")


# ----------------------------------------------------------------------- response codes

_CODE = re.compile(r"(?:\* )?(?:(?:OK|NO|BAD|BYE|PREAUTH) )?\[([^\s\[\]]+)(?: ([^\]]*))?\]", re.I)


def parse_response_code(text: bytes | bytearray | str) -> ResponseCode | None:
    """Returns the response code at the start of a status text (RFC 3501 section 7.1).

    Accepts ``b'[APPENDUID 1 5] Append completed.'`` as well as an untagged line like
    ``b'OK [UIDNEXT 8] Predicted next UID'``. Returns None when the text does not start with a
    well-formed ``[...]``.
    """
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", "replace")
    m = _CODE.match(text)
    if m is None:
        return None
    return ResponseCode(m.group(1).upper(), (m.group(2) or "").strip())


def _status_text(lines: Lines) -> bytes:
    return bytes(lines[-1]) if lines else b""


def _status_code(lines: Lines, name: str) -> ResponseCode | None:
    code = parse_response_code(_status_text(lines))
    return code if code is not None and code.name == name else None


_CAPABILITY_LINE = re.compile(rb"CAPABILITY(?: |\Z)", re.I)
_STATUS_WORD = re.compile(rb"(?:OK|NO|BAD|BYE|PREAUTH)(?: |\Z)", re.I)


def parse_capabilities(lines: Lines) -> frozenset[str]:
    """Returns the server's capabilities, upper-cased (RFC 3501 section 7.2.1).

    Reads untagged ``CAPABILITY ...`` lines, the bare list aioimaplib leaves of them after a
    CAPABILITY command (recognised by its IMAP4rev1/IMAP4rev2 entry), and ``[CAPABILITY ...]``
    codes in untagged OK lines and the status text. Returns an empty set when there is none.
    """
    caps: set[str] = set()

    def add(words: Iterable[bytes | str]) -> None:
        for w in words:
            caps.add((w.decode("ascii", "replace") if isinstance(w, bytes) else w).upper())

    for head, _parts in _replies(lines):
        if _CAPABILITY_LINE.match(head):
            add(head.split()[1:])
        elif _STATUS_WORD.match(head):
            code = parse_response_code(head)
            if code is not None and code.name == "CAPABILITY":
                add(code.args.split())
        elif any(w.upper() in (b"IMAP4REV1", b"IMAP4REV2") for w in head.split()):
            add(head.split())
    code = _status_code(lines, "CAPABILITY")
    if code is not None:
        add(code.args.split())
    return frozenset(caps)


def parse_appenduid(lines: Lines) -> AppendUid | None:
    """Returns APPENDUID (RFC 4315) from an APPEND's status text, or None when absent.

    Raises ImapProtocolError when it is malformed or names a UID set (MULTIAPPEND, which
    mailbridge never sends).
    """
    code = _status_code(lines, "APPENDUID")
    if code is None:
        return None
    args = code.args.split()
    if len(args) != 2:
        raise ImapProtocolError("APPENDUID response code is malformed")
    if not args[1].isdigit():
        raise ImapProtocolError("APPENDUID with a UID set (MULTIAPPEND) is not supported")
    return AppendUid(_nonzero_number(args[0], "APPENDUID UIDVALIDITY"),
                     _nonzero_number(args[1], "APPENDUID UID"))


def parse_copyuid(lines: Lines) -> CopyUid | None:
    """Returns COPYUID (RFC 4315), or None when the server sent none.

    COPY carries it in the tagged status text, MOVE (RFC 6851) in an untagged
    ``OK [COPYUID ...]`` before its EXPUNGEs; both places are read. The UID sets are expanded in
    the order sent, so ``source_uids[i]`` became ``dest_uids[i]``.
    """
    code = _status_code(lines, "COPYUID")
    if code is None:
        for head, _ in _replies(lines):
            candidate = parse_response_code(head) if _STATUS_WORD.match(head) else None
            if candidate is not None and candidate.name == "COPYUID":
                code = candidate
                break
    if code is None:
        return None
    args = code.args.split()
    if len(args) != 3:
        raise ImapProtocolError("COPYUID response code is malformed")
    source, dest = _expand(args[1], "COPYUID"), _expand(args[2], "COPYUID")
    if len(source) != len(dest):
        raise ImapProtocolError("COPYUID source and destination UID sets differ in size")
    return CopyUid(_nonzero_number(args[0], "COPYUID UIDVALIDITY"), source, dest)


def parse_modified(lines: Lines) -> tuple[int, ...]:
    """Returns the UIDs of a conditional STORE's ``[MODIFIED ...]`` (RFC 7162 section 3.1.3).

    These messages changed since UNCHANGEDSINCE and were left alone. Returns () when absent.
    """
    code = _status_code(lines, "MODIFIED")
    return _expand(code.args, "MODIFIED") if code is not None else ()


def _nonzero_number(text: str, what: str) -> int:
    value = _number(text, what)
    if value == 0:
        raise ImapProtocolError(f"IMAP reply has an invalid {what}")
    return value


# ---------------------------------------------------------------------------- UID sets


def uid_set(uids: Iterable[int]) -> str:
    """Returns the compact IMAP sequence set of ``uids``: sorted, unique, ranges joined.

    ``uid_set([5, 1, 2, 3, 3]) == '1:3,5'``. Raises ValueError when ``uids`` is empty or holds
    a number below 1.
    """
    ordered = sorted(set(uids))
    if not ordered:
        raise ValueError("an IMAP UID set needs at least one UID")
    if ordered[0] < 1:
        raise ValueError(f"invalid UID {ordered[0]}: UIDs start at 1")
    out: list[str] = []
    start = prev = ordered[0]
    for uid in [*ordered[1:], None]:
        if uid is not None and uid == prev + 1:
            prev = uid
            continue
        out.append(str(start) if start == prev else f"{start}:{prev}")
        if uid is not None:
            start = prev = uid
    return ",".join(out)


def expand_uid_set(s: str) -> tuple[int, ...]:
    """Returns the UIDs of a sequence set like ``'1:3,5'`` in the order written: (1, 2, 3, 5).

    Each range is expanded ascending (``5:3`` gives 3, 4, 5); duplicates are kept. Raises
    ValueError on ``*``, on 0, on anything else malformed, and on sets larger than
    MAX_EXPANDED_UIDS.
    """
    out: list[int] = []
    for item in s.strip().split(","):
        low_text, sep, high_text = item.partition(":")
        low = _set_number(low_text)
        high = _set_number(high_text) if sep else low
        if low > high:
            low, high = high, low
        if len(out) + (high - low + 1) > MAX_EXPANDED_UIDS:
            raise ValueError(f"UID set holds more than {MAX_EXPANDED_UIDS} UIDs")
        out.extend(range(low, high + 1))
    return tuple(out)


def _set_number(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_NUMBER_DIGITS or int(text) == 0:
        raise ValueError(f"invalid number in UID set: {text[:20]!r}")
    return int(text)


def _expand(text: str, what: str) -> tuple[int, ...]:
    try:
        return expand_uid_set(text)
    except ValueError:
        raise ImapProtocolError(f"{what} has an invalid UID set") from None


# ------------------------------------------------------------------------------- FETCH

_FETCH_HEAD = re.compile(rb"\d+ FETCH ", re.I)
_SECTION_KEY = re.compile(r"BODY(?:\.PEEK)?\[([^\]]*)\](?:<\d+>)?\Z")
_RFC822_SECTIONS = {"RFC822": "", "RFC822.HEADER": "HEADER", "RFC822.TEXT": "TEXT"}


def parse_fetch(lines: Lines) -> list[FetchItem]:
    """Returns one FetchItem per untagged FETCH reply, in the order received (RFC 3501 7.4.2).

    Other untagged replies (EXPUNGE, EXISTS, ...) are skipped; so is the status text. Literals
    may appear anywhere (body sections, strings inside BODYSTRUCTURE or ENVELOPE). Parsing is
    iterative: the number of messages does not deepen the stack.
    """
    items: list[FetchItem] = []
    for head, parts in _replies(lines):
        if not _FETCH_HEAD.match(head):
            continue
        values = _values(parts)
        if len(values) != 3 or not isinstance(values[2], list):
            raise ImapProtocolError("FETCH reply is not 'n FETCH (...)'")
        items.append(_fetch_item(_int(values[0], "FETCH sequence number"), values[2]))
    return items


def _named_items(items: list[SExpr], what: str) -> Iterator[tuple[str, SExpr]]:
    """The ``NAME value`` pairs of a FETCH or ESEARCH reply, names upper-cased; ``what`` names
    the reply and its items in the ImapProtocolError a malformed list raises."""
    if len(items) % 2:
        raise ImapProtocolError(f"{what} reply has an item without a value")
    for i in range(0, len(items), 2):
        key, value = items[i], items[i + 1]
        if not isinstance(key, str):
            raise ImapProtocolError(f"{what} reply has an item name that is not an atom")
        yield key.upper(), value


def _fetch_item(seq: int, atts: list[SExpr]) -> FetchItem:
    uid: int | None = None
    flags: tuple[str, ...] | None = None
    internaldate: datetime | None = None
    modseq: int | None = None
    size: int | None = None
    sections: dict[str, bytes] = {}
    bodystructure: SExpr = None
    envelope: SExpr = None
    extra: dict[str, SExpr] = {}
    for name, value in _named_items(atts, "FETCH"):
        if name == "UID":
            uid = _int(value, "UID")
        elif name == "FLAGS":
            flags = _atoms(value, "FLAGS")
        elif name == "INTERNALDATE":
            if not isinstance(value, bytes):
                raise ImapProtocolError("FETCH reply has an invalid INTERNALDATE")
            internaldate = parse_internaldate(value.decode("ascii", "replace"))
        elif name == "RFC822.SIZE":
            size = _int(value, "RFC822.SIZE")
        elif name == "MODSEQ":
            if not isinstance(value, list) or len(value) != 1:
                raise ImapProtocolError("FETCH reply has an invalid MODSEQ")
            modseq = _int(value[0], "MODSEQ")
        elif name == "BODYSTRUCTURE":
            bodystructure = _typed_atoms(value)
        elif name == "ENVELOPE":
            envelope = _typed_atoms(value)
        elif name in _RFC822_SECTIONS:
            sections[_RFC822_SECTIONS[name]] = _nstring(value, name)
        elif (m := _SECTION_KEY.match(name)) is not None:
            sections[_section_spec(m.group(1))] = _nstring(value, "BODY[]")
        else:
            extra[name] = _typed_atoms(value)
    return FetchItem(seq=seq, uid=uid, flags=flags, internaldate=internaldate, modseq=modseq,
                     size=size, sections=sections, bodystructure=bodystructure, envelope=envelope,
                     extra=extra)


_FIELD_LIST = re.compile(r"(.*?HEADER\.FIELDS(?:\.NOT)?) *\((.*)\)\Z", re.S)


def _section_spec(spec: str) -> str:
    """A section spec as FetchItem keys it: the header-list of HEADER.FIELDS[.NOT] as
    space-separated atoms. A header-list is a list of astrings (RFC 3501 9), so a server may
    echo a field name quoted, as Courier-IMAP does (``HEADER.FIELDS ("MESSAGE-ID")``)."""
    m = _FIELD_LIST.match(spec)
    if m is None:
        return spec
    names = re.findall(r'"((?:[^"\\]|\\.)*)"|(\S+)', m.group(2))
    fields = " ".join(re.sub(r"\\(.)", r"\1", q) if q else a for q, a in names)
    return f"{m.group(1)} ({fields})"


def _nstring(value: SExpr, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str) and value.upper() == "NIL":
        return b""
    raise ImapProtocolError(f"FETCH reply has an invalid {what} value")


_MONTHS = {m: i for i, m in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1)}
_INTERNALDATE = re.compile(
    r" ?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})\Z", re.ASCII)


def parse_internaldate(s: str) -> datetime:
    """Returns an INTERNALDATE (``'21-Nov-2026 15:24:16 +0100'``, RFC 3501 date-time) as an
    aware datetime. A space-padded day (``' 1-Nov-2026 ...'``) is accepted.

    Raises ImapProtocolError when ``s`` is not such a date.
    """
    m = _INTERNALDATE.match(s)
    month = _MONTHS.get(m.group(2).upper()) if m else None
    if m is None or month is None:
        raise ImapProtocolError("IMAP reply has an invalid INTERNALDATE")
    day, year, hour, minute, second = (int(m.group(i)) for i in (1, 3, 4, 5, 6))
    try:
        offset = timedelta(hours=int(m.group(8)), minutes=int(m.group(9)))
        tz = timezone(-offset if m.group(7) == "-" else offset)
        return datetime(year, month, day, hour, minute, second, tzinfo=tz)
    except ValueError:
        raise ImapProtocolError("IMAP reply has an invalid INTERNALDATE") from None


# ------------------------------------------------------------------------------ SEARCH

# Untagged replies that may be interleaved with the ones a parser wants (RFC 3501 7.1-7.4,
# RFC 7162 VANISHED) and are skipped when they are not what the parser looks for.
_UNSOLICITED = re.compile(
    rb"(?:(?:OK|NO|BAD|BYE|PREAUTH|FLAGS|CAPABILITY|ENABLED|VANISHED|LIST|LSUB|STATUS|NAMESPACE|ID)"
    rb"(?: |\Z)|\d+ (?:EXISTS|RECENT|EXPUNGE|FETCH)(?: |\Z))", re.I)
_ESEARCH_WORDS = frozenset({"UID", "ALL", "MIN", "MAX", "COUNT", "MODSEQ", "PARTIAL", "RELEVANCY"})


def parse_search(lines: Lines) -> SearchResult:
    """Returns the result of UID SEARCH (RFC 3501 6.4.4, RFC 7162 MODSEQ) or ESEARCH (RFC 4731).

    Reads ``SEARCH 1 2 3``, ``SEARCH`` (no match), ``SEARCH 1 2 (MODSEQ 917)``,
    ``ESEARCH (TAG "A1") UID ALL 1:3,5 COUNT 4 MIN 1 MAX 5`` and ``ESEARCH (TAG "A1") UID``,
    with or without the reply name (aioimaplib drops it). Several replies are merged.
    """
    uids: set[int] = set()
    count: int | None = None
    low: int | None = None
    high: int | None = None
    modseq: int | None = None
    for head, parts in _replies(lines):
        if _UNSOLICITED.match(head):
            continue
        values = _values(parts)
        first = values[0] if values else None
        if isinstance(first, str) and first.upper() in ("SEARCH", "ESEARCH"):
            esearch = first.upper() == "ESEARCH"
            values = values[1:]
        else:
            esearch = _is_esearch(first)
        if esearch:
            found, count, low, high, found_modseq = _esearch(values, count, low, high)
        else:
            found, found_modseq = _search(values)
        uids.update(found)
        if found_modseq is not None:
            modseq = found_modseq if modseq is None else max(modseq, found_modseq)
    return SearchResult(tuple(sorted(uids)), count, low, high, modseq)


def parse_namespace(lines: Lines) -> tuple[str, str | None] | None:
    """Returns the first personal namespace of a NAMESPACE reply (RFC 2342) as (prefix,
    delimiter), e.g. ``("INBOX.", ".")`` (Courier, Cyrus) or ``("", "/")`` (Dovecot); None
    when the reply names none (``NAMESPACE NIL NIL NIL``). The prefix is modified UTF-7, as
    sent."""
    for head, parts in _replies(lines):
        if _UNSOLICITED.match(head) and not head[:10].upper().startswith(b"NAMESPACE "):
            continue
        values = _values(parts)
        if values and isinstance(values[0], str) and values[0].upper() == "NAMESPACE":
            values = values[1:]
        personal = values[0] if values else None
        if not isinstance(personal, list):
            return None
        first = personal[0] if personal else None
        if not isinstance(first, list) or len(first) < 2 or not isinstance(first[0], bytes):
            raise ImapProtocolError("NAMESPACE reply is malformed")
        delimiter = first[1].decode("utf-8", "replace") if isinstance(first[1], bytes) else None
        return first[0].decode("utf-8", "replace"), delimiter
    return None


def parse_thread(lines: Lines) -> list[tuple[int, ...]]:
    """Returns the threads of a (UID) THREAD reply (RFC 5256 section 4), each as its numbers in
    the server's order (a parent before its children).

    Reads ``THREAD (2)(3 6 (4 23)(44 7 96))`` and ``THREAD`` (no messages), with or without the
    reply name; a thread whose root is missing (``((3)(5))``) is one thread of its children.
    """
    threads: list[tuple[int, ...]] = []
    for head, parts in _replies(lines):
        if _UNSOLICITED.match(head):
            continue
        values = _values(parts)
        if values and isinstance(values[0], str) and values[0].upper() == "THREAD":
            values = values[1:]
        for value in values:
            if not isinstance(value, list):
                raise ImapProtocolError("THREAD reply has a member outside parentheses")
            members: list[int] = []
            stack: list[SExpr] = [value]
            while stack:
                node = stack.pop()
                if isinstance(node, list):
                    stack.extend(reversed(node))
                else:
                    members.append(_int(node, "THREAD member"))
            threads.append(tuple(members))
    return threads


def _is_esearch(first: SExpr) -> bool:
    if isinstance(first, list):
        return bool(first) and isinstance(first[0], str) and first[0].upper() == "TAG"
    return isinstance(first, str) and first.upper() in _ESEARCH_WORDS


def _search(values: list[SExpr]) -> tuple[tuple[int, ...], int | None]:
    modseq: int | None = None
    tail = values[-1] if values else None
    if isinstance(tail, list):
        values = values[:-1]
        if len(tail) != 2 or not isinstance(tail[0], str) or tail[0].upper() != "MODSEQ":
            raise ImapProtocolError("SEARCH reply has an unexpected list")
        modseq = _int(tail[1], "SEARCH MODSEQ")
    return tuple(_int(v, "SEARCH result") for v in values), modseq


def _esearch(values: list[SExpr], count: int | None, low: int | None, high: int | None
             ) -> tuple[tuple[int, ...], int | None, int | None, int | None, int | None]:
    pos = 0
    if values and isinstance(values[0], list):
        pos = 1  # search correlator (TAG "A1")
    uid_word = values[pos] if pos < len(values) else None
    if isinstance(uid_word, str) and uid_word.upper() == "UID":
        pos += 1
    uids: tuple[int, ...] = ()
    modseq: int | None = None
    for name, value in _named_items(values[pos:], "ESEARCH"):
        if name == "ALL":
            if not isinstance(value, str):
                raise ImapProtocolError("ESEARCH reply has an invalid ALL")
            uids = _expand(value, "ESEARCH ALL")
        elif name == "COUNT":
            count = _int(value, "ESEARCH COUNT")
        elif name == "MIN":
            low = _int(value, "ESEARCH MIN")
        elif name == "MAX":
            high = _int(value, "ESEARCH MAX")
        elif name == "MODSEQ":
            modseq = _int(value, "ESEARCH MODSEQ")
        # other return data (PARTIAL, RELEVANCY, ...) is not requested by mailbridge
    return uids, count, low, high, modseq


# ----------------------------------------------------------------------- LIST / SELECT / STATUS

_LIST_HEAD = re.compile(rb"(?:LIST|LSUB) ", re.I)


def parse_list(lines: Lines) -> list[MailboxInfo]:
    """Returns the mailboxes of a LIST/LSUB reply (RFC 3501 7.2.2; RFC 5258, RFC 6154 attributes).

    Names may come quoted, as atoms or as literals; a NIL delimiter becomes None. Extended
    data (RFC 5258 CHILDINFO) is ignored. A name that is not valid modified UTF-7 is kept as
    sent rather than failing the whole listing; a non-ASCII name (UTF8=ACCEPT) is read as UTF-8.
    """
    boxes: list[MailboxInfo] = []
    for head, parts in _replies(lines):
        if head.startswith(b"("):
            values = _values(parts)
        elif _LIST_HEAD.match(head):
            values = _values(parts)[1:]
        else:
            continue
        if len(values) < 3:
            raise ImapProtocolError("LIST reply is not '(attributes) delimiter name'")
        attrs, delim, name = values[0], values[1], values[2]
        attributes = frozenset(_atoms(attrs, "LIST attribute"))
        if isinstance(delim, bytes):
            delimiter: str | None = delim.decode("utf-8", "replace")
        elif isinstance(delim, str) and delim.upper() == "NIL":
            delimiter = None
        else:
            raise ImapProtocolError("LIST reply has an invalid hierarchy delimiter")
        if isinstance(name, str):
            raw = name.encode("utf-8")
        elif isinstance(name, bytes):
            raw = name
        else:
            raise ImapProtocolError("LIST reply has an invalid mailbox name")
        raw_name = raw.decode("utf-8", "replace")
        decoded = raw_name
        if raw.isascii():
            try:
                decoded = decode_mailbox(raw_name)
            except ValueError:
                decoded = raw_name
        boxes.append(MailboxInfo(decoded, raw_name, delimiter, attributes))
    return boxes


_EXISTS = re.compile(rb"(\d+) EXISTS\Z", re.I)
_FLAGS_HEAD = re.compile(rb"FLAGS ", re.I)


def parse_select(lines: Lines) -> SelectInfo:
    """Returns what a successful SELECT or EXAMINE reported (RFC 3501 6.3.1, RFC 7162 3.1.2).

    ``read_only`` comes from ``[READ-ONLY]`` in the status text. Raises ImapProtocolError when
    EXISTS or UIDVALIDITY is missing.
    """
    exists: int | None = None
    uidvalidity: int | None = None
    uidnext: int | None = None
    highestmodseq: int | None = None
    nomodseq = False
    flags: tuple[str, ...] = ()
    permanentflags: tuple[str, ...] | None = None
    for head, parts in _replies(lines):
        if (m := _EXISTS.match(head)) is not None:
            exists = _number(m.group(1), "EXISTS")
        elif _FLAGS_HEAD.match(head):
            values = _values(parts)
            if len(values) != 2:
                raise ImapProtocolError("FLAGS reply is malformed")
            flags = _atoms(values[1], "FLAGS")
        elif _STATUS_WORD.match(head):
            code = parse_response_code(head)
            if code is None:
                continue
            if code.name == "UIDVALIDITY":
                uidvalidity = _number(code.args, "UIDVALIDITY")
            elif code.name == "UIDNEXT":
                uidnext = _number(code.args, "UIDNEXT")
            elif code.name == "HIGHESTMODSEQ":
                highestmodseq = _number(code.args, "HIGHESTMODSEQ")
            elif code.name == "NOMODSEQ":
                nomodseq = True
            elif code.name == "PERMANENTFLAGS":
                values = _values([code.args.encode("utf-8")])
                if len(values) != 1:
                    raise ImapProtocolError("PERMANENTFLAGS response code is malformed")
                permanentflags = _atoms(values[0], "PERMANENTFLAGS")
    if exists is None or uidvalidity is None:
        raise ImapProtocolError("SELECT reply lacks EXISTS or UIDVALIDITY")
    code = parse_response_code(_status_text(lines))
    read_only = code is not None and code.name == "READ-ONLY"
    return SelectInfo(exists, uidvalidity, uidnext, highestmodseq, nomodseq, flags, permanentflags,
                      read_only)


def parse_status(lines: Lines) -> dict[str, int]:
    """Returns the items of a STATUS reply (RFC 3501 7.2.4): ``{'MESSAGES': 3, 'UIDNEXT': 9}``.

    Keys are upper-cased. Reads ``STATUS name (...)`` and the ``name (...)`` aioimaplib leaves of
    it; several replies (which one STATUS command never produces) are merged.
    """
    result: dict[str, int] = {}
    for head, parts in _replies(lines):
        try:
            values = _values(parts)
        except ImapProtocolError:
            if _UNSOLICITED.match(head):
                continue
            raise
        if (len(values) == 3 and isinstance(values[0], str) and values[0].upper() == "STATUS"
                and isinstance(values[2], list)):
            items = values[2]
        elif len(values) == 2 and isinstance(values[1], list):
            items = values[1]
        elif _UNSOLICITED.match(head):
            continue
        else:
            raise ImapProtocolError("STATUS reply is not 'name (items)'")
        if len(items) % 2:
            raise ImapProtocolError("STATUS reply has an item without a value")
        for i in range(0, len(items), 2):
            key = items[i]
            if not isinstance(key, str):
                raise ImapProtocolError("STATUS reply has an item name that is not an atom")
            result[key.upper()] = _int(items[i + 1], f"STATUS {key.upper()[:20]}")
    return result
