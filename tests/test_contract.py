"""The draft and sending contract, through the HTTP API, against every IMAP server kind.

Dovecot (the session's), Dovecot behind a proxy that hides UIDPLUS, CONDSTORE, MOVE, ESEARCH,
UNSELECT and SPECIAL-USE, and the other servers of ``tests/servers`` (pymap, Cyrus 3.6,
Courier-IMAP 5.0), each started privately. The checks are those of ``shared/imap-servers.md``
(a-k), and l-m of our own. A server that cannot be set up here skips its tests with the reason,
except in CI, where it fails them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import imaplib
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from jasni.types import GetEmailResponse, ListEmailsResponse
from receivers import Receiver

from imap_proxy import CapabilityHidingProxy
from mailbridge.api import create_app
from mailbridge.api.keys import DRAFTS, WATCHER
from mailbridge.config import parse_config
from mailbridge.devstack.stack import DevStack
from mailbridge.imap.utf7 import encode_mailbox
from mailbridge.model import DraftContent
from mailbridge.reading import fetch_whole
from servers import REQUIRE_ALL, Mailbox, Server, running
from servers.courier_server import CourierServer
from servers.cyrus_server import CyrusServer
from servers.pymap_server import PymapServer

TOKEN = "contract-token-" + "c" * 20
MINIMAL = ("UIDPLUS", "CONDSTORE", "MOVE", "ESEARCH", "UNSELECT", "SPECIAL-USE")
KINDS = ["dovecot", "dovecot-minimal", "pymap", "cyrus", "courier"]


def _unavailable(kind: str, reason: str) -> None:
    if REQUIRE_ALL:
        pytest.fail(f"{kind} must run in CI but cannot: {reason}")
    pytest.skip(f"{kind} cannot run on this machine: {reason}")


@pytest.fixture(scope="session")
def pymap_server() -> Iterator[Server | str]:
    yield from running(PymapServer, "pymap")


@pytest.fixture(scope="session")
def cyrus_server() -> Iterator[Server | str]:
    yield from running(CyrusServer, "cyrus")


@pytest.fixture(scope="session")
def courier_server() -> Iterator[Server | str]:
    yield from running(CourierServer, "courier")


@pytest.fixture(scope="session")
def minimal_proxy(devstack: DevStack) -> Iterator[CapabilityHidingProxy]:
    proxy = CapabilityHidingProxy(devstack.ports.imap, MINIMAL).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture(params=KINDS)
def mailbox(request: pytest.FixtureRequest, devstack: DevStack) -> Mailbox:
    """A fresh user on the server kind of the test; the dev SMTP server knows it too."""
    kind: str = request.param
    email, password = f"c{uuid.uuid4().hex[:12]}@example.test", uuid.uuid4().hex
    devstack.add_user(email, password)  # SMTP AUTH (and a Dovecot mailbox)
    if kind == "dovecot":
        return Mailbox(email, password, "127.0.0.1", devstack.ports.imap)
    if kind == "dovecot-minimal":
        proxy = request.getfixturevalue("minimal_proxy")
        return Mailbox(email, password, "127.0.0.1", proxy.port,
                       folders={"drafts": "Drafts", "sent": "Sent", "trash": "Trash"})
    server = request.getfixturevalue(f"{kind}_server")
    if isinstance(server, str):
        _unavailable(kind, server)
    return server.add_user(email, password)  # type: ignore[no-any-return]


@dataclass
class Contract:
    client: TestClient  # type: ignore[type-arg]
    mailbox: Mailbox
    devstack: DevStack
    account_id: str

    async def call(self, method: str, path: str, body: Any = None,
                   params: dict[str, str] | None = None) -> tuple[int, Any]:
        async with self.client.request(method, path, json=body, params=params,
                                       headers={"Authorization": f"Bearer {TOKEN}"}) as reply:
            data = await reply.json() if reply.content_type == "application/json" else None
            return reply.status, data

    def imap(self) -> imaplib.IMAP4:
        client = imaplib.IMAP4(self.mailbox.host, self.mailbox.port)
        client.login(self.mailbox.email, self.mailbox.password)
        return client

    def messages(self, folder: str) -> list[tuple[int, str, bytes]]:
        """(uid, flags, message) of every message of ``folder`` not marked \\Deleted."""
        client = self.imap()
        try:
            typ, data = client.select(f'"{encode_mailbox(folder)}"')
            assert typ == "OK", data
            _, found = client.uid("SEARCH", "UNDELETED")
            result = []
            for uid in (found[0] or b"").split():
                _, fetched = client.uid("FETCH", uid.decode(), "(FLAGS BODY.PEEK[])")
                parts = [p for p in fetched if isinstance(p, tuple)]
                flags = re.search(rb"FLAGS \(([^)]*)\)", parts[0][0])
                result.append((int(uid), flags.group(1).decode() if flags else "", parts[0][1]))
            return result
        finally:
            client.logout()

    async def save_draft(self, raw: str, subject: str) -> dict[str, Any]:
        """Saves ``raw`` into Drafts as another mail client would (\\Seen, no \\Draft); returns
        the draft the API lists for it (by ``subject``)."""
        folder = self.mailbox.folders.get("drafts", "Drafts")
        client = self.imap()
        try:
            typ, data = client.append(f'"{encode_mailbox(folder)}"', "(\\Seen)", None,
                                      raw.encode())
            assert typ == "OK", data
        finally:
            client.logout()
        # pymap's maildir leaves a message out of other sessions' SEARCH while one renames it
        # (see check i), and a scheduler may be adopting this very draft (check l): look a few
        # times. That a list shows a draft at every step of a write is tested on Dovecot
        # (test_orphans).
        found: list[Any] = []
        for _ in range(10):
            status, listed = await self.call("GET", "/api/email/drafts",
                                             params={"from_account_id": self.account_id})
            assert status == 200, listed
            found = [i for i in listed["items"] if i["subject"] == subject]
            if found:
                break
            await asyncio.sleep(0.2)
        [item] = found
        return item  # type: ignore[no-any-return]

    def delivered(self, subject: str) -> int:
        needle = f"Subject: {subject}\r\n".encode()
        return sum(1 for m in self.devstack.smtp.delivered
                   if m.login == self.mailbox.email and needle in m.data)


async def start_contract(devstack: DevStack, mailbox: Mailbox, *, scheduler: bool = False,
                         drafts_folder: str | None = None,
                         watch: bool = False) -> tuple[Contract, TestClient]:  # type: ignore[type-arg]
    account_id = str(uuid.uuid4())
    folders = dict(mailbox.folders)
    if drafts_folder is not None:
        folders["drafts"] = drafts_folder
    account = {"id": account_id, "email": mailbox.email, "display_name": "Contract",
               "imap": {"host": mailbox.host, "port": mailbox.port, "security": "none",
                        "username": mailbox.email, "password": mailbox.password,
                        "timeout_seconds": 10.0},
               "smtp": {"host": "127.0.0.1", "port": devstack.ports.smtp, "security": "none",
                        "username": mailbox.email, "password": mailbox.password},
               "folders": folders}
    config = parse_config({
        "server": {"host": "127.0.0.1", "port": 0, "watch_mailboxes": watch,
                   "watch_poll_seconds": 0.5, "allow_private_webhooks": True},
        "accounts": [account],
        "tokens": [{"name": "contract", "sha256": hashlib.sha256(TOKEN.encode()).hexdigest(),
                    "accounts": ["*"], "scopes": ["read", "write", "send"]}],
        "scheduler": {"interval_seconds": 0.2}}, source="test")
    client = TestClient(TestServer(create_app(config, scheduler=scheduler)))
    await client.start_server()
    return Contract(client, mailbox, devstack, account_id), client


@pytest.fixture
async def contract(devstack: DevStack, mailbox: Mailbox) -> AsyncIterator[Contract]:
    c, client = await start_contract(devstack, mailbox)
    try:
        yield c
    finally:
        await client.close()


PDF = base64.b64encode(b"%PDF-1.4 contract\x00\xff").decode()


async def create_both(c: Contract) -> tuple[dict[str, Any], dict[str, Any]]:
    """b: a draft in each dialect, text + html + attachment."""
    status, j = await c.call("POST", "/api/v1/emails/drafts", {
        "account": c.mailbox.email, "to": "bob@elsewhere.test", "subject": "Jasni contract",
        "text": "Hello\n", "html": "<p>Hello</p>", "attachments": [
            {"filename": "a.pdf", "contentType": "application/pdf", "content": PDF}]})
    assert status == 201, j
    status, e = await c.call("POST", "/api/email/drafts", {
        "from_account_id": c.account_id, "to": ["carol@elsewhere.test"],
        "subject": "Exante contract", "body_text": "Hi\n", "body_html": "<b>Hi</b>",
        "context_type": "invoice", "context_id": "inv-contract",
        "attachments": [{"filename": "b.pdf", "content_type": "application/pdf",
                         "data_base64": PDF}]})
    assert status == 201, e
    return j["data"], e


async def test_a_ready(contract: Contract) -> None:
    status, body = await contract.call("GET", "/readyz")
    assert status == 200, body


async def test_b_c_d_create_get_list(contract: Contract) -> None:
    j, e = await create_both(contract)
    status, by_uid = await contract.call("GET", f"/api/v1/emails/drafts/{j['uid']}",
                                         params={"account": contract.mailbox.email})
    assert status == 200, by_uid
    draft = by_uid["data"]["draft"]
    assert draft["subject"] == "Jasni contract" and draft["text"] == "Hello\n"
    assert draft["html"] == "<p>Hello</p>" and draft["attachments"][0]["filename"] == "a.pdf"
    status, by_id = await contract.call("GET", f"/api/email/drafts/{e['uid']}")
    assert status == 200 and by_id["body_html"] == "<b>Hi</b>", by_id
    assert by_id["attachments"] == [{"filename": "b.pdf", "content_type": "application/pdf",
                                     "size": len(base64.b64decode(PDF))}]
    status, listed = await contract.call("GET", "/api/email/drafts", params={
        "from_account_id": contract.account_id, "context_type": "invoice",
        "context_id": "inv-contract"})
    assert status == 200 and [i["uid"] for i in listed["items"]] == [e["uid"]], listed


async def test_e_f_update_leaves_one_copy_and_delete(contract: Contract) -> None:
    _, e = await create_both(contract)
    status, updated = await contract.call("POST", "/api/email/drafts",
                                          {"uid": e["uid"], "subject": "Updated"})
    assert status == 200 and updated["subject"] == "Updated" and updated["body_text"] == "Hi\n"
    drafts = contract.messages(contract.mailbox.folders.get("drafts", "Drafts"))
    mine = [m for m in drafts if e["uid"].encode() in m[2]]
    assert len(mine) == 1 and b"Subject: Updated" in mine[0][2], [m[1] for m in mine]
    status, _ = await contract.call("DELETE", f"/api/email/drafts/{e['uid']}")
    assert status == 204
    status, _ = await contract.call("GET", f"/api/email/drafts/{e['uid']}")
    assert status == 404
    drafts = contract.messages(contract.mailbox.folders.get("drafts", "Drafts"))
    assert not [m for m in drafts if e["uid"].encode() in m[2]]


async def test_g_send(contract: Contract) -> None:
    _, e = await create_both(contract)
    status, sent = await contract.call("POST", f"/api/email/drafts/{e['uid']}/send")
    assert status == 200 and sent["status"] == "sent", sent
    assert contract.delivered("Exante contract") == 1
    copies = contract.messages(contract.mailbox.folders.get("sent", "Sent"))
    assert len([m for m in copies if b"Subject: Exante contract" in m[2]]) == 1
    drafts = contract.messages(contract.mailbox.folders.get("drafts", "Drafts"))
    assert not [m for m in drafts if e["uid"].encode() in m[2]]


async def test_h_a_raw_clients_draft(contract: Contract) -> None:
    """A draft another client wrote (no \\Draft flag, no mailbridge headers): listed, read
    by its derived id, updated."""
    item = await contract.save_draft(
        f"From: {contract.mailbox.email}\r\nTo: raw@elsewhere.test\r\n"
        "Subject: Raw client\r\nMessage-ID: <raw-contract@example.test>\r\n"
        "Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n\r\nRaw body.\r\n", "Raw client")
    status, updated = await contract.call("POST", "/api/email/drafts",
                                          {"uid": item["uid"], "body_text": "Edited.\n"})
    assert status == 200 and updated["uid"] == item["uid"], updated
    status, got = await contract.call("GET", f"/api/email/drafts/{item['uid']}")
    assert status == 200 and got["body_text"] == "Edited.\n" and got["subject"] == "Raw client"


async def test_i_concurrent_updates_leave_one_copy(contract: Contract,
                                                  request: pytest.FixtureRequest) -> None:
    if request.node.callspec.params.get("mailbox") == "pymap":
        # pymap 0.36's maildir leaves a message out of other sessions' SEARCH results and
        # views while its flags change (a file rename): 5 of 1,117 HEADER searches missed a
        # message whose \\Flagged another session toggled, with imaplib alone. A reader then
        # sees no current version: about 1 run in 30 answers one 404 (it was 1 in 2 before
        # mailbridge looked twice). A server bug, kept visible here rather than passed.
        request.applymarker(pytest.mark.xfail(reason="pymap maildir: see the comment above",
                                              strict=False))
    _, e = await create_both(contract)
    results = await asyncio.gather(*(contract.call("POST", "/api/email/drafts", {
        "uid": e["uid"], "subject": f"Concurrent {i}"}) for i in range(20)))
    statuses = sorted(s for s, _ in results)
    assert all(s in (200, 409) for s in statuses) and 200 in statuses, \
        [(s, b) for s, b in results if s not in (200, 409)]
    drafts = contract.messages(contract.mailbox.folders.get("drafts", "Drafts"))
    mine = [m for m in drafts if e["uid"].encode() in m[2]]
    assert len(mine) == 1, [(m[0], m[1], re.findall(rb"X-Mailbridge-(?:Replaces|Write): [^\r\n]*|"
                                                    rb"Subject: [^\r\n]*", m[2])) for m in mine]
    acknowledged = {body["subject"] for s, body in results if s == 200}
    subject = re.search(rb"Subject: ([^\r\n]*)", mine[0][2])
    assert subject and subject.group(1).decode() in acknowledged


async def test_j_planned_send_once(devstack: DevStack, mailbox: Mailbox) -> None:
    c, client = await start_contract(devstack, mailbox, scheduler=True)
    try:
        when = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
        status, e = await c.call("POST", "/api/email/drafts", {
            "from_account_id": c.account_id, "to": ["planned@elsewhere.test"],
            "subject": "Planned contract", "body_text": "Later\n", "planned_send_at": when})
        assert status == 201 and e["status"] == "scheduled", e
        deadline = time.monotonic() + 20
        got: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status, got = await c.call("GET", f"/api/email/drafts/{e['uid']}")
            if status == 200 and got["status"] == "sent" and devstack.smtp.idle:
                break  # filed into Sent, no message in the SMTP server's hands: it is over
            await asyncio.sleep(0.2)
        assert got.get("status") == "sent", got
        assert c.delivered("Planned contract") == 1
    finally:
        await client.close()


async def test_k_non_ascii_drafts_folder(devstack: DevStack, mailbox: Mailbox) -> None:
    # Courier keeps every folder under INBOX. (its only namespace)
    prefix = "INBOX." if mailbox.folders.get("drafts", "").startswith("INBOX.") else ""
    name = prefix + "Entwürfe 2026"
    client = imaplib.IMAP4(mailbox.host, mailbox.port)
    try:
        client.login(mailbox.email, mailbox.password)
        typ, data = client.create(f'"{encode_mailbox(name)}"')
        assert typ == "OK", data
    finally:
        client.logout()
    c, test_client = await start_contract(devstack, mailbox, drafts_folder=name)
    try:
        _, e = await create_both(c)
        status, got = await c.call("GET", f"/api/email/drafts/{e['uid']}")
        assert status == 200 and got["subject"] == "Exante contract"
        assert len(c.messages(name)) == 2, [(u, f, r[:600]) for u, f, r in c.messages(name)]
    finally:
        await test_client.close()


async def test_l_a_draft_without_message_id_keeps_its_id(devstack: DevStack,
                                                         mailbox: Mailbox) -> None:
    """A client's draft without Message-ID (neomutt): the scheduler writes the id it is shown
    under into it, and a re-save that keeps the headers keeps the id."""
    c, test_client = await start_contract(devstack, mailbox, scheduler=True)
    folder = mailbox.folders.get("drafts", "Drafts")
    try:
        item = await c.save_draft(
            f"From: {mailbox.email}\r\nTo: raw@elsewhere.test\r\nSubject: Nameless\r\n"
            "Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n\r\nFirst body.\r\n", "Nameless")
        deadline = time.monotonic() + 20
        adopted = None
        while adopted is None and time.monotonic() < deadline:
            copies = c.messages(folder)  # one message again (a write has two for a moment)
            if len(copies) == 1 and item["uid"].encode() in copies[0][2]:
                adopted = copies[0]
            await asyncio.sleep(0.2)
        assert adopted is not None, c.messages(folder)
        uid, _, stored = adopted
        assert b"\nMessage-ID: <" in stored
        client = c.imap()  # the client re-saves it: a new message, the old one deleted
        try:
            client.select(f'"{encode_mailbox(folder)}"')
            client.append(f'"{encode_mailbox(folder)}"', "(\\Seen)", None,
                          stored.replace(b"First body.", b"Second body."))
            client.uid("STORE", str(uid), "+FLAGS", "(\\Deleted)")
            client.expunge()
        finally:
            client.logout()
        status, got = await c.call("GET", f"/api/email/drafts/{item['uid']}")
        assert status == 200 and got["body_text"] == "Second body.\n", got
    finally:
        await test_client.close()


async def test_m_a_connection_that_has_not_seen_a_draft_yet_still_changes_it(
        devstack: DevStack, mailbox: Mailbox) -> None:
    """One pooled connection writes a draft, another one, selected on Drafts since before and
    not synced since, reads, flags and removes it: as the send flow marks delivered and files a draft
    that another connection claimed. Courier shows a session another session's new message only
    once it syncs, and ignores a STORE naming a UID it does not know yet (the filing was lost
    and the draft stayed "sending" in Drafts, about 1 send in 3): both changes must happen."""
    c, client = await start_contract(devstack, mailbox)
    folder = mailbox.folders.get("drafts", "Drafts")
    try:
        server = client.server
        assert isinstance(server, TestServer)
        drafts = server.app[DRAFTS]
        account = drafts.accounts.config.accounts[0]
        pool = drafts.accounts.pool(account)
        async with pool.connection() as one, pool.connection() as two, \
                pool.connection() as three:
            for stale in (one, two, three):
                await stale.select(folder)
            # stored on a fourth connection
            draft, _ = await drafts.create(account, DraftContent(subject="Unseen"))
            other, _ = await drafts.create(account, DraftContent(subject="Unseen too"))
            read = await fetch_whole(one, account, folder, draft.uid)
            assert read is not None and read.content.subject == "Unseen"
            await drafts.store.add_flag(two, [draft.uid], "$MailbridgeDelivered")
            [(_, flags, _)] = [m for m in c.messages(folder) if m[0] == draft.uid]
            assert "$MailbridgeDelivered" in flags
            await drafts.store.remove(three, [other.uid])
        assert [m[0] for m in c.messages(folder)] == [draft.uid]  # other: gone, or \Deleted
    finally:
        await client.close()


async def test_n_dialect_1_reads_any_folder_by_its_role_and_any_message(
        contract: Contract) -> None:
    """In dialect 1, ``folder=Drafts`` (any case) is the account's Drafts whatever the server
    calls it (``INBOX.Drafts`` on Courier), as the Jasni SDK asks for it; and a message with
    no From, Message-ID or Date is listed and read in a form the SDK's models parse."""
    status, record = await contract.call("POST", "/api/email/drafts", {
        "from_account_id": contract.account_id, "to": ["role@elsewhere.test"],
        "subject": "By role", "body_text": "x"})
    assert status == 201, record
    params = {"account": contract.account_id, "folder": "drafts"}
    status, listed = await contract.call("GET", "/api/v1/emails", params=params)
    assert status == 200, listed
    assert listed["data"]["folder"] == contract.mailbox.folders.get("drafts", "Drafts")
    [entry] = [e for e in listed["data"]["emails"] if e["subject"] == "By role"]
    status, got = await contract.call("GET", f"/api/v1/emails/{entry['uid']}",
                                      params={**params, "folder": "Drafts"})
    assert status == 200 and got["data"]["email"]["subject"] == "By role", got
    GetEmailResponse(**got["data"])

    client = contract.imap()
    try:
        typ, data = client.append("INBOX", "", None,
                                  b"To: someone@elsewhere.test\r\nSubject: Bare\r\n\r\nNo headers.\r\n")
        assert typ == "OK", data
    finally:
        client.logout()
    status, inbox = await contract.call("GET", "/api/v1/emails",
                                        params={"account": contract.account_id})
    assert status == 200, inbox
    parsed = ListEmailsResponse(**inbox["data"])
    [bare] = [e for e in parsed.emails if e.subject == "Bare"]
    assert (bare.message_id, bare.from_) == ("", "") and bare.date
    status, got = await contract.call("GET", f"/api/v1/emails/{bare.uid}",
                                      params={"account": contract.account_id})
    assert status == 200, got
    assert GetEmailResponse(**got["data"]).email.text == "No headers.\n"


