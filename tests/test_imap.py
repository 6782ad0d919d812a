"""The IMAP layer against the real Dovecot: pool, concurrency, TLS, folders, big fetches."""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest

from conftest import MailUser, make_endpoint
from mailbridge.devstack.stack import DevStack
from mailbridge.errors import (
    ImapAuthError,
    ImapCapabilityMissing,
    ImapNotFound,
    ImapUnavailable,
)
from mailbridge.imap import ImapConnection, ImapEndpoint, ImapPool
from mailbridge.imap.responses import parse_fetch


def message(token: str, body: str | None = None, subject: str | None = None) -> bytes:
    msg = EmailMessage(policy=default_policy)
    msg["From"] = "Alice <alice@example.test>"
    msg["To"] = "bob@example.test"
    msg["Subject"] = subject or f"message {token}"
    msg["X-Token"] = token
    msg.set_content(body if body is not None else f"body of {token}\n")
    return msg.as_bytes()


async def test_login_capabilities_and_special_folders(endpoint: ImapEndpoint) -> None:
    conn = await ImapConnection.open(endpoint)
    try:
        for cap in ("IMAP4REV1", "UIDPLUS", "CONDSTORE", "MOVE", "SPECIAL-USE", "ESEARCH"):
            assert cap in conn.capabilities
        assert "AUTH=PLAIN" not in conn.capabilities or "LOGINDISABLED" not in conn.capabilities
    finally:
        await conn.logout()
    pool = ImapPool(endpoint, size=2)
    folders = await pool.folders()
    assert (folders.drafts, folders.sent, folders.trash) == ("Drafts", "Sent", "Trash")
    overridden = ImapPool(endpoint, size=1, folder_overrides={"drafts": "Entwürfe 2026"})
    assert (await overridden.folders()).drafts == "Entwürfe 2026"
    await pool.close()
    await overridden.close()


async def test_wrong_password_is_an_auth_error(devstack: DevStack, user: MailUser) -> None:
    ep = make_endpoint(devstack, user, password="not-the-password")
    with pytest.raises(ImapAuthError) as info:
        await ImapConnection.open(ep)
    assert "not-the-password" not in str(info.value)
    assert user.email in str(info.value)


async def test_refused_connection_is_unavailable(devstack: DevStack, user: MailUser) -> None:
    import socket

    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ep = make_endpoint(devstack, user, port=port)
    started = time.monotonic()
    with pytest.raises(ImapUnavailable, match="refused"):
        await ImapConnection.open(ep)
    assert time.monotonic() - started < 2


async def test_append_fetch_search_store_expunge(endpoint: ImapEndpoint) -> None:
    pool = ImapPool(endpoint, size=1)
    async with pool.connection() as conn:
        appended = await conn.append("Drafts", message("one"), flags=("\\Draft", "\\Seen"))
        assert appended is not None
        info = await conn.select("Drafts")
        assert info.uidvalidity == appended.uidvalidity and info.exists == 1
        assert info.highestmodseq is not None
        items = await conn.uid_fetch([appended.uid],
                                     "(UID FLAGS MODSEQ RFC822.SIZE INTERNALDATE BODY.PEEK[])")
        assert len(items) == 1
        item = items[0]
        assert item.uid == appended.uid
        assert item.flags is not None and {"\\Draft", "\\Seen"} <= set(item.flags)
        assert item.sections[""] == message("one").replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")
        assert item.size == len(item.sections[""])
        assert item.modseq is not None and item.internaldate is not None
        found = await conn.uid_search("HEADER", "X-Token", '"one"')
        assert found.uids == (appended.uid,)
        assert (await conn.uid_search("HEADER", "X-Token", '"nope"')).uids == ()
        esearch = await conn.uid_search("ALL", esearch=True)
        assert esearch.uids == (appended.uid,) and esearch.count == 1
        # conditional STORE (RFC 7162): a stale modseq changes nothing and reports MODIFIED
        await conn.uid_store([appended.uid], "+FLAGS.SILENT", ["$Seen1"])
        stale = await conn.uid_store([appended.uid], "+FLAGS", ["\\Deleted"],
                                     unchangedsince=item.modseq)
        assert stale.modified == (appended.uid,) and stale.changed == ()
        fresh = (await conn.uid_fetch([appended.uid], "(UID FLAGS MODSEQ)"))[0]
        assert fresh.flags is not None and "\\Deleted" not in fresh.flags
        done = await conn.uid_store([appended.uid], "+FLAGS", ["\\Deleted"],
                                    unchangedsince=fresh.modseq)
        assert done.modified == () and done.changed == (appended.uid,)
        await conn.uid_expunge([appended.uid])
        assert (await conn.uid_search("ALL")).uids == ()
        # a STORE on a UID that is gone changes nothing and says so by silence
        gone = await conn.uid_store([appended.uid], "+FLAGS", ["\\Deleted"],
                                    unchangedsince=fresh.modseq)
        assert gone.modified == () and gone.changed == ()
    await pool.close()


