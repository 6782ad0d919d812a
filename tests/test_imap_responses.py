"""Parsing IMAP replies as aioimaplib delivers them (mailbridge.imap.responses).

Most tests read samples captured from Dovecot 2.3.19 through aioimaplib 2.0.3
(tests/data/imap/*.json, made by tests/data/imap/capture.py): ``lines`` is exactly the
``Response.lines`` aioimaplib produced, ``wire`` the bytes Dovecot sent. Values the server
chooses (UIDVALIDITY, INTERNALDATE) are checked against the wire rather than hard-coded.
"""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailbridge.errors import ImapProtocolError
from mailbridge.imap import responses
from mailbridge.imap.responses import (
    MAX_EXPANDED_UIDS,
    AppendUid,
    CopyUid,
    FetchItem,
    Lines,
    MailboxInfo,
    ResponseCode,
    SearchResult,
    expand_uid_set,
    parse_appenduid,
    parse_capabilities,
    parse_copyuid,
    parse_fetch,
    parse_internaldate,
    parse_list,
    parse_modified,
    parse_response_code,
    parse_search,
    parse_select,
    parse_status,
    text_of,
    uid_set,
)
from mailbridge.imap.utf7 import mailbox_arg

DATA = Path(__file__).parent / "data" / "imap"
TZ13 = timezone(timedelta(hours=13))


@cache
def _sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text())
    return data


def lines(name: str) -> list[bytes | bytearray]:
    """A sample's Response.lines, with bytes and bytearray elements as aioimaplib made them."""
    out: list[bytes | bytearray] = []
    for el in _sample(name)["lines"]:
        raw = base64.b64decode(el["b64"])
        out.append(bytearray(raw) if el["type"] == "bytearray" else raw)
    return out


def wire(name: str) -> bytes:
    """What Dovecot sent while the sample's command ran."""
    return base64.b64decode(_sample(name)["wire"])


def by_uid(items: list[FetchItem]) -> dict[int, FetchItem]:
    return {item.uid: item for item in items if item.uid is not None}


# ------------------------------------------------------------------ the shape aioimaplib delivers


def test_samples_have_the_documented_shape() -> None:
    """Canary for an aioimaplib upgrade: literals are bytearrays right after a line ending in
    {N}, the rest of that line follows as its own element starting with SP or ')'."""
    ls = lines("fetch_sections")
    assert ls[:4] == [b"1 FETCH (UID 1 BODY[HEADER] {259}", ls[1], b" BODY[TEXT] {706}", ls[3]]
    for i, el in enumerate(ls):
        if isinstance(el, bytearray):
            size = re.search(rb"\{(\d+)\}$", ls[i - 1])
            assert size is not None and int(size.group(1)) == len(el)
            assert isinstance(ls[i + 1], bytes) and ls[i + 1][:1] in (b" ", b")")
    assert ls[-1].startswith(b"Fetch completed")
    # {0} arrives as an empty bytearray
    assert bytearray(b"") in ls and b" BODY[9] {0}" in ls


def test_aioimaplib_drops_reply_names_of_async_commands() -> None:
    assert lines("search_all")[0] == b"1 2 3 4 5 6 7"  # wire: * SEARCH 1 2 3 4 5 6 7
    assert lines("search_empty")[0] == b""  # wire: * SEARCH
    assert lines("list_all")[0].startswith(b"(\\HasNoChildren)")
    assert lines("status_inbox")[0].startswith(b"INBOX (MESSAGES")
    assert lines("capability")[0].startswith(b"IMAP4rev1 ")
    # sync commands (SELECT, MOVE, LOGIN) and FETCH/EXPUNGE lines keep them
    assert lines("select_condstore")[0].startswith(b"FLAGS (")
    assert lines("uid_move")[0].startswith(b"OK [COPYUID ")
    assert lines("uid_expunge")[0] == b"4 EXPUNGE"


def test_aioimaplib_deletes_star_space_inside_first_lines() -> None:
    """Known corruption: aioimaplib removes every b'* ' from an untagged reply's first line."""
    assert b'"a * b"' in wire("list_all")
    assert b'"a b"' in b"\n".join(lines("list_all"))
    assert "a b" in [box.name for box in parse_list(lines("list_all"))]
    assert b'"Re: (was: hello * world"' in wire("fetch_envelope_command")
    envelope = by_uid(parse_fetch(lines("fetch_envelope_command")))[6].envelope
    assert isinstance(envelope, list) and envelope[1] == b"Re: (was: hello world"


def test_fetchcommand_keeps_star_prefix_after_unbalanced_parenthesis() -> None:
    with_fetchcommand = lines("fetch_envelope_fetchcommand")
    assert any(el.startswith(b"* 7 FETCH") for el in with_fetchcommand)
    assert parse_fetch(with_fetchcommand) == parse_fetch(lines("fetch_envelope_command"))


# -------------------------------------------------------------------------- capabilities, codes


def test_capabilities_from_capability_command_and_login() -> None:
    caps = parse_capabilities(lines("capability"))
    assert {"IMAP4REV1", "UIDPLUS", "CONDSTORE", "QRESYNC", "MOVE", "SPECIAL-USE", "ESEARCH", "ENABLE",
            "LITERAL+", "IDLE", "UNSELECT", "MULTIAPPEND", "LIST-EXTENDED"} <= caps
    assert parse_capabilities(lines("login_ok")) == caps  # Dovecot sent it untagged with LOGIN
    assert "CAPABILITY" not in caps
    assert len(caps) == len(wire("capability").split(b"\r\n")[0].split()) - 2


