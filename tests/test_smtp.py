"""The Sender against real SMTP servers: the dev submission server, and small aiosmtpd servers
(and one scripted asyncio server) that misbehave on purpose, speak STARTTLS or implicit TLS."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from conftest import MailUser
from mailbridge.api.statuses import status_of
from mailbridge.config import parse_config
from mailbridge.devstack.dovecot import free_port
from mailbridge.devstack.smtp import DeliveredMessage
from mailbridge.devstack.stack import DevStack
from mailbridge.errors import (
    SmtpAuthFailed,
    SmtpOutcomeUnknown,
    SmtpRejected,
    SmtpTemporaryFailure,
    SmtpUnavailable,
)
from mailbridge.smtp import Sender, SendResult, SmtpEndpoint, smtp_endpoint

TIMEOUT = 0.5


def make_message(subject: str, to: str = "someone@example.test") -> bytes:
    # CRLF, lines starting with dots (stuffed on the wire), 8-bit bytes: all must arrive unchanged.
    return (
        f"From: Sender <sender@example.test>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@example.test>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode() + b"caf\xc3\xa9\r\n.one dot\r\n..two dots\r\n.\r\nlast line\r\n"


def dev_endpoint(devstack: DevStack, user: MailUser, port: int | None = None, **kw: Any) -> SmtpEndpoint:
    args: dict[str, Any] = {"host": "127.0.0.1", "port": port or devstack.smtp.port, "security": "none",
                            "username": user.email, "password": user.password, "timeout": 5.0,
                            "label": user.email}
    args.update(kw)
    return SmtpEndpoint(**args)


def delivered_with(devstack: DevStack, message: bytes) -> list[DeliveredMessage]:
    return [m for m in devstack.smtp.delivered if m.data == message]


@pytest.fixture
async def sender() -> AsyncIterator[Sender]:
    s = Sender()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture(autouse=True)
def _clean_fail_next(devstack: DevStack) -> Iterator[None]:
    devstack.smtp.fail_next.clear()
    yield
    devstack.smtp.fail_next.clear()


# ---------------------------------------------------------------------------- a counting TCP proxy


class ScriptedServer:
    """A TCP server on a free port of 127.0.0.1 whose connections run :meth:`serve`; leaving
    the ``async with`` closes it and cancels the connections still running."""

    limit = 2**16
    """The line length asyncio's reader allows."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> Any:
        self.server = await asyncio.start_server(self._run, "127.0.0.1", 0, limit=self.limit)
        self.port = int(self.server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()
        self.closing()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.serve(reader, writer)
        finally:
            self._tasks.discard(task)

    def closing(self) -> None:
        """Called when the server closes, before the connections are cancelled."""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class Proxy(ScriptedServer):
    """Forwards TCP connections to ``target_port``; counts them and can drop them all."""

    def __init__(self, target_port: int) -> None:
        super().__init__()
        self.target_port = target_port
        self.accepted = 0
        self.open = 0
        self._writers: set[asyncio.StreamWriter] = set()

    def closing(self) -> None:
        self.drop_all()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        up_writer: asyncio.StreamWriter | None = None
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            self._writers |= {writer, up_writer}
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self.open -= 1
            for w in (writer, up_writer):
                if w is not None:
                    self._writers.discard(w)
                    w.close()
                    with contextlib.suppress(Exception):
                        await w.wait_closed()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def drop_all(self) -> None:
        for w in list(self._writers):
            w.transport.abort()

    async def wait_open(self, count: int) -> None:
        for _ in range(100):
            if self.open == count:
                return
            await asyncio.sleep(0.02)
        assert self.open == count


# ---------------------------------------------------------------------------- aiosmtpd servers


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool
    mail_options: list[str]


@dataclass
class Handler:
    """Records each message; refuses the RCPTs in ``refuse`` with their reply; can misbehave."""

    refuse: dict[str, str] = field(default_factory=dict)
    messages: list[Received] = field(default_factory=list)
    data_delay: float = 0.0
    drop_at: str = ""  # "RCPT" or "DATA": close the connection there

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if self.drop_at == "RCPT":
            return await self._drop(server)
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.drop_at == "DATA":
            return await self._drop(server)
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        self.messages.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos),
                                      bytes(envelope.original_content or b""), _over_tls(server, session),
                                      list(envelope.mail_options)))
        return "250 2.0.0 queued"

    @staticmethod
    async def _drop(server: SMTP) -> str:
        assert server.transport is not None
        server.transport.close()
        await asyncio.sleep(30)  # cancelled when aiosmtpd sees the connection lost
        return "250 never sent"


