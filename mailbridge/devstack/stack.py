"""The dev mail stack: a private Dovecot, the dev SMTP server, and the config that points at them.

One piece of code for `make run` (``python -m mailbridge dev``) and for the test fixtures. Its
contract (README documents it; tests and examples rely on it):

- users alice@example.test / alice-dev-pass, bob@example.test / bob-dev-pass, and the catch-all
  catchall@example.test / catchall-dev-pass; alice and bob are mailbridge accounts with the fixed
  ids below, the catch-all is only a mailbox;
- API token ``dev-token`` with read, write, send, approve and metrics on alice and bob, and
  ``agent-token`` with read and write on them (its sends await approval);
- ports on 127.0.0.1: API 8025, IMAP 1143, SMTP 1587, LMTP 1124; environment variables
  MAILBRIDGE_API_PORT, MAILBRIDGE_IMAP_PORT, MAILBRIDGE_SMTP_PORT, MAILBRIDGE_LMTP_PORT override
  them (MAILBRIDGE_IMAPS_PORT opens an implicit-TLS IMAP port, off by default); the state folder
  is ``.dev/``, or MAILBRIDGE_DEV_DIR.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from mailbridge.config import Config, parse_config
from mailbridge.devstack.dovecot import Dovecot, TlsFiles, free_port, make_self_signed_cert
from mailbridge.devstack.smtp import DevSmtpServer

ALICE_ID = UUID("a11ce000-0000-4000-8000-000000000001")
BOB_ID = UUID("b0b00000-0000-4000-8000-000000000002")
DEV_TOKEN = "dev-token"
AGENT_TOKEN = "agent-token"
"""An AI agent's token on the dev stack: read and write on alice and bob, no send: its sends
await approval (dev-token approves)."""
CATCHALL = "catchall@example.test"
DEV_USERS: dict[str, str] = {
    "alice@example.test": "alice-dev-pass",
    "bob@example.test": "bob-dev-pass",
    CATCHALL: "catchall-dev-pass",
}
DEV_ACCOUNTS: tuple[tuple[UUID, str, str], ...] = (
    (ALICE_ID, "alice@example.test", "Alice Example"),
    (BOB_ID, "bob@example.test", "Bob Example"),
)


def _env_port(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        port = int(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise SystemExit(f"{name}={raw!r} is not a port number (0-65535)")
    return port


@dataclass(frozen=True)
class DevPorts:
    """The dev stack's ports on 127.0.0.1 (imaps 0 = no implicit-TLS listener)."""

    api: int = 8025
    imap: int = 1143
    smtp: int = 1587
    lmtp: int = 1124
    imaps: int = 0

    @classmethod
    def from_env(cls) -> DevPorts:
        """The documented defaults, overridden by MAILBRIDGE_*_PORT variables."""
        d = cls()
        return cls(
            api=_env_port("MAILBRIDGE_API_PORT", d.api),
            imap=_env_port("MAILBRIDGE_IMAP_PORT", d.imap),
            smtp=_env_port("MAILBRIDGE_SMTP_PORT", d.smtp),
            lmtp=_env_port("MAILBRIDGE_LMTP_PORT", d.lmtp),
            imaps=_env_port("MAILBRIDGE_IMAPS_PORT", d.imaps),
        )

    @classmethod
    def free(cls) -> DevPorts:
        """Free ports for everything (the test suite), implicit TLS included."""
        return cls(api=free_port(), imap=free_port(), smtp=free_port(), lmtp=free_port(),
                   imaps=free_port())


def default_state_dir() -> Path:
    return Path(os.environ.get("MAILBRIDGE_DEV_DIR") or ".dev")


@dataclass
class DevStack:
    """Dovecot + dev SMTP for a state folder; :meth:`config` is mailbridge's config for them."""

    state_dir: Path
    ports: DevPorts = field(default_factory=DevPorts)
    users: dict[str, str] = field(default_factory=lambda: dict(DEV_USERS))
    dovecot_settings: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.state_dir = self.state_dir.resolve()
        self.tls: TlsFiles | None = None
        self.dovecot = Dovecot(
            self.state_dir / "dovecot", imap_port=self.ports.imap, lmtp_port=self.ports.lmtp,
            imaps_port=self.ports.imaps, users=self.users, settings=self.dovecot_settings,
        )
        self.smtp = DevSmtpServer(
            port=self.ports.smtp, users=self.users, lmtp_host="127.0.0.1",
            lmtp_port=self.ports.lmtp, catchall=CATCHALL,
        )

    def start(self) -> None:
        """Starts Dovecot (with a self-signed certificate for STARTTLS/IMAPS) and the SMTP server."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.tls = make_self_signed_cert(self.state_dir / "tls")
        self.dovecot.tls = self.tls
        self.dovecot.start()
        try:
            self.smtp.start()
        except BaseException:
            self.dovecot.stop()
            raise

    def stop(self) -> None:
        """Stops both; leaves the state (mail, users) for the next start."""
        try:
            self.smtp.stop()
        finally:
            self.dovecot.stop()

    def wipe(self) -> None:
        """Deletes all state. The stack must be stopped."""
        self.dovecot.wipe()
        import shutil

        shutil.rmtree(self.state_dir, ignore_errors=True)

    def add_user(self, email: str, password: str, extra: str = "") -> None:
        """A new mailbox user for IMAP and SMTP AUTH, usable at once (the tests' isolation);
        ``extra``: Dovecot passwd-file extra fields for this user."""
        self.users[email] = password
        self.dovecot.add_user(email, password, extra)

    def account_entry(self, account_id: UUID, email: str, display_name: str = "",
                      **extra: Any) -> dict[str, Any]:
        """The ``[[accounts]]`` table for a dev user (plain IMAP/SMTP on loopback)."""
        password = self.users[email]
        entry: dict[str, Any] = {
            "id": str(account_id), "email": email, "display_name": display_name,
            "imap": {"host": "127.0.0.1", "port": self.ports.imap, "security": "none",
                     "username": email, "password": password},
            "smtp": {"host": "127.0.0.1", "port": self.ports.smtp, "security": "none",
                     "username": email, "password": password},
        }
        entry.update(extra)
        return entry

    def config_data(self, accounts: list[dict[str, Any]] | None = None,
                    tokens: list[Mapping[str, Any]] | None = None) -> dict[str, Any]:
        """The config as TOML-shaped data: alice and bob and the dev token unless given."""
        dev_accounts = accounts is None
        if accounts is None:
            accounts = [self.account_entry(i, e, n) for i, e, n in DEV_ACCOUNTS]
        if tokens is None:
            tokens = [{"name": "dev", "sha256": hashlib.sha256(DEV_TOKEN.encode()).hexdigest(),
                       "accounts": ["*"],
                       "scopes": ["read", "write", "send", "approve", "metrics"]}]
            if dev_accounts:  # alice's and bob's agent
                tokens.append({"name": "agent",
                               "sha256": hashlib.sha256(AGENT_TOKEN.encode()).hexdigest(),
                               "accounts": [e for _, e, _ in DEV_ACCOUNTS],
                               "scopes": ["read", "write"]})
        return {"server": {"host": "127.0.0.1", "port": self.ports.api,
                           "allow_private_webhooks": True},  # receivers on this machine
                "accounts": accounts, "tokens": list(tokens)}

    def config(self, **kwargs: Any) -> Config:
        return parse_config(self.config_data(**kwargs), source="dev stack")