def test_capabilities_from_response_codes() -> None:
    assert parse_capabilities([b"[CAPABILITY IMAP4rev1 idle Move] Logged in"]) == {
        "IMAP4REV1", "IDLE", "MOVE"}
    greeting = [b"OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] Dovecot ready.", b"done"]
    assert parse_capabilities(greeting) == {"IMAP4REV1", "SASL-IR", "AUTH=PLAIN"}
    assert parse_capabilities([b"* CAPABILITY IMAP4rev1 X-ONE", b"OK"]) == {"IMAP4REV1", "X-ONE"}
    assert parse_capabilities([b"Logged in"]) == frozenset()
    assert parse_capabilities([b"OK Welcome to an IMAP4rev1 server", b"done"]) == frozenset()


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (b"[APPENDUID 1795274658 1] Append completed.", ResponseCode("APPENDUID", "1795274658 1")),
        ("[READ-ONLY] Examine completed", ResponseCode("READ-ONLY", "")),
        (b"[PERMANENTFLAGS (\\Seen \\*)] Flags permitted.", ResponseCode("PERMANENTFLAGS", "(\\Seen \\*)")),
        (b"OK [UIDNEXT 8] Predicted next UID", ResponseCode("UIDNEXT", "8")),
        (b"* NO [alert] lower-case name", ResponseCode("ALERT", "")),
        (bytearray(b"[MODIFIED 4] Conditional store failed"), ResponseCode("MODIFIED", "4")),
        (b"Append completed.", None),
        (b"", None),
        (b"[ALERT unterminated", None),
        (b" [ALERT] leading space", None),
    ],
)
def test_parse_response_code(text: bytes | str, code: ResponseCode | None) -> None:
    assert parse_response_code(text) == code


def test_response_codes_in_dovecot_failures() -> None:
    assert parse_response_code(lines("login_failed")[-1]) == ResponseCode("AUTHENTICATIONFAILED", "")
    assert parse_response_code(lines("uid_copy_missing")[-1]) == ResponseCode("TRYCREATE", "")
    # Dovecot 2.3.19 says NO without [NONEXISTENT] to SELECT/EXAMINE/STATUS of a missing mailbox
    for name in ("select_missing", "examine_missing", "status_missing"):
        assert _sample(name)["result"] == "NO"
        assert parse_response_code(lines(name)[-1]) is None
        assert lines(name)[-1].startswith(b"Mailbox doesn't exist")


# ------------------------------------------------------------------- APPENDUID, COPYUID, MODIFIED


def test_appenduid_from_dovecot() -> None:
    m = re.search(rb"\[APPENDUID (\d+) (\d+)\]", wire("append_appenduid"))
    assert m is not None
    assert parse_appenduid(lines("append_appenduid")) == AppendUid(int(m.group(1)), 1)
    assert parse_appenduid(lines("append_with_flags")) == AppendUid(int(m.group(1)), 7)


@pytest.mark.parametrize("status", [b"Append completed.", b"[READ-WRITE] x", b""])
def test_appenduid_absent(status: bytes) -> None:
    assert parse_appenduid([status]) is None
    assert parse_appenduid([]) is None


@pytest.mark.parametrize(
    "status", [b"[APPENDUID 38505] x", b"[APPENDUID x 1] y", b"[APPENDUID 0 1] y", b"[APPENDUID 1 3:5] y"])
def test_appenduid_malformed(status: bytes) -> None:
    with pytest.raises(ImapProtocolError, match="APPENDUID"):
        parse_appenduid([status])


def test_copyuid_from_uid_copy_in_status_text() -> None:
    m = re.search(rb"\[COPYUID (\d+) ", wire("uid_copy"))
    assert m is not None
    assert parse_copyuid(lines("uid_copy")) == CopyUid(int(m.group(1)), (1, 2, 3, 5), (1, 2, 3, 4))
    single = parse_copyuid(lines("uid_copy_single"))
    assert single is not None and single.source_uids == (1,) and single.dest_uids == (1,)


def test_copyuid_from_uid_move_in_untagged_ok() -> None:
    ls = lines("uid_move")
    assert not ls[-1].startswith(b"[COPYUID")  # not in the tagged status text...
    copy = parse_copyuid(ls)  # ...but in "* OK [COPYUID ...] Moved UIDs."
    assert copy is not None
    assert (copy.source_uids, copy.dest_uids) == ((6, 7), (5, 6))
    assert parse_copyuid([b"OK [COPYUID 9 3,1:2 7:9] Moved UIDs.", b"1 EXPUNGE", b"Move completed."]) \
        == CopyUid(9, (3, 1, 2), (7, 8, 9))


def test_copyuid_absent_or_malformed() -> None:
    assert parse_copyuid([b"Copy completed."]) is None
    assert parse_copyuid([b"OK [UIDNEXT 5] x", b"Copy completed."]) is None
    for status in (b"[COPYUID 1 1:3 4:5] x", b"[COPYUID 1 1:*  4:5] x", b"[COPYUID 1 1] x"):
        with pytest.raises(ImapProtocolError, match="COPYUID"):
            parse_copyuid([status])


def test_copyuid_is_not_read_from_literal_data() -> None:
    ls: Lines = [b"1 FETCH (UID 1 BODY[] {30}", bytearray(b"OK [COPYUID 1 2 3] not a reply"), b")", b"Done."]
    assert parse_copyuid(ls) is None


def test_modified_from_dovecot() -> None:
    assert parse_modified(lines("store_unchangedsince_modified")) == (4,)
    assert parse_modified(lines("store_unchangedsince_ok")) == ()
    assert parse_modified([b"[MODIFIED 1,3:5] Conditional STORE failed"]) == (1, 3, 4, 5)
    with pytest.raises(ImapProtocolError, match="MODIFIED"):
        parse_modified([b"[MODIFIED 1,x] Conditional STORE failed"])


# ------------------------------------------------------------------------------------- FETCH


