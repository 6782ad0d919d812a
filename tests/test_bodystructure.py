"""BODYSTRUCTURE interpretation (mailbridge.imap.bodystructure).

The first half stores messages built with the stdlib ``email`` package in the session's real
Dovecot and checks that parse_bodystructure + choose_parts pick the parts ``email`` would
(``get_body``, ``iter_attachments``), under part numbers that ``BODY.PEEK[<part>]`` answers.
The second half feeds hand-written structures: odd shapes, RFC 2231 / RFC 2047 names, case.
"""

from __future__ import annotations

import base64
import json
import quopri
from collections.abc import AsyncIterator, Callable
from email.header import Header
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import encode_rfc2231
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbridge.errors import ImapProtocolError
from mailbridge.imap import ImapConnection, ImapEndpoint
from mailbridge.imap.bodystructure import (
    BodyPart,
    PartChoice,
    attachment_names,
    choose_parts,
    decoded_size_estimate,
    parse_bodystructure,
)
from mailbridge.imap.responses import FetchItem, SExpr, parse_fetch

CRLF = default_policy.clone(linesep="\r\n")
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3 + b"IEND"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 20 + b"%%EOF"
UMLAUT_PDF = "Übersicht März.pdf"
LONG_NAME = "Ein sehr langer Dateiname mit Umlauten äöü, der über mehrere Zeilen umbrochen wird.pdf"


# ------------------------------------------------------------------ messages for the server


def _new(subject: str) -> EmailMessage:
    msg = EmailMessage(policy=default_policy)
    msg["From"] = "Alice <alice@example.test>"
    msg["To"] = "bob@example.test"
    msg["Subject"] = subject
    return msg


def plain_only() -> EmailMessage:
    msg = _new("plain")
    msg.set_content("Hello,\nplain text only, with ü.\n")
    return msg


def html_only() -> EmailMessage:
    msg = _new("html")
    msg.set_content("<p>Hello <b>HTML</b> only</p>\n", subtype="html")
    return msg


def pdf_only() -> EmailMessage:
    msg = _new("pdf")
    msg.set_content(PDF, maintype="application", subtype="pdf", filename=UMLAUT_PDF)
    return msg


def html_related_attachment() -> EmailMessage:
    msg = _new("related")
    msg.set_content('<p>Logo: <img src="cid:logo@example.test"></p>\n', subtype="html")
    msg.add_related(PNG, "image", "png", cid="<logo@example.test>")
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename=UMLAUT_PDF)
    return msg


def forwarded() -> EmailMessage:
    inner = _new("inner message")
    inner.set_content("the forwarded body\n")
    msg = _new("fwd")
    msg.set_content("See the attached message.\n")
    msg.add_attachment(inner)
    return msg


def thunderbird() -> EmailMessage:
    """multipart/mixed(multipart/alternative(text, multipart/related(html, image)), pdf)."""
    msg = _new("thunderbird")
    msg.set_content("Text body with ü\n")
    msg.add_alternative('<p>HTML body with ü <img src="cid:pic@example.test"></p>\n', subtype="html")
    html = list(msg.iter_parts())[1]
    assert isinstance(html, EmailMessage)
    html.add_related(PNG, "image", "png", cid="<pic@example.test>", filename="pic.png",
                     disposition="inline")
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename=LONG_NAME)
    return msg


def text_html_attachments() -> EmailMessage:
    """Alternative bodies, a .txt attachment after them, an image, quoted-printable Latin-1."""
    msg = _new("several")
    msg.set_content("Grüße aus Köln\n" * 3, charset="iso-8859-1", cte="quoted-printable")
    msg.add_alternative("<p>Grüße</p>\n" * 40, subtype="html", cte="base64")
    msg.add_attachment("notes, not a body\n", filename="notes.txt")
    msg.add_attachment(PNG[:100], maintype="image", subtype="png", filename="small.png")
    msg.add_attachment(PNG[:101], maintype="image", subtype="png")  # no file name
    return msg


BUILDERS: dict[str, Callable[[], EmailMessage]] = {
    f.__name__: f for f in (plain_only, html_only, pdf_only, html_related_attachment, forwarded,
                            thunderbird, text_html_attachments)
}


# ------------------------------------------------------------------ what `email` would choose


def numbered(msg: EmailMessage) -> list[tuple[str, EmailMessage]]:
    """The message's parts with their IMAP part numbers; message/rfc822 is not descended."""
    out: list[tuple[str, EmailMessage]] = []

    def walk(p: EmailMessage, num: str) -> None:
        out.append((num, p))
        if p.get_content_maintype() == "multipart":
            for i, child in enumerate(p.iter_parts(), 1):
                assert isinstance(child, EmailMessage)
                walk(child, f"{num}.{i}" if num else str(i))

    walk(msg, "" if msg.get_content_maintype() == "multipart" else "1")
    return out


