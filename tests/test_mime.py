"""mailbridge.mime: building and reading drafts, real clients' messages, the wire copy."""

# Real mail is full of en dashes and typographic quotes; the samples keep them.
# ruff: noqa: RUF001

from __future__ import annotations

import base64
import dataclasses
import email
import re
import time
import tracemalloc
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from mailbridge.errors import HeaderInjection, InvalidInput
from mailbridge.mime import (
    INTERNAL_HEADER_PREFIX,
    build_message,
    check_header_value,
    client_headers,
    make_message_id,
    parse_address_list,
    parse_message,
    set_header,
    snippet,
    strip_for_sending,
)
from mailbridge.mime import addresses as mime_addresses
from mailbridge.mime import headers as mime_headers
from mailbridge.mime import read as mime_read
from mailbridge.mime.read import _params_of, _params_slow
from mailbridge.model import Address, Attachment, DraftContent, DraftState, ParsedMessage

DATA = Path(__file__).parent / "data" / "mime"
SENDER = Address("alice@example.test", "Alice Example")
WHEN = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)
STATE = DraftState(id=UUID("6f1c2b8e-3d4a-4e5f-9a0b-1c2d3e4f5a6b"), created_at=WHEN,
                   updated_at=WHEN + timedelta(minutes=5))


def build(content: DraftContent, **kw: object) -> bytes:
    args: dict[str, object] = {"sender": SENDER, "message_id": "m1@example.test", "date": WHEN,
                               "state": STATE}
    args.update(kw)
    return build_message(content, **args)  # type: ignore[arg-type]


def sample(name: str) -> bytes:
    raw = (DATA / name).read_bytes()
    # The files are stored with CRLF as on an IMAP server; a checkout may have turned them to LF.
    return raw if b"\r\n" in raw else raw.replace(b"\n", b"\r\n")


def header_block(raw: bytes) -> str:
    return raw.split(b"\r\n\r\n", 1)[0].decode("utf-8")


# --------------------------------------------------------------------------------------------
# Strategies

SAFE = st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp"))
TRICKY = st.sampled_from([
    " ", "  ", "\t", "=?", "?=", "=?utf-8?q?x?=", "=?utf-8?b?eA==?=", '"', "\\", ",", ";", ":", "<", ">",
    "(", ")", "@", ".", "_", "=", "Grüße", "–", "日本語", "\u00a0", "\u3000", "\u200b", "\ufeff",
    "x" * 120, "y" * 1000, "Re: ",
])
HEADER_TEXT = st.lists(st.one_of(st.text(SAFE, max_size=40), TRICKY), max_size=12).map("".join)

ATEXT = "A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
LOCAL = st.from_regex(rf"\A[{ATEXT}]{{1,12}}(\.[{ATEXT}]{{1,8}}){{0,2}}\Z")
DOMAIN = st.from_regex(r"\A[a-z0-9]{1,10}(-[a-z0-9]{1,5})?(\.[a-z0-9]{1,8}){0,2}\.test\Z")
EMAIL = st.builds(lambda local, domain: f"{local}@{domain}", LOCAL, DOMAIN)
ADDRESS = st.builds(Address, email=EMAIL, name=st.one_of(st.just(""), HEADER_TEXT))
ADDRESSES = st.lists(ADDRESS, max_size=4).map(tuple)

BODY = st.lists(st.one_of(
    st.text(max_size=60),
    st.sampled_from(["\n", "\r\n", "\r", "From ", "\nFrom ", ".", "\n.", "\n.\n", " ", "\t", " \n",
                     "=", "=\n", "=20", "€", "\u2028", "\x00", "\x0c", "--", "--=_mailbridge_", "z" * 300,
                     "日本語のテキスト"]),
), max_size=30).map("".join)

MSG_ID = st.from_regex(r"\A[!-;=?-~]{1,40}\Z")
FILENAME = st.one_of(
    st.text(SAFE, min_size=1, max_size=80),
    st.sampled_from(["report.pdf", "Übersicht März.pdf", "a b.txt", " spaced ", "=?utf-8?q?x?=.bin",
                     'quote".txt', "back\\slash", "x" * 200, "日本語.docx", "semi;colon.txt"]),
).filter(lambda name: bool(name.strip()))
TOKEN = st.from_regex(r"\A[!#$%&'*+.^_`|~0-9A-Za-z-]{1,20}\Z")
CONTENT_TYPE = st.one_of(
    st.sampled_from(["application/pdf", "image/png", "text/plain", "text/html", "application/octet-stream",
                     "Application/Vnd.MS-Excel", "message/rfc822", "text/calendar"]),
    st.builds(lambda a, b: f"{a}/{b}", TOKEN, TOKEN),
)
ATTACHMENT = st.builds(
    Attachment, filename=FILENAME, content_type=CONTENT_TYPE, data=st.binary(max_size=3000),
    content_id=st.one_of(st.none(), MSG_ID), inline=st.booleans())
OFFSET = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
MOMENT = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=OFFSET)

CONTENT = st.builds(
    DraftContent,
    to=ADDRESSES, cc=ADDRESSES, bcc=ADDRESSES,
    subject=HEADER_TEXT,
    text=st.one_of(st.none(), BODY),
    html=st.one_of(st.none(), BODY),
    attachments=st.lists(ATTACHMENT, max_size=4).map(tuple),
    in_reply_to=st.one_of(st.none(), MSG_ID),
    references=st.lists(MSG_ID, max_size=5).map(tuple),
    context_type=st.one_of(st.none(), HEADER_TEXT),
    context_id=st.one_of(st.none(), HEADER_TEXT),
    planned_send_at=st.one_of(st.none(), MOMENT),
)
STATES = st.one_of(st.none(), st.builds(
    DraftState, id=st.uuids(), created_at=MOMENT, updated_at=MOMENT,
    last_error=st.one_of(st.none(), HEADER_TEXT)))


def body(value: str | None) -> str | None:
    if value is None:
        return None
    return value.replace("\r\n", "\n").replace("\r", "\n") or None


def expected(content: DraftContent) -> DraftContent:
    """What parse_message(build_message(content)) gives back, per the documented conventions."""
    def names(addresses: tuple[Address, ...]) -> tuple[Address, ...]:
        return tuple(Address(a.email, a.name.strip(" \t")) for a in addresses)

    html = body(content.html)
    attachments = list(content.attachments)
    if html is not None:
        attachments = ([a for a in attachments if a.content_id is not None]
                       + [a for a in attachments if a.content_id is None])
    return dataclasses.replace(
        content, to=names(content.to), cc=names(content.cc), bcc=names(content.bcc),
        text=body(content.text), html=html,
        attachments=tuple(dataclasses.replace(a, content_type=a.content_type.lower(),
                                              inline=a.inline or a.content_id is not None)
                          for a in attachments))


def check_wire_format(raw: bytes) -> None:
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


# --------------------------------------------------------------------------------------------
# Round trips


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=CONTENT, state=STATES, sender=ADDRESS, message_id=MSG_ID,
       date=MOMENT.map(lambda d: d.replace(microsecond=0)))
@example(content=DraftContent(subject=" \t lead and trail \t ", text="From me\n.\n", html=""),
         state=None, sender=SENDER, message_id="<x@y>", date=WHEN)