def test_fetch_summary_from_dovecot() -> None:
    items = parse_fetch(lines("fetch_summary"))
    assert [(i.seq, i.uid) for i in items] == [(n, n) for n in range(1, 8)]
    first = items[0]
    date = re.search(rb'INTERNALDATE "([^"]+)"', wire("fetch_summary"))
    assert date is not None
    assert first.internaldate == parse_internaldate(date.group(1).decode())
    assert first.internaldate is not None and first.internaldate.tzinfo is not None
    assert first.flags == ("\\Recent",)
    assert (first.size, first.modseq) == (965, 2)
    assert first.sections == {
        "HEADER.FIELDS (SUBJECT FROM)":
            b"From: Alice Example <alice@example.test>\r\nSubject: Quarterly report with attachments\r\n\r\n"}
    # multipart/mixed (multipart/alternative (text/plain, text/html), application/pdf, image/png)
    bs = first.bodystructure
    assert isinstance(bs, list) and len(bs) == 8
    assert bs[3:] == [b"mixed", [b"boundary", b"outer"], None, None, None]
    alternative, pdf, png = bs[0], bs[1], bs[2]
    assert isinstance(alternative, list) and alternative[2] == b"alternative"
    assert alternative[0] == [b"text", b"plain", [b"charset", b"utf-8"], None, None, b"7bit", 25, 1,
                              None, None, None, None]
    assert pdf == [b"application", b"pdf", [b"name", b"report.pdf"], None, None, b"base64", 64, None,
                   [b"attachment", [b"filename", b"report.pdf"]], None, None]
    assert isinstance(png, list) and png[3] == b"<pic1@example.test>"
    assert items[6].flags == ("\\Draft", "\\Recent", "$Forwarded", "$MailbridgeScheduled")


def test_fetch_bodystructure_with_literal_filenames() -> None:
    ls = lines("fetch_summary")
    assert bytearray("Grüße (final).txt".encode()) in ls  # Dovecot sent the 8-bit name as {19}
    bs = by_uid(parse_fetch(ls))[2].bodystructure
    assert isinstance(bs, list)
    rfc2231, raw8bit = bs[1], bs[2]
    assert isinstance(rfc2231, list) and rfc2231[8] == [
        b"attachment", [b"filename*", b"utf-8''Entw%C3%BCrfe%202026.pdf"]]
    assert isinstance(raw8bit, list)
    assert raw8bit[2] == [b"name", "Grüße (final).txt".encode(), b"charset", b"us-ascii"]
    disposition = raw8bit[9]
    assert disposition == [b"attachment", [b"filename", "Grüße (final).txt".encode()]]
    assert isinstance(disposition, list) and isinstance(disposition[1], list)
    assert text_of(disposition[1][1]) == "Grüße (final).txt"


def test_fetch_header_sections_with_syntax_inside() -> None:
    items = by_uid(parse_fetch(lines("fetch_summary")))
    tricky = items[5].sections["HEADER.FIELDS (SUBJECT FROM)"]
    assert b'Subject: Re: (draft) {12} "quoted" back\\slash ) (\r\n' in tricky
    raw8bit = items[3].sections["HEADER.FIELDS (SUBJECT FROM)"]
    assert b"Subject: Gr\xc3\xbc\xc3\x9fe (raw 8bit) {5}\r\n" in raw8bit
    assert items[4].bodystructure == [b"text", b"plain", [b"charset", b"us-ascii"], None, None, b"7bit", 0, 0,
                                      None, None, None, None]  # the empty-bodied message


@pytest.mark.parametrize("echoed", [
    b'HEADER.FIELDS ("MESSAGE-ID" "X-Mailbridge-Id")',  # Courier-IMAP 5.0
    b"HEADER.FIELDS (MESSAGE-ID X-MAILBRIDGE-ID)",  # Dovecot
    b'header.fields ("Message-ID" X-Mailbridge-Id)',
    b'HEADER.FIELDS  ( "MESSAGE-ID"  "X-MAILBRIDGE-ID" )',
])
def test_fetch_header_field_names_may_be_quoted(echoed: bytes) -> None:
    """A header-list holds astrings (RFC 3501 9): quoted or not, one key."""
    reply = [b"* 1 FETCH (UID 5 BODY[" + echoed + b"] {21}", b"Message-ID: <a@b>\r\n\r\n", b")",
             b"A1 OK done"]
    [item] = parse_fetch(reply)
    assert item.sections == {"HEADER.FIELDS (MESSAGE-ID X-MAILBRIDGE-ID)": b"Message-ID: <a@b>\r\n\r\n"}


def test_fetch_whole_messages() -> None:
    full = by_uid(parse_fetch(lines("fetch_full")))
    sizes = {uid: item.size for uid, item in by_uid(parse_fetch(lines("fetch_summary"))).items()}
    assert {uid: len(item.sections[""]) for uid, item in full.items()} == sizes
    for item in full.values():
        assert item.sections[""] in wire("fetch_full")
    tricky = full[5].sections[""]
    assert tricky.endswith(b"A body with ) and ( and {12}\r\na line ending with a literal marker {5}\r\n"
                           b"* 1 FETCH (UID 99 FLAGS (\\Seen))\r\nA1 OK fake tagged line\r\n"
                           b'"unbalanced quote\r\n)))\r\n')
    assert full[4].sections[""].endswith(b"Message-ID: <empty-1@example.test>\r\n\r\n")


def test_fetch_several_sections_per_message() -> None:
    items = by_uid(parse_fetch(lines("fetch_sections")))
    assert set(items) == {1, 2, 4}
    first = items[1]
    assert set(first.sections) == {"HEADER", "TEXT", "1", "1.MIME", "2", "", "9"}
    whole = by_uid(parse_fetch(lines("fetch_full")))[1].sections[""]
    assert first.sections["HEADER"] + first.sections["TEXT"] == whole
    assert first.sections[""] == whole[:20]  # BODY[]<0> of BODY.PEEK[]<0.20>
    assert first.sections["9"] == b""  # a part that does not exist: {0}
    assert first.sections["1.MIME"] == b'Content-Type: multipart/alternative; boundary="inner"\r\n\r\n'
    assert items[2].sections["1"] == "Grüße aus Köln".encode()
    assert items[4].sections["TEXT"] == b""