async def test_a_drafts_folder_that_keeps_no_keywords_is_not_changed(
        devstack: DevStack, pymap_server: Server | str) -> None:
    """pymap's maildir keeps only the keywords its dovecot-keywords file defines (PERMANENTFLAGS
    says so). Without mailbridge's there, a change would silently lose its $MailbridgePending
    and could leave two versions: drafts are created and read, but not changed, with a 502
    naming the folder."""
    if isinstance(pymap_server, str):
        _unavailable("pymap", pymap_server)
    assert not isinstance(pymap_server, str)
    email = f"c{uuid.uuid4().hex[:12]}@example.test"
    devstack.add_user(email, "pw")
    mailbox = await asyncio.to_thread(pymap_server.add_user, email, "pw", keywords=False)
    c, client = await start_contract(devstack, mailbox)
    try:
        _, e = await create_both(c)
        status, body = await c.call("POST", "/api/email/drafts", {"uid": e["uid"],
                                                                  "subject": "Changed"})
        assert status == 502 and body["error"]["code"] == "imap_capability_missing", body
        assert "keeps no keywords" in body["error"]["message"]
        assert "'Drafts'" in body["error"]["message"]
        status, got = await c.call("GET", f"/api/email/drafts/{e['uid']}")
        assert status == 200 and got["subject"] == "Exante contract"
        assert len(c.messages("Drafts")) == 2
    finally:
        await client.close()