def test_build_then_parse_gives_the_draft_back(content: DraftContent, state: DraftState | None,
                                               sender: Address, message_id: str, date: datetime) -> None:
    raw = build_message(content, sender=sender, message_id=message_id, date=date, state=state)
    check_wire_format(raw)
    if not any(a.content_type.lower().startswith("message/") for a in content.attachments):
        assert raw.isascii()  # 7-bit clean: ASCII addresses, everything else encoded
    parsed = parse_message(raw)
    assert parsed.content == expected(content)
    if content.planned_send_at is not None:
        assert parsed.content.planned_send_at is not None
        assert parsed.content.planned_send_at.utcoffset() == content.planned_send_at.utcoffset()
    assert parsed.sender == Address(sender.email, sender.name.strip(" \t"))
    assert parsed.message_id == message_id.strip("<>")
    assert parsed.date == date
    if state is None:
        assert parsed.state is None
    else:
        assert parsed.state is not None
        assert parsed.state.id == state.id
        assert parsed.state.created_at == state.created_at
        assert parsed.state.updated_at == state.updated_at
        assert parsed.state.last_error == state.last_error
    assert parsed.draft_marker is False
    # What we read back can be written again unchanged.
    again = build_message(parsed.content, sender=sender, message_id=message_id, date=date, state=state)
    assert parse_message(again).content == parsed.content


@settings(max_examples=60, deadline=None)
@given(subject=HEADER_TEXT, names=st.lists(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e),
                                                  max_size=30), max_size=3),
       # (email.utils.unquote, which get_filename applies, takes <angle brackets> off a name)
       attachments=st.lists(st.builds(Attachment, filename=FILENAME.filter(
           lambda n: n == n.strip() and not (n.startswith("<") and n.endswith(">"))),
                                      content_type=st.sampled_from(["application/pdf", "image/png"]),
                                      data=st.binary(max_size=500)), max_size=3),
       text=BODY)
def test_the_stdlib_parser_reads_our_messages_the_same(subject: str, names: list[str],
                                                        attachments: list[Attachment], text: str) -> None:
    """A stand-in for other mail software: Python's own email package with policy.default."""
    to = tuple(Address(f"r{i}@example.test", name) for i, name in enumerate(names))
    raw = build(DraftContent(to=to, subject=subject, text=text, attachments=tuple(attachments)))
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert str(message["subject"] or "") == subject
    for got, want in zip(message["to"].addresses if to else (), to, strict=True):
        assert got.addr_spec == want.email
        assert " ".join(got.display_name.split()) == " ".join(want.name.split())
    found = list(message.iter_attachments())
    assert [part.get_filename() for part in found] == [a.filename for a in attachments]
    assert [part.get_content() for part in found] == [a.data for a in attachments]
    text_part = message.get_body(("plain",))
    assert text_part is not None
    assert body(text_part.get_content()) == body(text)


def test_non_ascii_local_part_makes_an_rfc6532_message() -> None:
    to = (Address("jörg@example.test", "Jörg"), Address("bob@bücher.test"))
    raw = build(DraftContent(to=to, subject="x"))
    assert "To: =?utf-8?q?J=C3=B6rg?= <jörg@example.test>, bob@xn--bcher-kva.test" in raw.decode("utf-8")
    parsed = parse_message(raw)
    assert parsed.content.to == (Address("jörg@example.test", "Jörg"), Address("bob@xn--bcher-kva.test"))


@pytest.mark.parametrize(("text", "html", "shape"), [
    ("plain", None, ["text/plain"]),
    (None, "<p>x</p>", ["text/html"]),
    ("plain", "<p>x</p>", ["multipart/alternative", "text/plain", "text/html"]),
    (None, None, ["text/plain"]),
    ("", "", ["text/plain"]),
])
def test_body_structure(text: str | None, html: str | None, shape: list[str]) -> None:
    message = email.message_from_bytes(build(DraftContent(text=text, html=html)), policy=policy.default)
    assert [part.get_content_type() for part in message.walk()] == shape


def test_attachment_structure() -> None:
    content = DraftContent(
        text="see picture", html='<img src="cid:logo@x">',
        attachments=(Attachment("a.pdf", "application/pdf", b"%PDF"),
                     Attachment("logo.png", "image/png", b"\x89PNG", content_id="logo@x")))
    message = email.message_from_bytes(build(content), policy=policy.default)
    assert [part.get_content_type() for part in message.walk()] == [
        "multipart/mixed", "multipart/alternative", "text/plain", "multipart/related", "text/html",
        "image/png", "application/pdf"]
    logo = next(p for p in message.walk() if p.get_content_type() == "image/png")
    assert logo["Content-ID"] == "<logo@x>"
    assert logo.get_content_disposition() == "inline"
    pdf = next(p for p in message.walk() if p.get_content_type() == "application/pdf")
    assert pdf.get_content_disposition() == "attachment"
    assert pdf["Content-Transfer-Encoding"] == "base64"


def test_headers_as_written() -> None:
    content = DraftContent(
        to=(Address("bob@example.test", "Bob"), Address("c@example.test", "Müller, Jörg")),
        bcc=(Address("secret@example.test"),),
        subject="Grüße", in_reply_to="<parent@example.test>",
        references=("root@example.test", "parent@example.test"),
        context_type="invoice", context_id="INV-2026-0042",
        planned_send_at=datetime(2026, 11, 22, 9, 30, tzinfo=timezone(timedelta(hours=1))))
    raw = build(content, state=dataclasses.replace(STATE, last_error="boom"))
    head = re.sub(r"\r\n(?=[ \t])", "", header_block(raw))  # unfolded
    assert "\r\nFrom: Alice Example <alice@example.test>\r\n" in head
    assert "\r\nTo: Bob <bob@example.test>, =?utf-8?q?M=C3=BCller=2C_J=C3=B6rg?= <c@example.test>\r\n" in head
    assert "\r\nBcc: secret@example.test\r\n" in head
    assert "\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n" in head
    assert head.startswith("Date: Sat, 21 Nov 2026 15:00:00 +0000\r\n")
    assert "\r\nMessage-ID: <m1@example.test>\r\n" in head
    assert "\r\nIn-Reply-To: <parent@example.test>\r\n" in head
    assert "\r\nReferences: <root@example.test> <parent@example.test>\r\n" in head
    assert "\r\nX-Mailbridge-Id: 6f1c2b8e-3d4a-4e5f-9a0b-1c2d3e4f5a6b\r\n" in head
    assert "\r\nX-Mailbridge-Created-At: 2026-11-21T15:00:00Z\r\n" in head
    assert "\r\nX-Mailbridge-Updated-At: 2026-11-21T15:05:00Z\r\n" in head
    assert "\r\nX-Mailbridge-Context-Type: invoice\r\n" in head
    assert "\r\nX-Mailbridge-Context-Id: INV-2026-0042\r\n" in head
    assert "\r\nX-Mailbridge-Planned-Send-At: 2026-11-22T09:30:00+01:00\r\n" in head
    assert "\r\nX-Mailbridge-Last-Error: boom\r\n" in head
    assert "\r\nMIME-Version: 1.0\r\n" in head


