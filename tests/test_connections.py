"""Connections a hostile caller opens and never uses, and running out of file descriptors:
a real `mailbridge serve` process with a low descriptor limit and a short request timeout."""

from __future__ import annotations

import contextlib
import http.client
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w

from conftest import MailUser
from mailbridge.config import parse_config
from mailbridge.devstack.dovecot import free_port
from mailbridge.devstack.stack import DevStack

ROOT = Path(__file__).resolve().parent.parent
FD_LIMIT = 128
REQUEST_TIMEOUT = 1.5


@pytest.fixture
def serve(devstack: DevStack, user: MailUser, tmp_path: Path) -> Iterator[tuple[int, Path]]:
    data = devstack.config_data(accounts=[devstack.account_entry(user.id, user.email)])
    port = free_port()
    data["server"]["port"] = port
    data["server"]["limits"] = {"request_timeout_seconds": REQUEST_TIMEOUT}
    data["scheduler"] = {"enabled": False}
    parse_config(data, source="test")
    config = tmp_path / "config.toml"
    config.write_text(tomli_w.dumps(data))
    log = tmp_path / "serve.log"

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))

    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mailbridge", "serve", "--config",
                                 str(config)], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=low_limit)
    try:
        deadline = time.monotonic() + 20
        while b"listening on" not in log.read_bytes():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield port, log
    finally:
        proc.terminate()
        proc.wait(10)


def healthz(port: int, timeout: float = 5.0) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status
    finally:
        conn.close()


def test_connections_that_send_no_request_are_closed(serve: tuple[int, Path]) -> None:
    port, _ = serve
    silent = socket.create_connection(("127.0.0.1", port))
    partial = socket.create_connection(("127.0.0.1", port))
    partial.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
    slow_body = socket.create_connection(("127.0.0.1", port))
    slow_body.sendall(b"POST /api/email/drafts HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                      b"Authorization: Bearer dev-token\r\nContent-Type: application/json\r\n\r\n{")
    started = time.monotonic()
    for s in (silent, partial, slow_body):
        s.settimeout(REQUEST_TIMEOUT * 4)
        answer = b""
        with contextlib.suppress(ConnectionError):
            while chunk := s.recv(4096):
                answer += chunk
        s.close()
        if s is slow_body:  # answered, then closed once aiohttp's lingering time is over
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        else:
            assert answer == b"", answer[:200]
    took = time.monotonic() - started
    print(f"\nidle, half-sent and slow-body connections closed after {took:.1f}s "
          f"(request_timeout_seconds = {REQUEST_TIMEOUT})")
    assert took < REQUEST_TIMEOUT * 4
    assert healthz(port) == 200


def test_running_out_of_file_descriptors_is_survived_and_logged_once(
        serve: tuple[int, Path]) -> None:
    port, log = serve
    before = log.stat().st_size
    hogs = []
    for _ in range(FD_LIMIT * 2):  # more than the process may hold
        with contextlib.suppress(OSError):
            hogs.append(socket.create_connection(("127.0.0.1", port), timeout=2))
    time.sleep(2.5)  # asyncio retries accept() about once a second meanwhile
    grown = log.stat().st_size - before
    text = log.read_text()[before:]
    for s in hogs:
        s.close()
    # the idle ones are closed by the request timeout anyway; the service answers again
    deadline = time.monotonic() + 15
    while True:
        try:
            if healthz(port, timeout=2) == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the service did not recover"
        time.sleep(0.2)
    print(f"\n{len(hogs)} connections opened against a limit of {FD_LIMIT}; log grew by "
          f"{grown} bytes")
    assert text.count("out of file descriptors") == 1, text[-2000:]  # seen, and once
    assert grown < 5000, text[-2000:]