def reference(msg: EmailMessage) -> tuple[str | None, str | None, list[str], dict[str, EmailMessage]]:
    """(text part, html part, attachment parts) by number, as the email package sees them."""
    parts = numbered(msg)
    number = {id(p): n for n, p in parts}
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    bodies = {id(text), id(html)}
    leaves = [n for n, p in parts if p.get_content_maintype() != "multipart" and id(p) not in bodies]
    # iter_attachments() reports the direct attachments of a multipart (of a related: all but
    # its root); every one of them must be among ours, in the same order
    for _, p in parts:
        if p.get_content_maintype() == "multipart":
            reported = [number[id(a)] for a in p.iter_attachments()]
            assert reported == [n for n in leaves if n in reported]
    return (number[id(text)] if text is not None else None,
            number[id(html)] if html is not None else None, leaves, dict(parts))


@pytest.fixture
async def conn(endpoint: ImapEndpoint) -> AsyncIterator[ImapConnection]:
    c = await ImapConnection.open(endpoint)
    try:
        yield c
    finally:
        await c.logout()


async def store(conn: ImapConnection, raw: bytes) -> FetchItem:
    appended = await conn.append("Drafts", raw)
    assert appended is not None
    await conn.select("Drafts", force=True)
    items = await conn.uid_fetch([appended.uid], "(UID BODYSTRUCTURE BODY)")
    assert len(items) == 1 and items[0].bodystructure is not None
    return items[0]


async def sections(conn: ImapConnection, uid: int, numbers: list[str]) -> dict[str, bytes]:
    spec = " ".join(f"BODY.PEEK[{n}]" for n in numbers)
    (item,) = await conn.uid_fetch([uid], f"(UID {spec})")
    return item.sections


def undo_transfer_encoding(raw: bytes, part: BodyPart) -> bytes:
    if part.encoding == "BASE64":
        return base64.b64decode(raw)
    if part.encoding == "QUOTED-PRINTABLE":
        return quopri.decodestring(raw)
    return raw


@pytest.mark.parametrize("name", list(BUILDERS))
async def test_dovecot_structures_choose_what_email_chooses(conn: ImapConnection, name: str) -> None:
    msg = BUILDERS[name]()
    item = await store(conn, msg.as_bytes(policy=CRLF))
    assert item.uid is not None
    root = parse_bodystructure(item.bodystructure)
    choice = choose_parts(root)
    text, html, attachments, by_number = reference(msg)

    assert (choice.text.part if choice.text else None) == text
    assert (choice.html.part if choice.html else None) == html
    assert [a.part for a in choice.attachments] == attachments
    ours = {p.part: p for p in root.walk()}
    assert set(ours) == set(by_number)
    for number, theirs in by_number.items():
        mine = ours[number]
        assert mine.content_type == theirs.get_content_type()
        assert mine.filename == theirs.get_filename()
        assert mine.content_id == theirs["Content-ID"]
        assert mine.disposition == theirs.get_content_disposition()
        if mine.maintype == "text":
            assert mine.charset == theirs.get_content_charset()
            assert mine.lines is not None
        if not mine.is_multipart:
            assert mine.encoding == str(theirs.get("Content-Transfer-Encoding", "7bit")).upper()
    unnamed = 0
    for a, name in zip(choice.attachments, attachment_names(choice.attachments), strict=True):
        expected = by_number[a.part].get_filename()
        if expected is None and a.content_type == "message/rfc822":
            inner = by_number[a.part].get_payload(0)["Subject"]
            expected = f"{inner}.eml" if inner else "message.eml"
        elif expected is None:
            unnamed += 1
            expected = "attachment.png" if unnamed == 1 else f"attachment-{unnamed}.png"
        assert name == expected

    # The part numbers address the parts: BODY[<part>] is the encoded content, `size` long.
    leaves = [p for p in root.walk() if not p.is_multipart]
    got = await sections(conn, item.uid, [p.part for p in leaves])
    for p in leaves:
        raw = got[p.part]
        assert len(raw) == p.size
        original = by_number[p.part]
        if p.content_type == "message/rfc822":
            assert b"Subject: inner message\r\n" in raw
            continue
        data = undo_transfer_encoding(raw, p)
        if p.maintype == "text":
            assert data.decode(p.charset or "us-ascii").replace("\r\n", "\n") == original.get_content()
        else:
            assert data == original.get_content()
        if p.encoding == "BASE64":
            assert len(data) <= decoded_size_estimate(p) <= len(data) + 2
        else:
            assert decoded_size_estimate(p) == p.size

    # The non-extensible BODY form of the same message gives the same tree, minus extension data.
    plain = parse_bodystructure(item.extra["BODY"])
    assert [(p.part, p.content_type, p.size) for p in plain.walk()] == [
        (p.part, p.content_type, p.size) for p in root.walk()]
    assert all(p.disposition is None for p in plain.walk())


