"""The `fastpaths` phase: each hand-written fast path of the MIME and header code, A/B alone.

A fast path is a shortcut for the common case with a straightforward twin that handles every
case (and is its oracle in the tests). Each is measured here by itself, in this process, on the
operation it serves for one request -- reading a whole draft (a GET, an update's read), building
one (a create, an update), carrying headers over -- once with the fast path and once with only
its twin, the two interleaved round by round on the same inputs. The inputs are the bench's own
create payload and drafts as mail clients write them (tests/data/mime), so the figure says what a
request gains, in microseconds, beside mailbridge's own time per request (anatomy phase).
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mailbridge.imap.responses as responses
import mailbridge.mime as mime
import mailbridge.mime.addresses as mime_addresses
import mailbridge.mime.build as mime_build
import mailbridge.mime.headers as mime_headers
import mailbridge.mime.read as mime_read
import mailbridge.reading as reading
from bench.api import BODY_TEXT
from mailbridge.model import Address, DraftContent, DraftState

ROUNDS = 15
TESTS = Path(__file__).resolve().parent.parent / "tests"
DATA = TESTS / "data" / "mime"
CLIENT_DRAFTS = ("thunderbird-115-draft.eml", "apple-mail-draft.eml", "gmail-draft.eml",
                 "mutt-draft.eml")
GERMAN = "\n".join(
    f"Zeile {i}: Die Quartalszahlen liegen wie besprochen bei; bitte prüfen Sie sie vor "
    "Freitag. Grüße aus Köln." for i in range(12))
"""About 1 KB of German text: quoted-printable, not 7bit."""


def _drafts() -> dict[str, bytes]:
    """What a GET reads: the bench's create draft, a German one, and mail clients' drafts."""
    state = DraftState(id=uuid.uuid4(), created_at=datetime.now(UTC),
                       updated_at=datetime.now(UTC))
    made = {
        "bench draft": DraftContent(to=(Address("bob@example.test", "Bob Example"),),
                                    subject="Bench draft 1", text=BODY_TEXT),
        "German draft": DraftContent(to=(Address("bob@example.test", "Bob Müller"),),
                                     subject="Quartalszahlen", text=GERMAN),
    }
    out = {name: mime.build_message(c, sender=Address("alice@example.test", "Alice Example"),
                                    message_id="a@example.test", date=state.created_at,
                                    state=state)
           for name, c in made.items()}
    for name in CLIENT_DRAFTS:
        path = DATA / name
        if path.exists():
            out[name] = path.read_bytes()
    return out


def _contents() -> dict[str, DraftContent]:
    """What a create builds: the bench's payload and a German one."""
    return {
        "bench draft": DraftContent(to=(Address("bob@example.test", "Bob Example"),),
                                    subject="Bench draft 1", text=BODY_TEXT),
        "German draft": DraftContent(to=(Address("bob@example.test", "Bob Müller"),),
                                     subject="Quartalszahlen", text=GERMAN),
    }


@contextlib.contextmanager
def _only_twin(module: Any, name: str, twin: Callable[..., Any]) -> Iterator[None]:
    saved = getattr(module, name)
    setattr(module, name, twin)
    try:
        yield
    finally:
        setattr(module, name, saved)


def _params_twin(name: str, value: str | None) -> tuple[str | None, dict[str, str]]:
    return mime_read._params_slow(name, value) if value else (None, {})


def _qp_twin(lines: list[bytes]) -> bytes:
    return b"\r\n".join(p for line in lines for p in mime_build._qp_line_slow(line))


def _oracles() -> Any:
    """The test module holding a twin that lives only as an oracle (the code a fast path
    replaced, kept to test it against)."""
    sys.path.insert(0, str(TESTS))
    try:
        import test_imap_responses
    finally:
        sys.path.remove(str(TESTS))
    return test_imap_responses


_test_responses = _oracles()


