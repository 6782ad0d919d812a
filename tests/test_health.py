"""GET /healthz and /readyz against the real Dovecot, and secrets kept out of logs."""

from __future__ import annotations

import logging
import uuid

import pytest
from aiohttp.test_utils import TestClient, TestServer

from conftest import MailUser
from mailbridge.api import create_app
from mailbridge.devstack.stack import DevStack


async def client_for(app_config: object) -> TestClient:  # type: ignore[type-arg]
    client = TestClient(TestServer(create_app(app_config)))  # type: ignore[arg-type]
    await client.start_server()
    return client


async def test_healthz_needs_nothing(devstack: DevStack, user: MailUser) -> None:
    config = devstack.config(accounts=[devstack.account_entry(user.id, user.email)])
    client = await client_for(config)
    try:
        resp = await client.get("/healthz")
        assert resp.status == 200
        assert await resp.json() == {"status": "ok"}
    finally:
        await client.close()


async def test_readyz_ok_when_every_account_logs_in(devstack: DevStack, user: MailUser) -> None:
    config = devstack.config(accounts=[devstack.account_entry(user.id, user.email)])
    client = await client_for(config)
    try:
        resp = await client.get("/readyz")
        assert resp.status == 200
        body = await resp.json()
        assert body["status"] == "ready"
        assert body["accounts"] == [{"id": str(user.id), "email": user.email, "imap": "ok"}]
    finally:
        await client.close()


async def test_readyz_names_the_account_with_a_wrong_password(
    devstack: DevStack, user: MailUser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = f"wrong-{uuid.uuid4().hex}"
    good = devstack.account_entry(user.id, user.email)
    other_id = uuid.uuid4()
    bad = devstack.account_entry(other_id, "alice@example.test")
    bad["imap"]["password"] = wrong
    bad["smtp"]["password"] = wrong
    client = await client_for(devstack.config(accounts=[good, bad]))
    try:
        resp = await client.get("/readyz")
        text = await resp.text()
        assert resp.status == 503
        body = await resp.json()
        assert body["status"] == "unavailable"
        by_id = {a["id"]: a for a in body["accounts"]}
        assert by_id[str(user.id)]["imap"] == "ok"
        failing = by_id[str(other_id)]
        assert failing["email"] == "alice@example.test"
        assert failing["imap"] == "error"
        assert failing["code"] == "imap_auth_failed"
        assert "authentication failed" in failing["error"].lower()
        assert wrong not in text
        assert "alice-dev-pass" not in text and user.password not in text
    finally:
        await client.close()
    logged = "\n".join(r.getMessage() for r in caplog.records) + caplog.text
    assert wrong not in logged
    assert user.password not in logged


async def test_readyz_server_unavailable(devstack: DevStack, user: MailUser) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    entry = devstack.account_entry(user.id, user.email)
    entry["imap"]["port"] = dead_port
    client = await client_for(devstack.config(accounts=[entry]))
    try:
        resp = await client.get("/readyz")
        assert resp.status == 503
        account = (await resp.json())["accounts"][0]
        assert account["code"] == "imap_unavailable"
        assert "refused" in account["error"]
    finally:
        await client.close()