def _over_tls(server: SMTP, session: Session) -> bool:
    """True after STARTTLS (aiosmtpd sets session.ssl) or on an implicit-TLS listener."""
    transport = server.transport
    return session.ssl is not None or (
        transport is not None and transport.get_extra_info("ssl_object") is not None)


def authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                 auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"tls-pass"
    return AuthResult(success=ok, handled=False)


@contextlib.contextmanager
def aiosmtpd_server(handler: Handler, **kwargs: Any) -> Iterator[int]:
    """Runs an aiosmtpd server on 127.0.0.1 in its own thread; yields its port."""
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), server_hostname="test",
                            ready_timeout=5.0, decode_data=False, **kwargs)
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


def server_tls(devstack: DevStack) -> ssl.SSLContext:
    assert devstack.tls is not None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(devstack.tls.cert, devstack.tls.key)
    return ctx


def ca_file(devstack: DevStack) -> Path:
    assert devstack.tls is not None
    return devstack.tls.cert


def plain_endpoint(port: int, **kw: Any) -> SmtpEndpoint:
    args: dict[str, Any] = {"host": "127.0.0.1", "port": port, "security": "none",
                            "timeout": TIMEOUT, "label": "test@example.test"}
    args.update(kw)
    return SmtpEndpoint(**args)


# ---------------------------------------------------------------------------- the dev server


async def test_delivers_message_unchanged(devstack: DevStack, user: MailUser, sender: Sender) -> None:
    message = make_message("unchanged")
    result = await sender.send(dev_endpoint(devstack, user), message, mail_from=user.email,
                               recipients=[user.email, "elsewhere@example.net"])
    assert result == SendResult(250, "2.0.0 OK delivered locally",
                                (user.email, "elsewhere@example.net"), {})
    [got] = delivered_with(devstack, message)
    assert got.mail_from == user.email
    assert got.rcpt_tos == (user.email, "elsewhere@example.net")
    assert got.login == user.email


async def test_null_sender_and_duplicate_recipients(devstack: DevStack, user: MailUser,
                                                    sender: Sender) -> None:
    message = make_message("null sender")
    result = await sender.send(dev_endpoint(devstack, user), message, mail_from="",
                               recipients=[user.email, user.email])
    assert result.accepted == (user.email,)
    [got] = delivered_with(devstack, message)
    assert (got.mail_from, got.rcpt_tos) == ("", (user.email,))


async def test_bare_line_feeds_become_crlf(devstack: DevStack, user: MailUser, sender: Sender) -> None:
    tag = uuid.uuid4().hex
    await sender.send(dev_endpoint(devstack, user), f"Subject: {tag}\n\n.body\nend".encode(),
                      mail_from=user.email, recipients=[user.email])
    assert delivered_with(devstack, f"Subject: {tag}\r\n\r\n.body\r\nend\r\n".encode())


