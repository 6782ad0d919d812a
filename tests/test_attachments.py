"""An attachment as bytes: decoded in pieces exactly as the stdlib decodes it whole, read from
the real Dovecot in partial FETCHes, and served streamed by GET
/api/v1/emails/{uid}/attachments/{attachment} when the caller asks for bytes, not JSON."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import random
from collections.abc import AsyncIterator

import pytest
from api_helpers import FULL_TOKEN, Api, running_api

from conftest import MailUser
from mailbridge.api.keys import ACCOUNTS, CONFIG
from mailbridge.api.params import accepts_json
from mailbridge.attachments import AttachmentPart, TransferDecoder, list_parts, read
from mailbridge.config import AccountConfig
from mailbridge.devstack.stack import DevStack
from mailbridge.errors import ImapProtocolError
from mailbridge.imap import ImapPool

BIG = random.Random(7).randbytes(700_000)  # three pieces of 256 KiB once base64-encoded


def _message(me: str) -> bytes:
    b64 = base64.encodebytes(BIG).replace(b"\n", b"\r\n")
    return (b"From: Ann <ann@example.test>\r\nTo: " + me.encode() + b"\r\nSubject: Big\r\n"
            b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
            b"--b\r\nContent-Type: text/plain\r\n\r\nA big file.\r\n"
            b"--b\r\nContent-Type: image/png\r\nContent-Disposition: attachment; "
            b"filename*=utf-8''%C3%A9t%C3%A9%20%221%22.png\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + b64 + b"--b--\r\n")


@pytest.fixture
async def api(devstack: DevStack, user: MailUser) -> AsyncIterator[Api]:
    async with running_api(devstack, user) as running:
        yield running


# ---------------------------------------------------------------- decoding in pieces

def _stdlib(encoding: str, body: bytes) -> bytes:
    msg = email.message_from_bytes(
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: "
        + encoding.encode() + b"\r\n\r\n" + body, policy=email.policy.default)
    payload = msg.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload


@pytest.mark.parametrize("encoding, body", [
    ("base64", base64.encodebytes(BIG[:5000]).replace(b"\n", b"\r\n")),
    ("base64", base64.b64encode(BIG[:4999])),  # one long line, padded
    ("base64", b"".join(base64.b64encode(BIG[:3000])[i:i + 64] + b"\r\n"  # 64-char lines
                        for i in range(0, 4000, 64))),
    ("base64", b"QUJD\r\nR!E\r\n*=\r\n"),  # junk between characters, missing padding
    ("quoted-printable", b"caf=C3=A9 au lait=\r\nsoft break\r\n=3D end=20\r\n" * 200),
    ("7bit", b"plain\r\nlines\r\n" * 300),
])
def test_decoding_in_pieces_equals_decoding_whole(encoding: str, body: bytes) -> None:
    rng = random.Random(len(body))
    for _ in range(20):
        decoder, out, at = TransferDecoder(encoding), b"", 0
        while at < len(body):
            step = rng.randint(1, 97)
            out += decoder.feed(body[at:at + step])
            at += step
        out += decoder.close()
        assert out == _stdlib(encoding, body)


def test_accept_json() -> None:
    for accept in (None, "", "*/*", "application/json", "text/html, */*;q=0.1",
                   "application/*", "application/octet-stream, application/json;q=0.5"):
        assert accepts_json(accept), accept
    for accept in ("application/octet-stream", "image/png", "*/*;q=0",
                   "application/json;q=0, application/octet-stream"):
        assert not accepts_json(accept), accept


# ---------------------------------------------------------------- against the server

async def _big_attachment(api: Api) -> tuple[AccountConfig, ImapPool, int, AttachmentPart]:
    """A message with BIG attached, put into INBOX, and that attachment as list_parts finds it."""
    uid = await asyncio.to_thread(api.append, _message(api.user.email))
    account = api.client.app[CONFIG].accounts[0]
    pool = api.client.app[ACCOUNTS].pool(account)
    async with pool.connection() as conn:
        [part] = await list_parts(conn, account, "INBOX", uid)
    return account, pool, uid, part


async def test_read_fetches_pieces(api: Api) -> None:
    """``read`` asks the server for one piece at a time and yields each decoded at once."""
    account, pool, _, part = await _big_attachment(api)
    assert (part.index, part.filename, part.content_type) == (0, 'été "1".png', "image/png")
    pieces = [p async for p in read(pool, account, "INBOX", part, chunk=40_000)]
    assert b"".join(pieces) == BIG
    assert len(pieces) > 20 and max(map(len, pieces)) <= 30_000


async def test_bytes_are_streamed(api: Api) -> None:
    uid = await asyncio.to_thread(api.append, _message(api.user.email))
    url = f"/api/v1/emails/{uid}/attachments/0"
    answer = await api.client.get(url, headers={"Authorization": f"Bearer {FULL_TOKEN}",
                                                "Accept": "application/octet-stream"})
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "image/png"
    assert answer.headers.get("Transfer-Encoding") == "chunked" and "Content-Length" not in answer.headers
    assert answer.headers["Content-Disposition"] == (
        "attachment; filename=\"?t? '1'.png\"; filename*=utf-8''%C3%A9t%C3%A9%20%221%22.png")
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert len(answer.headers["X-Request-Id"]) == 32  # a streamed answer names its request too
    assert await answer.read() == BIG
    # the same file by name, in its own type
    named = await api.client.get(f"/api/v1/emails/{uid}/attachments/été \"1\".png",
                                 headers={"Authorization": f"Bearer {FULL_TOKEN}", "Accept": "image/png"})
    assert named.status == 200 and await named.read() == BIG
    # JSON by default
    as_json = await api.call("GET", url)
    assert base64.b64decode(as_json.body["data"]["attachment"]["content"]) == BIG


@pytest.mark.parametrize("accept", ["application/octet-stream", "*/*"])
async def test_missing_attachment_or_message(api: Api, accept: str) -> None:
    uid = await asyncio.to_thread(api.append, _message(api.user.email))
    headers = {"Authorization": f"Bearer {FULL_TOKEN}", "Accept": accept}
    for path, field in ((f"{uid}/attachments/1", "attachment"),
                        (f"{uid}/attachments/nope.png", "attachment"),
                        (f"{uid + 50}/attachments/0", "uid"),
                        (f"{uid + 50}/attachments", "uid")):
        answer = await api.client.get(f"/api/v1/emails/{path}", headers=headers)
        body = await answer.json()
        assert (answer.status, body["code"], body["field"]) == (404, "not_found", field), path
    plain = await asyncio.to_thread(api.append, b"Subject: none\r\n\r\nNo files.\r\n")
    listed = await api.call("GET", f"/api/v1/emails/{plain}/attachments")
    assert listed.status == 200 and listed.body["data"]["attachments"] == []


async def test_a_message_that_goes_away_while_it_is_read_is_an_error(api: Api) -> None:
    """The pieces read so far are all there is: the next one raises, never an end."""
    account, pool, uid, part = await _big_attachment(api)
    pieces = read(pool, account, "INBOX", part, chunk=40_000)
    first = await anext(pieces)
    assert first == BIG[:len(first)]

    def expunge() -> None:
        with api.imap() as client:
            client.select("INBOX")
            client.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Deleted)")
            client.expunge()

    await asyncio.to_thread(expunge)
    with pytest.raises(ImapProtocolError, match="went away"):
        async for _ in pieces:
            pass
