"""IMAP BODYSTRUCTURE -> a typed MIME tree, and the choice of body and attachments. Pure, no I/O.

Reads the generic :data:`~mailbridge.imap.responses.SExpr` that
:func:`~mailbridge.imap.responses.parse_fetch` leaves in ``FetchItem.bodystructure`` (RFC 3501
section 7.4.2, RFC 9051 section 7.5.2) into :class:`BodyPart` objects whose ``part`` numbers can
be fetched with ``BODY.PEEK[<part>]``, and picks the text body, the HTML body and the
attachments the way a mail client does (:func:`choose_parts`).

What Dovecot 2.3.19 sends, as seen by ``tests/test_bodystructure.py``:

- Strings keep the case the message used (``"ATTACHMENT"``, ``"FILENAME"``, ``"BASE64"``,
  ``"Thing"``); only values Dovecot makes up itself are lower-case (``"text" "plain"``,
  ``"7bit"``, ``"charset" "us-ascii"``). Everything is normalised here.
- RFC 2231 parameters are not decoded, but continuations are joined: ``filename*0*=utf-8''%C3%84;
  filename*1=" b.txt"`` arrives as one ``"filename*" "utf-8''%C3%84 b.txt"`` (a ``%`` in an
  unencoded section becomes ``%25``), unencoded ``name*0``/``name*1`` as one ``name``.
  ``filename`` and ``filename*`` both pass through when the message has both.
- 8-bit parameter values (raw UTF-8 file names) come as literals; RFC 2047 encoded words inside
  a quoted ``name``/``filename`` are passed on undecoded.
- A Content-Type without a slash (``bogus``) comes as ``"bogus" ""``; a multipart without a
  boundary, or with no parts, comes with one made-up empty ``text/plain`` child.
- ``Content-Disposition: ; filename=x`` comes as disposition type ``""``.

pymap 0.13 sends a part's disposition as one string, the header's value
(``"attachment; filename=\\"d.zip\\""``), instead of a list: it is read as the header.
"""

from __future__ import annotations

import email.message
import email.utils
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from mailbridge.errors import ImapProtocolError
from mailbridge.imap.responses import SExpr
from mailbridge.mime.decoding import attachment_filename, decode_params, decode_words

__all__ = [
    "BodyPart",
    "PartChoice",
    "attachment_names",
    "choose_parts",
    "decoded_size_estimate",
    "parse_bodystructure",
]

_MAX_DEPTH = 128
"""Nesting of multiparts accepted; parse_fetch already caps parentheses at 256 levels."""


@dataclass(frozen=True, slots=True)
class BodyPart:
    """One MIME part as described by BODYSTRUCTURE (RFC 3501 section 7.4.2).

    ``part`` is the IMAP section number to use in ``BODY[<part>]``: ``"1"``, ``"2.1"``; the
    single part of a non-multipart message is ``"1"``; the root multipart is ``""`` (its
    ``BODY[]`` is the whole message). ``maintype``/``subtype`` are lower-case (an invalid
    Content-Type without a subtype reads as text/plain, RFC 2045 section 5.2).
    ``params``/``disposition_params`` have lower-case keys and str values with RFC 2231
    encoding and continuations decoded (``filename*0*=...`` -> ``filename``); RFC 2047 encoded
    words are left as sent there and decoded by :attr:`filename`. ``content_id`` is as sent
    (with its angle brackets), ``encoding`` upper-case (``BASE64``), ``size`` the encoded size in
    octets (0 for multiparts), ``lines`` the line count the server gives for text and
    message/rfc822 parts, ``disposition`` lower-case (``attachment``, ``inline``).
    message/rfc822 parts are leaves: their embedded structure is not read.

    Instances hold dicts, so they compare by value but are not hashable.
    """

    part: str
    maintype: str
    subtype: str
    params: dict[str, str] = field(default_factory=dict)
    content_id: str | None = None
    description: str | None = None
    encoding: str | None = None
    size: int = 0
    lines: int | None = None
    disposition: str | None = None
    disposition_params: dict[str, str] = field(default_factory=dict)
    children: tuple[BodyPart, ...] = ()
    subject: str | None = None
    """The Subject of an embedded message (message/rfc822: from its envelope), as sent."""

    @property
    def content_type(self) -> str:
        """``maintype/subtype``, e.g. ``text/plain``."""
        return f"{self.maintype}/{self.subtype}"

    @property
    def is_multipart(self) -> bool:
        return self.maintype == "multipart"

    @property
    def filename(self) -> str | None:
        """The file name: disposition ``filename``, else content-type ``name``; None if neither.

        RFC 2231 forms were decoded by the parser; RFC 2047 encoded words (``=?utf-8?q?...?=``,
        which Outlook and others put in quoted names) are decoded here.
        """
        for raw in (self.disposition_params.get("filename"), self.params.get("name")):
            if raw is not None and raw.strip():
                return decode_words(raw) if "=?" in raw else raw
        return None

    @property
    def charset(self) -> str | None:
        """The ``charset`` parameter, lower-case; None when absent or empty."""
        value = self.params.get("charset", "").strip().strip('"').lower()
        return value or None

    def walk(self) -> Iterator[BodyPart]:
        """Yields this part and all parts below it, depth first, in document order."""
        stack: list[BodyPart] = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))