def test_a_long_last_error_is_folded_and_comes_back_as_one_line() -> None:
    error = ("550-5.1.1 The email account that you tried to reach does not exist. Please try\r\n"
             "550-5.1.1 double-checking the recipient's email address for typos or\r\n"
             "550 5.1.1 unnecessary spaces. For more information, go to "
             "https://support.example.test/mail/?p=NoSuchUser " * 5)
    raw = build(DraftContent(), state=dataclasses.replace(STATE, last_error=error))
    head = header_block(raw)
    field = re.search(r"X-Mailbridge-Last-Error:.*?(?=\r\n\S)", head, re.S)
    assert field is not None and field.group().count("\r\n") > 5
    assert all(len(line) <= 78 for line in field.group().split("\r\n"))
    parsed = parse_message(raw)
    assert parsed.state is not None
    assert parsed.state.last_error == error.replace("\r\n", " ")


def test_long_header_values_fold_within_78_columns() -> None:
    content = DraftContent(
        to=tuple(Address(f"person{i}@example.test", f"Person Number {i}") for i in range(20)),
        subject="word " * 60, references=tuple(f"id{i}@example.test" for i in range(30)))
    head = header_block(build(content))
    assert all(len(line) <= 78 for line in head.split("\r\n"))
    assert parse_message(build(content)).content == content


def test_bodies_survive_from_dot_and_long_lines() -> None:
    text = "From here\n.\n..\n.leading dot\n" + "long " * 500 + "\ntrailing space \nend\t"
    raw = build(DraftContent(text=text))
    assert b"\r\nFrom " not in raw.split(b"\r\n\r\n", 1)[1]
    assert b"\r\n." not in raw.split(b"\r\n\r\n", 1)[1]
    check_wire_format(raw)
    assert parse_message(raw).content.text == text


def test_mostly_non_ascii_text_is_base64() -> None:
    raw = build(DraftContent(text="日本語のテキストです。" * 20))
    assert b"Content-Transfer-Encoding: base64" in raw
    assert parse_message(raw).content.text == "日本語のテキストです。" * 20


def test_message_rfc822_attachment_travels_as_is() -> None:
    inner = b"From: a@example.test\r\nSubject: inner\r\n\r\nbody\r\n"
    raw = build(DraftContent(text="fwd", attachments=(Attachment("inner.eml", "message/rfc822", inner),)))
    assert b"Content-Transfer-Encoding: 7bit\r\n\r\nFrom: a@example.test" in raw
    assert parse_message(raw).content.attachments[0].data == inner


def test_extra_headers_are_kept_and_checked() -> None:
    raw = build(DraftContent(), extra_headers=[("X-Mozilla-Draft-Info", "internal/draft; vcard=0"),
                                               ("Reply-To", "=?utf-8?q?J=C3=B6rg?= <j@example.test>"),
                                               ("X-Note", "Grüße")])
    head = header_block(raw)
    assert "\r\nX-Mozilla-Draft-Info: internal/draft; vcard=0\r\n" in head
    assert "\r\nReply-To: =?utf-8?q?J=C3=B6rg?= <j@example.test>\r\n" in head
    assert "\r\nX-Note: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n" in head
    assert parse_message(raw).draft_marker is True
    # a value read with surrogateescape (raw 8-bit header) is decoded, not refused
    raw = build(DraftContent(), extra_headers=[("X-Raw", "Gr\udcc3\udcbc\udcc3\udc9fe")])
    assert "\r\nX-Raw: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n" in header_block(raw)
    for name in ("Subject", "content-type", "X-Mailbridge-Id", "Bad Name", "Colon:"):
        with pytest.raises(InvalidInput) as caught:
            build(DraftContent(), extra_headers=[("X-Ok", "v"), (name, "v")])
        assert caught.value.field == "extra_headers[1]"


def test_client_headers_keep_another_clients_draft_recognisable() -> None:
    original = sample("thunderbird-115-draft.eml")
    kept = client_headers(original)
    assert kept == (
        ("User-Agent", "Mozilla Thunderbird"),
        ("X-Mozilla-Draft-Info", "internal/draft; vcard=0; receipt=0; DSN=0; uuencode=0; "
                                 "attachmentreminder=0; deliveryformat=0"),
        ("X-Identity-Key", "id1"),
        ("Fcc", "imap://alice%40example.test@imap.example.test/Sent"),
    )  # Content-Language and the other Content-* fields belong to the body
    parsed = parse_message(original)
    rebuilt = build(dataclasses.replace(parsed.content, subject="changed"), extra_headers=kept)
    again = parse_message(rebuilt)
    assert again.draft_marker is True
    assert again.content.subject == "changed"
    assert again.content.attachments == parsed.content.attachments
    assert client_headers(rebuilt) == kept


def test_make_message_id() -> None:
    first, second = make_message_id("example.test"), make_message_id("example.test")
    assert first != second
    assert re.fullmatch(r"[0-9a-f]{32}@example\.test", first)
    assert make_message_id("bücher.test").endswith("@xn--bcher-kva.test")
    with pytest.raises(ValueError, match="Message-ID"):
        make_message_id("bad domain")


def test_snippet() -> None:
    assert snippet(DraftContent(text="  Hello\n\n  world  ")) == "Hello world"
    html = ("<html><head><title>T</title><style>p {color: red}</style></head><body><p>Hi&nbsp;<b>Bob</b>,"
            "</p><p>see&#160;you &amp; bye</p><script>alert(1)</script></body></html>")
    assert snippet(DraftContent(html=html)) == "Hi Bob, see you & bye"
    assert snippet(DraftContent(text=" ", html="<p>x</p>")) == "x"
    assert snippet(DraftContent(text="word " * 100), length=12) == "word word wo"
    assert snippet(DraftContent()) == ""


# --------------------------------------------------------------------------------------------
# Validation


INJECTIONS = ["a\r\nBcc: victim@example.test", "a\nb", "a\rb", "a\x00b", "a\x1bb", "a\x85b", "a\u2028b"]


@pytest.mark.parametrize("bad", INJECTIONS)
@pytest.mark.parametrize(("field", "make"), [
    ("subject", lambda v: {"content": DraftContent(subject=v)}),
    ("to[1]", lambda v: {"content": DraftContent(to=(Address("a@example.test"),
                                                      Address("b@example.test", v)))}),
    ("cc[0]", lambda v: {"content": DraftContent(cc=(Address(f"{v}@example.test"),))}),
    ("bcc[0]", lambda v: {"content": DraftContent(bcc=(Address("b@example.test", v),))}),
    ("from", lambda v: {"sender": Address("a@example.test", v)}),
    ("message_id", lambda v: {"message_id": v}),
    ("in_reply_to", lambda v: {"content": DraftContent(in_reply_to=v)}),
    ("references[1]", lambda v: {"content": DraftContent(references=("ok@x", v))}),
    ("context_type", lambda v: {"content": DraftContent(context_type=v)}),
    ("context_id", lambda v: {"content": DraftContent(context_id=v)}),
    ("attachments[2].filename", lambda v: {"content": DraftContent(attachments=(
        Attachment("a", "text/plain", b""), Attachment("b", "text/plain", b""),
        Attachment(v, "text/plain", b"")))}),
    ("attachments[0].content_type", lambda v: {"content": DraftContent(attachments=(
        Attachment("a", f"text/{v}", b""),))}),
    ("attachments[0].content_id", lambda v: {"content": DraftContent(attachments=(
        Attachment("a", "image/png", b"", content_id=v),))}),
    ("extra_headers[0]", lambda v: {"extra_headers": [("X-Custom", v)]}),
    ("extra_headers[1]", lambda v: {"extra_headers": [("X-Ok", "ok"), (f"X-{v}", "value")]}),
])
def test_header_injection_is_refused_naming_the_field(field: str, make: object, bad: str) -> None:
    kwargs = make(bad)  # type: ignore[operator]
    content = kwargs.pop("content", DraftContent())
    with pytest.raises(HeaderInjection) as caught:
        build(content, **kwargs)
    assert caught.value.field == field
    assert caught.value.code == "header_injection"