async def test_dovecot_thunderbird_layout_in_detail(conn: ImapConnection) -> None:
    item = await store(conn, thunderbird().as_bytes(policy=CRLF))
    choice = choose_parts(parse_bodystructure(item.bodystructure))
    assert choice.text is not None and choice.html is not None
    assert (choice.text.part, choice.html.part) == ("1.1", "1.2.1")
    image, pdf = choice.attachments
    assert (image.part, image.content_type, image.content_id, image.disposition) == (
        "1.2.2", "image/png", "<pic@example.test>", "inline")
    assert (pdf.part, pdf.filename, pdf.disposition) == ("2", LONG_NAME, "attachment")
    # Python wrote filename*0*, *1*, *2*; Dovecot joins them into one filename*, still encoded
    bs = item.bodystructure
    assert isinstance(bs, list) and isinstance(bs[1], list)
    assert bs[1][8] == [b"attachment", [b"filename*", encode_rfc2231(LONG_NAME, "utf-8").encode()]]


RAW_ODDITIES = (
    b"From: a@example.test\r\nSubject: oddities\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/plain\r\n\r\nbody\r\n"
    b"--b\r\nContent-Type: application/octet-stream; name*1=\" Datei.bin\"; name*0*=utf-8''%C3%84rger\r\n"
    b"Content-Disposition: attachment; filename*0*=utf-8''%C3%84rger%25; filename*1=\" %41 Datei.bin\"\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n"
    b"--b\r\nContent-Type: APPLICATION/PDF; NAME=\"=?utf-8?q?R=C3=A9sum=C3=A9?= =?utf-8?b?LnBkZg==?=\"\r\n"
    b"Content-Disposition: ATTACHMENT; FILENAME=\"=?utf-8?q?R=C3=A9sum=C3=A9?= =?utf-8?b?LnBkZg==?=\"\r\n"
    b"Content-Language: de, en\r\nContent-Location: http://example.test/r\r\nContent-MD5: abc\r\n"
    b"Content-Transfer-Encoding: BASE64\r\n\r\nAAAA\r\n"
    b"--b\r\nContent-Type: x-weird/Thing; Foo=Bar\r\nContent-Disposition: inline\r\n\r\nstuff\r\n"
    b"--b\r\nContent-Type: text/plain; name*=iso-8859-1'de'%C4rger.txt\r\n\r\nxx\r\n"
    b"--b\r\nContent-Type: text/plain; CHARSET=\"UTF-8\"; NAME=\"Gr\xc3\xbc\xc3\x9fe.txt\"\r\n"
    b"Content-Disposition: inline\r\nContent-ID: <c1@example.test>\r\n"
    b"Content-Description: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\nxx\r\n"
    b"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: ; filename=\"nodisp.pdf\"\r\n\r\nxx\r\n"
    b"--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\nhi\r\n"
    b"--b\r\nContent-Type: bogus\r\n\r\nnothing\r\n"
    b"--b\r\nContent-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n<p>=E4</p>\r\n--b--\r\n"
)


async def test_dovecot_hand_written_oddities(conn: ImapConnection) -> None:
    item = await store(conn, RAW_ODDITIES)
    root = parse_bodystructure(item.bodystructure)
    parts = {p.part: p for p in root.walk()}
    assert root.part == "" and root.content_type == "multipart/mixed" and root.params == {"boundary": "b"}
    # RFC 2231: Dovecot joins the sections (and escapes the unencoded "%"), we decode
    assert parts["2"].params == {"name": "Ärger Datei.bin"}
    assert parts["2"].filename == "Ärger% %41 Datei.bin"
    # RFC 2047 words in quoted names, upper-case everything, language list, location, md5
    assert (parts["3"].content_type, parts["3"].encoding, parts["3"].disposition) == (
        "application/pdf", "BASE64", "attachment")
    assert parts["3"].filename == "Résumé.pdf"
    assert parts["3"].params == {"name": "=?utf-8?q?R=C3=A9sum=C3=A9?= =?utf-8?b?LnBkZg==?="}
    assert (parts["4"].content_type, parts["4"].params, parts["4"].disposition) == (
        "x-weird/thing", {"foo": "Bar"}, "inline")
    assert parts["5"].filename == "Ärger.txt"  # charset iso-8859-1
    six = parts["6"]
    assert (six.filename, six.charset, six.content_id, six.description) == (
        "Grüße.txt", "utf-8", "<c1@example.test>", "Grüße")  # 8-bit name sent as a literal
    assert (parts["7"].disposition, parts["7"].filename) == (None, "nodisp.pdf")  # type ""
    assert (parts["8"].content_type, parts["8"].lines) == ("message/rfc822", 2)
    assert parts["9"].content_type == "text/plain"  # "bogus" "" -> RFC 2045 default
    choice = choose_parts(root)
    assert choice.text is parts["1"] and choice.html is parts["10"]
    assert [a.part for a in choice.attachments] == ["2", "3", "4", "5", "6", "7", "8", "9"]
    assert attachment_names(choice.attachments) == [
        "Ärger% %41 Datei.bin", "Résumé.pdf", "attachment.bin", "Ärger.txt", "Grüße.txt",
        "nodisp.pdf", "in.eml", "attachment-2.txt"]  # the message part after its Subject
    got = await sections(conn, item.uid or 0, ["10"])
    assert undo_transfer_encoding(got["10"], parts["10"]).decode("iso-8859-1") == "<p>ä</p>"