def test_fetch_envelope_with_literals() -> None:
    items = by_uid(parse_fetch(lines("fetch_envelope_command")))
    assert items[1].envelope == [
        b"Mon, 16 Nov 2026 10:00:00 +0100", b"Quarterly report with attachments",
        [[b"Alice Example", None, b"alice", b"example.test"]],
        [[b"Alice Example", None, b"alice", b"example.test"]],
        [[b"Alice Example", None, b"alice", b"example.test"]],
        [[b"Bob", None, b"bob", b"example.test"]], None, None, None, b"<multi-1@example.test>"]
    env3, env5 = items[3].envelope, items[5].envelope
    assert isinstance(env3, list) and env3[1] == "Grüße (raw 8bit) {5}".encode()
    assert isinstance(env5, list) and env5[1] == b'Re: (draft) {12} "quoted" back\\slash ) ('
    assert env5[2] == [[b"O'Brien, \"Pat\" (work)", None, b"pat", b"example.test"]]


def test_fetch_flags_modseq_and_changedsince() -> None:
    items = parse_fetch(lines("fetch_flags"))
    assert [(i.uid, i.modseq) for i in items] == [(1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7), (7, 10)]
    assert items[4].flags == ("\\Flagged", "\\Recent")
    changed = parse_fetch(lines("fetch_changedsince"))
    assert [(i.uid, i.modseq) for i in changed] == [(7, 10)]
    assert parse_fetch(lines("fetch_nonexistent_uid")) == []


def test_fetch_replies_of_store() -> None:
    assert parse_fetch(lines("store_unchangedsince_modified")) == [
        FetchItem(seq=3, uid=3, modseq=12, flags=("\\Deleted", "\\Recent"))]
    assert parse_fetch(lines("store_silent")) == [FetchItem(seq=1, uid=1, modseq=14)]


def test_fetch_keeps_unsolicited_flag_updates_and_skips_other_replies() -> None:
    items = parse_fetch(lines("fetch_with_unsolicited"))
    assert [(i.seq, i.uid) for i in items] == [(3, 3), (4, 4), (5, 5), (6, 6), (1, None)]
    assert items[-1].flags == ("\\Answered", "\\Seen", "\\Recent", "$Forwarded")
    # aioimaplib dropped the EXPUNGE/EXISTS/RECENT Dovecot sent during the UID FETCH
    assert b"* 2 EXPUNGE\r\n* 6 EXISTS" in wire("fetch_with_unsolicited")
    assert parse_fetch(lines("noop_with_updates")) == [
        FetchItem(seq=2, flags=("\\Answered", "\\Deleted", "\\Recent"))]
    assert parse_fetch(lines("uid_move")) == []  # only EXPUNGE/RECENT/OK


def test_fetch_literals_holding_syntax() -> None:
    body = b') ( {5}\r\n"\r\n* 2 FETCH (UID 9)\r\nA1 OK x\r\n\\'
    ls: list[bytes | bytearray] = [
        b"3 EXISTS",
        b"1 FETCH (UID 11 BODY[HEADER] {7}", bytearray(b"X: )\r\n\r"), b" BODY[TEXT] {%d}" % len(body),
        bytearray(body), b" FLAGS (\\Seen $Forwarded))",
        b"2 EXPUNGE",
        b"2 FETCH (BODY[1] {0}", bytearray(), b" UID 12 BODY[2] {1}", bytearray(b")"), b")",
        b"Fetch completed.",
    ]
    first, second = parse_fetch(ls)
    assert first == FetchItem(seq=1, uid=11, flags=("\\Seen", "$Forwarded"),
                              sections={"HEADER": b"X: )\r\n\r", "TEXT": body})
    assert second == FetchItem(seq=2, uid=12, sections={"1": b"", "2": b")"})


def test_fetch_strings_nil_and_item_names() -> None:
    ls: Lines = [
        b'7 fetch (uid 8 Flags () BODY[1] NIL BODY[2] "quoted \\"body\\" \\\\ here" '
        b'RFC822.SIZE 44 BODY[HEADER.FIELDS (X-A X-B)]<10> "partial" RFC822.HEADER "H" RFC822 NIL '
        b'MODSEQ (123456789012345) SAVEDATE NIL BINARY[1] "bin" X-GM-LABELS ("\\\\Inbox" Work))',
        b"Fetch completed.",
    ]
    (item,) = parse_fetch(ls)
    assert item.seq == 7 and item.uid == 8 and item.flags == () and item.size == 44
    assert item.modseq == 123456789012345
    assert item.sections == {"1": b"", "2": b'quoted "body" \\ here', "HEADER.FIELDS (X-A X-B)": b"partial",
                             "HEADER": b"H", "": b""}
    assert item.extra == {"SAVEDATE": None, "BINARY[1]": b"bin", "X-GM-LABELS": [b"\\Inbox", "Work"]}


def test_fetch_literal_inside_bodystructure_written_by_hand() -> None:
    ls: Lines = [
        b'1 FETCH (UID 3 BODYSTRUCTURE (("text" "plain" NIL NIL NIL "7bit" 3 1 NIL NIL NIL NIL)'
        b'("application" "octet-stream" ("name" {9}', bytearray(b'a "b" (c)'),
        b') NIL NIL "base64" 4 NIL ("attachment" ("filename" {0}', bytearray(),
        b')) NIL NIL) "mixed" ("boundary" "x") NIL NIL NIL))',
        b"Fetch completed.",
    ]
    (item,) = parse_fetch(ls)
    bs = item.bodystructure
    assert isinstance(bs, list) and isinstance(bs[1], list)
    assert bs[1][2] == [b"name", b'a "b" (c)']
    assert bs[1][8] == [b"attachment", [b"filename", b""]]
    assert bs[2:] == [b"mixed", [b"boundary", b"x"], None, None, None]


