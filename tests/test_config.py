"""Tests for mailbridge.config: loading, defaults, error messages and secret hygiene."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mailbridge.config import (
    AccountConfig,
    Config,
    Limits,
    describe,
    format_location,
    load_config,
    parse_config,
)
from mailbridge.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"

ALICE_ID = "0b4f3c52-5d7e-4a0c-9a43-1f5e2d7c8b61"
BOB_ID = "7d2e9f10-3c4b-4e8a-b1d6-5a9c0e2f4b73"
PASSWORD = "s3cret-Pa55word"
SHA = "a" * 64


def account(email: str = "alice@example.test", account_id: str = ALICE_ID, **extra: Any) -> dict[str, Any]:
    """Return a minimal valid raw [[accounts]] entry."""
    entry: dict[str, Any] = {
        "id": account_id,
        "email": email,
        "imap": {
            "host": "imap.example.test",
            "port": 993,
            "security": "tls",
            "username": email,
            "password": PASSWORD,
        },
        "smtp": {
            "host": "smtp.example.test",
            "port": 465,
            "security": "tls",
            "username": email,
            "password_env": "MB_TEST_SMTP_PASSWORD",
        },
    }
    entry.update(extra)
    return entry


def two_accounts() -> dict[str, Any]:
    """Return a minimal valid raw config with alice (#1) and bob (#2)."""
    return {"accounts": [account(), account("bob@example.test", BOB_ID)]}


def load_text(tmp_path: Path, text: str) -> Config:
    """Write ``text`` to tmp_path/config.toml and return load_config's result (cwd-independent)."""
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def error_of(data: dict[str, Any], source: str = "config.toml") -> str:
    """Return the ConfigError message parse_config raises for ``data``."""
    with pytest.raises(ConfigError) as info:
        parse_config(data, source)
    return info.value.message


MINIMAL_TOML = f"""
[[accounts]]
id = "{ALICE_ID}"
email = "alice@example.test"

[accounts.imap]
host = "imap.example.test"
port = 993
security = "tls"
username = "alice"
password = "{PASSWORD}"

[accounts.smtp]
host = "smtp.example.test"
port = 465
security = "tls"
username = "alice"
password_env = "MB_TEST_SMTP_PASSWORD"
"""


# --- loading ---------------------------------------------------------------------------------------


def test_example_file_loads_without_password_env_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAILBRIDGE_ALICE_PASSWORD", raising=False)
    config = load_config(EXAMPLE)
    assert [a.email for a in config.accounts] == ["alice@example.org", "bob.example@gmail.com"]
    alice, bob = config.accounts
    assert alice.imap.security == "starttls"
    assert alice.imap.password_env == "MAILBRIDGE_ALICE_PASSWORD"
    assert (bob.imap.host, bob.imap.port, bob.imap.security) == ("imap.gmail.com", 993, "tls")
    assert (bob.smtp.host, bob.smtp.port, bob.smtp.security) == ("smtp.gmail.com", 465, "tls")
    assert [t.name for t in config.tokens] == ["ci", "assistant"]
    # created_at as given; without it, when the configuration was read
    assert alice.created_at == datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
    assert datetime.now(UTC) - timedelta(minutes=5) < bob.created_at <= datetime.now(UTC)
    # every token reference resolves
    for token in config.tokens:
        for ref in token.accounts:
            assert ref == "*" or config.account(ref) is not None


def test_example_file_mentions_every_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    from mailbridge.config import (
        DraftsConfig,
        Endpoint,
        Folders,
        LoggingConfig,
        ReviewConfig,
        SchedulerConfig,
        ServerConfig,
        TokenConfig,
        WebhookConfig,
    )

    sections = ("server", "scheduler", "accounts", "tokens", "limits", "imap", "smtp", "folders",
                "logging", "drafts", "webhooks", "review")
    for model in (Config, ServerConfig, Limits, SchedulerConfig, Endpoint, Folders, AccountConfig,
                  TokenConfig, LoggingConfig, DraftsConfig, WebhookConfig, ReviewConfig):
        for key in model.model_fields:
            if key in sections:
                assert f"[{key}]" in text or f"[accounts.{key}]" in text or \
                    f"[server.{key}]" in text or f"[[{key}]]" in text, \
                    f"section [{key}] is not shown in the example"
                continue
            assert f"{key} = " in text, f"{model.__name__}.{key} is not shown in config.example.toml"


def test_minimal_file_defaults(tmp_path: Path) -> None:
    config = load_text(tmp_path, MINIMAL_TOML)
    assert config.server.host == "127.0.0.1"
    assert config.server.port == 8025
    assert config.server.public_url is None
    assert config.server.limits == Limits(
        max_request_bytes=40 * 1024 * 1024,
        max_body_bytes=5 * 1024 * 1024,
        max_attachment_bytes=25 * 1024 * 1024,
        max_draft_attachments_bytes=30 * 1024 * 1024,
        max_recipients=100,
    )
    assert config.tokens == []
    (alice,) = config.accounts
    assert alice.id == UUID(ALICE_ID)
    assert alice.display_name == ""
    assert alice.sent_copy == "auto"
    assert alice.delete == "permanent"
    assert alice.pool_size == 4
    assert (alice.folders.drafts, alice.folders.sent, alice.folders.trash) == (None, None, None)
    assert alice.imap.tls_verify is True
    assert alice.imap.ca_file is None
    assert alice.imap.timeout_seconds == 10.0
    assert alice.imap.allow_plaintext is False


def test_token_defaults_and_sha256_lowercased() -> None:
    data = two_accounts()
    data["tokens"] = [{"name": "ci", "sha256": "ABCDEF" + "0" * 58, "scopes": ["read"]}]
    (token,) = parse_config(data, "x").tokens
    assert token.accounts == ["*"]
    assert token.sha256 == "abcdef" + "0" * 58


def test_models_are_frozen() -> None:
    config = parse_config(two_accounts(), "x")
    with pytest.raises(ValidationError):
        config.server.port = 1


def test_dot_test_domain_accepted_and_email_normalized() -> None:
    data = two_accounts()
    data["accounts"][0]["email"] = "alice@EXAMPLE.test"
    config = parse_config(data, "x")
    assert config.accounts[0].email == "alice@example.test"


def test_invalid_email() -> None:
    data = two_accounts()
    data["accounts"][1]["email"] = "bob-at-example.test"
    msg = error_of(data)
    assert msg.startswith("config.toml: [[accounts]] #2 email: not a valid email address")


# --- error messages name file, section and key -------------------------------------------------------


def test_unknown_key_in_server(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, "[server]\nprot = 8080\n" + MINIMAL_TOML)
    msg = info.value.message
    assert msg.startswith(f"{tmp_path / 'config.toml'}: [server] prot: unknown key")
    assert "expected one of: host, port, limits, public_url" in msg


def test_unknown_key_in_limits_and_top_level() -> None:
    data = two_accounts()
    data["server"] = {"limits": {"max_body": 1}}
    data["sever"] = {}
    msg = error_of(data)
    assert "config.toml: [server.limits] max_body: unknown key" in msg
    assert ("config.toml: sever: unknown key "
            "(expected one of: server, drafts, scheduler, logging, review, accounts, tokens, "
            "webhooks)") in msg


def test_unknown_key_in_account_subsection() -> None:
    data = two_accounts()
    data["accounts"][1]["imap"]["hots"] = "x"
    msg = error_of(data)
    assert msg.startswith("config.toml: [[accounts]] #2 (bob@example.test) imap.hots: unknown key")


def test_port_out_of_range_in_second_account(tmp_path: Path) -> None:
    text = MINIMAL_TOML + MINIMAL_TOML.replace(ALICE_ID, BOB_ID).replace("alice", "bob").replace(
        "port = 993", "port = 99300"
    )
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    assert info.value.message == (
        f"{tmp_path / 'config.toml'}: [[accounts]] #2 (bob@example.test) imap.port: "
        "Input should be less than or equal to 65535"
    )


def test_port_wrong_type_in_second_account() -> None:
    data = two_accounts()
    data["accounts"][1]["imap"]["port"] = "imap"
    msg = error_of(data)
    assert msg == (
        "config.toml: [[accounts]] #2 (bob@example.test) imap.port: "
        "Input should be a valid integer, unable to parse string as an integer"
    )


def test_missing_accounts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, "[server]\nport = 8080\n")
    assert info.value.message.startswith(f"{tmp_path / 'config.toml'}: [[accounts]]: required")
    assert "at least one [[accounts]]" in info.value.message