async def test_reuses_one_connection(devstack: DevStack, user: MailUser, sender: Sender) -> None:
    async with Proxy(devstack.smtp.port) as proxy:
        ep = dev_endpoint(devstack, user, port=proxy.port)
        messages = [make_message(f"reuse {i}") for i in range(3)]
        for message in messages:
            await sender.send(ep, message, mail_from=user.email, recipients=[user.email])
        assert proxy.accepted == 1
        assert all(delivered_with(devstack, m) for m in messages)

        # The server (here: the network) dropped the idle connection: RSET fails, a new one is made.
        proxy.drop_all()
        await proxy.wait_open(0)
        message = make_message("after drop")
        await sender.send(ep, message, mail_from=user.email, recipients=[user.email])
        assert proxy.accepted == 2
        assert delivered_with(devstack, message)

        # Two at once need two connections; only one stays idle afterwards.
        pair = [make_message("pair 1"), make_message("pair 2")]
        await asyncio.gather(*(sender.send(ep, m, mail_from=user.email, recipients=[user.email])
                               for m in pair))
        assert proxy.accepted == 3
        await proxy.wait_open(1)
        await sender.send(ep, make_message("after pair"), mail_from=user.email, recipients=[user.email])
        assert proxy.accepted == 3

        await sender.close()
        await proxy.wait_open(0)


async def test_idle_connection_expires(devstack: DevStack, user: MailUser) -> None:
    sender = Sender(idle_seconds=0.2)
    try:
        async with Proxy(devstack.smtp.port) as proxy:
            ep = dev_endpoint(devstack, user, port=proxy.port)
            await sender.send(ep, make_message("a"), mail_from=user.email, recipients=[user.email])
            await proxy.wait_open(1)
            await asyncio.sleep(0.3)
            await proxy.wait_open(0)
            await sender.send(ep, make_message("b"), mail_from=user.email, recipients=[user.email])
            assert proxy.accepted == 2
    finally:
        await sender.close()


async def test_changed_password_is_not_served_by_the_idle_connection(
        devstack: DevStack, user: MailUser, sender: Sender) -> None:
    ep = dev_endpoint(devstack, user)
    await sender.send(ep, make_message("ok"), mail_from=user.email, recipients=[user.email])
    with pytest.raises(SmtpAuthFailed):
        await sender.send(dev_endpoint(devstack, user, password="changed-and-wrong"),
                          make_message("x"), mail_from=user.email, recipients=[user.email])


async def test_permanent_failure(devstack: DevStack, user: MailUser, sender: Sender) -> None:
    devstack.smtp.fail_next.append((550, "5.7.1 rejected"))
    message = make_message("rejected")
    with pytest.raises(SmtpRejected) as info:
        await sender.send(dev_endpoint(devstack, user), message, mail_from=user.email,
                          recipients=[user.email])
    assert info.value.reply_code == 550
    assert info.value.reply == "5.7.1 rejected"
    assert "550 5.7.1 rejected" in str(info.value)
    assert (status_of(info.value), info.value.code, info.value.account) == (502, "smtp_rejected", user.email)
    assert not delivered_with(devstack, message)
    # the Sender goes on working (on a new connection)
    await sender.send(dev_endpoint(devstack, user), message, mail_from=user.email,
                      recipients=[user.email])
    assert delivered_with(devstack, message)


async def test_temporary_failure(devstack: DevStack, user: MailUser, sender: Sender) -> None:
    devstack.smtp.fail_next.append((451, "4.3.0 try again later"))
    with pytest.raises(SmtpTemporaryFailure) as info:
        await sender.send(dev_endpoint(devstack, user), make_message("later"), mail_from=user.email,
                          recipients=[user.email])
    assert info.value.reply_code == 451
    assert "451 4.3.0 try again later" in str(info.value)
    assert (status_of(info.value), info.value.code) == (503, "smtp_temporary_failure")


async def test_wrong_password(devstack: DevStack, user: MailUser, sender: Sender,
                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="mailbridge")
    ep = dev_endpoint(devstack, user, password="WrongPassword-123")
    with pytest.raises(SmtpAuthFailed) as info:
        await sender.send(ep, make_message("x"), mail_from=user.email, recipients=[user.email])
    assert info.value.reply_code == 535
    assert (status_of(info.value), info.value.code) == (502, "smtp_auth_failed")
    assert "535" in str(info.value) and user.email in str(info.value)
    for text in (str(info.value), info.value.reply, repr(ep), str(ep), caplog.text):
        assert "WrongPassword-123" not in text


