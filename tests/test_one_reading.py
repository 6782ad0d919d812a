"""One way to read a message: a list and a GET of the same message say the same text, html
and attachment names (the list reads BODYSTRUCTURE and the text parts, a GET the whole
message; both decode through mailbridge.mime's one decoder)."""

from __future__ import annotations

import imaplib
from collections.abc import AsyncIterator

import pytest

from conftest import MailUser
from mailbridge.accounts import Accounts
from mailbridge.config import AccountConfig
from mailbridge.devstack.stack import DevStack
from mailbridge.drafts import DraftService
from mailbridge.views import DraftQuery, StoredMessage


@pytest.fixture
async def service(devstack: DevStack, user: MailUser
                  ) -> AsyncIterator[tuple[DraftService, AccountConfig]]:
    config = devstack.config(accounts=[devstack.account_entry(user.id, user.email)])
    accounts = Accounts(config)
    yield DraftService(accounts), config.accounts[0]
    await accounts.close()


def save(devstack: DevStack, user: MailUser, raw: bytes) -> None:
    client = imaplib.IMAP4("127.0.0.1", devstack.ports.imap)
    try:
        client.login(user.email, user.password)
        typ, data = client.append("Drafts", "(\\Draft)", None, raw)
        assert typ == "OK", data
    finally:
        client.logout()


def seen(m: StoredMessage) -> tuple[str | None, str | None, list[str]]:
    return m.content.text, m.content.html, [a.filename for a in m.attachments]


async def read_both(service: tuple[DraftService, AccountConfig], devstack: DevStack,
                    user: MailUser, raw: bytes) -> tuple[StoredMessage, StoredMessage]:
    svc, account = service
    save(devstack, user, raw)
    [listed] = (await svc.list(account, DraftQuery())).items
    got = await svc.get(account, listed.id)
    assert seen(listed) == seen(got)
    return listed, got


HEAD = ("From: a@example.test\r\nTo: b@example.test\r\nSubject: One reading\r\n"
        "Message-ID: <{0}@example.test>\r\nMIME-Version: 1.0\r\n")


async def test_latin1_format_flowed_text(service, devstack, user) -> None:  # type: ignore[no-untyped-def]
    raw = (HEAD.format("flowed") + "Content-Type: text/plain; charset=iso-8859-1; format=flowed\r\n"
           "Content-Transfer-Encoding: 8bit\r\n\r\n").encode() + b"Price \x80 5, soft \r\nbreak\r\n"
    listed, _ = await read_both(service, devstack, user, raw)
    assert listed.content.text == "Price \u20ac 5, soft break\n"


async def test_an_unnamed_attachment(service, devstack, user) -> None:  # type: ignore[no-untyped-def]
    raw = (HEAD.format("unnamed") + 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
           "--b\r\nContent-Type: text/plain\r\n\r\nBody\r\n"
           "--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           "JVBERi0xLjQ=\r\n"
           "--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           "JVBERi0xLjQ=\r\n--b--\r\n").encode()
    listed, _ = await read_both(service, devstack, user, raw)
    assert [a.filename for a in listed.attachments] == ["attachment.pdf", "attachment-2.pdf"]


async def test_rfc2231_names(service, devstack, user) -> None:  # type: ignore[no-untyped-def]
    raw = (HEAD.format("rfc2231") + 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
           "--b\r\nContent-Type: text/plain\r\n\r\nBody\r\n"
           "--b\r\nContent-Type: application/pdf\r\n"
           "Content-Disposition: attachment;\r\n filename*0*=iso-8859-1''%DCbersicht%20;\r\n"
           " filename*1=M%E4rz.pdf\r\n"
           "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQ=\r\n"
           "--b\r\nContent-Type: text/plain; name*=utf-8''caf%C3%A9.txt\r\n"
           "Content-Disposition: attachment\r\n\r\nx\r\n--b--\r\n").encode()
    listed, _ = await read_both(service, devstack, user, raw)
    assert [a.filename for a in listed.attachments] == ["\u00dcbersicht M%E4rz.pdf",
                                                         "caf\u00e9.txt"]


async def test_encoded_words(service, devstack, user) -> None:  # type: ignore[no-untyped-def]
    raw = (HEAD.format("words") + 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
           "--b\r\nContent-Type: text/html; charset=utf-8\r\n"
           "Content-Transfer-Encoding: quoted-printable\r\n\r\n<p>Gr=C3=BC=C3=9Fe</p>\r\n"
           '--b\r\nContent-Type: application/pdf; name="=?utf-8?B?w5xiZXI=?= =?utf-8?Q?sicht.pdf?="\r\n'
           "Content-Disposition: attachment\r\n"
           "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQ=\r\n--b--\r\n").encode()
    listed, _ = await read_both(service, devstack, user, raw)
    assert listed.content.html == "<p>Gr\u00fc\u00dfe</p>"
    assert [a.filename for a in listed.attachments] == ["\u00dcbersicht.pdf"]


async def test_a_message_the_reader_fails_on_does_not_hide_the_others(
        service, devstack, user, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """parse_message itself swallows nothing (its never-raises property tests can fail); the
    store reads each message apart, so one it fails on is listed empty and logged."""
    import mailbridge.reading

    real = mailbridge.reading.parse_message

    def failing(raw: bytes):  # type: ignore[no-untyped-def]
        if b"Subject: Poison" in raw:
            raise RuntimeError("a bug in the reader")
        return real(raw)

    monkeypatch.setattr(mailbridge.reading, "parse_message", failing)
    svc, account = service
    save(devstack, user, (HEAD.format("poison").replace("One reading", "Poison")
                          + "\r\nbody\r\n").encode())
    save(devstack, user, (HEAD.format("fine") + "\r\nfine body\r\n").encode())
    items = (await svc.list(account, DraftQuery())).items
    assert sorted(m.content.subject for m in items) == ["", "One reading"]