async def test_dovecot_degenerate_multiparts(conn: ImapConnection) -> None:
    no_boundary = b"Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n\r\nhello\r\n"
    item = await store(conn, no_boundary)
    root = parse_bodystructure(item.bodystructure)
    (child,) = root.children  # Dovecot makes up an empty text/plain
    assert (child.part, child.content_type, child.size) == ("1", "text/plain", 0)
    assert choose_parts(root) == PartChoice(text=child, html=None, attachments=())
    no_header = await store(conn, b"Subject: x\r\n\r\nhello\r\n")
    assert choose_parts(parse_bodystructure(no_header.bodystructure)).text is not None


def test_captured_dovecot_sample() -> None:
    """The FETCH sample tests/test_imap_responses.py reads (captured from Dovecot 2.3.19)."""
    sample = json.loads((Path(__file__).parent / "data" / "imap" / "fetch_summary.json").read_text())
    lines: list[bytes | bytearray] = []
    for el in sample["lines"]:
        raw = base64.b64decode(el["b64"])
        lines.append(bytearray(raw) if el["type"] == "bytearray" else raw)
    items = {i.uid: i for i in parse_fetch(lines)}
    for it in items.values():
        choose_parts(parse_bodystructure(it.bodystructure))
    first = choose_parts(parse_bodystructure(items[1].bodystructure))
    assert first.text is not None and first.html is not None
    assert (first.text.part, first.html.part) == ("1.1", "1.2")
    assert [(a.part, a.content_type, a.filename) for a in first.attachments] == [
        ("2", "application/pdf", "report.pdf"), ("3", "image/png", "pic.png")]
    second = parse_bodystructure(items[2].bodystructure)
    assert [p.filename for p in second.children][1:3] == ["Entwürfe 2026.pdf", "Grüße (final).txt"]


# ------------------------------------------------------------------ hand-written structures


def leaf(maintype: bytes | None = b"text", subtype: bytes | None = b"plain", *, params: SExpr = None,
         cid: SExpr = None, desc: SExpr = None, enc: SExpr = b"7bit", size: SExpr = 10,
         lines: SExpr = 1, md5: SExpr = None, dsp: SExpr = None, lang: SExpr = None,
         loc: SExpr = None, more: list[SExpr] | None = None) -> list[SExpr]:
    node: list[SExpr] = [maintype, subtype, params, cid, desc, enc, size]
    if maintype is not None and maintype.lower() == b"text":
        node.append(lines)
    return [*node, md5, dsp, lang, loc, *(more or [])]


def multi(subtype: bytes, *children: list[SExpr], params: SExpr = None, dsp: SExpr = None) -> list[SExpr]:
    return [*children, subtype, params, dsp, None, None]


def test_single_parts() -> None:
    text = parse_bodystructure(leaf(params=[b"charset", b"UTF-8"], size=14, lines=2))
    assert text == BodyPart(part="1", maintype="text", subtype="plain", params={"charset": "UTF-8"},
                            encoding="7BIT", size=14, lines=2)
    assert (text.charset, text.content_type, text.is_multipart, text.filename) == (
        "utf-8", "text/plain", False, None)
    assert choose_parts(text) == PartChoice(text=text, html=None, attachments=())
    html = parse_bodystructure(leaf(b"TEXT", b"HTML"))
    assert choose_parts(html) == PartChoice(text=None, html=html, attachments=())
    pdf = parse_bodystructure(leaf(b"application", b"pdf", enc=b"base64", size=7020,
                                   dsp=[b"attachment", [b"filename", b"a.pdf"]]))
    assert (pdf.part, pdf.lines, pdf.filename) == ("1", None, "a.pdf")
    assert choose_parts(pdf) == PartChoice(text=None, html=None, attachments=(pdf,))
    attached_text = parse_bodystructure(leaf(dsp=[b"attachment", None]))
    assert choose_parts(attached_text).attachments == (attached_text,)