def test_fetch_lines_with_leftover_star_prefix() -> None:
    ls = [b"1 FETCH (UID 1 FLAGS (\\Seen))", b"* 2 FETCH (UID 2 FLAGS ())", b"* 3 EXISTS", b"OK"]
    assert [(i.uid, i.flags) for i in parse_fetch(ls)] == [(1, ("\\Seen",)), (2, ())]


@pytest.mark.parametrize(
    ("ls", "message"),
    [
        ([b"1 FETCH (UID 1 FLAGS (\\Seen)", b"x"], "unbalanced '\\('"),
        ([b"1 FETCH (UID 1))", b"x"], "unbalanced '\\)'"),
        ([b"1 FETCH (UID 1 BODY[] {5}", b"x"], "literal that is missing"),
        ([b"1 FETCH (UID 1 BODY[] {5}", bytearray(b"abc"), b")", b"x"], "5-byte literal but 3 bytes"),
        ([b"1 FETCH (UID 1 FLAGS)", b"x"], "without a value"),
        ([b"1 FETCH (UID one)", b"x"], "invalid UID"),
        ([b"1 FETCH (UID 1) extra", b"x"], "not 'n FETCH"),
        ([b'1 FETCH (INTERNALDATE "32-Nov-2026 10:00:00 +0000")', b"x"], "INTERNALDATE"),
        ([b"1 FETCH (MODSEQ 5)", b"x"], "MODSEQ"),
        ([b"1 FETCH (BODY[] (x))", b"x"], "BODY"),
        ([b"1 FETCH (FLAGS (\\Seen {5}x))", b"x"], "unexpected character"),
        ([b'1 FETCH (BODY[] "unterminated)', b"x"], "unexpected character"),
        ([b"1 FETCH (UID 99999999999999999999999)", b"x"], "invalid UID"),
        ([b"1 FETCH (UID 1 BODY[] " + b"(" * 300 + b")" * 300 + b")", b"x"], "too deeply"),
    ],
)
def test_fetch_malformed(ls: Lines, message: str) -> None:
    with pytest.raises(ImapProtocolError, match=message):
        parse_fetch(ls)


def test_errors_never_quote_the_payload() -> None:
    secret = b"Subject: secret-payload-text"
    bad: Lines = [b"1 FETCH (UID 1 BODY[] {%d}" % len(secret), bytearray(secret), b" FLAGS ((\\Seen)", b"x"]
    with pytest.raises(ImapProtocolError) as info:
        parse_fetch(bad)
    assert "secret" not in str(info.value)
    assert len(str(info.value)) < 120


def test_fetch_of_5000_messages_is_fast_and_flat() -> None:
    ls: list[bytes | bytearray] = []
    for n in range(1, 5001):
        body = b"Subject: message %d\r\n\r\n) ( {3} \"\r\n" % n
        head = b"%d FETCH (UID %d FLAGS (\\Seen) MODSEQ (%d) BODY[] {%d}" % (n, n + 100, n, len(body))
        ls += [head, bytearray(body),
               b' INTERNALDATE "17-Nov-2026 10:00:00 +0100" BODYSTRUCTURE ("text" "plain" '
               b'("charset" "utf-8") NIL NIL "7bit" 12 1 NIL NIL NIL NIL))']
    ls.append(b"Fetch completed.")
    start = time.perf_counter()
    items = parse_fetch(ls)
    elapsed = time.perf_counter() - start
    assert len(items) == 5000
    assert items[-1].uid == 5100 and items[-1].sections[""].startswith(b"Subject: message 5000\r\n")
    assert elapsed < 3.0, f"parsing 5,000 FETCH replies took {elapsed:.2f}s"


# -------------------------------------------------------------------------------- INTERNALDATE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("21-Nov-2026 15:24:16 +0000", datetime(2026, 11, 21, 15, 24, 16, tzinfo=UTC)),
        (" 1-Jan-2027 00:00:00 -0500", datetime(2027, 1, 1, tzinfo=timezone(timedelta(hours=-5)))),
        ("1-jan-2027 00:00:00 +0530", datetime(2027, 1, 1, tzinfo=timezone(timedelta(minutes=330)))),
        ("29-Feb-2028 23:59:59 +1300", datetime(2028, 2, 29, 23, 59, 59, tzinfo=TZ13)),
    ],
)
def test_parse_internaldate(text: str, expected: datetime) -> None:
    parsed = parse_internaldate(text)
    assert parsed == expected and parsed.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    "text", ["", "21-Nov-2026", "21-Foo-2026 15:24:16 +0000", "31-Feb-2026 15:24:16 +0000",
             "21-Nov-2026 25:00:00 +0000", "21-Nov-2026 15:24:16 +2400", "21-Nov-2026 15:24:16",
             "٢١-Nov-2026 15:24:16 +0000", "21-Nov-2026 15:24:16 +0000 trailing"])
def test_parse_internaldate_malformed(text: str) -> None:
    with pytest.raises(ImapProtocolError, match="INTERNALDATE"):
        parse_internaldate(text)


# ------------------------------------------------------------------------------------ SEARCH


def test_search_from_dovecot() -> None:
    assert parse_search(lines("search_all")) == SearchResult((1, 2, 3, 4, 5, 6, 7))
    assert parse_search(lines("search_empty")) == SearchResult(())
    assert parse_search(lines("search_modseq")) == SearchResult((1, 2, 3, 4, 5, 6, 7), modseq=10)
    assert parse_search(lines("search_many")).uids == tuple(range(1, 301))
    assert parse_search(lines("search_with_updates")).uids == (1, 3, 4, 5, 6, 7, 8)