def test_check_header_value() -> None:
    check_header_value("subject", "tabs\tare fine, and ünïcödé too")
    with pytest.raises(HeaderInjection, match="line break"):
        check_header_value("subject", "a\nb")
    with pytest.raises(HeaderInjection, match="control character"):
        check_header_value("subject", "a\x07b")
    with pytest.raises(InvalidInput, match="surrogate") as caught:
        check_header_value("subject", "a\ud800")
    assert not isinstance(caught.value, HeaderInjection)


@pytest.mark.parametrize("bad", ["pdf", "application/", "/pdf", "application/pdf; charset=x", "a b/c",
                                 "text/plain/x", ""])
def test_invalid_content_type(bad: str) -> None:
    content = DraftContent(attachments=(Attachment("ok", "text/plain", b""), Attachment("a", bad, b"")))
    with pytest.raises(InvalidInput) as caught:
        build(content)
    assert caught.value.field == "attachments[1].content_type"
    assert not isinstance(caught.value, HeaderInjection)


@pytest.mark.parametrize(("content", "kwargs", "field"), [
    (DraftContent(in_reply_to="has space@x"), {}, "in_reply_to"),
    (DraftContent(references=("a@b", "<a@b><c@d>")), {}, "references[1]"),
    (DraftContent(), {"message_id": ""}, "message_id"),
    (DraftContent(to=(Address("no-at-sign"),)), {}, "to[0]"),
    (DraftContent(attachments=(Attachment("  ", "text/plain", b""),)), {}, "attachments[0].filename"),
    (DraftContent(planned_send_at=datetime(2026, 1, 1)), {}, "planned_send_at"),
    (DraftContent(text="bad \udc80 surrogate"), {}, "text"),
])
def test_other_invalid_values(content: DraftContent, kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        build(content, **kwargs)
    assert caught.value.field == field


def test_naive_dates_are_taken_as_utc() -> None:
    state = DraftState(uuid4(), datetime(2026, 1, 1, 12), datetime(2026, 1, 1, 13))
    parsed = parse_message(build(DraftContent(), date=datetime(2026, 1, 1, 12), state=state))
    assert parsed.date == datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert parsed.state is not None and parsed.state.updated_at == datetime(2026, 1, 1, 13, tzinfo=UTC)


# --------------------------------------------------------------------------------------------
# parse_address_list


def test_parse_address_list_forms() -> None:
    assert parse_address_list("a@example.test", "to") == (Address("a@example.test"),)
    assert parse_address_list("Bob Smith <bob@Example.TEST>", "to") == (
        Address("bob@example.test", "Bob Smith"),)
    assert parse_address_list('"Last, First" <lf@example.test>, c.d+tag@example.test, , ', "cc") == (
        Address("lf@example.test", "Last, First"), Address("c.d+tag@example.test"))
    assert parse_address_list(['"Last, First" <lf@example.test>', "Jörg <jörg@bücher.test>"], "bcc") == (
        Address("lf@example.test", "Last, First"), Address("jörg@bücher.test", "Jörg"))
    assert parse_address_list([], "to") == ()
    assert parse_address_list("", "to") == ()


@pytest.mark.parametrize(("value", "field"), [
    ("not-an-address", "to"),
    ("a@example.test, broken@", "to[1]"),
    (["a@example.test", "a@b@c"], "to[1]"),
    (["a@example.test", ""], "to[1]"),
    (["a@example.test, b@example.test"], "to[0]"),
    ("Bob, Jr <bob@example.test>", "to[0]"),
    ("user@localhost", "to"),
])
def test_parse_address_list_refuses(value: str | list[str], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_address_list(value, "to")
    assert caught.value.field == field
    assert not isinstance(caught.value, HeaderInjection)


@pytest.mark.parametrize("value", ["a@example.test\r\nBcc: x@example.test",
                                   ["ok@example.test", "Bob\n <b@example.test>"]])
def test_parse_address_list_injection(value: str | list[str]) -> None:
    with pytest.raises(HeaderInjection) as caught:
        parse_address_list(value, "to")
    assert caught.value.field == ("to" if isinstance(value, str) else "to[1]")


@settings(max_examples=60, deadline=None)
@given(addresses=st.lists(st.builds(Address, email=EMAIL.map(lambda e: e.lower()),
                                    name=st.text(SAFE, max_size=30).map(lambda n: n.strip(" \t"))),
                          max_size=4))
def test_parse_address_list_reads_what_build_writes(addresses: list[Address]) -> None:
    valid = []
    for address in addresses:
        try:
            parse_address_list(address.email, "to")
        except InvalidInput:
            continue  # email-validator is stricter than RFC 5322 (e.g. about dots and length)
        valid.append(address)
    raw = build(DraftContent(to=tuple(valid)))
    to_header = email.message_from_bytes(raw, policy=policy.compat32)["To"]
    if valid:
        unfolded = re.sub(r"\r\n(?=[ \t])", "", to_header)
        assert parse_address_list(unfolded, "to") == tuple(valid)


# --------------------------------------------------------------------------------------------
# Real clients' messages


def test_thunderbird_draft() -> None:
    parsed = parse_message(sample("thunderbird-115-draft.eml"))
    content = parsed.content
    assert parsed.draft_marker is True
    assert parsed.state is None
    assert parsed.sender == Address("alice@example.test", "Alice Example")
    assert parsed.message_id == "8e1a2c4f-3b5d-4e6f-9a7b-1c2d3e4f5a6b@example.test"
    assert parsed.date == datetime(2026, 11, 21, 14, 52, 7, tzinfo=timezone(timedelta(hours=1)))
    assert content.to == (Address("bob@example.test", "Bob Example"),
                          Address("joerg@example.test", "Müller, Jörg"))
    assert content.cc == (Address("team@example.test"),)
    assert content.subject == "Quartalsbericht Q3 – Entwurf"
    assert content.text is not None
    # format=flowed: soft breaks joined, space-stuffing removed, quotes and signature kept
    assert ("Die Zahlen für das dritte Quartal sehen besser aus als erwartet, vor allem dank der neuen "
            "Kunden im Norden.\n") in content.text
    assert "\nFrom the attached PDF you can see the details.\n" in content.text
    assert "\n> Können wir das bis Freitag fertig haben?\n" in content.text
    assert content.text.endswith("\n-- \nAlice Example")
    assert content.html is not None and "<p>Grüße<br>" in content.html
    [pdf] = content.attachments
    assert (pdf.filename, pdf.content_type, pdf.inline, pdf.content_id) == (
        "Q3-report.pdf", "application/pdf", False, None)
    assert pdf.data.startswith(b"%PDF-1.4") and pdf.data.endswith(b"%%EOF\n")


def test_thunderbird_html_draft_with_inline_image() -> None:
    parsed = parse_message(sample("thunderbird-115-inline-image.eml"))
    assert parsed.draft_marker is True
    assert parsed.content.text is None
    assert parsed.content.html is not None
    assert 'src="cid:part1.Xn4lQ2bE.sT0yUe8R@example.test"' in parsed.content.html
    [logo] = parsed.content.attachments
    assert (logo.filename, logo.content_type, logo.inline, logo.content_id) == (
        "logo.png", "image/png", True, "part1.Xn4lQ2bE.sT0yUe8R@example.test")
    assert logo.data.startswith(b"\x89PNG\r\n")


def test_apple_mail_draft_with_html_around_an_inline_image() -> None:
    parsed = parse_message(sample("apple-mail-draft.eml"))
    content = parsed.content
    assert parsed.draft_marker is True
    assert parsed.message_id == "A1B2C3D4-E5F6-4789-ABCD-EF0123456789@example.test"
    assert content.to == (Address("bob@example.test", "Bob Example"),)
    assert content.text == ("Hi Bob,\n\nhere are the photos from Saturday – the first one is my "
                            "favourite.\n\nLiebe Grüße\nAlice")
    # both HTML pieces (before and after the image), as Apple Mail shows them
    assert content.html is not None
    assert "the first one is my favourite." in content.html and "<div>Liebe Grüße</div>" in content.html
    [image] = content.attachments
    assert (image.filename, image.content_type, image.inline, image.content_id) == (
        "IMG_0042.png", "image/png", True, "7E6D5C4B-3A29-4180-9F8E-7D6C5B4A3928")


def test_apple_mail_draft_nested() -> None:
    parsed = parse_message(sample("apple-mail-draft-nested.eml"))
    content = parsed.content
    assert parsed.draft_marker is True
    assert content.text == "Contract attached, signature below.\n"
    assert content.html is not None and content.html.startswith("<html>") and content.html.endswith("</html>")
    assert [(a.filename, a.content_type, a.inline, a.content_id) for a in content.attachments] == [
        ("signature.png", "image/png", True, "5D6E7F80-9A1B-4C2D-8E3F-405162738495"),
        ("contract.pdf", "application/pdf", False, None)]


def test_mutt_draft_latin1_8bit() -> None:
    parsed = parse_message(sample("mutt-draft.eml"))
    content = parsed.content
    assert parsed.draft_marker is False
    assert parsed.sender == Address("joerg@example.test", "Jörg Müller")
    assert content.cc == (Address("francois@example.test", "François"),)
    assert content.bcc == (Address("archive@example.test"),)
    assert content.subject == "Grüße aus Köln"
    assert content.in_reply_to == "CAF+abc123@mail.example.test"
    assert content.references == ("first@example.test", "CAF+abc123@mail.example.test")
    assert content.text == ("Hallo Alice,\n\nschöne Grüße aus Köln! Das Café öffnet um 8 Uhr.\n\n"
                            "From now on I will use mutt for everything.\n.\nJörg\n")
    assert content.html is None and content.attachments == ()


def test_gmail_draft_base64_alternative() -> None:
    parsed = parse_message(sample("gmail-draft.eml"))
    content = parsed.content
    assert parsed.date == datetime(2026, 11, 21, 15, 41, 2, tzinfo=UTC)
    assert content.subject == "Re: Monday"
    assert content.text == "Hi Bob,\n\nthanks for the update – see you on Monday.\n\nCheers,\nAlice\n"
    assert content.html is not None and content.html.startswith('<div dir="ltr">Hi Bob,')
    assert content.in_reply_to == "CAB7kX2m9Qp4sT6vW8yZ0aC2eG4iK6mO8qS0uW2yA4cE6gI8kM@mail.gmail.com"
    assert content.references == (content.in_reply_to,)


def test_windows_1252_and_an_unknown_charset() -> None:
    content = parse_message(sample("charsets.eml")).content
    assert content.subject == "Angebot – € 20"
    assert content.text == "Price: 20 € – “special” offer…\nNächste Woche.\n"
    assert content.html == "<p>Price: 20 € – special offer</p>"  # unknown label: UTF-8 guessed


def test_message_rfc822_attachments() -> None:
    content = parse_message(sample("forwarded-rfc822.eml")).content
    assert content.text == "See the two messages below.\n"
    notes, other = content.attachments
    assert (notes.filename, notes.content_type) == ("Meeting notes_ 2026_11_19.eml", "message/rfc822")
    assert notes.data.startswith(b"Return-Path: <carol@example.test>\r\n")
    assert notes.data.endswith(b"The notes.\r\n")
    assert (other.filename, other.content_type) == ("message.eml", "message/rfc822")
    assert parse_message(other.data).content.text == "No subject here.\n"


def test_file_names_rfc2231_rfc2047_and_missing() -> None:
    content = parse_message(sample("filenames.eml")).content
    assert content.text == "Four files."
    assert [(a.filename, a.content_type) for a in content.attachments] == [
        ("Übersicht März.pdf", "application/pdf"),
        ("Kostenübersicht 2026.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        ("attachment.bin", "application/octet-stream"),
        ("attachment-2.jpg", "image/jpeg"),
    ]
    assert content.attachments[2].data == b"\x00\x01\x02\x03\x04"


_TOKEN_CHARS = "!#$%&'*+-.^_`|~" + "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_WS = st.sampled_from(["", "", " ", "  ", "\t", " \t "])
_TOKENISH = st.text(st.sampled_from(_TOKEN_CHARS + "*'%/=?()<>@,;:\\\"[] \t\u00e9"), min_size=0,
                    max_size=8)
_PLAIN_TOKEN = st.text(st.sampled_from(_TOKEN_CHARS), min_size=1, max_size=10)
_PARAM_NAME = st.one_of(
    st.sampled_from(["charset", "name", "filename", "boundary", "format", "delsp", "Charset",
                     "NAME", "FileName", "filename*", "filename*0", "filename*0*", "filename*1",
                     "name*"]),
    _PLAIN_TOKEN, _TOKENISH)
_PARAM_VALUE = st.one_of(
    _PLAIN_TOKEN, _TOKENISH,
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=12).map(
        lambda t: f'"{t}"'),
    st.text(st.sampled_from('ab \t()<>@,;:\\"/[]?=*%\'\u00e9'), max_size=8).map(lambda t: f'"{t}"'),
    st.sampled_from(["=?utf-8?q?caf=C3=A9?=", '"=?utf-8?b?w7xiZXI=?= x.pdf"',
                     "utf-8''%C3%9Cbersicht.pdf", "us-ascii'en'a%20b", '"a\\"b"', '"a\\\\b"',
                     "utf-8", '"utf-8"', "UTF-8", "flowed", "yes", '""', "(comment) x", "x (c)",
                     '"----=_Part_1_2.3"', "----=_Part_1", "a.b-c_d"]))
_MAIN = st.one_of(
    st.tuples(_PLAIN_TOKEN, _PLAIN_TOKEN).map("/".join),
    st.sampled_from(["text/plain", "TEXT/HTML", "multipart/mixed", "Multipart/Alternative",
                     "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                     "attachment", "inline", "Attachment", "text", "text/", "/plain", "",
                     "tex t/plain", "text/plain (c)", "text/pl\u00e9in", "(c) text/plain"]),
    _TOKENISH)
_SEPARATOR = st.one_of(st.tuples(_WS, st.just(";"), _WS).map("".join),
                       st.sampled_from([";;", ",", " ", ";\t", "; ;"]))
_TAIL = st.sampled_from(["", "", ";", "; ", " ", " (comment)", ";;", "\t"])


@st.composite
def _parameterized_values(draw: st.DrawFn) -> str:
    parts = [draw(_WS), draw(_MAIN), draw(_WS)]
    for _ in range(draw(st.integers(0, 4))):
        parts += [draw(_SEPARATOR), draw(_PARAM_NAME), draw(_WS), "=", draw(_WS), draw(_PARAM_VALUE)]
    parts.append(draw(_TAIL))
    return "".join(parts)


@st.composite
def _plain_values(draw: st.DrawFn) -> tuple[str, str]:
    """(header, value): mostly what the fast path takes, now and then a character it must not."""
    header = draw(st.sampled_from(["content-type", "content-disposition"]))
    chars = _TOKEN_CHARS + draw(st.sampled_from(["", "", "", "", "*", "'", "%", "/"]))
    token = st.text(st.sampled_from(chars), min_size=1, max_size=10)
    main = draw(st.tuples(token, token).map("/".join) if header == "content-type" else token)
    parts = [draw(_WS), main, draw(_WS)]
    for _ in range(draw(st.integers(0, 4))):
        value = draw(st.one_of(token, st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e)
                                              .filter(lambda c: c not in '"\\'), max_size=12)
                               .map(lambda t: f'"{t}"')))
        parts += [";", draw(_WS), draw(token), draw(_WS), "=", draw(_WS), value, draw(_WS)]
    parts.append(draw(st.sampled_from(["", "", ";", "; ", ";\t"])))
    return header, "".join(parts)


