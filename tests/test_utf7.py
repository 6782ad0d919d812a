"""Modified UTF-7 mailbox names and IMAP quoting (mailbridge.imap.utf7)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbridge.imap.utf7 import decode_mailbox, encode_mailbox, mailbox_arg, quote_astring

# Any Unicode text without surrogates (hypothesis' default) and without what a quoted string
# cannot carry.
names = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00\r\n"))


@pytest.mark.parametrize(
    ("name", "wire"),
    [
        # RFC 3501 section 5.1.3
        ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
        ("&", "&-"),
        ("Entwürfe 2026", "Entw&APw-rfe 2026"),
        ("INBOX", "INBOX"),
        ("", ""),
        ("Tom & Jerry", "Tom &- Jerry"),
        ("Grüße", "Gr&APwA3w-e"),  # one run for adjacent non-ASCII characters
        ("😀", "&2D3eAA-"),  # outside the BMP: a UTF-16 surrogate pair
        ("tab\there", "tab&AAk-here"),  # control characters are not "printable US-ASCII"
        ("Entwürfe/März & Co.", "Entw&APw-rfe/M&AOQ-rz &- Co."),
    ],
)
def test_known_names(name: str, wire: str) -> None:
    assert encode_mailbox(name) == wire
    assert decode_mailbox(wire) == name


@given(names)
def test_round_trip(name: str) -> None:
    wire = encode_mailbox(name)
    assert wire.isascii()
    assert all(" " <= c <= "~" for c in wire)
    assert decode_mailbox(wire) == name


@given(names)
def test_encoding_is_canonical(name: str) -> None:
    # decode_mailbox accepts exactly what encode_mailbox produces, so re-encoding gives it back
    wire = encode_mailbox(name)
    assert encode_mailbox(decode_mailbox(wire)) == wire


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E)))
def test_decode_never_fails_with_anything_but_value_error(raw: str) -> None:
    try:
        name = decode_mailbox(raw)
    except ValueError:
        return
    assert encode_mailbox(name) == raw


@pytest.mark.parametrize(
    "raw",
    [
        "&",  # unterminated
        "Entw&APw",  # unterminated run
        "&AGE-",  # encodes "a", which must be written directly
        "&APw-&APw-",  # two runs back to back (must be one)
        "Entwürfe",  # raw non-ASCII
        "tab\there",  # raw control character
        "&U,BTF-",  # base64 of a length no encoder produces
        "&U,BTFx-",  # stray bits in the last character
        "&2D0-",  # lone high surrogate
        "&APw=-",  # padding is not part of modified base64
        "&AP/-",  # "/" is written ","
    ],
)
def test_malformed_names_raise_value_error(raw: str) -> None:
    with pytest.raises(ValueError, match="modified UTF-7"):
        decode_mailbox(raw)


def test_lone_surrogate_cannot_be_encoded() -> None:
    with pytest.raises(ValueError):
        encode_mailbox("bad\ud800name")


@pytest.mark.parametrize(
    ("s", "quoted"),
    [
        ("INBOX", '"INBOX"'),
        ("", '""'),
        ('Say "hi"', '"Say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ('\\"', '"\\\\\\""'),
        ("a * b", '"a * b"'),
    ],
)
def test_quote_astring(s: str, quoted: str) -> None:
    assert quote_astring(s) == quoted


@pytest.mark.parametrize("s", ["a\rb", "a\nb", "a\x00b", "\r\n"])
def test_quote_astring_refuses_what_a_quoted_string_cannot_carry(s: str) -> None:
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        quote_astring(s)


def test_mailbox_arg() -> None:
    assert mailbox_arg("Entwürfe 2026") == '"Entw&APw-rfe 2026"'
    assert mailbox_arg('Say "hi" & bye') == '"Say \\"hi\\" &- bye"'
    # CR/LF are base64-encoded by modified UTF-7, so they never reach the quoted string
    assert mailbox_arg("a\r\nb") == '"a&AA0ACg-b"'


@given(names)
def test_mailbox_arg_is_one_safe_quoted_string(name: str) -> None:
    arg = mailbox_arg(name)
    assert arg.startswith('"') and arg.endswith('"')
    assert arg.isascii()
    assert not any(c in arg for c in "\r\n\x00")