def test_accounts_written_as_single_table() -> None:
    data = {"accounts": account()}
    assert error_of(data) == (
        "config.toml: [[accounts]]: must be an array of tables: write [[accounts]], not [accounts]"
    )


def test_missing_required_key() -> None:
    data = two_accounts()
    del data["accounts"][0]["smtp"]["host"]
    assert error_of(data) == (
        "config.toml: [[accounts]] #1 (alice@example.test) smtp.host: required key is missing"
    )


def test_bad_security_value() -> None:
    data = two_accounts()
    data["accounts"][0]["smtp"]["security"] = "ssl"
    assert error_of(data) == (
        "config.toml: [[accounts]] #1 (alice@example.test) smtp.security: "
        "Input should be 'tls', 'starttls' or 'none'"
    )


def test_both_password_keys() -> None:
    data = two_accounts()
    data["accounts"][1]["imap"]["password_env"] = "BOB_PASSWORD"
    msg = error_of(data)
    assert msg.startswith("config.toml: [[accounts]] #2 (bob@example.test) imap: ")
    assert "exactly one of password or password_env" in msg
    assert "both were given" in msg
    assert PASSWORD not in msg


def test_neither_password_key() -> None:
    data = two_accounts()
    del data["accounts"][1]["smtp"]["password_env"]
    msg = error_of(data)
    assert msg.startswith("config.toml: [[accounts]] #2 (bob@example.test) smtp: ")
    assert "exactly one of password or password_env" in msg
    assert "neither was given" in msg