def _fetch_reply() -> list[bytes | bytearray]:
    """A FETCH of list summaries as Dovecot answered it (tests/data/imap/fetch_summary.json)."""
    sample = json.loads((TESTS / "data" / "imap" / "fetch_summary.json").read_text())
    return [bytearray(base64.b64decode(el["b64"])) if el["type"] == "bytearray"
            else base64.b64decode(el["b64"]) for el in sample["lines"]]


FAST_PATHS: dict[str, tuple[Any, str, Callable[..., Any], str]] = {
    # name: (module, attribute, its twin, the operation it serves)
    "MIME parameters (_params_of)": (mime_read, "_params_of", _params_twin, "read"),
    "quoted-printable (_quoted_printable)": (mime_build, "_quoted_printable", _qp_twin, "build"),
    "kept headers (reading.kept_headers)": (reading, "kept_headers",
                                            reading.kept_headers_by_stdlib, "carry"),
    "address lists (_split_address_list)": (mime_addresses, "_split_address_list",
                                            mime_addresses._split_address_list_scan, "read"),
    "mailboxes (_parse_mailbox)": (mime_addresses, "_parse_mailbox",
                                   mime_addresses._parse_mailbox_scan, "read"),
    "header fields by one regex (_FIELD_LINES)": (mime_headers, "_FIELD_LINES",
                                                  re.compile(rb"(?!)"), "read"),
    "IMAP tokenizer as one loop (_values)": (responses, "_values",
                                             _test_responses._values_by_token_stream, "imap"),
}


def _timed(op: Callable[[], Any], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        op()
    return (time.perf_counter() - started) / n * 1e6


def phase_fastpaths() -> dict[str, Any]:
    drafts = _drafts()
    contents = _contents()
    sender = Address("alice@example.test", "Alice Example")
    state = DraftState(id=uuid.uuid4(), created_at=datetime.now(UTC),
                       updated_at=datetime.now(UTC))
    reply = _fetch_reply()
    ops: dict[str, dict[str, Callable[[], Any]]] = {
        "read": {k: (lambda raw=raw: mime.parse_message(raw)) for k, raw in drafts.items()},
        "build": {k: (lambda c=c: mime.build_message(c, sender=sender, message_id="a@b.test",
                                                      date=state.created_at, state=state))
                  for k, c in contents.items()},
        "carry": {k: (lambda raw=raw: reading.kept_headers(reading.header_block(raw)))
                  for k, raw in drafts.items()},
        "imap": {"FETCH reply (fetch_summary)": lambda: responses.parse_fetch(reply)},
    }
    rows: dict[str, Any] = {}
    for fast_path, (module, attribute, twin, serves) in FAST_PATHS.items():
        per_input: dict[str, Any] = {}
        for label, op in ops[serves].items():
            n = max(20, int(2000 / max(1.0, _timed(op, 5))))  # about 2 ms a sample
            with_fast: list[float] = []
            twin_only: list[float] = []
            for _ in range(ROUNDS):
                with_fast.append(_timed(op, n))
                with _only_twin(module, attribute, twin):
                    # the ops look the attribute up in its module: they run the twin now
                    twin_only.append(_timed(op, n))
            fast_us, twin_us = statistics.median(with_fast), statistics.median(twin_only)
            per_input[label] = {"fast_us": round(fast_us, 1), "twin_us": round(twin_us, 1),
                                "saved_us": round(twin_us - fast_us, 1)}
        rows[fast_path] = {"serves": serves, "inputs": per_input,
                           "max_saved_us": max(r["saved_us"] for r in per_input.values())}
    return rows


def render(rows: dict[str, Any]) -> str:
    lines = ["Fast paths, each A/B alone (microseconds per operation, median of "
             f"{ROUNDS} interleaved rounds)",
             f"{'fast path':40} {'input':26} {'fast':>8} {'twin':>8} {'saved':>8}"]
    for name, row in rows.items():
        for label, r in row["inputs"].items():
            lines.append(f"{name:40} {label:26} {r['fast_us']:8.1f} {r['twin_us']:8.1f} "
                         f"{r['saved_us']:8.1f}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(phase_fastpaths()))