@settings(max_examples=2000, deadline=None)
@given(case=st.one_of(
    st.tuples(st.sampled_from(["content-type", "content-disposition"]), _parameterized_values()),
    _plain_values()))
@example(case=("content-type", 'text/plain; charset="utf-8"; format=flowed'))
@example(case=("content-disposition", "attachment; filename*=utf-8''%C3%9Cbersicht.pdf"))
@example(case=("content-type", "text/plain; Name=a; name=b"))
@example(case=("content-type", "text/plain; name=a*b"))
@example(case=("content-type", "text/plain; name=a'b"))
@example(case=("content-type", 'text/plain; charset="utf-8"x'))
def test_params_fast_path_reads_as_the_stdlib_does(case: tuple[str, str]) -> None:
    header, value = case
    assume(value)  # an empty value is (None, {}) before either path
    assert _params_of(header, value) == _params_slow(header, value)


def test_params_fast_path_takes_plain_values(monkeypatch: pytest.MonkeyPatch) -> None:
    def no(name: str, value: str) -> None:
        raise AssertionError(f"slow path for {value!r}")

    monkeypatch.setattr(mime_read, "_params_slow", no)
    assert _params_of("content-type", 'text/plain; charset="utf-8"; format=flowed; delsp=yes') == (
        "text/plain", {"charset": "utf-8", "format": "flowed", "delsp": "yes"})
    assert _params_of("content-type", 'Multipart/Mixed;\tboundary="----=_Part_1 2"') == (
        "multipart/mixed", {"boundary": "----=_Part_1 2"})
    assert _params_of("content-type", "application/pdf; name=a.pdf;") == (
        "application/pdf", {"name": "a.pdf"})
    assert _params_of("content-disposition", 'attachment; filename="Q3 (final).pdf"') == (
        "attachment", {"filename": "Q3 (final).pdf"})
    assert _params_of("content-disposition", "inline") == ("inline", {})
    assert _params_of("content-type", None) == (None, {})