@pytest.mark.parametrize("host", ["imap.example.test", "10.0.0.1", "::2", "localhost.example.test"])
def test_plaintext_to_non_loopback_host_rejected(host: str) -> None:
    data = two_accounts()
    data["accounts"][0]["imap"].update(host=host, port=143, security="none")
    msg = error_of(data)
    assert msg.startswith("config.toml: [[accounts]] #1 (alice@example.test) imap: ")
    assert "in clear" in msg
    assert "allow_plaintext" in msg


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST", "127.0.0.1", "127.8.9.10", "::1"])
def test_plaintext_to_loopback_allowed(host: str) -> None:
    data = two_accounts()
    data["accounts"][0]["imap"].update(host=host, port=143, security="none")
    assert parse_config(data, "x").accounts[0].imap.security == "none"


def test_plaintext_allowed_explicitly() -> None:
    data = two_accounts()
    data["accounts"][0]["smtp"].update(host="10.0.0.1", port=25, security="none", allow_plaintext=True)
    assert parse_config(data, "x").accounts[0].smtp.allow_plaintext is True


def test_duplicate_account_ids() -> None:
    data = {"accounts": [account(), account("bob@example.test", ALICE_ID)]}
    msg = error_of(data)
    assert msg.startswith(
        "config.toml: [[accounts]] #2 (bob@example.test) id: same id as [[accounts]] #1 (alice@example.test)"
    )


def test_duplicate_account_emails_ignoring_case() -> None:
    data = {"accounts": [account(), account("Alice@Example.test", BOB_ID)]}
    msg = error_of(data)
    assert msg.startswith(
        "config.toml: [[accounts]] #2 (Alice@example.test) email: same address as [[accounts]] #1"
    )


def test_token_referencing_unknown_account() -> None:
    data = two_accounts()
    data["tokens"] = [{"name": "ci", "sha256": SHA, "accounts": ["carol@example.test"], "scopes": ["read"]}]
    msg = error_of(data)
    assert msg.startswith("config.toml: [[tokens]] #1 (ci) accounts: 'carol@example.test' is not the id")


def test_duplicate_token_names_and_hashes() -> None:
    data = two_accounts()
    data["tokens"] = [
        {"name": "ci", "sha256": SHA, "scopes": ["read"]},
        {"name": "ci", "sha256": SHA.upper(), "scopes": ["send"]},
    ]
    lines = error_of(data).splitlines()
    assert lines == [
        "config.toml: [[tokens]] #2 (ci) name: same name as [[tokens]] #1",
        "config.toml: [[tokens]] #2 (ci) sha256: same hash as [[tokens]] #1 (ci); "
        "every token needs its own secret",
    ]


@pytest.mark.parametrize("sha", ["abc", "g" * 64, "a" * 65, ""])
def test_bad_sha256(sha: str) -> None:
    data = two_accounts()
    data["tokens"] = [{"name": "ci", "sha256": sha, "scopes": ["read"]}]
    msg = error_of(data)
    assert msg.startswith("config.toml: [[tokens]] #1 (ci) sha256: must be the SHA-256")
    assert "printf %s 'TOKEN' | sha256sum" in msg


