"""DraftService against the real Dovecot: storage, lookup, listing, replace, delete."""

from __future__ import annotations

import asyncio
import imaplib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from conftest import MailUser
from mailbridge.accounts import Accounts
from mailbridge.config import AccountConfig
from mailbridge.devstack.stack import DevStack
from mailbridge.drafts import DraftService, Expected
from mailbridge.errors import Conflict, NotFound, PreconditionFailed
from mailbridge.model import Address, Attachment, DraftContent, Status
from mailbridge.views import DraftQuery


@pytest.fixture
async def service(devstack: DevStack, user: MailUser) -> AsyncIterator[tuple[DraftService, AccountConfig]]:
    config = devstack.config(accounts=[devstack.account_entry(user.id, user.email, "Test User")])
    accounts = Accounts(config)
    yield DraftService(accounts), config.accounts[0]
    await accounts.close()


def imap_client(devstack: DevStack, user: MailUser) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", devstack.ports.imap)
    client.login(user.email, user.password)
    return client


def drafts_on_server(devstack: DevStack, user: MailUser) -> list[tuple[int, bytes, bytes]]:
    """(uid, flags, whole message) of every undeleted message in Drafts, by plain imaplib."""
    client = imap_client(devstack, user)
    try:
        client.select("Drafts")
        _, data = client.uid("SEARCH", "UNDELETED")
        uids = [int(u) for u in data[0].split()]
        result = []
        for uid in uids:
            _, fetched = client.uid("FETCH", str(uid), "(FLAGS BODY.PEEK[])")
            meta, body = fetched[0]  # type: ignore[misc]
            result.append((uid, meta, body))
        return result
    finally:
        client.logout()


CONTENT = DraftContent(
    to=(Address("bob@example.test", "Bob"),), cc=(Address("carol@example.test"),),
    bcc=(Address("dave@example.test"),), subject="Invoice 42 – März",  # noqa: RUF001
    text="Hello Bob,\nplease find the invoice.\n", html="<p>Hello Bob</p>",
    attachments=(Attachment("Übersicht März.pdf", "application/pdf", b"%PDF-1.4 fake\x00\xff"),),
    context_type="invoice", context_id="inv-42",
)


async def test_create_is_a_real_draft_on_the_server(service, devstack, user) -> None:  # type: ignore[no-untyped-def]
    svc, account = service
    draft, created = await svc.create(account, CONTENT)
    assert created
    assert draft.status is Status.DRAFT
    assert draft.content.subject == CONTENT.subject
    assert draft.content.attachments[0].data == CONTENT.attachments[0].data
    on_server = drafts_on_server(devstack, user)
    assert len(on_server) == 1
    uid, flags, body = on_server[0]
    assert uid == draft.uid
    assert b"\\Draft" in flags and b"\\Seen" in flags
    assert f"X-Mailbridge-Id: {draft.id}".encode() in body
    assert b"Message-ID: <" in body and b"@example.test>" in body
    assert b"Bcc: dave@example.test" in body