@dataclass(frozen=True, slots=True)
class PartChoice:
    """What :func:`choose_parts` picked: the text and HTML bodies (None when the message has
    none) and every other leaf part, in document order."""

    text: BodyPart | None
    html: BodyPart | None
    attachments: tuple[BodyPart, ...]


# ------------------------------------------------------------------------------- parsing


def parse_bodystructure(sexpr: SExpr) -> BodyPart:
    """Returns the MIME tree described by a BODYSTRUCTURE (or BODY) value (RFC 3501 7.4.2,
    RFC 9051 7.5.2), as ``FetchItem.bodystructure`` holds it.

    Tolerates what real servers send: missing extension data (the non-extensible BODY form),
    NIL in any field, unknown media types, languages as a string or a list, extension data
    beyond body-fld-loc, message/rfc822 parts with or without their envelope and body, strings
    as atoms, numbers as strings. Raises :class:`~mailbridge.errors.ImapProtocolError` only
    when the value cannot describe a body: not a list, an empty list, a part without a media
    type, or multiparts nested deeper than 128 levels.
    """
    if not isinstance(sexpr, list) or not sexpr:
        raise ImapProtocolError("BODYSTRUCTURE is not a parenthesised list")
    if isinstance(sexpr[0], list):
        return _parse(sexpr, "", 0)
    return _parse(sexpr, "1", 0)


def _parse(node: list[SExpr], number: str, depth: int) -> BodyPart:
    if depth > _MAX_DEPTH:
        raise ImapProtocolError("BODYSTRUCTURE nests multiparts too deeply")
    if not node:
        raise ImapProtocolError("BODYSTRUCTURE has an empty body part")
    if isinstance(node[0], list):
        return _multipart(node, number, depth)
    return _leaf(node, number)


def _multipart(node: list[SExpr], number: str, depth: int) -> BodyPart:
    # body-type-mpart = 1*body SP media-subtype [SP body-ext-mpart]
    # body-ext-mpart  = body-fld-param [SP body-fld-dsp [SP body-fld-lang [SP body-fld-loc ...]]]
    children: list[BodyPart] = []
    for child in node:
        if not isinstance(child, list):
            break
        n = len(children) + 1
        children.append(_parse(child, f"{number}.{n}" if number else str(n), depth + 1))
    rest = node[len(children):]
    # a missing subtype reads as mixed, as RFC 2046 section 5.1.3 reads unknown ones
    subtype = (_text(rest[0]) if rest else None) or "mixed"
    disposition, disposition_params = _disposition(_at(rest, 2))
    return BodyPart(part=number, maintype="multipart", subtype=subtype.strip().lower(),
                    params=_params(_at(rest, 1)), disposition=disposition,
                    disposition_params=disposition_params, children=tuple(children))