def _scan_headers_line_by_line(raw: bytes, start: int, end: int
                               ) -> tuple[list[tuple[str, int, int, int]], int]:
    """mailbridge.mime.headers._scan_headers as it was before it matched whole fields with one regex."""
    fields: list[tuple[str, int, int, int]] = []
    pos = start
    while pos < end:
        newline = raw.find(b"\n", pos, end)
        line_end = end if newline < 0 else newline + 1
        head = raw[pos:min(line_end, pos + 1000)]
        if head in (b"\r\n", b"\n") or (line_end == end and head in (b"", b"\r")):
            return fields, line_end
        if head[:1] in (b" ", b"\t"):
            if fields and fields[-1][0]:
                last = fields[-1]
                fields[-1] = (last[0], last[1], last[2], line_end)
            else:
                fields.append(("", pos, pos, line_end))
            pos = line_end
            continue
        match = re.match(rb"([!-9;-~]+)[ \t]*:", head)
        if match is not None:
            fields.append((match.group(1).decode("ascii"), pos, pos + match.end(), line_end))
        elif pos == start and head.startswith(b"From "):
            fields.append(("", pos, pos, line_end))
        else:
            return fields, pos
        pos = line_end
    return fields, end


_HEADER_LINE = st.one_of(
    st.tuples(st.sampled_from(["Subject", "X-A", "a", "Content-Type", "X" * 998, "X" * 1001, "B!~"]),
              st.sampled_from(["", " ", "\t", "  "]), st.sampled_from([":", ";", ""]),
              st.text(st.sampled_from("ab :\t\r\u00e9"), max_size=6)).map(lambda t: "".join(t)),
    st.sampled_from([" continued", "\tcontinued", " ", "", "\r", "From alice Sat Nov 21", "garbage",
                     "Subj ect: x", ": no name", "X-\u00e9: 8bit name"]),
    st.text(st.characters(max_codepoint=0x7f), max_size=8))


@settings(max_examples=1500, deadline=None)
@given(lines=st.lists(st.tuples(_HEADER_LINE, st.sampled_from(["\r\n", "\n", "\r\n", "\r", ""])),
                      max_size=12),
       cut=st.tuples(st.integers(0, 20), st.integers(0, 20)), binary=st.binary(max_size=40))
def test_scan_headers_finds_what_the_line_loop_found(lines: list[tuple[str, str]],
                                                     cut: tuple[int, int], binary: bytes) -> None:
    raw = "".join(a + b for a, b in lines).encode("utf-8") + binary
    for start, end in ((0, len(raw)), (min(cut[0], len(raw)), max(min(cut[0], len(raw)), len(raw) - cut[1]))):
        fields, body = mime_headers._scan_headers(raw, start, end)
        assert ([tuple(f) for f in fields], body) == _scan_headers_line_by_line(raw, start, end)