async def test_o_threads_attachments_and_labels(contract: Contract) -> None:
    """Issue 11's reading calls on every server: a conversation is one thread (THREAD=REFERENCES
    or mailbridge's own grouping), an attachment comes back byte for byte, as JSON and streamed,
    and a label with a name that is no keyword goes on and off a message, its registry in
    mailbridge's own folder (``INBOX.Mailbridge`` under Courier's and Cyrus' namespace). A folder
    that keeps no new keywords says so (502) instead of losing the label."""
    data = bytes(range(256)) * 300
    b64 = base64.encodebytes(data).replace(b"\n", b"\r\n")
    client = contract.imap()
    try:
        for raw in (b"Subject: Plan\r\nMessage-ID: <p1@o>\r\nDate: 01 Mar 2026 10:00 +0000\r\n\r\nA\r\n",
                    b"Subject: Re: Plan\r\nMessage-ID: <p2@o>\r\nReferences: <p1@o>\r\n"
                    b"Date: 02 Mar 2026 10:00 +0000\r\n\r\nB\r\n",
                    b"Subject: Files\r\nMessage-ID: <f@o>\r\nMIME-Version: 1.0\r\n"
                    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
                    b"Content-Type: text/plain\r\n\r\nSee.\r\n--b\r\nContent-Type: application/zip\r\n"
                    b'Content-Disposition: attachment; filename="d.zip"\r\n'
                    b"Content-Transfer-Encoding: base64\r\n\r\n" + b64 + b"--b--\r\n"):
            typ, answer = client.append("INBOX", "", None, raw)
            assert typ == "OK", answer
    finally:
        client.logout()
    params = {"account": contract.account_id}
    status, threads = await contract.call("GET", "/api/v1/emails/threads", params=params)
    assert status == 200, threads
    assert sorted((t["threadId"], t["messageCount"]) for t in threads["data"]["threads"]) == [
        ("f@o", 1), ("p1@o", 2)]
    status, inbox = await contract.call("GET", "/api/v1/emails", params=params)
    [files] = [e["uid"] for e in inbox["data"]["emails"] if e["subject"] == "Files"]
    status, one = await contract.call("GET", f"/api/v1/emails/{files}/attachments/d.zip",
                                      params=params)
    assert status == 200 and base64.b64decode(one["data"]["attachment"]["content"]) == data, one
    streamed = await contract.client.get(
        f"/api/v1/emails/{files}/attachments/0", params=params,
        headers={"Authorization": f"Bearer {TOKEN}", "Accept": "application/octet-stream"})
    assert streamed.status == 200 and await streamed.read() == data

    name = "Zu erledigen (heute)"
    status, assigned = await contract.call("POST", f"/api/v1/emails/{files}/labels",
                                           {"labels": [name]}, params=params)
    if status == 502:  # pymap's maildir keeps only the keywords it was told of
        assert assigned["code"] == "imap_capability_missing", assigned
        return
    assert status == 200, assigned
    label_id = assigned["data"]["created_labels"][0]["id"]
    status, on = await contract.call("GET", f"/api/v1/emails/{files}/labels", params=params)
    assert [lb["name"] for lb in on["data"]["labels"]] == [name], on
    status, registry = await contract.call("GET", "/api/v1/labels",
                                           params={**params, "include_count": "true"})
    assert [(lb["name"], lb["email_count"]) for lb in registry["data"]["labels"]] == [(name, 1)]
    status, gone = await contract.call("DELETE", "/api/v1/labels",
                                       params={**params, "id": label_id})
    assert status == 200, gone
    status, on = await contract.call("GET", f"/api/v1/emails/{files}/labels", params=params)
    assert on["data"]["labels"] == []