async def test_connection_refused_is_quick(sender: Sender) -> None:
    started = time.monotonic()
    with pytest.raises(SmtpUnavailable) as info:
        await sender.send(plain_endpoint(free_port()), b"Subject: x\r\n\r\nx\r\n",
                          mail_from="a@example.test", recipients=["b@example.test"])
    assert time.monotonic() - started < 1.0
    assert info.value.reply_code is None
    assert "cannot connect" in str(info.value)
    assert (status_of(info.value), info.value.code) == (503, "smtp_unavailable")


async def test_log_line(devstack: DevStack, user: MailUser, sender: Sender,
                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="mailbridge")
    await sender.send(dev_endpoint(devstack, user), make_message("logged"), mail_from=user.email,
                      recipients=[user.email, "x@example.net"])
    [record] = [r for r in caplog.records if r.name == "mailbridge.smtp"]
    assert record.levelno == logging.INFO
    text = record.getMessage()
    assert user.email in text and "2 recipient(s)" in text and "250" in text
    assert user.password not in caplog.text and "caf" not in caplog.text


def test_endpoint_from_config(devstack: DevStack, user: MailUser) -> None:
    entry = devstack.account_entry(user.id, user.email)
    entry["smtp"].update(timeout_seconds=3.5, tls_verify=False)
    config = parse_config(devstack.config_data(accounts=[entry]), source="test")
    ep = smtp_endpoint(config.accounts[0])
    assert ep == SmtpEndpoint(host="127.0.0.1", port=devstack.smtp.port, security="none",
                              username=user.email, password=user.password, timeout=3.5,
                              tls_verify=False, ca_file=None, label=user.email)
    assert user.password not in repr(ep)
    assert repr(ep) == f"SmtpEndpoint({user.email}@127.0.0.1:{devstack.smtp.port}, none, timeout=3.5)"


@pytest.mark.parametrize("recipients", [[], ["a b@example.test"], ["<a@example.test>"], [""],
                                        ["a@example.test\r\nRCPT TO:<b@example.test>"]])
async def test_bad_envelope(sender: Sender, recipients: list[str]) -> None:
    with pytest.raises(ValueError):
        await sender.send(plain_endpoint(free_port()), b"x", mail_from="a@example.test",
                          recipients=recipients)


async def test_auth_required_but_not_configured(devstack: DevStack, user: MailUser,
                                                sender: Sender) -> None:
    with pytest.raises(SmtpAuthFailed, match="requires AUTH") as info:
        await sender.send(dev_endpoint(devstack, user, username=None, password=None), b"x",
                          mail_from=user.email, recipients=[user.email])
    assert info.value.reply_code == 530


# ---------------------------------------------------------------------------- refusals, faults


async def test_mail_options(sender: Sender) -> None:
    handler = Handler()
    with aiosmtpd_server(handler) as port:
        ascii_message = b"Subject: x\r\n\r\nx\r\n"
        await sender.send(plain_endpoint(port), ascii_message, mail_from="a@example.test",
                          recipients=["b@example.test"])
        eight_bit = "Subject: caf\u00e9\r\n\r\nd\u00e9j\u00e0\r\n".encode()
        await sender.send(plain_endpoint(port), eight_bit, mail_from="a@example.test",
                          recipients=["jos\u00e9@example.test"])
    size = len(ascii_message) + 3  # + ".\r\n"
    assert handler.messages[0].mail_options == [f"SIZE={size}"]
    assert not handler.messages[0].tls
    assert handler.messages[1].mail_options == [f"SIZE={len(eight_bit) + 3}", "BODY=8BITMIME", "SMTPUTF8"]
    assert handler.messages[1].rcpt_tos == ["jos\u00e9@example.test"]
    assert handler.messages[1].data == eight_bit