def test_bad_scope() -> None:
    data = two_accounts()
    data["tokens"] = [{"name": "ci", "sha256": SHA, "scopes": ["read", "admin"]}]
    assert error_of(data) == (
        "config.toml: [[tokens]] #1 (ci) scopes #2: Input should be 'read', 'write', 'send', "
        "'approve' or 'metrics'"
    )


def test_duplicate_and_empty_scopes() -> None:
    data = two_accounts()
    data["tokens"] = [
        {"name": "a", "sha256": SHA, "scopes": ["read", "send", "read"]},
        {"name": "b", "sha256": "b" * 64, "scopes": []},
    ]
    lines = error_of(data).splitlines()
    assert lines[0] == "config.toml: [[tokens]] #1 (a) scopes: listed more than once: read"
    assert lines[1].startswith("config.toml: [[tokens]] #2 (b) scopes: List should have at least 1 item")


def test_blank_token_name() -> None:
    data = two_accounts()
    data["tokens"] = [{"name": "  ", "sha256": SHA, "scopes": ["read"]}]
    assert error_of(data) == "config.toml: [[tokens]] #1 name: must not be blank"


@pytest.mark.parametrize("value", ["Alice\r\nBcc: evil@example.test", "Alice\n", "A\rB"])
def test_line_breaks_rejected_in_header_strings(value: str) -> None:
    data = two_accounts()
    data["accounts"][0]["display_name"] = value
    data["accounts"][1]["folders"] = {"sent": value}
    lines = error_of(data).splitlines()
    assert lines == [
        "config.toml: [[accounts]] #1 (alice@example.test) display_name: "
        "must not contain a line break (CR or LF) or NUL character",
        "config.toml: [[accounts]] #2 (bob@example.test) folders.sent: "
        "must not contain a line break (CR or LF) or NUL character",
    ]


def test_limits_and_ranges() -> None:
    data = two_accounts()
    data["server"] = {"port": -1, "limits": {"max_recipients": 0}}
    data["accounts"][0]["pool_size"] = 65
    data["accounts"][0]["imap"]["timeout_seconds"] = 0
    lines = error_of(data).splitlines()
    assert lines == [
        "config.toml: [server] port: Input should be greater than or equal to 0",
        "config.toml: [server.limits] max_recipients: Input should be greater than 0",
        "config.toml: [[accounts]] #1 (alice@example.test) imap.timeout_seconds: "
        "Input should be greater than 0",
        "config.toml: [[accounts]] #1 (alice@example.test) pool_size: "
        "Input should be less than or equal to 64",
    ]


def test_all_problems_collected_one_per_line() -> None:
    data = two_accounts()
    data["server"] = {"prot": 1}
    data["accounts"][0]["sent_copy"] = "always"
    data["accounts"][1]["imap"]["port"] = 0
    lines = error_of(data).splitlines()
    assert len(lines) == 3
    assert all(line.startswith("config.toml: ") for line in lines)


def test_public_url() -> None:
    data = two_accounts()
    data["server"] = {"public_url": "https://api.example.test/"}
    assert parse_config(data, "x").server.public_url == "https://api.example.test"
    data["server"] = {"public_url": "api.example.test"}
    assert error_of(data) == "config.toml: [server] public_url: must be an absolute http:// or https:// URL"


def test_ca_file_relative_to_config_file(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not checked here\n", encoding="utf-8")
    text = MINIMAL_TOML.replace(
        'security = "tls"\nusername = "alice"\npassword =',
        ('security = "tls"\nca_file = "ca.pem"\nusername = "alice"\npassword ='),
        1,
    )
    config = load_text(tmp_path, text)
    assert config.accounts[0].imap.ca_file == (tmp_path / "ca.pem").resolve()


def test_ca_file_missing() -> None:
    data = two_accounts()
    data["accounts"][0]["imap"]["ca_file"] = "/nonexistent/ca.pem"
    msg = error_of(data)
    assert msg == (
        "config.toml: [[accounts]] #1 (alice@example.test) imap.ca_file: file not found: /nonexistent/ca.pem"
    )


def test_toml_syntax_error_names_line(tmp_path: Path) -> None:
    text = MINIMAL_TOML.replace("port = 465", "port = = 465")
    line = text.splitlines().index("port = = 465") + 1
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    assert info.value.message.startswith(f"{tmp_path / 'config.toml'}: line {line}: TOML syntax error: ")


def test_toml_syntax_error_at_end_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, '[server]\nhost = "127.0.0.1')
    assert info.value.message.startswith(f"{tmp_path / 'config.toml'}: line 2: TOML syntax error: ")


