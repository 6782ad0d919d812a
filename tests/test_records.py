"""mailbridge's own mailbox: records any instance reads the same, two writers of one key leave
one record to read and removing the key removes both, and a message a person put there is not
a record."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from api_helpers import Api, running_api

from conftest import MailUser
from mailbridge.api.keys import CONFIG, DRAFTS
from mailbridge.devstack.stack import DevStack
from mailbridge.records import RecordBox


@pytest.fixture
async def api(devstack: DevStack, user: MailUser) -> AsyncIterator[Api]:
    async with running_api(devstack, user) as running:
        yield running


async def test_records(api: Api) -> None:
    account = api.client.app[CONFIG].accounts[0]
    box, other = RecordBox(api.client.app[DRAFTS].store), RecordBox(api.client.app[DRAFTS].store)
    assert await box.read(account, "label") == []  # no folder yet
    await asyncio.gather(box.add(account, "label", "Same", {"name": "first"}),
                         other.add(account, "label", "Same", {"name": "second"}))
    await box.add(account, "label", "Else", {"name": "Ünïcode", "n": 2})
    await asyncio.to_thread(api.append, b"Subject: a note of mine\r\n\r\nhello\r\n", "Mailbridge")
    seen = await other.read(account, "label")
    assert [(r.key, r.data["name"]) for r in seen] == [("Same", seen[0].data["name"]),
                                                       ("Else", "Ünïcode")]
    assert seen[0].data["name"] in ("first", "second") and seen[1].data["n"] == 2
    assert await box.read(account, "webhook") == []
    assert await box.remove(account, "label", "Same") == 2
    assert [r.key for r in await box.read(account, "label")] == ["Else"]
    assert await box.remove(account, "label", "Nothing") == 0

    def left() -> list[bytes]:
        with api.imap() as client:
            client.select("Mailbridge")
            return client.uid("SEARCH", "UNDELETED", "ALL")[1][0].split()

    assert len(await asyncio.to_thread(left)) == 2  # Else, and the person's own message
    await box.replace(account, "label", "Else", {"name": "changed"})
    assert [(r.key, r.data["name"]) for r in await other.read(account, "label")] == [
        ("Else", "changed")]
    assert len(await asyncio.to_thread(left)) == 2  # the new record in, the old one out
