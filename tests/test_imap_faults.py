"""The IMAP layer when the server goes away: a private Dovecot that these tests kill and freeze."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import private_dovecot
from mailbridge.devstack.dovecot import Dovecot, free_port
from mailbridge.errors import ImapUnavailable
from mailbridge.imap import ImapConnection, ImapEndpoint, ImapPool

TIMEOUT = 1.5
"""Short, so the timeouts of a frozen server come fast."""
AFTER_CRASH_TIMEOUT = 30.0
"""For a server that is killed and restarted: the first SELECT after a SIGKILL waits for the dead
process's dovecot-uidlist.lock to count as stale, 2.4-3.2 s measured here on an idle machine and
over 10 s while the machine was busy installing packages; it must still succeed. A bound only: a
passing run does not wait for it. (With Dovecot's default dotlock_use_excl = yes, a kill between
creating the lock and writing its pid left an empty lock honoured for 2 minutes, in about half
the runs; the dev Dovecot links its locks into place instead, see devstack/dovecot.py.)"""


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    with private_dovecot("faults", {"f@example.test": "pw"}) as dv:
        yield dv


def endpoint_of(dv: Dovecot, timeout: float = TIMEOUT) -> ImapEndpoint:
    return ImapEndpoint(host="127.0.0.1", port=dv.imap_port, security="none",
                        username="f@example.test", password="pw", timeout=timeout,
                        label="f@example.test")


async def busy(pool: ImapPool, i: int) -> str:
    """One operation that keeps the server busy for a while: append then read back, repeatedly."""
    try:
        for _ in range(1000):
            async with pool.connection() as conn:
                await conn.append("Drafts", b"Subject: x\r\n\r\n" + b"y" * 20000 + b"\r\n")
                await conn.select("Drafts")
                await conn.uid_search("ALL")
        return "finished"
    except ImapUnavailable:
        return "unavailable"


@pytest.mark.parametrize("how", ["kill", "stop"])
async def test_server_killed_mid_flight_then_back(dovecot: Dovecot, how: str) -> None:
    """Dovecot killed (SIGKILL) or stopped (SIGTERM, it closes its clients) mid-operations."""
    pool = ImapPool(endpoint_of(dovecot, AFTER_CRASH_TIMEOUT), size=4)
    await pool.check()
    tasks = [asyncio.create_task(busy(pool, i)) for i in range(12)]
    await asyncio.sleep(0.3)  # let them get going
    killed_at = time.monotonic()
    if how == "kill":
        dovecot.kill()
    else:
        await asyncio.to_thread(dovecot.stop)
    results = await asyncio.wait_for(asyncio.gather(*tasks), timeout=AFTER_CRASH_TIMEOUT * 3)
    took = time.monotonic() - killed_at
    assert results == ["unavailable"] * 12
    # a dropped connection fails at once (a stop takes Dovecot itself ~1-3 s)
    assert took < (1.0 if how == "kill" else 6.0), f"failing took {took:.2f}s"
    # while down: fails fast, does not hang
    with pytest.raises(ImapUnavailable):
        await pool.check()
    dovecot.start()
    # back: the very next operation succeeds on the same pool, no restart of anything
    async with pool.connection() as conn:
        info = await conn.select("Drafts")
        assert info.exists > 0
    await pool.close()


async def test_server_frozen_each_operation_times_out(dovecot: Dovecot) -> None:
    pool = ImapPool(endpoint_of(dovecot), size=2)
    await pool.check()
    dovecot.pause()
    try:
        async def one(i: int) -> float:
            started = time.monotonic()
            with pytest.raises(ImapUnavailable, match=r"no answer|free within|did not complete"):
                async with pool.connection() as conn:
                    await conn.select("INBOX", force=True)
            return time.monotonic() - started

        durations = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(6))),
                                           timeout=TIMEOUT * 4)
        # the two in-flight ones time out; the queued ones give up waiting or connecting
        assert max(durations) < TIMEOUT * 2.5, durations
    finally:
        dovecot.resume()
    async with pool.connection() as conn:
        assert (await conn.select("INBOX")).exists == 0
    await pool.close()


async def test_idle_connection_dropped_is_replaced(dovecot: Dovecot) -> None:
    pool = ImapPool(endpoint_of(dovecot, AFTER_CRASH_TIMEOUT), size=1)
    await pool.check()
    dovecot.kill()
    dovecot.start()
    await asyncio.sleep(0.05)
    # the idle connection died with the old server; run() notices and uses a new one
    async def op(conn: ImapConnection) -> int:
        return (await conn.select("Drafts")).exists

    assert await pool.run(op) == 0
    await pool.close()


def test_extra_settings_reach_dovecot() -> None:
    """The bench's `--dovecot KEY=VALUE`: an extra setting is in the config Dovecot runs with."""
    dv = Dovecot(Path("/var/tmp") / f"mailbridge-settings-{uuid.uuid4().hex[:8]}",
                 imap_port=free_port(), lmtp_port=free_port(), users={"s@example.test": "pw"},
                 settings={"maildir_very_dirty_syncs": "yes"})
    dv.start()
    try:
        shown = subprocess.run(["doveconf", "-c", str(dv.config_path), "-h",
                                "maildir_very_dirty_syncs", "dotlock_use_excl"],
                               capture_output=True, text=True, check=True).stdout.split()
        assert shown == ["yes", "no"]
    finally:
        dv.kill()
        dv.wipe()