def _leaf(node: list[SExpr], number: str) -> BodyPart:
    # body-type-1part = (body-type-basic / body-type-msg / body-type-text) [SP body-ext-1part]
    # body-fields     = body-fld-param SP body-fld-id SP body-fld-desc SP body-fld-enc SP
    #                   body-fld-octets
    if len(node) < 2 or not _is_string(node[0]) or not _is_string(node[1]):
        raise ImapProtocolError("BODYSTRUCTURE has a body part without a media type")
    maintype = (_text(node[0]) or "").strip().lower()
    subtype = (_text(node[1]) or "").strip().lower()
    if not maintype or not subtype:
        maintype, subtype = "text", "plain"  # RFC 2045 5.2: an invalid type reads as text/plain
    lines: int | None = None
    subject: str | None = None
    if maintype == "text":
        # body-type-text = media-text SP body-fields SP body-fld-lines
        lines, ext = _number(_at(node, 7)), 8
    elif (maintype == "message" and subtype in ("rfc822", "global") and len(node) > 9
          and isinstance(node[7], list) and isinstance(node[8], list | None)):
        # body-type-msg = media-message SP body-fields SP envelope SP body SP body-fld-lines;
        # servers that could not parse the embedded message send the basic form instead.
        lines, ext = _number(node[9]), 10
        envelope = node[7]
        subject = _text(_at(envelope, 1)) if isinstance(envelope, list) else None
    else:
        ext = 7
    # body-ext-1part = body-fld-md5 [SP body-fld-dsp [SP body-fld-lang [SP body-fld-loc ...]]]
    disposition, disposition_params = _disposition(_at(node, ext + 1))
    description = _text(_at(node, 4)) or None
    if description is not None and "=?" in description:
        description = decode_words(description)  # Content-Description is unstructured text
    return BodyPart(
        part=number, maintype=maintype, subtype=subtype, params=_params(_at(node, 2)),
        content_id=(_text(_at(node, 3)) or "").strip() or None, description=description,
        encoding=(_text(_at(node, 5)) or "").strip().upper() or None,
        size=_number(_at(node, 6)) or 0, lines=lines,
        disposition=disposition, disposition_params=disposition_params, subject=subject)


def _at(seq: list[SExpr], i: int) -> SExpr:
    return seq[i] if i < len(seq) else None


def _is_string(value: SExpr) -> bool:
    return value is None or isinstance(value, bytes | str)


