"""Threads: the THREAD reply, base subjects, and mailbridge's own grouping held to what Dovecot's
THREAD=REFERENCES answers for the same messages; then the grouping through the server and
without it (the capability hidden by a proxy)."""

from __future__ import annotations

import imaplib
from collections.abc import Iterator

import pytest

from conftest import MailUser, make_endpoint
from imap_proxy import CapabilityHidingProxy
from mailbridge.config import parse_config
from mailbridge.devstack.stack import DevStack
from mailbridge.errors import NotFound
from mailbridge.imap import ImapConnection
from mailbridge.imap.responses import parse_thread
from mailbridge.reading import parse_stored
from mailbridge.threads import ThreadKey, base_subject, find_thread, group, list_threads


def test_parse_thread() -> None:
    assert parse_thread([b"THREAD (2)(3 6 (4 23)(44 7 96))((3)(5))", b"Thread completed"]) == [
        (2,), (3, 6, 4, 23, 44, 7, 96), (3, 5)]
    assert parse_thread([b"* THREAD", b"done"]) == []
    assert parse_thread([b"* 3 EXISTS", b"THREAD (1 2)", b"done"]) == [(1, 2)]


@pytest.mark.parametrize("subject, base", [
    ("Plan", "plan"),
    ("Re: Plan", "plan"),
    ("RE: re: Fwd: plan", "plan"),
    ("Re[2]: Plan", "plan"),  # subj-refwd allows a blob before the colon
    ("Re [2]: Plan", "plan"),
    ("[list] Re: [list] Plan", "plan"),
    ("Plan (fwd)", "plan"),
    ("Plan  (fwd) (FWD) ", "plan"),
    ("[Fwd: Re: Plan]", "plan"),
    ("[only a blob]", "[only a blob]"),
    ("Re:", ""),
    ("  Lots\t of   space ", "lots of space"),
    ("", ""),
])
def test_base_subject(subject: str, base: str) -> None:
    assert base_subject(subject) == base


# ------------------------------------------------------------------ against Dovecot's answer

def _msg(mid: str | None, subject: str, day: int, refs: str = "", irt: str = "") -> bytes:
    head = f"From: a@example.test\r\nSubject: {subject}\r\nDate: {day:02d} Mar 2026 10:00:00 +0000\r\n"
    if mid:
        head += f"Message-ID: <{mid}>\r\n"
    if refs:
        head += f"References: {refs}\r\n"
    if irt:
        head += f"In-Reply-To: {irt}\r\n"
    return (head + "\r\nText.\r\n").encode()


CORPUS = [
    _msg("a@x", "Budget", 1),
    _msg("b@x", "Re: Budget", 2, refs="<a@x>"),
    _msg("c@x", "Re: Budget", 3, refs="<a@x> <b@x>"),
    _msg("d@x", "Lunch?", 4),
    _msg("e@x", "Re: Lunch?", 5, irt="<d@x>"),  # In-Reply-To only
    _msg("f@x", "Re: Offsite", 6, refs="<gone@x>"),  # two answers to a message not here
    _msg("g@x", "Re: Offsite", 7, refs="<gone@x> <f@x>"),
    _msg("h@x", "Quarterly figures", 8),
    _msg("i@x", "RE: [team] quarterly FIGURES (fwd)", 9),  # no references: the subject joins it
    _msg("j@x", "Something else", 10),
    _msg(None, "", 11),  # no Message-ID, no subject: alone
    _msg(None, "", 12),
    _msg("k@x", "Re:", 13),  # empty base subject: never joined by subject
    _msg("l@x", "Re:", 14),
    _msg("dup@x", "Twins", 15),
    _msg("dup@x", "Other twin", 16),  # the same Message-ID again
    _msg("m@x", "Loop one", 17, refs="<n@x>"),
    _msg("n@x", "Loop two", 18, refs="<m@x>"),
    _msg("o@x", "Deep", 19, refs="<p@x> <q@x> <r@x>"),
    _msg("s@x", "Re: Deep", 20, refs="<p@x> <t@x>"),  # shares only the top, which is missing
]


@pytest.fixture
def corpus(devstack: DevStack, user: MailUser) -> MailUser:
    client = imaplib.IMAP4("127.0.0.1", devstack.ports.imap)
    client.login(user.email, user.password)
    for raw in CORPUS:
        client.append("INBOX", None, None, raw)  # type: ignore[arg-type]
    client.logout()
    return user


async def test_grouping_agrees_with_dovecot(devstack: DevStack, corpus: MailUser) -> None:
    conn = await ImapConnection.open(make_endpoint(devstack, corpus))
    try:
        assert conn.has("THREAD=REFERENCES")
        await conn.select("INBOX")
        uids = (await conn.uid_search("ALL")).uids
        server = await conn.uid_thread("REFERENCES", "ALL")
        fields = "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID REFERENCES IN-REPLY-TO SUBJECT DATE)]"
        keys = [ThreadKey.of(item.uid or 0, parse_stored(next(iter(item.sections.values())) + b"\r\n"),
                             item.internaldate)
                for item in await conn.uid_fetch(uids, f"(UID INTERNALDATE {fields})")]
    finally:
        await conn.logout()
    ours = {frozenset(k.uid for k in g) for g in group(keys)}
    assert ours == {frozenset(t) for t in server}
    assert len(ours) == 13  # the corpus is not one big thread


@pytest.fixture
def hiding(devstack: DevStack) -> Iterator[CapabilityHidingProxy]:
    proxy = CapabilityHidingProxy(devstack.ports.imap, {"THREAD=REFERENCES"}).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.mark.parametrize("hidden", [False, True])
async def test_list_threads_with_and_without_the_server(
        devstack: DevStack, corpus: MailUser, hiding: CapabilityHidingProxy, hidden: bool) -> None:
    account = parse_config(devstack.config_data(accounts=[devstack.account_entry(
        corpus.id, corpus.email, "T")]), source="test").accounts[0]
    endpoint = make_endpoint(devstack, corpus, port=hiding.port) if hidden \
        else make_endpoint(devstack, corpus)
    conn = await ImapConnection.open(endpoint)
    try:
        assert conn.has("THREAD=REFERENCES") is not hidden
        threads, count = await list_threads(conn, account, "INBOX", 100)
        lonely = next(t for t in threads if t.id.startswith("uid:"))
        assert (await find_thread(conn, account, "INBOX", lonely.id)).messages == lonely.messages
        assert len((await find_thread(conn, account, "INBOX", "<b@x>")).messages) == 3
        for nothing in ("<>", " ", "nothing@x"):  # no id matches a message without one
            with pytest.raises(NotFound):
                await find_thread(conn, account, "INBOX", nothing)
        sent = [c.split()[:3] for _, c in hiding.commands]
        assert (["UID", "THREAD", "REFERENCES"] in sent, bool(sent)) == (False, hidden)
    finally:
        await conn.logout()
    assert count == len(CORPUS)
    by_id = {t.id: [m.content.subject for m in t.messages] for t in threads}
    assert by_id["a@x"] == ["Budget", "Re: Budget", "Re: Budget"]
    assert by_id["d@x"] == ["Lunch?", "Re: Lunch?"]
    assert by_id["gone@x"] == ["Re: Offsite", "Re: Offsite"]
    assert by_id["h@x"] == ["Quarterly figures", "RE: [team] quarterly FIGURES (fwd)"]
    assert by_id["p@x"] == ["Deep", "Re: Deep"]
    assert sum(1 for i in by_id if i.startswith("uid:")) == 2
    assert threads[0].id == "p@x"  # the most recently active first