async def test_copy_move_and_missing_mailbox(endpoint: ImapEndpoint) -> None:
    pool = ImapPool(endpoint, size=1)
    async with pool.connection() as conn:
        a = await conn.append("Drafts", message("mv"))
        assert a is not None
        await conn.select("Drafts")
        moved = await conn.uid_move([a.uid], "Sent")
        assert moved is not None and moved.source_uids == (a.uid,) and len(moved.dest_uids) == 1
        await conn.select("Sent")
        copied = await conn.uid_copy(moved.dest_uids, "Trash")
        assert copied is not None and len(copied.dest_uids) == 1
        with pytest.raises(ImapNotFound):
            await conn.select("No Such Folder")
        with pytest.raises(ImapNotFound):
            await conn.append("No Such Folder", message("x"))
        # the connection is still usable after NO replies
        assert (await conn.select("Trash")).exists == 1
    assert pool.open_connections == 1
    await pool.close()


async def test_mailbox_names_with_spaces_and_non_ascii(endpoint: ImapEndpoint) -> None:
    pool = ImapPool(endpoint, size=1)
    names = ["Entwürfe 2026", "Sent Items", 'Quote "this"', "日本語/下書き", "Tom & Jerry",
             "a * b"]  # aioimaplib used to strip every "* " from untagged lines
    async with pool.connection() as conn:
        for name in names:
            await conn.create_mailbox(name)
        listed = {m.name for m in await conn.list_mailboxes()}
        assert set(names) <= listed
        for i, name in enumerate(names):
            appended = await conn.append(name, message(name, subject=f"in folder {i}"))
            assert appended is not None
            info = await conn.select(name)
            assert info.exists == 1
            item = (await conn.uid_fetch([appended.uid], "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))[0]
            assert f"in folder {i}".encode() in item.sections["HEADER.FIELDS (SUBJECT)"]
        await conn.select(names[0])
        moved = await conn.uid_move([1], names[1])
        assert moved is not None
        assert (await conn.status(names[1]))["MESSAGES"] == 2
    await pool.close()


async def test_200_concurrent_operations_keep_results_apart(endpoint: ImapEndpoint) -> None:
    """Mixed APPEND / UID FETCH / UID SEARCH through one pool: no result under another's UID."""
    pool = ImapPool(endpoint, size=4)
    seeded: dict[str, int] = {}
    async with pool.connection() as conn:
        for i in range(30):
            token = f"seed-{i:03d}-end"
            a = await conn.append("Drafts", message(token))
            assert a is not None
            seeded[token] = a.uid

    appended: dict[str, int] = {}

    async def do_append(i: int) -> None:
        token = f"new{i}-{uuid.uuid4().hex[:6]}"

        async def op(conn: ImapConnection) -> int:
            a = await conn.append("Drafts", message(token, body=f"{token}\n" * (i % 7 + 1)))
            assert a is not None
            return a.uid

        appended[token] = await pool.run(op, retry=False)

    async def do_fetch(i: int) -> None:
        token = random.choice(list(seeded))

        async def op(conn: ImapConnection) -> bytes:
            await conn.select("Drafts")
            items = await conn.uid_fetch([seeded[token]], "(UID BODY.PEEK[])")
            assert [it.uid for it in items] == [seeded[token]]
            return items[0].sections[""]

        body = await pool.run(op)
        assert f"X-Token: {token}\r\n".encode() in body

    async def do_search(i: int) -> None:
        token = random.choice(list(seeded))

        async def op(conn: ImapConnection) -> tuple[int, ...]:
            await conn.select("Drafts")
            return (await conn.uid_search("HEADER", "X-Token", f'"{token}"')).uids

        assert await pool.run(op) == (seeded[token],)

    kinds = [do_append, do_fetch, do_search]
    await asyncio.gather(*(kinds[i % 3](i) for i in range(200)))
    assert pool.open_connections <= 4
    assert len(appended) == 67 and len(set(appended.values())) == 67

    # every appended body is stored under the UID its own APPEND reported
    async with pool.connection() as conn:
        await conn.select("Drafts")
        items = await conn.uid_fetch(appended.values(), "(UID BODY.PEEK[HEADER.FIELDS (X-TOKEN)])")
        by_uid = {it.uid: it.sections["HEADER.FIELDS (X-TOKEN)"] for it in items}
        for token, uid in appended.items():
            assert by_uid[uid].strip() == f"X-Token: {token}".encode()
    await pool.close()


def seed_maildir(devstack: DevStack, user: MailUser, folder: str, count: int) -> None:
    """Writes ``count`` messages straight into the user's Maildir folder (fast seeding)."""
    base = devstack.dovecot.mail_dir / user.email / "Maildir" / f".{folder}"
    cur = base / "cur"
    for sub in ("cur", "new", "tmp"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    now = int(time.time())
    for i in range(count):
        (cur / f"{now}.M{i}P1.seed:2,S").write_bytes(
            message(f"bulk{i}", subject=f"bulk message {i}").replace(b"\n", b"\r\n"))
    if os.geteuid() == 0:
        for path in [base, *base.iterdir(), *cur.iterdir()]:
            os.chown(path, 65534, 65534)


async def test_fetch_over_5000_messages(devstack: DevStack, user: MailUser,
                                        endpoint: ImapEndpoint) -> None:
    pool = ImapPool(endpoint, size=1)
    async with pool.connection() as conn:
        await conn.create_mailbox("Bulk")
    seed_maildir(devstack, user, "Bulk", 5000)
    async with pool.connection() as conn:
        info = await conn.select("Bulk")
        assert info.exists == 5000
        uids = (await conn.uid_search("ALL", esearch=True)).uids
        assert len(uids) == 5000
        items = await conn.uid_fetch(uids, "(UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert len(items) == 5000
        subjects = {it.sections["HEADER.FIELDS (SUBJECT)"].strip() for it in items}
        assert len(subjects) == 5000
        assert all(it.flags is not None and "\\Seen" in it.flags for it in items)
        plain = await conn.uid_search("ALL")
        assert plain.uids == uids
        # one single FETCH answering 5,000 messages x 2 literals: aioimaplib's own line handler
        # recursed per line and hung here; the connection's protocol handles it in a loop
        lines = await conn.command("FETCH", f"{uids[0]}:{uids[-1]}",
                                   "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT])",
                                   prefix="UID")
        whole = parse_fetch(lines)
        assert len(whole) == 5000
        assert all(it.sections["TEXT"].startswith(b"body of bulk") for it in whole)
    await pool.close()


async def test_starttls_and_implicit_tls(devstack: DevStack, user: MailUser) -> None:
    assert devstack.tls is not None
    ca = devstack.tls.cert
    for ep in (
        make_endpoint(devstack, user, security="starttls", ca_file=ca, host="localhost"),
        make_endpoint(devstack, user, security="tls", port=devstack.ports.imaps, ca_file=ca,
                      host="localhost"),
        make_endpoint(devstack, user, security="tls", port=devstack.ports.imaps, tls_verify=False),
    ):
        conn = await ImapConnection.open(ep)
        assert "STARTTLS" not in conn.capabilities  # capabilities re-read after TLS
        assert (await conn.select("INBOX")).exists >= 0
        await conn.logout()
    # a certificate nobody vouches for is refused
    untrusted = make_endpoint(devstack, user, security="tls", port=devstack.ports.imaps,
                              host="localhost")
    with pytest.raises(ImapUnavailable, match="TLS"):
        await ImapConnection.open(untrusted)


async def test_starttls_missing_is_a_capability_error(tmp_path: Path) -> None:
    from mailbridge.devstack.dovecot import Dovecot, free_port

    state = Path("/var/tmp") / f"mailbridge-notls-{uuid.uuid4().hex[:8]}"
    dv = Dovecot(state, imap_port=free_port(), lmtp_port=free_port(), users={"u@example.test": "pw"})
    dv.start()
    try:
        ep = ImapEndpoint(host="127.0.0.1", port=dv.imap_port, security="starttls",
                          username="u@example.test", password="pw", timeout=5)
        with pytest.raises(ImapCapabilityMissing, match="STARTTLS"):
            await ImapConnection.open(ep)
    finally:
        dv.kill()
        dv.wipe()


async def test_large_append_is_written_in_chunks_and_arrives_whole(endpoint: ImapEndpoint) -> None:
    """A literal far bigger than the socket buffer goes out in chunks with flow control."""
    body = os.urandom(6 * 1024 * 1024).hex()  # 12 MB of text
    raw = (b"Subject: big\r\nX-Token: big\r\n\r\n"
           + b"\r\n".join(body[i:i + 76].encode() for i in range(0, len(body), 76)) + b"\r\n")
    pool = ImapPool(endpoint, size=1)
    async with pool.connection() as conn:
        appended = await conn.append("Drafts", raw)
        assert appended is not None
        await conn.select("Drafts")
        item = (await conn.uid_fetch([appended.uid], "(UID BODY.PEEK[])"))[0]
        assert item.sections[""] == raw
        assert (await conn.uid_search("HEADER", "X-Token", '"big"')).uids == (appended.uid,)
    await pool.close()


@pytest.mark.parametrize("caps", ["LITERAL+", "LITERAL-", "none"])
async def test_append_writes(endpoint: ImapEndpoint, caps: str) -> None:
    """A small APPEND goes out in one write with its command line where the server takes
    non-synchronizing literals (RFC 7888: any size with LITERAL+, up to 4,096 bytes with
    LITERAL-); otherwise, after the server's continuation, literal and CRLF in one write."""
    conn = await ImapConnection.open(endpoint)
    try:
        assert "LITERAL+" in conn.capabilities  # Dovecot's; the other cases are pretended
        if caps != "LITERAL+":
            conn.capabilities = conn.capabilities - {"LITERAL+"} | (
                {"LITERAL-"} if caps == "LITERAL-" else set())
        assert conn._client is not None
        transport = conn._client.protocol.transport
        writes: list[bytes] = []
        real_write = transport.write

        def spy(data: bytes) -> None:
            writes.append(bytes(data))
            real_write(data)

        transport.write = spy
        for size in (1_000, 5_000):
            token = uuid.uuid4().hex
            raw = message(token, body="x" * size).replace(b"\n", b"\r\n")
            writes.clear()
            appended = await conn.append("Drafts", raw, flags=("\\Draft", "\\Seen"))
            assert appended is not None
            nonsync = caps == "LITERAL+" or (caps == "LITERAL-" and len(raw) <= 4096)
            if nonsync:
                assert len(writes) == 1
                assert writes[0].endswith(b" {%d+}\r\n" % len(raw) + raw + b"\r\n")
            else:
                assert len(writes) == 2
                assert writes[0].endswith(b" {%d}\r\n" % len(raw))
                assert writes[1] == raw + b"\r\n"
            await conn.select("Drafts")
            item = (await conn.uid_fetch([appended.uid], "(UID FLAGS BODY.PEEK[])"))[0]
            assert item.sections[""] == raw
            assert set(item.flags or ()) >= {"\\Draft", "\\Seen"}
        # refused (no such mailbox): an error whether the literal went out already or not,
        # and the connection goes on
        with pytest.raises(ImapNotFound):
            await conn.append("No Such Folder", raw)
        assert (await conn.append("Drafts", raw)) is not None
        await conn.select("Drafts")
        assert len((await conn.uid_search("ALL")).uids) == 3
    finally:
        await conn.logout()


async def test_append_keeps_the_internaldate_given(endpoint: ImapEndpoint) -> None:
    """APPEND's date (imaplib.Time2Internaldate), with any offset, is the message's
    INTERNALDATE; a naive datetime is refused before anything is sent."""
    conn = await ImapConnection.open(endpoint)
    try:
        for when in (datetime(2026, 11, 1, 9, 5, 7, tzinfo=UTC),
                     datetime(2026, 1, 21, 23, 59, 59, tzinfo=timezone(timedelta(hours=5, minutes=30))),
                     datetime(2025, 12, 31, 0, 0, 0, tzinfo=timezone(-timedelta(hours=8, minutes=30)))):
            appended = await conn.append("Drafts", b"Subject: dated\r\n\r\nx\r\n", date=when)
            assert appended is not None
            await conn.select("Drafts")
            [item] = await conn.uid_fetch([appended.uid], "(UID INTERNALDATE)")
            assert item.internaldate == when  # the same moment (read back in UTC)
        with pytest.raises(ValueError):
            await conn.append("Drafts", b"Subject: naive\r\n\r\nx\r\n", date=datetime(2026, 1, 1))
    finally:
        await conn.logout()


async def test_a_zero_length_literal_at_the_end_of_a_read(tmp_path: Path) -> None:
    """``BODY[] {0}`` ending one TCP read, its line's ``)`` in the next (pymap answers so for a
    message expunged meanwhile): the ``)`` belongs to the same reply. It was taken for a new
    line and dropped, and the reply failed as unbalanced (502)."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK [CAPABILITY IMAP4rev1] fake\r\n")
        while line := await reader.readline():
            tag, _, rest = line.decode().partition(" ")
            command = rest.split(" ", 2)
            if command[0].upper() == "UID" and command[1].upper() == "FETCH":
                writer.write(b"* 1 FETCH (UID 7 FLAGS () BODY[] {0}\r\n")
                await writer.drain()
                await asyncio.sleep(0.1)  # a read of its own
                writer.write(b")\r\n" + f"{tag} OK done\r\n".encode())
            elif command[0].upper() == "SELECT":
                writer.write(b"* 1 EXISTS\r\n* OK [UIDVALIDITY 3] x\r\n"
                             + f"{tag} OK [READ-WRITE] done\r\n".encode())
            elif command[0].upper().startswith("CAPABILITY"):
                writer.write(b"* CAPABILITY IMAP4rev1\r\n" + f"{tag} OK done\r\n".encode())
            elif command[0].upper().startswith("LOGOUT"):
                writer.write(b"* BYE\r\n" + f"{tag} OK done\r\n".encode())
                break
            else:
                writer.write(f"{tag} OK done\r\n".encode())
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    endpoint = ImapEndpoint(host="127.0.0.1", port=port, security="none", username="u",
                            password="p", timeout=5.0, label="fake")
    try:
        conn = await ImapConnection.open(endpoint)
        try:
            await conn.select("Drafts")
            [item] = await conn.uid_fetch([7], "(UID FLAGS BODY.PEEK[])")
            assert item.uid == 7 and item.sections == {"": b""}
        finally:
            await conn.logout()
    finally:
        server.close()
        await server.wait_closed()