async def test_cancelled_send_closes_its_connection(sender: Sender) -> None:
    handler = Handler(data_delay=5.0)
    with aiosmtpd_server(handler) as port:
        ep = plain_endpoint(port, timeout=5.0)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(sender.send(ep, b"x", mail_from="a@example.test",
                                               recipients=["b@example.test"]), 0.3)
        handler.data_delay = 0
        await sender.send(ep, b"Subject: y\r\n\r\ny\r\n", mail_from="a@example.test",
                          recipients=["b@example.test"])
        assert [m.data for m in handler.messages] == [b"Subject: y\r\n\r\ny\r\n"]
        await sender.close()


async def test_some_recipients_refused(sender: Sender) -> None:
    handler = Handler(refuse={"gone@example.test": "550 5.1.1 no such user",
                              "full@example.test": "452 4.2.2 mailbox full"})
    with aiosmtpd_server(handler) as port:
        result = await sender.send(plain_endpoint(port), b"Subject: x\r\n\r\nx\r\n",
                                   mail_from="a@example.test",
                                   recipients=["ok@example.test", "gone@example.test",
                                               "full@example.test"])
        assert result.accepted == ("ok@example.test",)
        assert result.refused == {"gone@example.test": (550, "5.1.1 no such user"),
                                  "full@example.test": (452, "4.2.2 mailbox full")}
        assert [(m.mail_from, m.rcpt_tos, m.data) for m in handler.messages] == [
            ("a@example.test", ["ok@example.test"], b"Subject: x\r\n\r\nx\r\n")]


async def test_every_recipient_refused(sender: Sender) -> None:
    handler = Handler(refuse={"gone@example.test": "550 5.1.1 no such user",
                              "full@example.test": "452 4.2.2 mailbox full"})
    with aiosmtpd_server(handler) as port:
        with pytest.raises(SmtpRejected) as rejected:
            await sender.send(plain_endpoint(port), b"x", mail_from="a@example.test",
                              recipients=["gone@example.test"])
        assert rejected.value.reply_code == 550
        assert "<gone@example.test>" in str(rejected.value) and "5.1.1 no such user" in str(rejected.value)
        with pytest.raises(SmtpTemporaryFailure) as temporary:
            await sender.send(plain_endpoint(port), b"x", mail_from="a@example.test",
                              recipients=["gone@example.test", "full@example.test"])
        assert temporary.value.reply_code == 452
        assert handler.messages == []


async def test_timeout_after_data_is_outcome_unknown(sender: Sender) -> None:
    handler = Handler(data_delay=5.0)
    with aiosmtpd_server(handler) as port:
        started = time.monotonic()
        with pytest.raises(SmtpOutcomeUnknown) as info:
            await sender.send(plain_endpoint(port), b"Subject: x\r\n\r\nx\r\n",
                              mail_from="a@example.test", recipients=["b@example.test"])
        assert TIMEOUT <= time.monotonic() - started < TIMEOUT + 1.0
    assert "do not resend" in str(info.value)
    assert (status_of(info.value), info.value.code) == (502, "smtp_outcome_unknown")


async def test_drop_after_data_is_outcome_unknown(sender: Sender) -> None:
    with aiosmtpd_server(Handler(drop_at="DATA")) as port:
        with pytest.raises(SmtpOutcomeUnknown, match="may or may not"):
            await sender.send(plain_endpoint(port), b"Subject: x\r\n\r\nx\r\n",
                              mail_from="a@example.test", recipients=["b@example.test"])


async def test_drop_during_rcpt_is_unavailable(sender: Sender) -> None:
    with aiosmtpd_server(Handler(drop_at="RCPT")) as port:
        with pytest.raises(SmtpUnavailable, match=r"RCPT TO:<b@example\.test>.*nothing was delivered"):
            await sender.send(plain_endpoint(port), b"Subject: x\r\n\r\nx\r\n",
                              mail_from="a@example.test", recipients=["b@example.test"])


class StallingServer(ScriptedServer):
    """A scripted SMTP server that answers 354 to DATA and then stops reading."""

    limit = 1024

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(b"220 stall ESMTP\r\n")
            while line := await reader.readline():
                if line.upper().startswith(b"DATA"):
                    writer.write(b"354 go ahead\r\n")
                    await asyncio.sleep(30)  # and never read again
                writer.write(b"250 ok\r\n")
        finally:
            writer.transport.abort()


