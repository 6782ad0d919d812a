"""Addresses: reading address lists as mail clients write them (leniently, repairing damage the
way they do) and checking the recipients a caller gives (email-validator)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from email_validator import EmailNotValidError, validate_email

from mailbridge.errors import InvalidInput
from mailbridge.mime.decoding import (
    clean,
    decode_words,
)
from mailbridge.mime.headers import check_header_value
from mailbridge.model import Address

# A list of plain mailboxes -- no quotes, comments, groups, domain literals or escapes, every
# ``<`` closed before the next comma -- splits on its commas; anything else is scanned.
_PLAIN_LIST = re.compile(r'[^"(\[\]:;\\<>]*(?:<[^"(\[\]:;\\<>,]*>[^"(\[\]:;\\<>]*)*')


def _split_address_list(value: str) -> list[str]:
    """Splits an address list on the commas (and group ``:``/``;``) that are outside quotes,
    comments, angle brackets and domain literals; group names are dropped.

    Damage is repaired the way mail clients do: an unterminated quote or comment is taken as a
    literal character, an unterminated ``<`` ends at the next comma.
    """
    if _PLAIN_LIST.fullmatch(value) is not None:
        return value.split(",")
    return _split_address_list_scan(value)


def _split_address_list_scan(value: str) -> list[str]:
    """_split_address_list, character by character."""
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


# ``Name <addr>`` or ``addr`` in printable ASCII without quotes, comments, escapes, routes or
# encoded-words: read by one match, as _parse_mailbox_scan reads it.
_PLAIN_MAILBOX = re.compile(
    r"[ \t]*(?:([\t !#-'*-;=?-\[\]-~]*?)[ \t]*<([!#-'*+\-./0-9;=?-\[\]-~]+)>|([!#-'*-;=?-\[\]-~]+))[ \t]*")


def _parse_mailbox(item: str) -> tuple[str, str] | None:
    """``(display name, addr-spec)`` of one ``mailbox`` (RFC 5322 3.4), leniently; None if there
    is no address at all. Encoded-words in the name are decoded, also inside quotes (as mail
    clients do); comments are dropped (an old-style ``a@b (Name)`` comment becomes the name)."""
    plain = _PLAIN_MAILBOX.fullmatch(item)
    if plain is None or "=?" in item:
        return _parse_mailbox_scan(item)
    bare = plain.group(3)
    if bare is not None:
        return "", bare
    return plain.group(1), plain.group(2)


def _parse_mailbox_scan(item: str) -> tuple[str, str] | None:
    """_parse_mailbox, character by character."""
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
