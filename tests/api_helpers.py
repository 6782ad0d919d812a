"""Helpers of the HTTP API tests (each test module makes its ``api`` fixture with running_api).

Each test gets fresh mailbox users on the shared Dovecot and an app (aiohttp TestClient) whose
config names them; what reached the server is checked with stdlib ``imaplib``, a client that
shares no code with mailbridge.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import imaplib
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from conftest import MailUser
from mailbridge.api import create_app
from mailbridge.devstack.stack import DevStack

FULL_TOKEN = "jsk_test-full-token-" + "x" * 16
"""Starts with jsk_, as the Jasni SDK expects of a key (it warns otherwise)."""
READ_TOKEN = "test-read-token-" + "y" * 16
WRITE_TOKEN = "test-write-token-" + "z" * 16
OTHER_TOKEN = "test-other-token-" + "w" * 16
BOTH_TOKEN = "test-both-token-" + "v" * 16
METRICS_TOKEN = "test-metrics-token-" + "m" * 16
APPROVE_TOKEN = "jsk_test-approve-token-" + "x" * 16
"""read and approve on the user's account: a reviewer (tests of mailbridge.approvals)."""


def token_entry(name: str, token: str, accounts: list[str], scopes: list[str]) -> dict[str, Any]:
    return {"name": name, "sha256": hashlib.sha256(token.encode()).hexdigest(),
            "accounts": accounts, "scopes": scopes}


@dataclass(frozen=True)
class ServerMessage:
    uid: int
    flags: tuple[str, ...]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        msg = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    headers: Mapping[str, str]


@dataclass
class Api:
    """A running app for ``user`` (and ``other``, an account only OTHER_TOKEN may use)."""

    client: TestClient  # type: ignore[type-arg]
    devstack: DevStack
    user: MailUser
    other: MailUser
    tokens: dict[str, str] = field(default_factory=dict)

    async def call(self, method: str, path: str, *, token: str | None = FULL_TOKEN,
                   json_body: Any = None, data: bytes | str | None = None,
                   headers: Mapping[str, str] | None = None,
                   params: Mapping[str, str] | None = None) -> Reply:
        sent: dict[str, str] = {}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            data = json.dumps(json_body)
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        async with self.client.request(method, path, data=data, headers=sent,
                                       params=params) as resp:
            text = await resp.text()
            body = json.loads(text) if text else None
            return Reply(resp.status, body, resp.headers.copy())

    # --- plain IMAP (imaplib) -------------------------------------------------------------

    @contextmanager
    def imap(self, who: MailUser | None = None) -> Iterator[imaplib.IMAP4]:
        who = who or self.user
        client = imaplib.IMAP4("127.0.0.1", self.devstack.ports.imap)
        try:
            client.login(who.email, who.password)
            yield client
        finally:
            try:
                client.logout()
            except imaplib.IMAP4.error:
                pass

    def messages(self, folder: str = "Drafts", who: MailUser | None = None) -> list[ServerMessage]:
        """(uid, flags, raw) of every undeleted message of ``folder``, oldest first."""
        with self.imap(who) as client:
            typ, _ = client.select(folder)
            assert typ == "OK"
            _, data = client.uid("SEARCH", "UNDELETED")
            uids = [int(u) for u in data[0].split()]
            result = []
            for uid in uids:
                _, fetched = client.uid("FETCH", str(uid), "(FLAGS BODY.PEEK[])")
                meta, raw = fetched[0]  # type: ignore[misc]
                flags = re.search(rb"FLAGS \(([^)]*)\)", meta)
                result.append(ServerMessage(
                    uid, tuple(flags.group(1).decode().split()) if flags else (), raw))
            return result

    def append(self, raw: bytes, folder: str = "INBOX", flags: str = "",
               who: MailUser | None = None) -> int:
        """APPENDs ``raw`` with imaplib; returns its UID (APPENDUID)."""
        with self.imap(who) as client:
            typ, data = client.append(folder, flags or None, None, raw)  # type: ignore[arg-type]
            assert typ == "OK", data
            found = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
            assert found is not None, data
            return int(found.group(1))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


