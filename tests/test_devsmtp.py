"""The dev SMTP submission server: AUTH, LMTP delivery (local + catch-all), failures, records.

A fake LMTP server (aiosmtpd's LMTP protocol behind a threaded Controller) stands in for Dovecot;
it answers DATA with one reply per recipient as RFC 2033 requires and keeps one list of message
bytes per mailbox. The client side is stdlib smtplib, as in aiosmtpd's own tests.
"""

from __future__ import annotations

import base64
import logging
import smtplib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP

from mailbridge.devstack.smtp import (
    ORIGINAL_RECIPIENT_HEADER,
    DeliveredMessage,
    DevSmtpServer,
)

DEV_USERS = {
    "alice@example.test": "alice-dev-pass",
    "bob@example.test": "bob-dev-pass",
    "catchall@example.test": "catchall-dev-pass",
}
CATCHALL = "catchall@example.test"

# CRLF throughout, a line that starts with a dot (dot-stuffed on the wire), 8-bit bytes, a Bcc
# header that a real sender would have removed: all must arrive exactly as sent.
MESSAGE = (
    b"From: Alice <alice@example.test>\r\n"
    b"To: Bob <bob@example.test>\r\n"
    b"Subject: hello\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"caf\xc3\xa9\r\n"
    b".a line that starts with a dot\r\n"
    b"..and two\r\n"
    b"last line\r\n"
)


# ---------------------------------------------------------------------------- fake LMTP