def test_nil_everywhere_and_missing_extension_data() -> None:
    nil = parse_bodystructure([None, None, None, None, None, None, None])
    assert (nil.content_type, nil.size, nil.encoding, nil.params, nil.disposition) == (
        "text/plain", 0, None, {}, None)
    assert parse_bodystructure([b"image", b"png"]).content_type == "image/png"  # fields missing
    body_form = parse_bodystructure([[b"text", b"plain", None, None, None, b"7bit", 3, 1],
                                     [b"image", b"gif", None, None, None, b"base64", 8], b"mixed"])
    assert [(p.part, p.content_type, p.lines) for p in body_form.walk()] == [
        ("", "multipart/mixed", None), ("1", "text/plain", 1), ("2", "image/gif", None)]
    assert parse_bodystructure([[b"text", b"plain"]]).subtype == "mixed"  # no subtype at all
    nil_dsp = parse_bodystructure(leaf(b"application", b"zip", dsp=None, lang=None))
    assert (nil_dsp.disposition, nil_dsp.disposition_params) == (None, {})
    odd_dsp = parse_bodystructure(leaf(dsp=[b"ATTACHMENT"]))
    assert (odd_dsp.disposition, odd_dsp.disposition_params) == ("attachment", {})
    assert parse_bodystructure(leaf(dsp=b"inline")).disposition == "inline"
    assert parse_bodystructure(leaf(dsp=[b"", [b"filename", b"x"]])).disposition is None


def test_languages_locations_and_future_extension_data() -> None:
    part = parse_bodystructure(leaf(b"application", b"pdf", md5=b"abc", dsp=[b"inline", None],
                                    lang=[b"de", b"en"], loc=b"http://x/y",
                                    more=[[b"future", [1, 2]], 7, None]))
    assert (part.disposition, part.size) == ("inline", 10)
    assert parse_bodystructure(leaf(lang=b"de")).lines == 1
    mp = parse_bodystructure([leaf(), b"mixed", [b"boundary", b"x"], [b"inline", None], [b"de"],
                              b"loc", [b"ext", 1], b"more"])
    assert (mp.params, mp.disposition, len(mp.children)) == ({"boundary": "x"}, "inline", 1)


def test_case_variations_are_normalised() -> None:
    part = parse_bodystructure(leaf(b"Text", b"PLAIN", enc=b"Quoted-Printable",
                                    params=[b"CHARSET", b"ISO-8859-1", b"Format", b"Flowed"],
                                    dsp=[b"Inline", [b"FileName", b"A.TXT", b"SIZE", b"12"]]))
    assert (part.content_type, part.encoding, part.disposition) == (
        "text/plain", "QUOTED-PRINTABLE", "inline")
    assert part.params == {"charset": "ISO-8859-1", "format": "Flowed"}
    assert part.disposition_params == {"filename": "A.TXT", "size": "12"}
    assert (part.charset, part.filename) == ("iso-8859-1", "A.TXT")
    # atoms (str) where strings are expected, numbers as strings
    atoms = parse_bodystructure(["TEXT", "html", ["charset", "utf-8"], None, None, "BASE64", b"18", b"1"])
    assert (atoms.content_type, atoms.size, atoms.lines, atoms.encoding) == ("text/html", 18, 1, "BASE64")


def test_unknown_types_and_message_parts() -> None:
    weird = parse_bodystructure(leaf(b"x-weird", b"Thing", params=[b"Foo", b"Bar"]))
    assert (weird.content_type, weird.params, weird.lines) == ("x-weird/thing", {"foo": "Bar"}, None)
    assert parse_bodystructure(leaf(b"bogus", b"")).content_type == "text/plain"
    envelope: list[SExpr] = [None, b"inner", None, None, None, None, None, None, None, None]
    msg = parse_bodystructure([b"message", b"rfc822", None, None, None, b"8bit", 125, envelope,
                               leaf(), 6, None, [b"attachment", None], None, None])
    assert (msg.content_type, msg.lines, msg.disposition, msg.children) == (
        "message/rfc822", 6, "attachment", ())
    assert attachment_names([msg]) == ["inner.eml"]  # named after its subject
    # a server that could not parse the embedded message sends the basic form
    basic = parse_bodystructure([b"message", b"rfc822", None, None, None, b"7bit", 5, None,
                                 [b"attachment", [b"filename", b"fw.eml"]], None, None])
    assert (basic.lines, basic.filename) == (None, "fw.eml")
    # a "multipart" without parts (not valid IMAP) is still reported
    empty = parse_bodystructure(leaf(b"multipart", b"mixed"))
    assert choose_parts(empty).attachments == (empty,)
    glob = parse_bodystructure([b"message", b"global", None, None, None, b"8bit", 9, envelope,
                                [[b"text", b"plain", None, None, None, b"8bit", 1, 0], b"mixed"], 1])
    assert (glob.content_type, glob.lines) == ("message/global", 1)