def test_esearch_from_dovecot() -> None:
    assert lines("esearch_all")[0].startswith(b'(TAG "')
    assert parse_search(lines("esearch_all")) == SearchResult((1, 2, 3, 4, 5, 6, 7), 7, 1, 7)
    assert parse_search(lines("esearch_empty")) == SearchResult((), count=0)
    assert parse_search(lines("esearch_count_only")) == SearchResult((), count=7)
    assert parse_search(lines("esearch_modseq")) == SearchResult((1, 2, 3, 4, 5, 6, 7), modseq=10)
    many = parse_search(lines("esearch_many"))
    assert many == SearchResult(tuple(range(1, 201)) + tuple(range(250, 301)), 251, 1, 300)


@pytest.mark.parametrize(
    ("ls", "result"),
    [
        ([b"SEARCH 1 2 3", b"done"], SearchResult((1, 2, 3))),
        ([b"SEARCH", b"done"], SearchResult(())),
        ([b"SEARCH 1 2 (MODSEQ 917)", b"done"], SearchResult((1, 2), modseq=917)),
        ([b"* SEARCH 3 1 2 3", b"done"], SearchResult((1, 2, 3))),
        ([b"SEARCH 5", b"SEARCH 2", b"done"], SearchResult((2, 5))),
        ([b'ESEARCH (TAG "A1") UID ALL 1:3,5 COUNT 4 MIN 1 MAX 5', b"done"],
         SearchResult((1, 2, 3, 5), 4, 1, 5)),
        ([b'ESEARCH (TAG "A1") UID', b"done"], SearchResult(())),
        ([b"ESEARCH", b"done"], SearchResult(())),
        ([b"ESEARCH COUNT 2 ALL 4,9", b"done"], SearchResult((4, 9), 2)),
        ([b"UID ALL 7 MODSEQ 3", b"done"], SearchResult((7,), modseq=3)),
        ([b"ALL 2:1", b"done"], SearchResult((1, 2))),
        ([b"COUNT 0", b"done"], SearchResult((), 0)),
        ([b'ESEARCH (TAG "A1") UID PARTIAL (1:10 5:9) COUNT 5', b"done"], SearchResult((), 5)),
        ([b"1 2", b"4 EXISTS", b"2 FETCH (FLAGS (\\Seen))", b"OK [HIGHESTMODSEQ 9] x", b"FLAGS (\\Seen)",
          b"done"], SearchResult((1, 2))),
    ],
)
def test_parse_search_forms(ls: Lines, result: SearchResult) -> None:
    assert parse_search(ls) == result


@pytest.mark.parametrize(
    "ls",
    [[b"1 2 x", b"done"], [b"SEARCH 1 (FOO 2)", b"done"], [b"ALL 1:*", b"done"], [b"COUNT", b"done"],
     [b"SEARCH 0x1", b"done"], [b'ESEARCH (TAG "A1") UID ALL', b"done"], [b"WHAT 1", b"done"]],
)
def test_parse_search_malformed(ls: Lines) -> None:
    with pytest.raises(ImapProtocolError):
        parse_search(ls)


# ------------------------------------------------------------------------------------ UID sets


@pytest.mark.parametrize(
    ("uids", "text"),
    [([1], "1"), ([1, 2, 3, 5], "1:3,5"), ([5, 3, 1, 2, 3, 2], "1:3,5"), (range(1, 301), "1:300"),
     ([10, 8, 4, 9, 1], "1,4,8:10"), ([4294967295, 4294967294], "4294967294:4294967295")],
)
def test_uid_set(uids: list[int], text: str) -> None:
    assert uid_set(uids) == text


@pytest.mark.parametrize("uids", [[], [0], [3, -1]])
def test_uid_set_invalid(uids: list[int]) -> None:
    with pytest.raises(ValueError):
        uid_set(uids)


@given(st.sets(st.integers(min_value=1, max_value=2000), min_size=1))
def test_uid_set_round_trip(uids: set[int]) -> None:
    assert expand_uid_set(uid_set(uids)) == tuple(sorted(uids))


@pytest.mark.parametrize(
    ("text", "uids"),
    [("1", (1,)), ("1:3,5", (1, 2, 3, 5)), ("5:3", (3, 4, 5)), ("3,1:2", (3, 1, 2)), (" 7 ", (7,)),
     ("2,2", (2, 2))],
)
def test_expand_uid_set(text: str, uids: tuple[int, ...]) -> None:
    assert expand_uid_set(text) == uids


@pytest.mark.parametrize("text", ["", "1:*", "*", "0", "1,,2", "1:2:3", "a", "1-3", "\u0661"])
def test_expand_uid_set_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        expand_uid_set(text)


def test_expand_uid_set_refuses_huge_sets() -> None:
    with pytest.raises(ValueError, match="more than"):
        expand_uid_set("1:4294967295")
    assert len(expand_uid_set(f"1:{MAX_EXPANDED_UIDS}")) == MAX_EXPANDED_UIDS


# --------------------------------------------------------------------------------------- LIST


def test_list_from_dovecot() -> None:
    boxes = {box.name: box for box in parse_list(lines("list_all"))}
    assert set(boxes) == {"INBOX", "Drafts", "Sent", "Trash", "Archive", "Archive/2026", "Many",
                          "Entwürfe 2026", "My Folder", 'Say "hi"', "back\\slash", "a b"}
    assert boxes["Entwürfe 2026"] == MailboxInfo("Entwürfe 2026", "Entw&APw-rfe 2026", "/",
                                                 frozenset({"\\HasNoChildren"}))
    assert boxes['Say "hi"'].raw_name == 'Say "hi"'
    assert boxes["Drafts"].has_attribute("\\drafts") and boxes["Drafts"].has_attribute("\\HASNOCHILDREN")
    assert not boxes["Drafts"].has_attribute("\\Sent")
    assert boxes["Archive"].attributes == {"\\HasChildren"}
    assert all(box.delimiter == "/" for box in boxes.values())