async def test_p_watching_reports_what_others_do(devstack: DevStack, mailbox: Mailbox,
                                                receiver: Receiver) -> None:
    """Issue 12's watching on every server, with IDLE or with NOOP polling: a client's draft,
    mail that arrives and a client's deletion are reported (origin mailbox) within 5 s; a
    draft the API writes and deletes is reported once, as the API's."""
    c, client = await start_contract(devstack, mailbox, watch=True)
    try:
        await client.app[WATCHER].ready()
        status, _ = await c.call("POST", "/api/email/webhooks", {
            "url": receiver.url("/p"), "events": ["draft.created", "draft.deleted",
                                                   "email.received", "email.deleted"]})
        assert status == 201

        def seen() -> list[tuple[str, str, str]]:
            return [(e["type"], e["data"]["origin"],
                     (e["data"].get("draft") or e["data"].get("email") or {})["subject"])
                    for e in receiver.events("/p")]

        async def until(wanted: list[tuple[str, str, str]]) -> None:
            deadline = time.monotonic() + 5
            while sorted(seen()) != sorted(wanted):
                if time.monotonic() > deadline:
                    pytest.fail(f"expected {wanted} within 5 s, got {seen()}")
                await asyncio.sleep(0.05)

        imap = c.imap()
        try:
            typ, data = imap.append("INBOX", "", None, b"Subject: Arrived\r\n\r\nx\r\n")
            assert typ == "OK", data
        finally:
            imap.logout()
        await c.save_draft("Subject: Client draft\r\nMessage-ID: <cd@p>\r\n\r\nx\r\n",
                           "Client draft")
        await until([("email.received", "mailbox", "Arrived"),
                     ("draft.created", "mailbox", "Client draft")])

        status, made = await c.call("POST", "/api/email/drafts", {
            "from_account_id": c.account_id, "subject": "API draft", "body_text": "x"})
        assert status == 201, made
        status, _ = await c.call("DELETE", f"/api/email/drafts/{made['uid']}")
        assert status == 204
        imap = c.imap()
        try:
            imap.select("INBOX")
            _, found = imap.uid("SEARCH", "SUBJECT", "Arrived")
            imap.uid("STORE", found[0].decode(), "+FLAGS", "(\\Deleted)")
        finally:
            imap.logout()
        await until([("email.received", "mailbox", "Arrived"),
                     ("draft.created", "mailbox", "Client draft"),
                     ("draft.created", "api", "API draft"), ("draft.deleted", "api", "API draft"),
                     ("email.deleted", "mailbox", "Arrived")])
        await asyncio.sleep(1.5)  # a deleted draft is held 1 s for a successor: nothing more
        assert len(seen()) == 5, seen()
    finally:
        await client.close()