async def test_get_by_id_and_uid_list_and_filters(service) -> None:  # type: ignore[no-untyped-def]
    svc, account = service
    a, _ = await svc.create(account, CONTENT)
    b, _ = await svc.create(account, DraftContent(to=(Address("x@example.test"),), subject="other",
                                                  text="plain", context_type="order",
                                                  context_id="o-1"))
    c, _ = await svc.create(account, DraftContent(subject="later", planned_send_at=datetime(
        2030, 1, 1, 9, 0, tzinfo=UTC)))
    assert (await svc.get(account, a.id)).uid == a.uid
    assert (await svc.get(account, a.uid)).id == a.id
    with pytest.raises(NotFound):
        await svc.get(account, uuid.uuid4())
    with pytest.raises(NotFound):
        await svc.get(account, 999999)

    page = await svc.list(account, DraftQuery(limit=2))
    assert [m.id for m in page.items] == [c.id, b.id]
    assert page.total == 3 and page.next is not None
    rest = await svc.list(account, DraftQuery(limit=2, after=page.next))
    assert [m.id for m in rest.items] == [a.id] and rest.next is None
    listed = rest.items[0]
    assert listed.content.text == CONTENT.text and listed.content.html == CONTENT.html
    assert [x.filename for x in listed.attachments] == ["Übersicht März.pdf"]
    assert listed.has_attachments

    by_context = await svc.list(account, DraftQuery(context_type="invoice", context_id="inv-42"))
    assert [m.id for m in by_context.items] == [a.id]
    assert [m.id for m in (await svc.list(account, DraftQuery(status=Status.SCHEDULED))).items] == [c.id]
    assert {m.id for m in (await svc.list(account, DraftQuery(status=Status.DRAFT))).items} == {a.id, b.id}
    assert [m.id for m in (await svc.list(account, DraftQuery(recipient="x@example.test"))).items] == [b.id]
    assert [m.id for m in (await svc.list(account, DraftQuery(subject="März"))).items] == [a.id]


async def test_replace_keeps_identity_and_untouched_attachments(service, devstack, user) -> None:  # type: ignore[no-untyped-def]
    svc, account = service
    draft, _ = await svc.create(account, CONTENT)
    seen_uids = {draft.uid}
    current = draft
    for i in range(20):
        current = await svc.replace(account, draft.id, {"subject": f"v{i}"})
        assert current.id == draft.id
        assert current.uid not in seen_uids
        seen_uids.add(current.uid)
    assert current.parsed.message_id == draft.parsed.message_id
    assert current.created_at == draft.created_at
    assert current.content.attachments == CONTENT.attachments
    assert current.content.subject == "v19"
    with pytest.raises(NotFound):
        await svc.get(account, draft.uid)
    assert len(drafts_on_server(devstack, user)) == 1
    scheduled = await svc.replace(account, draft.id, {
        "planned_send_at": datetime.now(UTC) + timedelta(days=1)})
    assert scheduled.status is Status.SCHEDULED
    cleared = await svc.replace(account, draft.id, {"planned_send_at": None, "attachments": ()})
    assert cleared.status is Status.DRAFT and cleared.attachments == ()


async def test_if_match_and_conflicts(service, devstack, user) -> None:  # type: ignore[no-untyped-def]
    svc, account = service
    draft, _ = await svc.create(account, CONTENT)
    newer = await svc.replace(account, draft.id, {"subject": "newer"},
                              expected=Expected(frozenset({draft.etag})))
    with pytest.raises(PreconditionFailed):
        await svc.replace(account, draft.id, {"subject": "stale"}, expected=Expected(frozenset({draft.etag})))
    with pytest.raises(PreconditionFailed):
        await svc.delete(account, draft.id, expected=Expected(frozenset({draft.etag})))
    assert (await svc.get(account, draft.id)).content.subject == "newer"
    assert len(drafts_on_server(devstack, user)) == 1
    await svc.delete(account, draft.id, expected=Expected(frozenset({newer.etag})))
    assert drafts_on_server(devstack, user) == []


async def test_concurrent_replaces_leave_exactly_one_version(service, devstack, user) -> None:  # type: ignore[no-untyped-def]
    svc, account = service
    draft, _ = await svc.create(account, CONTENT)
    # a second instance: its own pools and cache, the same mail server
    other_accounts = Accounts(devstack.config(accounts=[devstack.account_entry(user.id, user.email)]))
    other = DraftService(other_accounts)

    async def update(i: int) -> str | None:
        try:
            await (svc if i % 2 else other).replace(account, draft.id, {"subject": f"update {i}"})
            return f"update {i}"
        except Conflict:
            return None

    try:
        results = await asyncio.gather(*(update(i) for i in range(50)))
    finally:
        await other_accounts.close()
    winners = [r for r in results if r is not None]
    assert winners
    on_server = drafts_on_server(devstack, user)
    assert len(on_server) == 1, [u for u, _, _ in on_server]
    final = await svc.get(account, draft.id)
    assert final.content.subject in winners