def test_unusable_shapes_raise_protocol_errors() -> None:
    bad_shapes: list[SExpr] = [None, b"text", 5, [], [[]], [5, b"plain"], [b"text"], [b"text", [b"x"]],
                               [[b"text", b"plain"], [5]]]
    for bad in bad_shapes:
        with pytest.raises(ImapProtocolError):
            parse_bodystructure(bad)
    deep: list[SExpr] = leaf()
    for _ in range(200):
        deep = [deep, b"mixed"]
    with pytest.raises(ImapProtocolError, match="deeply"):
        parse_bodystructure(deep)


def test_rfc2231_parameters() -> None:
    def name(params: list[SExpr]) -> str | None:
        return parse_bodystructure(leaf(b"application", b"octet-stream", params=params)).filename

    assert name([b"name*", b"utf-8''%C3%9Cbersicht%20M%C3%A4rz.pdf"]) == UMLAUT_PDF
    # separate sections, out of order, encoded and plain mixed (as other servers send them)
    assert name([b"name*2", b" Datei.bin", b"name*1*", b"%20mit", b"name*0*", b"utf-8'de'%C3%84rger"]
                ) == "Ärger mit Datei.bin"
    assert name([b"NAME*0", b"abc", b"Name*1", b"def.txt"]) == "abcdef.txt"
    # Dovecot's joined form, where the unencoded tail keeps its spaces
    assert name([b"name*", b"utf-8''%C3%84rger%20mit Datei.bin"]) == "Ärger mit Datei.bin"
    assert name([b"name*", b"iso-8859-1'de'%C4rger.txt"]) == "Ärger.txt"
    assert name([b"name*0*", b"iso-8859-1'de'%C4", b"name*1", "rger ö.txt".encode()]) == "Ärger ö.txt"
    assert name([b"name*", b"utf-8''%FF%C3%A4"]) == "\ufffdä"  # declared charset: bad bytes replaced
    assert name([b"name*", b"''%FF%C3%A4"]) == "ÿÃ¤"  # none: UTF-8, else Latin-1
    assert name([b"name*", b"''%ZZbad%2.pdf"]) == "%ZZbad%2.pdf"
    assert name([b"name*", b"no-such-charset''%C3%A4.txt"]) == "ä.txt"
    assert name([b"name*", b"%C3%A4-no-charset.txt"]) == "ä-no-charset.txt"
    assert name([b"name*", b"utf-8*en''x.txt"]) == "x.txt"  # RFC 2231 section 5 language
    # charsets Python knows but cannot decode text with fall back to UTF-8
    for codec in (b"base64", b"rot13", b"idna", b"punycode", b"undefined", b"zlib"):
        assert name([b"name*0*", codec + b"''%C3%A4", b"name*1", "ö".encode()]) == "äö"
        assert name([b"name*", codec + b"''%C3%A4.txt"]) == "ä.txt"
    # the extended form wins over the plain one; disposition filename over content-type name
    assert name([b"name", b"plain.txt", b"name*", b"utf-8''ext%C3%A4.txt"]) == "extä.txt"
    both = parse_bodystructure(leaf(b"application", b"pdf", params=[b"name", b"n.pdf"],
                                    dsp=[b"attachment", [b"filename", b"f.pdf"]]))
    assert both.filename == "f.pdf"
    assert name([b"name", "Grüße (raw 8bit).txt".encode()]) == "Grüße (raw 8bit).txt"
    assert name([b"name", "Gr\xfc\xdfe.txt".encode("latin-1")]) == "Grüße.txt"
    assert name([b"name", b"   "]) is None
    # odd lists: a key without value, NIL values, non-string keys
    assert parse_bodystructure(leaf(params=[b"charset", None, [b"x"], b"y", b"lonely"])).params == {
        "charset": ""}


def test_rfc2047_names() -> None:
    def name(value: bytes) -> str | None:
        return parse_bodystructure(leaf(b"application", b"pdf",
                                        dsp=[b"attachment", [b"filename", value]])).filename

    assert name(b"=?utf-8?q?R=C3=A9sum=C3=A9?= =?utf-8?b?LnBkZg==?=") == "Résumé.pdf"
    assert name(b"=?UTF-8?Q?=C3=9Cbersicht_M=C3=A4rz.pdf?=") == UMLAUT_PDF
    assert name(b"=?iso-8859-1?q?=C4rger?=.pdf") == "Ärger.pdf"
    # a character split across two words (Outlook does this with B words)
    assert name(b"=?utf-8?b?w6Q=?= =?utf-8?b?w7Y=?= =?utf-8?q?=C3?= =?utf-8?q?=BC.txt?=") == "äöü.txt"
    assert name(b"a =?utf-8?q?=C3=A4?= b") == "a ä b"
    assert name(b"=?utf-8?b?not base64?=") == "=?utf-8?b?not base64?="
    assert name(b"=?x-unknown?q?abc?=") == "abc"
    assert name(b"=?utf-8?b?!!!?=.pdf") == "=?utf-8?b?!!!?=.pdf"
    assert name(b"=?utf-8?q?a?= =?iso-8859-1?q?=E4?=") == "aä"
    for codec in ("base64", "rot13", "idna", "punycode", "undefined", "hex"):
        assert name(f"=?{codec}?q?=C3=A4?=.txt".encode()) == "ä.txt"