@dataclass
class LmtpTransaction:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class FakeLmtpHandler:
    """Delivers into ``mailboxes``; ``reject_rcpt`` / ``fail_data`` map an address to a reply."""

    mailboxes: dict[str, list[bytes]] = field(default_factory=dict)
    transactions: list[LmtpTransaction] = field(default_factory=list)
    reject_rcpt: dict[str, str] = field(default_factory=dict)
    fail_data: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.mailboxes.clear()
            self.transactions.clear()
            self.reject_rcpt.clear()
            self.fail_data.clear()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.reject_rcpt:
            return self.reject_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        # RFC 2033 4.2: one reply per accepted recipient. push() adds the last CRLF.
        replies = []
        with self.lock:
            self.transactions.append(
                LmtpTransaction(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
            )
            for rcpt in envelope.rcpt_tos:
                reply = self.fail_data.get(rcpt)
                if reply is None:
                    self.mailboxes.setdefault(rcpt, []).append(envelope.original_content)
                    reply = f"250 2.0.0 <{rcpt}> Saved"
                replies.append(reply)
        return "\r\n".join(replies)


class LmtpController(Controller):
    """A threaded LMTP server on a free port."""

    def factory(self) -> LMTP:
        return LMTP(self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def lmtp() -> Iterator[tuple[FakeLmtpHandler, int]]:
    handler = FakeLmtpHandler()
    controller = LmtpController(handler, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def users() -> dict[str, str]:
    return dict(DEV_USERS)


@pytest.fixture(scope="module")
def module_server(lmtp: tuple[FakeLmtpHandler, int], users: dict[str, str]) -> Iterator[DevSmtpServer]:
    with DevSmtpServer(users=users, lmtp_host="127.0.0.1", lmtp_port=lmtp[1], catchall=CATCHALL) as srv:
        yield srv


@pytest.fixture
def fake(lmtp: tuple[FakeLmtpHandler, int]) -> Iterator[FakeLmtpHandler]:
    lmtp[0].reset()
    yield lmtp[0]
    lmtp[0].reset()


@pytest.fixture
def server(module_server: DevSmtpServer, fake: FakeLmtpHandler) -> Iterator[DevSmtpServer]:
    module_server.clear()
    yield module_server
    module_server.clear()


def client(srv: DevSmtpServer) -> smtplib.SMTP:
    return smtplib.SMTP("127.0.0.1", srv.port, timeout=5)


def send(srv: DevSmtpServer, rcpts: list[str], msg: bytes = MESSAGE, *, user: str = "alice@example.test",
         mail_from: str = "alice@example.test") -> None:
    with client(srv) as c:
        c.login(user, DEV_USERS.get(user) or srv.users_snapshot()[user])
        c.sendmail(mail_from, rcpts, msg, mail_options=["BODY=8BITMIME"])


# ---------------------------------------------------------------------------- AUTH


def test_mail_without_auth_is_refused_with_530(server: DevSmtpServer, fake: FakeLmtpHandler) -> None:
    with client(server) as c:
        c.ehlo()
        assert "plain" in c.esmtp_features["auth"].lower()
        assert "login" in c.esmtp_features["auth"].lower()
        code, text = c.mail("alice@example.test")
        assert code == 530
        assert b"Authentication required" in text
    assert fake.transactions == []
    assert server.delivered == []


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
@pytest.mark.parametrize(("user", "password"), [
    ("alice@example.test", "wrong"),
    ("alice@example.test", "bob-dev-pass"),
    ("nobody@example.test", "whatever"),
])
def test_bad_credentials_get_535(server: DevSmtpServer, mechanism: str, user: str, password: str) -> None:
    with client(server) as c:
        c.ehlo()
        c.user, c.password = user, password
        authobject = c.auth_plain if mechanism == "PLAIN" else c.auth_login
        with pytest.raises(smtplib.SMTPAuthenticationError) as failed:
            c.auth(mechanism, authobject)
        assert failed.value.smtp_code == 535
        code, _ = c.mail("alice@example.test")
        assert code == 530


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_good_password_delivers(server: DevSmtpServer, fake: FakeLmtpHandler, mechanism: str) -> None:
    with client(server) as c:
        c.ehlo()
        c.user, c.password = "alice@example.test", "alice-dev-pass"
        code, _ = c.auth(mechanism, c.auth_plain if mechanism == "PLAIN" else c.auth_login)
        assert code == 235
        assert c.sendmail("alice@example.test", ["bob@example.test"], MESSAGE) == {}
    assert fake.mailboxes == {"bob@example.test": [MESSAGE]}


def test_users_added_after_start_can_auth(server: DevSmtpServer, users: dict[str, str],
                                          fake: FakeLmtpHandler) -> None:
    users["late@example.test"] = "late-pass"
    try:
        send(server, ["late@example.test"], user="late@example.test", mail_from="late@example.test")
    finally:
        del users["late@example.test"]
    assert fake.mailboxes == {"late@example.test": [MESSAGE]}
    assert server.delivered[-1].login == "late@example.test"


def test_users_may_be_a_callable(lmtp: tuple[FakeLmtpHandler, int], fake: FakeLmtpHandler) -> None:
    current: dict[str, str] = {}
    with DevSmtpServer(users=lambda: current, lmtp_host="127.0.0.1", lmtp_port=lmtp[1],
                       catchall=CATCHALL, history=2) as srv:
        with client(srv) as c, pytest.raises(smtplib.SMTPAuthenticationError):
            c.login("carol@example.test", "carol-pass")
        current["carol@example.test"] = "carol-pass"
        for n in range(3):
            send(srv, ["carol@example.test"], MESSAGE + b"%d\r\n" % n, user="carol@example.test",
                 mail_from="carol@example.test")
        # history=2 keeps the last two
        assert [m.data[-3:] for m in srv.delivered] == [b"1\r\n", b"2\r\n"]


def test_passwords_are_never_logged(server: DevSmtpServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="mail.log")
    password = "alice-dev-pass"
    for mechanism in ("PLAIN", "LOGIN"):
        with client(server) as c:
            c.ehlo()
            c.user, c.password = "alice@example.test", password
            c.auth(mechanism, c.auth_plain if mechanism == "PLAIN" else c.auth_login)
            c.sendmail("alice@example.test", ["bob@example.test"], MESSAGE)
    with client(server) as c, pytest.raises(smtplib.SMTPAuthenticationError):
        c.login("alice@example.test", "a-wrong-secret")
    text = caplog.text
    assert "accepted from=alice@example.test" in text
    forbidden = [
        password,
        "a-wrong-secret",
        base64.b64encode(f"\0alice@example.test\0{password}".encode()).decode(),
        base64.b64encode(password.encode()).decode(),
    ]
    for secret in forbidden:
        assert secret not in text
    assert password not in repr(server)


# ---------------------------------------------------------------------------- delivery


def test_local_recipients_get_the_bytes_unchanged_in_one_lmtp_transaction(
    server: DevSmtpServer, fake: FakeLmtpHandler
) -> None:
    send(server, ["bob@example.test", "Alice@Example.TEST", "bob@example.test"])
    # recipients matched ignoring case, deduplicated, spelled as the users mapping spells them
    assert fake.transactions == [
        LmtpTransaction("alice@example.test", ["bob@example.test", "alice@example.test"], MESSAGE)
    ]
    assert fake.mailboxes == {"bob@example.test": [MESSAGE], "alice@example.test": [MESSAGE]}


def test_non_local_recipients_go_to_the_catchall_with_a_header(
    server: DevSmtpServer, fake: FakeLmtpHandler
) -> None:
    send(server, ["someone@elsewhere.test", "bob@example.test", "other@elsewhere.test"])
    assert fake.mailboxes["bob@example.test"] == [MESSAGE]
    expected = (
        f"{ORIGINAL_RECIPIENT_HEADER}: someone@elsewhere.test\r\n"
        f"{ORIGINAL_RECIPIENT_HEADER}: other@elsewhere.test\r\n"
    ).encode() + MESSAGE
    assert fake.mailboxes[CATCHALL] == [expected]
    assert set(fake.mailboxes) == {"bob@example.test", CATCHALL}
    assert [t.rcpt_tos for t in fake.transactions] == [["bob@example.test"], [CATCHALL]]


def test_any_mail_from_is_accepted_and_the_login_recorded(server: DevSmtpServer) -> None:
    send(server, ["alice@example.test", "hidden@elsewhere.test"], user="bob@example.test",
         mail_from="alice@example.test")
    assert server.delivered == [
        DeliveredMessage(
            mail_from="alice@example.test",
            rcpt_tos=("alice@example.test", "hidden@elsewhere.test"),
            data=MESSAGE,
            login="bob@example.test",
        )
    ]
    server.clear()
    assert server.delivered == []


def test_null_sender(server: DevSmtpServer, fake: FakeLmtpHandler) -> None:
    send(server, ["bob@example.test"], mail_from="")
    assert fake.transactions[0].mail_from == "<>"  # aiosmtpd's spelling of MAIL FROM:<>
    assert server.delivered[0].mail_from == ""


# ---------------------------------------------------------------------------- failures


def test_lmtp_down_gives_451(lmtp: tuple[FakeLmtpHandler, int]) -> None:
    with DevSmtpServer(users=DEV_USERS, lmtp_host="127.0.0.1", lmtp_port=closed_port(),
                       catchall=CATCHALL) as srv:
        with pytest.raises(smtplib.SMTPDataError) as failed:
            send(srv, ["bob@example.test"])
        assert failed.value.smtp_code == 451
        assert b"unreachable" in failed.value.smtp_error
        assert srv.delivered == []


def test_lmtp_permanent_rcpt_rejection_gives_550_and_delivers_nothing(
    server: DevSmtpServer, fake: FakeLmtpHandler
) -> None:
    fake.reject_rcpt[CATCHALL] = "550 5.1.1 <catchall@example.test> User doesn't exist"
    with pytest.raises(smtplib.SMTPDataError) as failed:
        send(server, ["bob@example.test", "someone@elsewhere.test"])
    assert failed.value.smtp_code == 550
    assert b"User doesn't exist" in failed.value.smtp_error
    # every RCPT is checked before any DATA: bob's copy was not delivered either
    assert fake.mailboxes == {}
    assert server.delivered == []


def test_lmtp_temporary_rcpt_rejection_gives_451(server: DevSmtpServer, fake: FakeLmtpHandler) -> None:
    fake.reject_rcpt["bob@example.test"] = "451 4.3.0 Temporary internal error"
    with pytest.raises(smtplib.SMTPDataError) as failed:
        send(server, ["bob@example.test"])
    assert failed.value.smtp_code == 451
    assert b"Temporary internal error" in failed.value.smtp_error


def test_lmtp_failure_after_data_for_one_recipient(server: DevSmtpServer, fake: FakeLmtpHandler) -> None:
    fake.fail_data["bob@example.test"] = "452 4.2.2 <bob@example.test> Mailbox is full"
    with pytest.raises(smtplib.SMTPDataError) as failed:
        send(server, ["alice@example.test", "bob@example.test"])
    assert failed.value.smtp_code == 451
    assert b"Mailbox is full" in failed.value.smtp_error
    assert server.delivered == []
    fake.fail_data["bob@example.test"] = "552 5.2.2 <bob@example.test> Quota exceeded"
    with pytest.raises(smtplib.SMTPDataError) as failed:
        send(server, ["bob@example.test", "alice@example.test"])
    assert failed.value.smtp_code == 550


def test_fail_next_injects_one_reply_per_message(server: DevSmtpServer, fake: FakeLmtpHandler) -> None:
    server.fail_next.extend([(550, "5.7.1 rejected"), (451, "4.3.0 try later")])
    with client(server) as c:
        c.login("alice@example.test", "alice-dev-pass")
        for code, text in [(550, b"5.7.1 rejected"), (451, b"4.3.0 try later")]:
            with pytest.raises(smtplib.SMTPDataError) as failed:
                c.sendmail("alice@example.test", ["bob@example.test"], MESSAGE)
            assert (failed.value.smtp_code, failed.value.smtp_error) == (code, text)
        assert fake.transactions == []
        assert server.delivered == []
        assert c.sendmail("alice@example.test", ["bob@example.test"], MESSAGE) == {}
    assert server.fail_next == []
    assert fake.mailboxes == {"bob@example.test": [MESSAGE]}
    assert len(server.delivered) == 1


# ---------------------------------------------------------------------------- lifecycle


def test_stop_closes_the_port_and_ends_the_thread(lmtp: tuple[FakeLmtpHandler, int]) -> None:
    before = set(threading.enumerate())
    srv = DevSmtpServer(users=DEV_USERS, lmtp_host="127.0.0.1", lmtp_port=lmtp[1], catchall=CATCHALL)
    with pytest.raises(RuntimeError):
        _ = srv.port
    srv.start()
    port = srv.port
    assert port > 0 and srv.running
    assert f"127.0.0.1:{port}" in repr(srv)
    with pytest.raises(RuntimeError):
        srv.start()
    with client(srv) as c:
        c.login("alice@example.test", "alice-dev-pass")
        c.sendmail("alice@example.test", ["bob@example.test"], MESSAGE)
        srv.stop()  # with this client still connected
        with pytest.raises(smtplib.SMTPServerDisconnected):
            c.noop()
    assert not srv.running
    assert srv.port == port
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    assert {t for t in threading.enumerate() if t.is_alive()} <= before
    srv.stop()  # a second stop does nothing


def test_only_loopback_hosts() -> None:
    with pytest.raises(ValueError, match="loopback"):
        DevSmtpServer(host="0.0.0.0", users=DEV_USERS, lmtp_host="127.0.0.1", lmtp_port=24,
                      catchall=CATCHALL)