def test_list_special_use_from_dovecot() -> None:
    selected = parse_list(lines("list_special_use_selection"))
    assert [(b.name, set(b.attributes)) for b in selected] == [
        ("Drafts", {"\\Drafts"}), ("Sent", {"\\Sent"}), ("Trash", {"\\Trash"})]
    returned = {b.name: b for b in parse_list(lines("list_return_special_use"))}
    assert returned["Sent"].attributes == {"\\Subscribed", "\\HasNoChildren", "\\Sent"}
    assert returned["INBOX"].attributes == {"\\HasNoChildren"}


def test_list_forms_written_by_hand() -> None:
    name = "Entwürfe (alt) {2}"
    ls: Lines = [
        b"LIST (\\Noselect \\HasChildren) NIL \"\"",
        b'(\\HasNoChildren) "." {%d}' % len(mailbox_arg(name)[1:-1]),
        bytearray(mailbox_arg(name)[1:-1].encode()),
        b'LSUB () "/" Plain.Atom',
        b'(\\HasNoChildren) "/" "Extended" ("CHILDINFO" ("SUBSCRIBED"))',
        b'(\\HasNoChildren) "/" {8}', bytearray(b'odd "nm"'), b' ("OLDNAME" ("x"))',
        b'() "/" "R&AOQ-ume&-"',
        b'() "/" "Gr\xc3\xbc\xc3\x9fe"',  # UTF8=ACCEPT: raw UTF-8
        b'() "/" "&-bad&"',  # not modified UTF-7: kept as sent
        b'() "/" 2026',
        b'() "\\\\" NIL',  # a mailbox named NIL (an astring, never nil)
        b"4 EXISTS",
        b"STATUS INBOX (MESSAGES 1)",
        b"List completed.",
    ]
    boxes = parse_list(ls)
    assert [(b.name, b.raw_name, b.delimiter) for b in boxes] == [
        ("", "", None),
        (name, mailbox_arg(name)[1:-1], "."),
        ("Plain.Atom", "Plain.Atom", "/"),
        ("Extended", "Extended", "/"),
        ('odd "nm"', 'odd "nm"', "/"),
        ("Räume&", "R&AOQ-ume&-", "/"),
        ("Grüße", "Grüße", "/"),
        ("&-bad&", "&-bad&", "/"),
        ("2026", "2026", "/"),
        ("NIL", "NIL", "\\"),
    ]
    assert boxes[0].has_attribute("\\NOSELECT")


@given(st.text(alphabet=st.characters(codec="utf-8")))  # any text without surrogates
def test_list_reads_back_any_name_mailbox_arg_writes(name: str) -> None:
    (box,) = parse_list([b'(\\HasNoChildren) "/" ' + mailbox_arg(name).encode(), b"List completed."])
    assert box.name == name


@pytest.mark.parametrize(
    "ls",
    [[b'(\\HasNoChildren) "/"', b"x"], [b'("x") "/" INBOX', b"x"], [b"() 5 INBOX", b"x"],
     [b'() "/" (INBOX)', b"x"], [b'(\\HasNoChildren "/" INBOX', b"x"]],
)
def test_list_malformed(ls: Lines) -> None:
    with pytest.raises(ImapProtocolError):
        parse_list(ls)


# ------------------------------------------------------------------------------ SELECT, STATUS


def test_select_from_dovecot() -> None:
    info = parse_select(lines("select_condstore"))
    m = re.search(rb"\[UIDVALIDITY (\d+)\]", wire("select_condstore"))
    assert m is not None
    assert (info.exists, info.uidvalidity, info.uidnext, info.highestmodseq) == (7, int(m.group(1)), 8, 10)
    assert not info.nomodseq and not info.read_only
    assert info.flags == ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "$Forwarded",
                          "$MailbridgeScheduled")
    assert info.permanentflags == (*info.flags, "\\*")
    many = parse_select(lines("select_many"))  # begins with OK [CLOSED]
    assert (many.exists, many.uidnext, many.highestmodseq) == (300, 301, 301)
    assert parse_select(lines("select_nonascii")).exists == 1


def test_examine_is_read_only() -> None:
    info = parse_select(lines("examine_archive"))
    assert info.read_only and info.permanentflags == () and info.exists == 6


def test_select_written_by_hand() -> None:
    ls = [b"FLAGS ()", b"OK [PERMANENTFLAGS ()] No permanent flags", b"0 EXISTS", b"0 RECENT",
          b"OK [UIDVALIDITY 3857529045] UIDs valid", b"OK [NOMODSEQ] Sorry, no modseqs",
          b"[READ-WRITE] SELECT completed"]
    info = parse_select(ls)
    assert (info.exists, info.uidvalidity, info.uidnext, info.highestmodseq, info.nomodseq) == (
        0, 3857529045, None, None, True)
    assert (info.flags, info.permanentflags, info.read_only) == ((), (), False)


@pytest.mark.parametrize(
    "ls",
    [[b"3 EXISTS", b"done"], [b"OK [UIDVALIDITY 1] x", b"done"],
     [b"3 EXISTS", b"OK [UIDVALIDITY x] y", b"done"],
     [b"FLAGS (\\Seen", b"3 EXISTS", b"OK [UIDVALIDITY 1] x", b"done"]],
)
def test_select_malformed(ls: Lines) -> None:
    with pytest.raises(ImapProtocolError):
        parse_select(ls)