def test_choose_parts_like_a_mail_client() -> None:
    txt = leaf(params=[b"charset", b"utf-8"])
    html = leaf(b"text", b"html")
    img = leaf(b"image", b"png", cid=b"<img@x>", enc=b"base64", dsp=[b"inline", None])
    pdf = leaf(b"application", b"pdf", enc=b"base64", dsp=[b"attachment", [b"filename", b"a.pdf"]])

    def pick(sexpr: list[SExpr]) -> tuple[str | None, str | None, list[str]]:
        c = choose_parts(parse_bodystructure(sexpr))
        return (c.text.part if c.text else None, c.html.part if c.html else None,
                [a.part for a in c.attachments])

    # Apple Mail: inline text with a file name is an attachment, the next plain text is the body
    named_txt = leaf(dsp=[b"inline", [b"filename", b"n.txt"]])
    assert pick(multi(b"mixed", named_txt, txt, pdf)) == ("2", None, ["1", "3"])
    # ... but a named text alternative is still the body
    assert pick(multi(b"alternative", named_txt, html)) == ("1", "2", [])
    # text/calendar alternatives and further texts after the body are attachments
    cal = leaf(b"text", b"calendar", params=[b"method", b"REQUEST"])
    assert pick(multi(b"mixed", multi(b"alternative", txt, html, cal), txt)) == ("1.1", "1.2", ["1.3", "2"])
    # related: the root is "start", else the first part; the rest are attachments
    assert pick(multi(b"related", html, img, txt)) == (None, "1", ["2", "3"])
    start_second = multi(b"related", img, leaf(b"text", b"html", cid=b"<root@x>"),
                         params=[b"start", b"<root@x>", b"type", b"text/html"])
    assert pick(start_second) == (None, "2", ["1"])
    assert pick(multi(b"related", img, html)) == (None, "2", ["1"])  # root not first, no start
    assert pick(multi(b"alternative", txt, multi(b"related", html, img))) == ("1", "2.1", ["2.2"])
    # attached html is no body; a later html is
    att_html = leaf(b"text", b"html", dsp=[b"attachment", [b"filename", b"page.html"]])
    assert pick(multi(b"mixed", txt, att_html, html)) == ("1", "3", ["2"])
    # forwarded messages are leaves; signatures are attachments
    envelope: list[SExpr] = [None] * 10
    fwd: list[SExpr] = [b"message", b"rfc822", None, None, None, b"7bit", 9, envelope,
                        multi(b"alternative", txt, html), 1]
    assert pick(multi(b"mixed", txt, fwd)) == ("1", None, ["2"])
    sig = leaf(b"application", b"pgp-signature", params=[b"name", b"signature.asc"])
    assert pick(multi(b"signed", multi(b"mixed", txt, pdf), sig)) == ("1.1", None, ["1.2", "2"])
    assert pick(multi(b"mixed", pdf, img)) == (None, None, ["1", "2"])


def test_attachment_names() -> None:
    """Named as a read of the whole message names them (mailbridge.mime.decoding): unnamed
    ones counted, message/rfc822 after its subject."""
    def part(maintype: str, subtype: str, **kw: Any) -> BodyPart:
        return BodyPart(part="2", maintype=maintype, subtype=subtype, **kw)

    assert attachment_names([part("image", "png"), part("application", "pdf"),
                             part("text", "plain"), part("application", "x-nobody-knows")]) == [
        "attachment.png", "attachment-2.pdf", "attachment-3.txt", "attachment-4.bin"]
    assert attachment_names([part("message", "rfc822"), part("image", "png")]) == [
        "message.eml", "attachment.png"]
    assert attachment_names([part("message", "rfc822", subject="=?utf-8?q?Gr=C3=BC=C3=9Fe?=")]
                            ) == ["Grüße.eml"]
    assert attachment_names([part("message", "rfc822", params={"name": "fw.eml"})]) == ["fw.eml"]
    assert attachment_names([part("image", "png", disposition_params={"filename": "a\r\nb.png "})]
                            ) == ["ab.png"]
    assert attachment_names([part("image", "png", disposition_params={"filename": "\r\n"})]
                            ) == ["attachment.png"]


