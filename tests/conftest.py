"""Shared fixtures: one real Dovecot + dev SMTP server per test session.

Tests are isolated by account (a fresh mailbox user each), never by restarting Dovecot. The
state lives under /var/tmp because Dovecot's unprivileged processes cannot enter pytest's
0700 tmp folders (see shared/mail-stack-notes.md).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from receivers import Receiver, start_receiver

from mailbridge.devstack.dovecot import Dovecot, free_port
from mailbridge.devstack.stack import DevPorts, DevStack
from mailbridge.imap import ImapEndpoint


@dataclass(frozen=True)
class MailUser:
    email: str
    password: str
    id: uuid.UUID


@pytest.fixture(scope="session")
def devstack() -> Iterator[DevStack]:
    root = Path(tempfile.mkdtemp(prefix="mailbridge-test-", dir="/var/tmp"))
    root.chmod(0o755)
    stack = DevStack(root / "state", ports=DevPorts.free())
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
        stack.wipe()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def user(devstack: DevStack) -> MailUser:
    """A brand-new mailbox user on the shared Dovecot (its own Drafts, Sent, Trash)."""
    u = MailUser(email=f"t{uuid.uuid4().hex[:12]}@example.test", password=uuid.uuid4().hex,
                 id=uuid.uuid4())
    devstack.add_user(u.email, u.password)
    return u


def make_endpoint(devstack: DevStack, user: MailUser, **kw: object) -> ImapEndpoint:
    args: dict[str, object] = {"host": "127.0.0.1", "port": devstack.ports.imap, "security": "none",
                               "username": user.email, "password": user.password, "timeout": 5.0,
                               "label": user.email}
    args.update(kw)
    return ImapEndpoint(**args)  # type: ignore[arg-type]


@pytest.fixture
def endpoint(devstack: DevStack, user: MailUser) -> ImapEndpoint:
    return make_endpoint(devstack, user)


@contextlib.contextmanager
def private_dovecot(name: str, users: dict[str, str]) -> Iterator[Dovecot]:
    """A Dovecot of a test's own (under /var/tmp: Dovecot's unprivileged processes cannot enter
    pytest's temp folders), for tests that kill or freeze it; killed and wiped afterwards."""
    dv = Dovecot(Path("/var/tmp") / f"mailbridge-{name}-{uuid.uuid4().hex[:8]}",
                 imap_port=free_port(), lmtp_port=free_port(), users=users)
    dv.start()
    try:
        yield dv
    finally:
        dv.resume()
        dv.kill()
        dv.wipe()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real HTTP server that records the webhook deliveries it gets (tests/receivers.py)."""
    r = await start_receiver()
    try:
        yield r
    finally:
        assert r.server is not None
        await r.server.close()