def test_status_from_dovecot() -> None:
    m = re.search(rb"UIDVALIDITY (\d+)", wire("status_inbox"))
    assert m is not None
    assert parse_status(lines("status_inbox")) == {
        "MESSAGES": 0, "UIDNEXT": 1, "UIDVALIDITY": int(m.group(1)), "UNSEEN": 0, "HIGHESTMODSEQ": 1}
    assert set(parse_status(lines("status_nonascii"))) == {
        "MESSAGES", "UIDNEXT", "UIDVALIDITY", "HIGHESTMODSEQ"}


def test_status_forms_written_by_hand() -> None:
    assert parse_status([b'STATUS "name" (MESSAGES 3 UIDNEXT 9 UIDVALIDITY 1 HIGHESTMODSEQ 5)', b"ok"]) == {
        "MESSAGES": 3, "UIDNEXT": 9, "UIDVALIDITY": 1, "HIGHESTMODSEQ": 5}
    assert parse_status([b"STATUS (messages 2)", b"ok"]) == {"MESSAGES": 2}  # a mailbox named STATUS
    assert parse_status([b"{3}", bytearray(b"a b"), b" (UNSEEN 1)", b"ok"]) == {"UNSEEN": 1}
    unsolicited = [b"OK [ALERT] it's (odd", b"2 EXISTS", b"INBOX (MESSAGES 2)", b"ok"]
    assert parse_status(unsolicited) == {"MESSAGES": 2}
    assert parse_status([b"ok"]) == {}


@pytest.mark.parametrize(
    "ls", [[b"INBOX (MESSAGES)", b"ok"], [b"INBOX (MESSAGES x)", b"ok"], [b"INBOX MESSAGES 1", b"ok"],
           [b'INBOX ("MESSAGES" 1)', b"ok"]])
def test_status_malformed(ls: Lines) -> None:
    with pytest.raises(ImapProtocolError):
        parse_status(ls)


# ---------------------------------------------------------------------------------------- misc


def test_text_of() -> None:
    assert text_of(None) is None
    assert text_of("atom") == "atom"
    assert text_of("Grüße".encode()) == "Grüße"
    assert text_of(b"\xff") == "\ufffd"
    assert text_of(42) == "42"
    with pytest.raises(ImapProtocolError):
        text_of([b"a"])


def test_results_are_frozen() -> None:
    item = FetchItem(seq=1)
    with pytest.raises(AttributeError):
        item.uid = 2  # type: ignore[misc]
    assert not hasattr(item, "__dict__")  # slots


# ------------------------------------------------------------------ tokenizer


_OLD_TOKEN = re.compile(
    rb"""
      [ ]+
    | (?P<open>\()
    | (?P<close>\))
    | "(?P<quoted>(?:[^"\\\r\n]|\\[^\r\n])*)"
    | (?P<literal>~?\{\d+\}\Z)
    | (?P<atom>(?:[^\x00-\x20()"{\[\x7f]|\[[^\]\r\n]*\]|\[)+)
    """,
    re.VERBOSE,
)


def _values_by_token_stream(parts: list[bytes | responses._Literal]) -> list[Any]:
    """responses._values as it was before it became one loop: a token generator and a stack."""
    def tokens() -> Any:
        for part in parts:
            if isinstance(part, responses._Literal):
                yield 2, part.data
                continue
            pos, end = 0, len(part)
            while pos < end:
                m = _OLD_TOKEN.match(part, pos)
                if m is None:
                    raise ImapProtocolError(f"unexpected character {part[pos:pos + 1]!r} at offset "
                                            f"{pos} of an IMAP reply")
                pos = m.end()
                kind = m.lastgroup
                if kind is None or kind == "literal":
                    continue
                if kind == "atom":
                    yield 3, m.group(kind).decode("utf-8", "replace")
                elif kind == "quoted":
                    raw = m.group(kind)
                    yield 2, re.sub(rb"\\(.)", rb"\1", raw) if b"\\" in raw else raw
                else:
                    yield (0 if kind == "open" else 1), b""

    stack: list[list[Any]] = [[]]
    for kind, value in tokens():
        if kind == 0:
            if len(stack) > 256:
                raise ImapProtocolError("IMAP reply nests parentheses too deeply")
            inner: list[Any] = []
            stack[-1].append(inner)
            stack.append(inner)
        elif kind == 1:
            if len(stack) == 1:
                raise ImapProtocolError("IMAP reply has an unbalanced ')'")
            stack.pop()
        else:
            stack[-1].append(value)
    if len(stack) != 1:
        raise ImapProtocolError("IMAP reply has an unbalanced '('")
    return stack[0]


_REPLY_PIECE = st.one_of(
    st.sampled_from([b"(", b")", b" ", b"  ", b"NIL", b"123", b"FETCH", b"\\Draft", b"$Label",
                     b'"a b"', b'"a\\"b"', b'"\\\\"', b'""', b'"open', b"BODY[HEADER.FIELDS (X-A)]",
                     b"BODY[]<0>", b"[", b"]", b"{12}", b"~{3}", b"{", b"\x00", b"\r", b"\xc3\xa9",
                     b"INTERNALDATE", b'"21-Nov-2026 19:55:45 +0000"']),
    st.binary(max_size=4))


@settings(max_examples=3000, deadline=None)
@given(parts=st.lists(st.one_of(st.lists(_REPLY_PIECE, max_size=10).map(b"".join),
                                st.binary(max_size=6).map(responses._Literal)), max_size=4))
@example(parts=[b'1 FETCH (UID 1 FLAGS (\\Draft \\Seen) MODSEQ (5) RFC822.SIZE 9)'])
@example(parts=[b"(" * 300])
def test_values_parse_as_the_token_stream_did(parts: list[bytes | responses._Literal]) -> None:
    try:
        expected: Any = _values_by_token_stream(parts)
    except ImapProtocolError as exc:
        expected = str(exc)
    try:
        got: Any = responses._values(parts)
    except ImapProtocolError as exc:
        got = str(exc)
    assert got == expected