@pytest.mark.parametrize("lf_at_end", [True, False])
@given(size=st.integers(min_value=0, max_value=5000))
@settings(max_examples=150, deadline=None)
def test_base64_size_estimate(size: int, lf_at_end: bool) -> None:
    encoded = base64.encodebytes(bytes(size)).replace(b"\n", b"\r\n")  # 76-character lines
    if not lf_at_end and encoded:
        encoded = encoded[:-2]  # the last CRLF belongs to the boundary
    part = BodyPart(part="2", maintype="application", subtype="pdf", encoding="BASE64",
                    size=len(encoded))
    assert size <= decoded_size_estimate(part) <= size + 2
    with_lines = BodyPart(part="1", maintype="text", subtype="plain", encoding="BASE64",
                          size=len(encoded), lines=encoded.count(b"\r\n"))
    assert size <= decoded_size_estimate(with_lines) <= size + 2


def test_size_estimate_other_encodings_and_odd_lines() -> None:
    assert decoded_size_estimate(BodyPart("1", "text", "plain", encoding="QUOTED-PRINTABLE", size=99)) == 99
    assert decoded_size_estimate(BodyPart("1", "text", "plain", size=7)) == 7
    encoded = base64.b64encode(bytes(3000))
    pem = b"\r\n".join(encoded[i:i + 64] for i in range(0, len(encoded), 64)) + b"\r\n"
    estimate = decoded_size_estimate(BodyPart("2", "image", "png", encoding="BASE64", size=len(pem)))
    assert 3000 <= estimate <= 3000 * 1.006


# names as people write them: no control characters or exotic white space (email.header.Header
# folds at those and loses them)
NAMES = st.text(st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp", "Zs")) | st.just(" "),
                min_size=1, max_size=60).filter(lambda s: s.strip() == s)


@given(NAMES)
@settings(max_examples=200, deadline=None)
def test_rfc2231_and_rfc2047_round_trip(name: str) -> None:
    encoded = encode_rfc2231(name, "utf-8")
    sections: list[SExpr] = []
    for i in range(0, len(encoded), 10):  # cut into sections like a folding mailer would
        sections += [f"filename*{i // 10}*".encode(), encoded[i:i + 10].encode()]
    joined = parse_bodystructure(leaf(dsp=[b"attachment", [b"filename*", encoded.encode()]]))
    assert joined.filename == name
    if all("%" not in encoded[i + 8:i + 10] for i in range(0, len(encoded), 10)):  # no cut %XX
        split = parse_bodystructure(leaf(dsp=[b"attachment", sections]))
        assert split.filename == name
    words = Header(name, "utf-8", maxlinelen=40).encode().replace("\n", "")
    assert parse_bodystructure(leaf(params=[b"name", words.encode()])).filename == name


SEXPR = st.recursive(
    st.none() | st.integers(min_value=0, max_value=10**6) | st.sampled_from(
        [b"text", b"plain", b"html", b"multipart", b"mixed", b"related", b"alternative", b"message",
         b"rfc822", b"attachment", b"inline", b"filename*", b"name", b"BASE64", b"start", b"",
         "NAME*0*", b"=?utf-8?b?w6Q=?=", b"=?idna?q?=FF?=", b"utf-8''%C3%A4", b"punycode''%FF",
         b"charset", b"rot13"]) | st.binary(max_size=6),
    lambda children: st.lists(children, max_size=14),
    max_leaves=60,
)


@given(SEXPR)
@settings(max_examples=500, deadline=None)
def test_any_shape_parses_or_raises_protocol_error(value: SExpr) -> None:
    try:
        root = parse_bodystructure(value)
    except ImapProtocolError:
        return
    choice = choose_parts(root)
    for p in root.walk():
        assert p.maintype == p.maintype.lower() and p.size >= 0
        assert p.filename is None or isinstance(p.filename, str)
        assert attachment_names([p])[0] and decoded_size_estimate(p) >= 0
        assert p.charset is None or p.charset == p.charset.lower()
    chosen = [p for p in (choice.text, choice.html) if p is not None] + list(choice.attachments)
    assert sorted(p.part for p in chosen) == sorted(p.part for p in root.walk() if not p.children)


def test_pymap_disposition_as_one_string() -> None:
    """pymap 0.13 sends the Content-Disposition value as one string where IMAP wants a list:
    the file name is read from it all the same."""
    [item] = parse_fetch([
        b'* 1 FETCH (BODYSTRUCTURE (("text" "plain" NIL NIL NIL "7BIT" 31 2 NIL NIL NIL NIL)'
        b'("application" "zip" NIL NIL NIL "base64" 120 NIL "attachment; filename=\\"d.zip\\"" '
        b"NIL NIL)(\"text\" \"plain\" NIL NIL NIL \"7BIT\" 3 1 NIL "
        b"\"inline; filename*=utf-8''%C3%A4.txt\" NIL NIL) "
        b"\"mixed\" (\"boundary\" \"b\") NIL NIL NIL) UID 1)",
        b"done"])
    root = parse_bodystructure(item.bodystructure)
    assert [(p.disposition, p.filename) for p in root.children] == [
        (None, None), ("attachment", "d.zip"), ("inline", "ä.txt")]