def _text(value: SExpr) -> str | None:
    """A string field as str (UTF-8, else Latin-1 for raw 8-bit bytes); None for NIL or a list."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.decode("latin-1")
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return None


def _number(value: SExpr) -> int | None:
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, bytes | str):
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
        text = text.strip()
        if text.isascii() and text.isdigit() and len(text) <= 20:
            return int(text)
    return None


def _disposition(value: SExpr) -> tuple[str | None, dict[str, str]]:
    # body-fld-dsp = "(" string SP body-fld-param ")" / nil
    if isinstance(value, list):
        kind = _text(_at(value, 0)) if value and not isinstance(value[0], list) else None
        return (kind or "").strip().lower() or None, _params(_at(value, 1))
    if isinstance(value, bytes | str):  # not IMAP syntax, but pymap 0.13 sends the header so
        return _disposition_header(_text(value) or "")
    return None, {}


def _disposition_header(text: str) -> tuple[str | None, dict[str, str]]:
    """A Content-Disposition field value (``attachment; filename="a.pdf"``), read by the stdlib."""
    field = email.message.Message()
    field["Content-Disposition"] = text
    kind = (field.get_content_disposition() or "").strip().lower() or None
    pairs = [(key, email.utils.collapse_rfc2231_value(val)) for key, val in
             field.get_params([], header="content-disposition")[1:]]
    return kind, decode_params(pairs)


# ---------------------------------------------------------------------------- parameters


def _params(value: SExpr) -> dict[str, str]:
    """body-fld-param -> {lower-case key: value}, RFC 2231 sections joined and decoded."""
    if not isinstance(value, list):
        return {}
    pairs = [(key, _text(value[i + 1]) or "") for i in range(0, len(value) - 1, 2)
             if (key := _text(value[i])) is not None]
    return decode_params(pairs)


# ------------------------------------------------------------------------------- choosing


def choose_parts(root: BodyPart) -> PartChoice:
    """Returns the text body, the HTML body and the attachments of a message, like a mail client.

    Walks the tree in document order. The text body is the first text/plain leaf and the HTML
    body the first text/html leaf that may be a body and is not an attachment:

    - a part is an attachment when its disposition is ``attachment``, or when it has a file
      name, except for a text alternative (inside multipart/alternative) not marked
      ``attachment``;
    - inside multipart/related only the root may be (or contain) a body: the part named by the
      ``start`` parameter, else the first part (else the first text/html when the first part is
      neither text nor multipart). The other parts, images with a Content-ID, are attachments;
      the caller tells inline ones by ``content_id``/``disposition``;
    - message/rfc822 parts are leaves: they are attachments, never searched for a body.

    Every other leaf is an attachment: application/*, images, message/rfc822, further text
    parts after the bodies, and alternatives other than text/plain and text/html (e.g.
    text/calendar), and a part labelled multipart that has no parts. A single-part message is
    its text or HTML body, or else one attachment.
    """
    text: BodyPart | None = None
    html: BodyPart | None = None
    attachments: list[BodyPart] = []
    # (part, may hold a body, inside an alternative), iteratively: depth is the server's
    stack: list[tuple[BodyPart, bool, bool]] = [(root, True, False)]
    while stack:
        part, may_be_body, in_alternative = stack.pop()
        if part.is_multipart and part.children:
            if part.subtype == "related":
                body_root = _related_root(part)
                items = [(c, may_be_body and c is body_root, in_alternative) for c in part.children]
            else:
                alt = part.subtype == "alternative"
                items = [(c, may_be_body, alt) for c in part.children]
            stack.extend(reversed(items))
            continue
        if may_be_body and part.maintype == "text" and not _is_attachment(part, in_alternative):
            if part.subtype == "plain" and text is None:
                text = part
                continue
            if part.subtype == "html" and html is None:
                html = part
                continue
        attachments.append(part)
    return PartChoice(text=text, html=html, attachments=tuple(attachments))


def _is_attachment(part: BodyPart, in_alternative: bool) -> bool:
    if part.disposition == "attachment":
        return True
    return not in_alternative and part.filename is not None


def _related_root(part: BodyPart) -> BodyPart | None:
    # RFC 2387: the root is named by "start", else it is the first part
    if not part.children:
        return None
    start = part.params.get("start", "").strip()
    if start:
        wanted = start.strip("<>")
        for child in part.children:
            if child.content_id is not None and child.content_id.strip().strip("<>") == wanted:
                return child
    first = part.children[0]
    if first.is_multipart or first.maintype == "text":
        return first
    return next((c for c in part.children if c.content_type == "text/html"), first)


# ------------------------------------------------------------------------- naming, sizes

def attachment_names(parts: Iterable[BodyPart]) -> list[str]:
    """The names ``parts`` (a message's attachments, in order) are shown under: as
    :func:`mailbridge.mime.decoding.attachment_filename` names them, the same as a read of the
    whole message does."""
    names, unnamed = [], 0
    for part in parts:
        ctype = part.content_type
        if part.filename is None and ctype != "message/rfc822":
            unnamed += 1
        names.append(attachment_filename(part.filename, ctype, unnamed=unnamed,
                                         subject=part.subject))
    return names


_BASE64_LINE = 78  # 76 characters and CRLF (RFC 2045 section 6.8)


def decoded_size_estimate(part: BodyPart) -> int:
    """Returns the size of ``part``'s content once its transfer encoding is undone, estimated
    from BODYSTRUCTURE alone (no bytes are fetched).

    For BASE64 (RFC 2045 section 6.8) the line breaks are taken off the encoded size, with the
    line count the server gave or else assuming 76-character lines with CRLF, and the rest is
    rounded up to whole 4-character groups and multiplied by 3/4. That is exact for 76-character
    lines up to the 1 or 2 padding bytes (an overestimate by at most 2); shorter lines (64, 72)
    make it up to about 0.5% too high. For any other encoding, returns ``size`` unchanged
    (quoted-printable content is somewhat smaller than that).
    """
    if part.encoding != "BASE64":
        return part.size
    lines = part.lines if part.lines is not None else -(-part.size // _BASE64_LINE)
    chars = max(0, part.size - 2 * lines)
    return (chars + 3) // 4 * 3