async def test_idempotent_create(service, devstack, user) -> None:  # type: ignore[no-untyped-def]
    svc, account = service
    results = await asyncio.gather(*(svc.create(account, CONTENT, idempotency_key="k-1")
                                     for _ in range(5)))
    assert len({d.id for d, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert len(drafts_on_server(devstack, user)) == 1
    # a second service (another instance) sees the same key on the server
    other = DraftService(svc.accounts)
    again, created = await other.create(account, CONTENT, idempotency_key="k-1")
    assert not created and again.id == results[0][0].id


THUNDERBIRD_DRAFT = (
    b"X-Mozilla-Draft-Info: internal/draft; vcard=0; receipt=0; DSN=0; uuencode=0;\r\n"
    b" attachmentreminder=0; deliveryformat=1\r\n"
    b"X-Identity-Key: id1\r\n"
    b"Message-ID: <5b0e2f3a-1111-2222-3333-444455556666@example.test>\r\n"
    b"Date: Fri, 20 Nov 2026 10:00:00 +0100\r\n"
    b"MIME-Version: 1.0\r\n"
    b"User-Agent: Mozilla Thunderbird\r\n"
    b"Content-Language: en-US\r\n"
    b"To: Bob <bob@example.test>\r\n"
    b"From: Someone <someone@example.test>\r\n"
    b"Subject: Written in Thunderbird\r\n"
    b"Content-Type: text/plain; charset=UTF-8; format=flowed\r\n"
    b"Content-Transfer-Encoding: 7bit\r\n"
    b"\r\n"
    b"Hi Bob,\r\n"
    b"this draft was written by a person.\r\n"
)


async def test_drafts_written_by_other_clients_are_operable(service, devstack, user) -> None:  # type: ignore[no-untyped-def]
    svc, account = service
    client = imap_client(devstack, user)
    try:
        # Thunderbird marks drafts by header; this one even lacks the \Draft flag
        client.append("Drafts", "(\\Seen)", None, THUNDERBIRD_DRAFT)
    finally:
        client.logout()
    page = await svc.list(account, DraftQuery())
    assert len(page.items) == 1
    listed = page.items[0]
    assert listed.content.subject == "Written in Thunderbird"
    assert listed.content.text is not None and "written by a person" in listed.content.text
    stable = listed.id
    fresh = DraftService(svc.accounts)  # no cache: found by its Message-ID
    assert (await fresh.get(account, stable)).uid == listed.uid
    updated = await fresh.replace(account, stable, {"subject": "Edited through mailbridge"})
    assert updated.id == stable
    assert any(n.lower() == "x-mozilla-draft-info" for n, _ in updated.kept_headers)
    on_server = drafts_on_server(devstack, user)
    assert len(on_server) == 1 and b"X-Mozilla-Draft-Info" in on_server[0][2]
    await svc.delete(account, stable)
    assert drafts_on_server(devstack, user) == []


async def test_a_draft_reads_the_same_on_every_connection(
        service: tuple[DraftService, AccountConfig], devstack: DevStack, user: MailUser) -> None:
    """\\Recent only says which IMAP session saw a message first (RFC 3501 2.3.2; gone from
    IMAP4rev2): whichever pooled connection reads a draft, its flags are the same."""
    svc, account = service
    client = imap_client(devstack, user)
    try:  # appended from outside, while no session has Drafts selected
        typ, data = client.append("Drafts", "(\\Draft)", None, (
            b"From: a@example.test\r\nTo: b@example.test\r\nSubject: From outside\r\n"
            b"Message-ID: <outside-1@example.test>\r\n\r\nHello\r\n"))
        assert typ == "OK", data
    finally:
        client.logout()
    [summary] = (await svc.list(account, DraftQuery())).items  # the first session to look
    again = await svc.get(account, summary.id)
    assert set(summary.flags) == set(again.flags) == {"\\Draft"}


async def test_delete_to_trash(devstack, user) -> None:  # type: ignore[no-untyped-def]
    config = devstack.config(accounts=[devstack.account_entry(user.id, user.email, delete="trash")])
    accounts = Accounts(config)
    try:
        svc, account = DraftService(accounts), config.accounts[0]
        draft, _ = await svc.create(account, CONTENT)
        await svc.delete(account, draft.id)
        with pytest.raises(NotFound):
            await svc.get(account, draft.id)
        client = imap_client(devstack, user)
        try:
            _, data = client.select("Trash")
            assert data[0] == b"1"
        finally:
            client.logout()
    finally:
        await accounts.close()


async def test_mailbox_without_mod_sequences(devstack) -> None:  # type: ignore[no-untyped-def]
    """Mailboxes whose indexes live in memory keep no mod-sequences (SELECT answers NOMODSEQ,
    RFC 7162 3.1.2): no MODSEQ is asked for, and replace falls back to checking flags."""
    user = MailUser(email=f"nomodseq{uuid.uuid4().hex[:8]}@example.test", password="pw",
                    id=uuid.uuid4())
    devstack.add_user(user.email, user.password, "userdb_mail=maildir:~/Maildir:INDEX=MEMORY")
    config = devstack.config(accounts=[devstack.account_entry(user.id, user.email)])
    accounts = Accounts(config)
    try:
        svc, account = DraftService(accounts), config.accounts[0]
        async with accounts.pool(account).connection() as conn:
            info = await conn.select("Drafts")
            assert info.nomodseq and not conn.modseq_available
        draft, _ = await svc.create(account, CONTENT)
        assert draft.modseq is None
        updated = await svc.replace(account, draft.id, {"subject": "no modseq"})
        assert (await svc.get(account, draft.id)).content.subject == "no modseq"
        assert [m.id for m in (await svc.list(account, DraftQuery())).items] == [updated.id]
        await svc.delete(account, draft.id)
        assert (await svc.list(account, DraftQuery())).items == []
    finally:
        await accounts.close()


# ------------------------------------------------- kept headers: the fast path reads as the stdlib

_HEADER_NAMES = ["X-Mailbridge-Send-State", "X-Mailbridge-Lease-Until", "X-Mailbridge-Id",
                 "X-Mailbridge-Replaces", "X-Mailbridge-Idempotency-Key", "Subject", "To",
                 "User-Agent", "X-Mozilla-Draft-Info", "Reply-To"]


def _kept_by_stdlib(block: bytes) -> tuple[tuple[str, str], ...]:
    import email.parser
    import email.policy

    from mailbridge.reading import KEPT_HEADER_PREFIXES, MIME_STATE_HEADERS

    msg = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(block)
    return tuple((n, str(v).replace("\r\n", "").replace("\n", "").strip())
                 for n, v in msg.raw_items()
                 if n.lower() not in MIME_STATE_HEADERS
                 and (n.lower().startswith(KEPT_HEADER_PREFIXES)
                      or n.lower().startswith("x-mailbridge-")))


def test_kept_headers_read_as_the_stdlib_reads_them() -> None:
    import random

    from mailbridge.reading import kept_headers

    rnd = random.Random(5)
    chars = ' \t abcXYZ<>.:;,"()=?-_0123456789@é'
    for _ in range(3000):
        lines = []
        for _ in range(rnd.randint(1, 7)):
            value = "".join(rnd.choice(chars) for _ in range(rnd.randint(0, 40)))
            if rnd.random() < 0.2:
                value += "\r\n " + "".join(rnd.choice(chars) for _ in range(5))
            lines.append(f"{rnd.choice(_HEADER_NAMES)}: {value}\r\n")
        block = ("".join(lines) + "\r\n").encode()
        assert kept_headers(block) == _kept_by_stdlib(block), block