def test_file_not_found(tmp_path: Path) -> None:
    path = tmp_path / "missing.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.message == f"{path}: file not found"


def test_directory_and_non_utf8(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[server]\nhost = "caf\xe9"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.message == f"{path}: line 2: not valid UTF-8 (TOML files must be UTF-8)"


def test_source_name_used_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("config.toml").write_text("[server]\nprot = 1\n" + MINIMAL_TOML, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config("config.toml")
    assert info.value.message.startswith("config.toml: [server] prot: unknown key")


def test_format_location() -> None:
    data = two_accounts()
    data["tokens"] = [{"name": "ci"}]
    assert (
        format_location(("accounts", 1, "imap", "port"), data)
        == "[[accounts]] #2 (bob@example.test) imap.port"
    )
    assert format_location(("accounts", 5, "id"), data) == "[[accounts]] #6 id"
    assert format_location(("accounts",), data) == "[[accounts]]"
    assert format_location(("tokens", 0, "scopes", 2), data) == "[[tokens]] #1 (ci) scopes #3"
    assert format_location(("server", "prot"), data) == "[server] prot"
    assert format_location(("server", "limits", "max_body_bytes"), data) == "[server.limits] max_body_bytes"
    assert format_location(("server",), data) == "[server]"
    assert format_location(("extra",), data) == "extra"
    assert format_location((), data) == ""


# --- secrets ---------------------------------------------------------------------------------------


def test_password_in_wrong_field_not_in_message() -> None:
    data = two_accounts()
    data["accounts"][0]["imap"]["port"] = PASSWORD
    data["accounts"][0]["imap"]["timeout_seconds"] = PASSWORD
    data["accounts"][0]["smtp"]["password_env"] = PASSWORD
    data["accounts"][1]["pasword"] = PASSWORD
    data["accounts"][1]["email"] = PASSWORD  # its label is built from raw data
    data["tokens"] = [{"name": "ci", "sha256": PASSWORD, "scopes": ["read"]}]
    msg = error_of(data)
    assert len(msg.splitlines()) == 6
    assert PASSWORD not in msg
    assert "s3cret" not in msg


def test_password_masked_even_if_reused_as_label() -> None:
    secret = "alice@example.test"  # pathological: the password equals the address used as label
    data = two_accounts()
    data["accounts"][0]["imap"]["password"] = secret
    data["accounts"][0]["imap"]["port"] = "x"
    assert secret not in error_of(data)


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\0"), min_size=4))
def test_password_never_in_any_message(password: str) -> None:
    assume(password not in "**********")  # the mask itself; such a password would show as the mask
    data = two_accounts()
    for endpoint in ("imap", "smtp"):
        data["accounts"][1][endpoint].pop("password_env", None)
        data["accounts"][1][endpoint]["password"] = password
        data["accounts"][1][endpoint]["port"] = password
        data["accounts"][1][endpoint]["security"] = password
    data["accounts"][1][password] = password
    data["tokens"] = [{"name": "t", "sha256": password, "scopes": [password]}]
    assert password not in error_of(copy.deepcopy(data))


def test_password_with_line_break_rejected_without_quoting_it() -> None:
    data = two_accounts()
    data["accounts"][0]["imap"]["password"] = "abc\r\ndef-secret"
    msg = error_of(data)
    assert msg == (
        "config.toml: [[accounts]] #1 (alice@example.test) imap.password: "
        "must not contain a line break (CR or LF) or NUL character"
    )


def test_no_secret_in_repr_str_or_describe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MB_TEST_SMTP_PASSWORD", "env-secret-value")
    data = two_accounts()
    data["tokens"] = [{"name": "ci", "sha256": SHA, "scopes": ["read"]}]
    config = parse_config(data, "x")
    for text in (repr(config), str(config), describe(config), repr(config.accounts[0].imap)):
        assert PASSWORD not in text
        assert "env-secret-value" not in text
        assert SHA not in text
    assert config.accounts[0].imap.password_value() == PASSWORD


def test_describe_summarises() -> None:
    data = two_accounts()
    data["server"] = {"host": "::", "port": 8080}
    data["accounts"][0]["folders"] = {"drafts": "Entwürfe"}
    data["tokens"] = [{"name": "ci", "sha256": SHA, "accounts": [BOB_ID], "scopes": ["read", "send"]}]
    text = describe(parse_config(data, "x"))
    assert text.startswith("server: http://[::]:8080\n")
    assert ALICE_ID in text
    assert "alice@example.test" in text
    assert "imap.example.test:993 tls" in text
    assert "smtp.example.test:465 tls" in text
    assert "password from $MB_TEST_SMTP_PASSWORD" in text
    assert "drafts='Entwürfe'" in text
    assert f"ci: accounts {BOB_ID}; scopes read, send" in text


def test_load_error_message_has_no_password(tmp_path: Path) -> None:
    text = MINIMAL_TOML.replace("port = 993", f'port = "{PASSWORD}"')
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    assert "imap.port" in info.value.message
    assert PASSWORD not in info.value.message


# --- password_env ----------------------------------------------------------------------------------


def test_password_env_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MB_TEST_SMTP_PASSWORD", raising=False)
    smtp = parse_config(two_accounts(), "x").accounts[0].smtp
    monkeypatch.setenv("MB_TEST_SMTP_PASSWORD", "from-env")
    assert smtp.password_value() == "from-env"
    monkeypatch.setenv("MB_TEST_SMTP_PASSWORD", "changed")
    assert smtp.password_value() == "changed"


@pytest.mark.parametrize("value", [None, ""])
def test_password_env_unset_or_empty(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("MB_TEST_SMTP_PASSWORD", raising=False)
    else:
        monkeypatch.setenv("MB_TEST_SMTP_PASSWORD", value)
    smtp = parse_config(two_accounts(), "x").accounts[0].smtp
    with pytest.raises(ConfigError) as info:
        smtp.password_value()
    assert "MB_TEST_SMTP_PASSWORD" in info.value.message
    assert "unset or empty" in info.value.message


def test_password_env_must_be_a_variable_name() -> None:
    data = two_accounts()
    data["accounts"][0]["smtp"]["password_env"] = "not a name!"
    msg = error_of(data)
    assert msg.startswith(
        "config.toml: [[accounts]] #1 (alice@example.test) smtp.password_env: must be the name"
    )
    assert "not a name!" not in msg


# --- lookup ----------------------------------------------------------------------------------------


def test_account_lookup() -> None:
    config = parse_config(two_accounts(), "x")
    alice, bob = config.accounts
    assert config.account(ALICE_ID) is alice
    assert config.account(BOB_ID.upper()) is bob
    assert config.account("bob@example.test") is bob
    assert config.account("BOB@EXAMPLE.TEST") is bob
    assert config.account("carol@example.test") is None
    assert config.account("0b4f3c52-0000-4a0c-9a43-1f5e2d7c8b61") is None
    assert config.account("") is None
    assert config.account("*") is None


def test_token_may_reference_account_by_id_or_email_any_case() -> None:
    data = two_accounts()
    data["tokens"] = [
        {"name": "ci", "sha256": SHA, "accounts": [ALICE_ID.upper(), "BOB@example.test"], "scopes": ["read"]}
    ]
    assert parse_config(data, "x").tokens[0].accounts == [ALICE_ID.upper(), "BOB@example.test"]


def test_config_built_in_code() -> None:
    config = parse_config(two_accounts(), "devstack")
    assert isinstance(config.accounts[0], AccountConfig)
    with pytest.raises(ConfigError, match=r"^devstack: \[\[accounts\]\]: "):
        parse_config({"accounts": []}, "devstack")


def test_static_webhooks_are_checked_like_the_apis() -> None:
    data = two_accounts()
    good = {"url": "https://hooks.example.test/x", "events": ["draft.sent"],
            "secret": "whsec_" + "A" * 43 + "="}
    data["webhooks"] = [good, {**good, "url": "http://127.0.0.1/x"},
                        {**good, "events": ["draft.sent", "nope"]},
                        {**good, "secret": "not base64 at all!!"},
                        {**good, "scheme": "jasni", "events": ["draft.sent"],
                         "secret": "a-long-enough-secret"},
                        {**good, "accounts": ["carol@example.test"]}]
    msg = error_of(data)
    assert "[[webhooks]] #1" not in msg
    assert "[[webhooks]] #2 url: 127.0.0.1 is a loopback or private address" in msg
    assert "[[webhooks]] #3 events[1]: unknown event 'nope'" in msg
    assert "[[webhooks]] #4 secret: a Standard Webhooks secret is whsec_ and the base64" in msg
    assert "[[webhooks]] #5 events[0]: unknown event 'draft.sent'" in msg  # not a Jasni name
    assert "[[webhooks]] #6 accounts: no account 'carol@example.test'" in msg
    data["webhooks"] = [good]
    assert parse_config(data, "config.toml").webhooks[0].accounts == ["*"]