async def test_stalled_upload_is_unavailable(sender: Sender) -> None:
    big = b"Subject: big\r\n\r\n" + b"x" * 998 * 1024 + b"\r\n"
    big *= 32  # far more than the kernel's socket buffers hold
    async with StallingServer() as server:
        with pytest.raises(SmtpUnavailable, match="never got the end of the message"):
            await sender.send(plain_endpoint(server.port), big, mail_from="a@example.test",
                              recipients=["b@example.test"])


# ---------------------------------------------------------------------------- TLS


async def test_starttls_delivers(devstack: DevStack, sender: Sender) -> None:
    handler = Handler()
    with aiosmtpd_server(handler, tls_context=server_tls(devstack), require_starttls=True,
                         authenticator=authenticate, auth_required=True) as port:
        ep = plain_endpoint(port, host="localhost", security="starttls", username="u",
                            password="tls-pass", ca_file=ca_file(devstack), timeout=5.0)
        await sender.send(ep, b"Subject: tls\r\n\r\nx\r\n", mail_from="a@example.test",
                          recipients=["b@example.test"])
        await sender.send(ep, b"Subject: tls 2\r\n\r\nx\r\n", mail_from="a@example.test",
                          recipients=["b@example.test"])
        assert [(m.data, m.tls) for m in handler.messages] == [
            (b"Subject: tls\r\n\r\nx\r\n", True), (b"Subject: tls 2\r\n\r\nx\r\n", True)]
        with pytest.raises(SmtpAuthFailed):
            await sender.send(plain_endpoint(port, host="localhost", security="starttls",
                                             username="u", password="bad-pass",
                                             ca_file=ca_file(devstack), timeout=5.0),
                              b"x", mail_from="a@example.test", recipients=["b@example.test"])
        await sender.close()


async def test_implicit_tls_delivers(devstack: DevStack, sender: Sender) -> None:
    handler = Handler()
    with aiosmtpd_server(handler, ssl_context=server_tls(devstack)) as port:
        ep = plain_endpoint(port, security="tls", ca_file=ca_file(devstack), timeout=5.0)
        result = await sender.send(ep, b"Subject: tls\r\n\r\nx\r\n", mail_from="a@example.test",
                                   recipients=["b@example.test"])
        assert result.reply_code == 250
        assert [(m.data, m.tls) for m in handler.messages] == [(b"Subject: tls\r\n\r\nx\r\n", True)]
        await sender.close()


@pytest.mark.parametrize("security", ["tls", "starttls"])
async def test_untrusted_certificate(devstack: DevStack, sender: Sender, security: str) -> None:
    handler = Handler()
    kwargs: dict[str, Any] = ({"ssl_context": server_tls(devstack)} if security == "tls"
                              else {"tls_context": server_tls(devstack), "require_starttls": True})
    with aiosmtpd_server(handler, **kwargs) as port:
        with pytest.raises(SmtpUnavailable, match=r"certificate verification failed.*ca_file"):
            await sender.send(plain_endpoint(port, security=security, timeout=5.0), b"x",
                              mail_from="a@example.test", recipients=["b@example.test"])
        # tls_verify = false accepts it
        await sender.send(plain_endpoint(port, security=security, tls_verify=False, timeout=5.0),
                          b"Subject: x\r\n\r\nx\r\n", mail_from="a@example.test",
                          recipients=["b@example.test"])
        assert len(handler.messages) == 1
        await sender.close()


async def test_starttls_not_offered(sender: Sender) -> None:
    handler = Handler()
    with aiosmtpd_server(handler) as port:
        with pytest.raises(SmtpUnavailable, match="does not offer STARTTLS") as info:
            await sender.send(plain_endpoint(port, security="starttls"), b"x",
                              mail_from="a@example.test", recipients=["b@example.test"])
        assert handler.messages == []
    assert "not continuing without encryption" in str(info.value)
