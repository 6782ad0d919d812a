"""mailbridge.replies: who a reply goes to and how it reads (pure)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from mailbridge.config import parse_config
from mailbridge.mime import build_message, parse_message
from mailbridge.model import Address, DraftContent
from mailbridge.replies import forward_content, forward_subject, reply_content, reply_subject
from mailbridge.views import StoredMessage

ENDPOINT = {"host": "127.0.0.1", "port": 1, "security": "none", "username": "a", "password": "p"}
CONFIG = parse_config({"accounts": [{"id": str(uuid.uuid4()), "email": "me@example.test",
                                     "imap": ENDPOINT, "smtp": ENDPOINT}]}, source="test")
ME = CONFIG.accounts[0]


def received(sender: str, to: tuple[str, ...], subject: str = "Hello", text: str = "Hi") -> StoredMessage:
    raw = build_message(DraftContent(to=tuple(Address(a) for a in to), subject=subject, text=text),
                        sender=Address(sender), message_id="m1@example.test",
                        date=datetime(2026, 3, 2, 10, 0, tzinfo=UTC), state=None)
    return StoredMessage(account=ME, folder="INBOX", uid=1, uidvalidity=1, modseq=None,
                         flags=(), size=len(raw), internaldate=None, parsed=parse_message(raw),
                         attachments=(), kept_headers=(), complete=True, raw=raw)


def test_re_once() -> None:
    assert reply_subject("Hello") == "Re: Hello"
    assert reply_subject("RE: Hello") == "RE: Hello"
    assert reply_subject(" re:Hello") == " re:Hello"
    assert reply_subject("Regarding Hello") == "Re: Regarding Hello"


def test_reply_to_all_leaves_the_account_out_and_threads() -> None:
    content = reply_content(received("ann@example.test", ("me@example.test", "bob@example.test")),
                            ME, text="Fine", html=None, reply_all=True, include_original=False)
    assert [a.email for a in content.to] == ["ann@example.test"]
    assert [a.email for a in content.cc] == ["bob@example.test"]
    assert (content.in_reply_to, content.references) == ("m1@example.test", ("m1@example.test",))
    assert content.text == "Fine" and content.html is None


def test_a_reply_to_ones_own_message_goes_to_its_recipients_quoted() -> None:
    content = reply_content(received("me@example.test", ("me@example.test",), text="one\n\ntwo"),
                            ME, text=None, html="<b>ok</b>", reply_all=False,
                            include_original=True)
    assert [a.email for a in content.to] == ["me@example.test"]  # nobody else: oneself
    assert content.text == "On Mon, 02 Mar 2026 10:00, me@example.test wrote:\n> one\n>\n> two\n"
    assert content.html is not None and content.html.startswith("<b>ok</b><p>On Mon")
    assert '<blockquote type="cite"><pre>one\n\ntwo</pre></blockquote>' in content.html


def test_fwd_once_and_the_original_below() -> None:
    assert forward_subject("Hello") == "Fwd: Hello"
    assert [forward_subject(s) for s in ("FWD: x", "Fw: x", "WG: x")] == ["FWD: x", "Fw: x", "WG: x"]
    bob = (Address("bob@example.test"),)
    content = forward_content(received("ann@example.test", ("me@example.test",), text="Body"),
                              to=bob, cc=(), bcc=(), text=None, html=None, include_original=True)
    assert content.to == bob and content.subject == "Fwd: Hello" and content.html is None
    assert content.text == ("---------- Forwarded message ----------\nFrom: ann@example.test\n"
                            "Date: Mon, 02 Mar 2026 10:00 +0000\nSubject: Hello\n"
                            "To: me@example.test\n\nBody")
    bare = forward_content(received("ann@example.test", ("me@example.test",)), to=bob, cc=(),
                           bcc=(), text="Just this", html=None, include_original=False)
    assert bare.text == "Just this"