def test_scan_headers_on_the_samples() -> None:
    for name in SAMPLES:
        raw = sample(name)
        for start in (0, raw.find(b"\n\n") + 2, raw.find(b"\r\n\r\n") + 4, len(raw) // 2):
            fields, body = mime_headers._scan_headers(raw, start, len(raw))
            assert ([tuple(f) for f in fields], body) == _scan_headers_line_by_line(raw, start, len(raw))


_ADDRESS_PIECE = st.one_of(
    st.sampled_from(["Bob", "Bob Example", "bob@example.test", "a.b+c@x-y.test", " ", "  ", "\t", ",",
                     "<", ">", "<bob@example.test>", "<@relay:bob@example.test>", "<>", '"', '"Last, First"',
                     "(comment)", "(", ")", ":", ";", "[1.2.3.4]", "\\", "=?utf-8?q?J=C3=B6rg?=", "J\u00f6rg",
                     "\u00a0", "@", "group:", "a@b", "<a b@c>", "<a,b@c>", "O'Brien", "x=y"]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=6))


@settings(max_examples=3000, deadline=None)
@given(pieces=st.lists(_ADDRESS_PIECE, max_size=8))
@example(pieces=["Bob Example", " ", "<bob@example.test>"])
@example(pieces=["bob@example.test", ",", "Carol", "<c@x>"])
def test_address_fast_paths_read_as_the_scanners_do(pieces: list[str]) -> None:
    value = "".join(pieces)
    assert mime_addresses._split_address_list(value) == mime_addresses._split_address_list_scan(value)
    for item in [value, *mime_addresses._split_address_list(value)]:
        assert mime_addresses._parse_mailbox(item) == mime_addresses._parse_mailbox_scan(item)


def test_address_fast_paths_take_plain_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    def no(value: str) -> None:
        raise AssertionError(f"slow path for {value!r}")

    monkeypatch.setattr(mime_addresses, "_split_address_list_scan", no)
    monkeypatch.setattr(mime_addresses, "_parse_mailbox_scan", no)
    assert parse_message(b"From: Alice Example <alice@example.test>\r\n"
                         b"To: bob@example.test, Carol C. <carol@example.test>\r\n\r\n").content.to == (
        Address("bob@example.test", ""), Address("carol@example.test", "Carol C."))
    assert parse_address_list(["Bob Example <bob@example.test>", "c@example.test"], "to") == (
        Address("bob@example.test", "Bob Example"), Address("c@example.test", ""))


def test_malformed_headers() -> None:
    parsed = parse_message(sample("malformed.eml"))
    content = parsed.content
    assert parsed.date is None
    assert parsed.sender == Address("sender@example.test", "Broken Sender")
    assert content.to == (Address("bob@example.test", "Bob"), Address("x@example.test", "Unclosed"),
                          Address("alice@example.test"), Address("carol@example.test", "Carol Example"))
    assert content.cc == ()
    assert content.subject == "Re: =?utf-8?q?unterminated encoded word"
    assert parsed.message_id == "bare-id@example.test"
    assert content.references == ("good@example.test", "also-good@example.test")
    assert content.text == "Hello, world!"


@pytest.mark.parametrize(("charset", "text"), [
    ("koi8-r", "Привет, мир"),
    ("shift_jis", "こんにちは世界"),
    ("iso-8859-15", "Prix : 20 € œuvre"),
    ("windows-1252", "“quotes” – dash"),
    ("iso-8859-1", "Café"),
    ("utf-8", "ünïcödé"),
])
def test_other_charsets(charset: str, text: str) -> None:
    encoded = text.encode(charset)
    subject = f"=?{charset}?b?{base64.b64encode(encoded).decode()}?="
    raw = (f"Subject: {subject}\r\nContent-Type: text/plain; charset={charset}\r\n"
           "Content-Transfer-Encoding: 8bit\r\n\r\n").encode("ascii") + encoded
    content = parse_message(raw).content
    assert (content.subject, content.text) == (text, text)


@pytest.mark.parametrize("charset", ["x-unknown-charset", "base64", "rot13", "utf-99", '"', "idna"])
def test_unknown_charset_names_decode_with_replacement(charset: str) -> None:
    head = f"Content-Type: text/plain; charset=\"{charset}\"\r\n\r\n".encode()
    assert parse_message(head + "Grüße \xff".encode("latin-1")).content.text == "Grüße ÿ"
    assert parse_message(head + "Grüße".encode()).content.text == "Grüße"


def test_raw_8bit_headers() -> None:
    raw = "Subject: Grüße\r\nFrom: Jörg <j@example.test>\r\n\r\nx".encode() + b""
    parsed = parse_message(raw)
    assert parsed.content.subject == "Grüße" and parsed.sender == Address("j@example.test", "Jörg")
    raw = "Subject: Grüße\r\n\r\nx".encode("latin-1")
    assert parse_message(raw).content.subject == "Grüße"


def test_split_encoded_words_and_lf_only_messages() -> None:
    # a character split across two encoded-words; LF line endings; no blank line before EOF
    raw = b"Subject: =?utf-8?q?Gr=C3?= =?utf-8?q?=BC=C3=9Fe?= and =?utf-8?q?more?=\nTo: a@example.test\n"
    parsed = parse_message(raw)
    assert parsed.content.subject == "Grüße and more"
    assert parsed.content.to == (Address("a@example.test"),)
    assert parsed.content.text is None


def test_structure_oddities() -> None:
    raw = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\npreamble\r\n--b\r\n\r\nfirst\r\n"
           b"--bogus\r\n--b  \r\nContent-Type: application/pdf\r\n\r\n%PDF\r\n--b-not-a-delimiter\r\n")
    content = parse_message(raw).content
    assert content.text == "first\r\n--bogus".replace("\r\n", "\n")
    [pdf] = content.attachments
    assert pdf.data == b"%PDF\r\n--b-not-a-delimiter\r\n"  # no close delimiter: to the end
    nested = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
                      for i in range(200)) + b"\r\ntoo deep"
    assert parse_message(nested).content == DraftContent()
    shallow = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
                       for i in range(30)) + b"\r\ndeep enough"
    assert parse_message(shallow).content.text == "deep enough"
    no_boundary = b"Content-Type: multipart/mixed\r\n\r\nplain after all"
    assert parse_message(no_boundary).content.text == "plain after all"
    attachment_only = b"Content-Type: text/plain\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\nhi"
    content = parse_message(attachment_only).content
    assert content.text is None and content.attachments == (Attachment("a.txt", "text/plain", b"hi"),)
    alternatives = (b"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b\r\n"
                    b"Content-Type: text/enriched\r\n\r\n<b>two</b>\r\n--b\r\n"
                    b"Content-Type: text/plain\r\n\r\nthree\r\n--b--")
    assert parse_message(alternatives).content == DraftContent(text="one")


def test_a_state_header_mailbridge_did_not_write_is_ignored() -> None:
    raw = b"X-Mailbridge-Id: not-a-uuid\r\nX-Mailbridge-Context-Type: invoice\r\n\r\n"
    parsed = parse_message(raw)
    assert parsed.state is None and parsed.content.context_type == "invoice"
    raw = (b"X-Mailbridge-Id: 6f1c2b8e-3d4a-4e5f-9a0b-1c2d3e4f5a6b\r\n"
           b"Date: Sat, 21 Nov 2026 15:00:00 +0000\r\n\r\n")
    parsed = parse_message(raw)
    assert parsed.state == DraftState(STATE.id, WHEN, WHEN)


SAMPLES = sorted(p.name for p in DATA.glob("*.eml"))


@settings(max_examples=100, deadline=None)
@given(name=st.sampled_from(SAMPLES), cuts=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 200),
                                                              st.binary(max_size=20)), max_size=4))