THUNDERBIRD_DRAFT = (
    "From: {sender}\r\n"
    "To: Carol Client <carol@example.test>\r\n"
    "Subject: Written in Thunderbird\r\n"
    "Message-ID: <{mid}@example.test>\r\n"
    "Date: Mon, 02 Mar 2026 10:00:00 +0100\r\n"
    "X-Mozilla-Draft-Info: internal/draft; vcard=0; receipt=0; DSN=0; uuencode=0;\r\n"
    " attachmentreminder=0; deliveryformat=4\r\n"
    "User-Agent: Mozilla Thunderbird\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=UTF-8; format=flowed\r\n"
    "Content-Transfer-Encoding: 7bit\r\n"
    "\r\n"
    "Hello Carol, typed in Thunderbird.\r\n"
)


def thunderbird_draft(sender: str) -> bytes:
    return THUNDERBIRD_DRAFT.format(sender=sender, mid=uuid.uuid4().hex).encode()


async def start_api(devstack: DevStack, user: MailUser, other: MailUser,
                    limits: Mapping[str, int] | None = None,
                    server: Mapping[str, Any] | None = None,
                    webhooks: Sequence[Mapping[str, Any]] = (),
                    accounts: Mapping[str, Any] | None = None) -> Api:
    data = devstack.config_data(
        accounts=[{**devstack.account_entry(user.id, user.email, "Test User"), **(accounts or {})},
                  devstack.account_entry(other.id, other.email, "Other User")],
        tokens=[token_entry("full", FULL_TOKEN, [str(user.id)], ["read", "write", "send"]),
                token_entry("read", READ_TOKEN, [user.email], ["read"]),
                token_entry("write", WRITE_TOKEN, [str(user.id)], ["read", "write"]),
                token_entry("other", OTHER_TOKEN, [other.email], ["read", "write", "send"]),
                token_entry("both", BOTH_TOKEN, ["*"], ["read", "write", "send"]),
                token_entry("metrics", METRICS_TOKEN, ["*"], ["metrics"]),
                token_entry("approver", APPROVE_TOKEN, [str(user.id)], ["read", "approve"])],
    )
    if limits:
        data["server"]["limits"] = dict(limits)
    # no mailbox watches unless a test asks (tests/test_watching.py): two connections per
    # account for every app would cost the suite time
    data["server"]["watch_mailboxes"] = False
    data["server"].update(server or {})
    data["webhooks"] = [dict(w) for w in webhooks]
    from mailbridge.config import parse_config

    config = parse_config(data, source="test")
    client = TestClient(TestServer(create_app(config)))
    await client.start_server()
    return Api(client=client, devstack=devstack, user=user, other=other)


def new_user(devstack: DevStack) -> MailUser:
    u = MailUser(email=f"t{uuid.uuid4().hex[:12]}@example.test", password=uuid.uuid4().hex,
                 id=uuid.uuid4())
    devstack.add_user(u.email, u.password)
    return u


@asynccontextmanager
async def running_api(devstack: DevStack, user: MailUser,
                      limits: Mapping[str, int] | None = None,
                      server: Mapping[str, Any] | None = None,
                      webhooks: Sequence[Mapping[str, Any]] = (),
                      accounts: Mapping[str, Any] | None = None) -> AsyncIterator[Api]:
    """The app for a fresh ``user`` (FULL_TOKEN, READ_TOKEN, WRITE_TOKEN) and a fresh other user
    (OTHER_TOKEN); BOTH_TOKEN may use both accounts. Use it in a fixture of the test module."""
    running = await start_api(devstack, user, new_user(devstack), limits=limits, server=server,
                              webhooks=webhooks, accounts=accounts)
    try:
        yield running
    finally:
        await running.client.close()