def test_damaged_messages_never_raise_and_can_be_written_back(name: str,
                                                              cuts: list[tuple[int, int, bytes]]) -> None:
    raw = sample(name)
    for at, length, insert in cuts:
        at = at % (len(raw) + 1)
        raw = raw[:at] + insert + raw[at + length:]
    parsed = parse_message(raw)
    assert isinstance(parsed, ParsedMessage)
    build(parsed.content, sender=parsed.sender or SENDER, message_id=parsed.message_id or "x@y")


@settings(max_examples=100, deadline=None)
@given(raw=st.one_of(st.binary(max_size=500), st.lists(st.sampled_from([
    b"Content-Type: multipart/mixed; boundary=b\r\n", b"\r\n", b"--b\r\n", b"--b--", b"To: ", b"\"",
    b"<", b"(",
    b"=?utf-8?b?", b"?=", b"Content-Transfer-Encoding: base64\r\n", b"Content-Type: message/rfc822\r\n",
    b"Content-Disposition: attachment; filename*0*=x''%ZZ\r\n", b"Subject: ", b"\xff\xfe", b"a@b", b",",
    b" ", b"\n", b"Content-Type: text/plain; charset=\"utf-16\"; format=flowed\r\n"]),
    max_size=40).map(b"".join)))
def test_garbage_never_raises_and_can_be_written_back(raw: bytes) -> None:
    parsed = parse_message(raw)
    build(parsed.content, sender=parsed.sender or SENDER, message_id=parsed.message_id or "x@y")


# --------------------------------------------------------------------------------------------
# The wire copy


def test_strip_for_sending_removes_bcc_and_internal_headers_only() -> None:
    raw = build(DraftContent(to=(Address("bob@example.test"),), bcc=tuple(
        Address(f"hidden{i}@example.test", f"Hidden Person {i}") for i in range(6)),
        context_type="invoice", context_id="x" * 200, text="Bcc: in the body stays\r\nX-Mailbridge-Id: too"),
        state=dataclasses.replace(STATE, last_error="e " * 100))
    head = header_block(raw)
    assert re.search(r"\r\nBcc: [^\r]*\r\n ", head), "the Bcc of this test is folded"
    assert re.search(r"\r\nX-Mailbridge-Last-Error: [^\r]*\r\n ", head)
    wire = strip_for_sending(raw)
    wire_head = header_block(wire)
    assert "Bcc" not in wire_head and "hidden" not in wire_head
    assert INTERNAL_HEADER_PREFIX not in wire_head
    assert "invoice" not in wire_head
    # everything else byte for byte
    kept = [line for line in re.split(r"\r\n(?![ \t])", head)
            if not line.lower().startswith(("bcc:", "x-mailbridge-"))]
    assert wire_head.split("\r\n") == "\r\n".join(kept).split("\r\n")
    assert wire.split(b"\r\n\r\n", 1)[1] == raw.split(b"\r\n\r\n", 1)[1]
    assert parse_message(wire).content.text == "Bcc: in the body stays\nX-Mailbridge-Id: too"


def test_strip_for_sending_on_a_foreign_message() -> None:
    raw = (b"From: a@example.test\r\nbcc: one@example.test,\r\n\ttwo@example.test\r\nSubject: s\r\n"
           b"X-MAILBRIDGE-ID: x\r\n  continued\r\nX-Other: kept\r\n\r\nBcc: body\r\n")
    assert strip_for_sending(raw) == (b"From: a@example.test\r\nSubject: s\r\nX-Other: kept\r\n\r\n"
                                      b"Bcc: body\r\n")
    lf = raw.replace(b"\r\n", b"\n")
    assert strip_for_sending(lf) == b"From: a@example.test\nSubject: s\nX-Other: kept\n\nBcc: body\n"
    nothing = b"From: a@example.test\r\n\r\nbody"
    assert strip_for_sending(nothing) is nothing
    last = b"Subject: s\r\nBcc: x@example.test"
    assert strip_for_sending(last) == b"Subject: s\r\n"


def test_set_header() -> None:
    raw = (b"From: a@example.test\r\nDate: Mon, 1 Jan 2026 00:00:00\r\n +0000\r\nSubject: s\r\n\r\n"
           b"Date: body\r\n")
    new = set_header(raw, "Date", "Sat, 21 Nov 2026 15:00:00 +0000")
    assert new == (b"From: a@example.test\r\nDate: Sat, 21 Nov 2026 15:00:00 +0000\r\nSubject: s\r\n\r\n"
                   b"Date: body\r\n")
    added = set_header(b"From: a@example.test\n\nbody", "date", "x")
    assert added == b"From: a@example.test\ndate: x\n\nbody"
    twice = set_header(b"X-A: 1\r\nX-B: 2\r\nx-a: 3\r\n\r\n", "X-A", "Grüße")
    assert twice == b"X-A: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nX-B: 2\r\n\r\n"
    assert set_header(b"Subject: s", "Date", "d") == b"Subject: s\r\nDate: d\r\n"
    copied = "internal/draft; vcard=0;  receipt=0; =?utf-8?q?x?= "  # ASCII goes as given
    assert set_header(b"\r\n", "X-Mozilla-Draft-Info", copied) == (
        b"X-Mozilla-Draft-Info: internal/draft; vcard=0;  receipt=0; =?utf-8?q?x?=\r\n\r\n")
    dated = set_header(build(DraftContent(text="t")), "Date", "Sun, 22 Nov 2026 10:00:00 +0100")
    assert parse_message(dated).date == datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    with pytest.raises(HeaderInjection):
        set_header(raw, "Date", "x\r\nBcc: victim@example.test")
    with pytest.raises(InvalidInput):
        set_header(raw, "Bad Name", "x")


# --------------------------------------------------------------------------------------------
# Size


def test_a_20_mb_attachment_builds_and_parses_quickly_in_bounded_memory() -> None:
    size = 20 * 1024 * 1024
    data = bytes(range(256)) * (size // 256)
    content = DraftContent(to=(Address("bob@example.test"),), subject="big", text="see attachment",
                           attachments=(Attachment("big.bin", "application/octet-stream", data),))
    tracemalloc.start()
    try:
        started = time.perf_counter()
        raw = build(content)
        build_seconds = time.perf_counter() - started
        _, build_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        baseline, _ = tracemalloc.get_traced_memory()
        started = time.perf_counter()
        parsed = parse_message(raw)
        parse_seconds = time.perf_counter() - started
        _, parse_peak = tracemalloc.get_traced_memory()
        started = time.perf_counter()
        wire = strip_for_sending(raw)
        strip_seconds = time.perf_counter() - started
    finally:
        tracemalloc.stop()
    assert parsed.content.attachments[0].data == data
    assert len(wire) < len(raw)
    print(f"\n20 MB: message {len(raw) / 2**20:.1f} MiB; build {build_seconds:.2f}s peak "
          f"{build_peak / 2**20:.1f} MiB; parse {parse_seconds:.2f}s peak "
          f"{(parse_peak - baseline) / 2**20:.1f} MiB above the message; strip {strip_seconds:.2f}s")
    assert build_seconds + parse_seconds < 5
    assert build_peak < 2 * len(raw)  # the message (~1.37x the data) plus block buffers
    assert parse_peak - baseline < 1.5 * size  # the decoded attachment plus small change
