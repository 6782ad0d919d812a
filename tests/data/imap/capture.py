"""Captures aioimaplib 2.0.3 replies from a real Dovecot into the JSON samples next to this file.

Not a test: run by hand against a private, empty Dovecot (see shared/mail-stack-notes.md) with a
user ``alice@example.test`` / ``secret`` and special-use Drafts/Sent/Trash, separator ``/``:

    .venv/bin/python tests/data/imap/capture.py 127.0.0.1 PORT tests/data/imap

Each sample is ``{"command", "note", "result", "lines", "wire"}``: ``lines`` is aioimaplib's
``Response.lines``, each element ``{"type": "bytes"|"bytearray", "b64": ..., "preview": ...}``
(``preview`` is for people; ``b64`` is the truth); ``wire`` is base64 of every byte the server
sent while the command ran, to compare what Dovecot said with what aioimaplib delivered.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from pathlib import Path
from typing import Any

from aioimaplib import aioimaplib
from aioimaplib.aioimaplib import IMAP4, Command, FetchCommand

USER, PASSWORD = "alice@example.test", "secret"


def encode_lines(lines: list[Any]) -> list[dict[str, str]]:
    out = []
    for el in lines:
        kind = "bytearray" if isinstance(el, bytearray) else "bytes"
        data = bytes(el)
        out.append({"type": kind, "b64": base64.b64encode(data).decode(),
                    "preview": repr(data[:100]) + ("..." if len(data) > 100 else "")})
    return out


class Recorder:
    """Wraps a client's data_received to keep the raw bytes of each command's reply."""

    def __init__(self, imap: IMAP4, outdir: Path) -> None:
        self.imap = imap
        self.outdir = outdir
        self.chunks: list[bytes] = []
        proto = imap.protocol
        orig = proto.data_received

        def data_received(d: bytes) -> None:
            self.chunks.append(bytes(d))
            orig(d)

        proto.data_received = data_received

    def reset(self) -> None:
        self.chunks.clear()

    def save(self, name: str, command: str, response: Any, note: str = "") -> Any:
        data = {
            "command": command,
            "note": note,
            "result": response.result,
            "lines": encode_lines(response.lines),
            "wire": base64.b64encode(b"".join(self.chunks)).decode(),
        }
        (self.outdir / f"{name}.json").write_text(json.dumps(data, indent=1, ensure_ascii=True) + "\n")
        print(f"{name}: {command} -> {response.result} ({len(response.lines)} elements)")
        self.reset()
        return response

    async def run(self, name: str, cmd: Command, note: str = "") -> Any:
        self.reset()
        response = await asyncio.wait_for(self.imap.protocol.execute(cmd), 20)
        return self.save(name, repr(cmd), response, note)


def tag(imap: IMAP4) -> str:
    return imap.protocol.new_tag()


def msg(headers: list[str], body: bytes) -> bytes:
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


MULTIPART = msg(
    [
        "From: Alice Example <alice@example.test>",
        "To: Bob <bob@example.test>",
        "Subject: Quarterly report with attachments",
        "Date: Mon, 16 Nov 2026 10:00:00 +0100",
        "Message-ID: <multi-1@example.test>",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="outer"',
    ],
    b"--outer\r\n"
    b'Content-Type: multipart/alternative; boundary="inner"\r\n\r\n'
    b"--inner\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello Bob,\r\nsee attached.\r\n"
    b"--inner\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Hello Bob,</p><p>see attached.</p>\r\n"
    b"--inner--\r\n"
    b"--outer\r\n"
    b'Content-Type: application/pdf; name="report.pdf"\r\n'
    b'Content-Disposition: attachment; filename="report.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\n"
    b"JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PC9UeXBlL0NhdGFsb2c+PgplbmRvYmoK\r\n"
    b"--outer\r\n"
    b'Content-Type: image/png; name="pic.png"\r\n'
    b'Content-Disposition: inline; filename="pic.png"\r\n'
    b"Content-ID: <pic1@example.test>\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n"
    b"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk\r\n"
    b"--outer--\r\n",
)

NONASCII = msg(
    [
        "From: =?utf-8?q?J=C3=BCrgen?= <juergen@example.test>",
        "To: alice@example.test",
        "Subject: =?utf-8?q?Entw=C3=BCrfe_f=C3=BCr_2026?=",
        "Date: Tue, 17 Nov 2026 08:30:00 +0000",
        "Message-ID: <nonascii-1@example.test>",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="b1"',
    ],
    b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    + "Grüße aus Köln\r\n".encode()
    + b"--b1\r\n"
    + b"Content-Type: application/pdf\r\n"
    + b"Content-Disposition: attachment; filename*=utf-8''Entw%C3%BCrfe%202026.pdf\r\n"
    + b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n"
    + b"--b1\r\n"
    + 'Content-Type: text/plain; name="Grüße (final).txt"\r\n'.encode()
    + 'Content-Disposition: attachment; filename="Grüße (final).txt"\r\n'.encode()
    + b"Content-Transfer-Encoding: 8bit\r\n\r\n"
    + "Straße\r\n".encode()
    + b"--b1--\r\n",
)

# raw 8-bit subject (as an SMTPUTF8 client would send): Dovecot must answer with a literal
RAW8BIT = msg(
    [
        "From: alice@example.test",
        "To: bob@example.test",
        "Subject: Grüße (raw 8bit) {5}",
        "Date: Wed, 18 Nov 2026 12:00:00 -0500",
        "Message-ID: <raw8bit-1@example.test>",
    ],
    "Hallo Jürgen\r\n".encode(),
)

EMPTY = msg(
    [
        "From: alice@example.test",
        "To: bob@example.test",
        "Subject: empty body",
        "Date: Thu, 19 Nov 2026 00:00:00 +0000",
        "Message-ID: <empty-1@example.test>",
    ],
    b"",
)

TRICKY = msg(
    [
        "From: \"O'Brien, \\\"Pat\\\" (work)\" <pat@example.test>",
        "To: bob@example.test",
        'Subject: Re: (draft) {12} "quoted" back\\slash ) (',
        "Date: Fri, 20 Nov 2026 23:59:59 +1300",
        "Message-ID: <tricky-1@example.test>",
        "X-Weird: {12}",
    ],
    b"A body with ) and ( and {12}\r\n"
    b"a line ending with a literal marker {5}\r\n"
    b'* 1 FETCH (UID 99 FLAGS (\\Seen))\r\n'
    b'A1 OK fake tagged line\r\n'
    b'"unbalanced quote\r\n'
    b")))\r\n",
)

UNBALANCED = msg(
    [
        "From: alice@example.test",
        "To: bob@example.test",
        "Subject: Re: (was: hello * world",
        "Date: Sat, 21 Nov 2026 09:15:00 +0100",
        "Message-ID: <unbalanced-1@example.test>",
    ],
    b"short\r\n",
)

KEYWORDS = msg(
    [
        "From: alice@example.test",
        "To: carol@example.test",
        "Subject: a draft with keywords",
        "Date: Sun, 22 Nov 2026 07:00:00 +0000",
        "Message-ID: <draft-1@example.test>",
        "X-Mailbridge-Id: 6f1c2d3e",
    ],
    b"draft text\r\n",
)

FETCH_ITEMS = (
    "(UID FLAGS INTERNALDATE RFC822.SIZE MODSEQ BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)] BODYSTRUCTURE)"
)



async def main(host: str, port: int, outdir: Path) -> None:
    bad = IMAP4(host, port, timeout=10)
    await bad.wait_hello_from_server()
    rec = Recorder(bad, outdir)
    rec.save("login_failed", "LOGIN alice@example.test wrong", await bad.login(USER, "wrong"))
    await bad.logout()

    imap = IMAP4(host, port, timeout=10)
    await imap.wait_hello_from_server()
    rec = Recorder(imap, outdir)
    rec.save("login_ok", "LOGIN alice@example.test secret", await imap.login(USER, PASSWORD))
    await rec.run("capability", Command("CAPABILITY", tag(imap)))

    for name in ['"Entw&APw-rfe 2026"', '"My Folder"', '"Say \\"hi\\""', '"back\\\\slash"', '"a * b"',
                 '"Archive"', '"Archive/2026"', '"Many"']:
        response = await imap.protocol.execute(Command("CREATE", tag(imap), name))
        assert response.result == "OK", (name, response)
    rec.reset()

    await rec.run("list_all", Command("LIST", tag(imap), '""', '"*"'),
                  note='the server sent "a * b"; aioimaplib delivers "a b"')
    await rec.run("list_special_use_selection", Command("LIST", tag(imap), "(SPECIAL-USE)", '""', '"*"'))
    await rec.run("list_return_special_use", Command("LIST", tag(imap), '""', '"*"', "RETURN",
                                                     "(SPECIAL-USE SUBSCRIBED CHILDREN)"))
    await rec.run("status_inbox", Command("STATUS", tag(imap), "INBOX",
                                          "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ)"))
    await rec.run("status_nonascii", Command("STATUS", tag(imap), '"Entw&APw-rfe 2026"',
                                             "(MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)"))

    appends = [(MULTIPART, None), (NONASCII, "\\Seen"), (RAW8BIT, None), (EMPTY, None),
               (TRICKY, "\\Flagged"), (UNBALANCED, None),
               (KEYWORDS, "\\Draft $Forwarded $MailbridgeScheduled")]
    for i, (body, flags) in enumerate(appends):
        rec.reset()
        response = await imap.append(body, mailbox="INBOX", flags=flags)
        if i == 0:
            rec.save("append_appenduid", "APPEND INBOX {965}", response)
        elif i == len(appends) - 1:
            rec.save("append_with_flags", "APPEND INBOX (\\Draft $Forwarded $MailbridgeScheduled) {198}",
                     response)
    rec.reset()

    await rec.run("select_condstore", Command("SELECT", tag(imap), "INBOX", "(CONDSTORE)"))
    imap.protocol.state = aioimaplib.SELECTED

    await rec.run("fetch_summary", Command("FETCH", tag(imap), "1:*", FETCH_ITEMS, prefix="UID"),
                  note="identical lines with FetchCommand")
    await rec.run("fetch_full", Command("FETCH", tag(imap), "1:*", "(UID BODY.PEEK[])", prefix="UID"),
                  note="identical lines with FetchCommand")
    envelope = ("1:*", "(UID ENVELOPE)")
    await rec.run("fetch_envelope_fetchcommand", FetchCommand(tag(imap), *envelope, prefix="UID"),
                  note="FetchCommand: after UID 6's unbalanced '(' in a quoted string, the next line "
                       "keeps its '* '")
    await rec.run("fetch_envelope_command", Command("FETCH", tag(imap), *envelope, prefix="UID"),
                  note="plain Command: every line without '* '")
    await rec.run("fetch_sections", Command(
        "FETCH", tag(imap), "1,2,4", "(UID BODY.PEEK[HEADER] BODY.PEEK[TEXT] BODY.PEEK[1] BODY.PEEK[1.MIME] "
        "BODY.PEEK[2] BODY.PEEK[]<0.20> BODY.PEEK[9])", prefix="UID"))
    await rec.run("fetch_flags", Command("FETCH", tag(imap), "1:*", "(UID FLAGS MODSEQ)", prefix="UID"))
    await rec.run("fetch_changedsince", Command("FETCH", tag(imap), "1:*", "(UID FLAGS)", "(CHANGEDSINCE 8)",
                                                prefix="UID"))
    await rec.run("fetch_nonexistent_uid", Command("FETCH", tag(imap), "999", "(UID FLAGS)", prefix="UID"))

    await rec.run("search_all", Command("SEARCH", tag(imap), "ALL", prefix="UID"))
    await rec.run("search_empty", Command("SEARCH", tag(imap), "KEYWORD", "$Nothing", prefix="UID"),
                  note="Dovecot adds a searched-for unknown keyword to the mailbox's FLAGS")
    await rec.run("search_modseq", Command("SEARCH", tag(imap), "MODSEQ", "1", prefix="UID"))
    await rec.run("esearch_all", Command("SEARCH", tag(imap), "RETURN", "(ALL COUNT MIN MAX)", "ALL",
                                         prefix="UID", untagged_resp_name="ESEARCH"))
    await rec.run("esearch_empty", Command("SEARCH", tag(imap), "RETURN", "(ALL COUNT MIN MAX)", "KEYWORD",
                                           "$Nothing", prefix="UID", untagged_resp_name="ESEARCH"))
    await rec.run("esearch_count_only", Command("SEARCH", tag(imap), "RETURN", "(COUNT)", "ALL",
                                                prefix="UID", untagged_resp_name="ESEARCH"))
    await rec.run("esearch_modseq", Command("SEARCH", tag(imap), "RETURN", "(ALL)", "MODSEQ", "1",
                                            prefix="UID", untagged_resp_name="ESEARCH"))

    fetched = await imap.protocol.execute(Command("FETCH", tag(imap), "4", "(UID MODSEQ)", prefix="UID"))
    modseq = int(bytes(fetched.lines[0]).split(b"MODSEQ (")[1].split(b")")[0])
    rec.reset()
    await rec.run("store_unchangedsince_ok", Command(
        "STORE", tag(imap), "4", f"(UNCHANGEDSINCE {modseq})", "+FLAGS", "(\\Deleted)",
        prefix="UID", untagged_resp_name="FETCH"))
    await rec.run("store_unchangedsince_modified", Command(
        "STORE", tag(imap), "3:4", f"(UNCHANGEDSINCE {modseq})", "+FLAGS", "(\\Deleted)",
        prefix="UID", untagged_resp_name="FETCH"), note="UID 3 stored, UID 4 changed since: MODIFIED")
    await rec.run("store_plain", Command("STORE", tag(imap), "1", "+FLAGS", "($Forwarded)",
                                         prefix="UID", untagged_resp_name="FETCH"))
    await rec.run("store_silent", Command("STORE", tag(imap), "1", "+FLAGS.SILENT", "(\\Answered)",
                                          prefix="UID", untagged_resp_name="FETCH"))
    await rec.run("uid_expunge", Command("EXPUNGE", tag(imap), "4", prefix="UID"))

    await rec.run("uid_copy", Command("COPY", tag(imap), "1:3,5", '"Archive"', prefix="UID"))
    await rec.run("uid_move", Command("MOVE", tag(imap), "6:7", '"Archive"', prefix="UID"),
                  note="COPYUID in an untagged OK; MOVE is a sync command in aioimaplib, so names are kept")
    await rec.run("uid_copy_single", Command("COPY", tag(imap), "1", '"Entw&APw-rfe 2026"', prefix="UID"))

    for i in range(300):
        await imap.append(msg(["From: a@example.test", f"Subject: bulk {i}"], b"x\r\n"), mailbox='"Many"')
    rec.reset()
    await rec.run("select_many", Command("SELECT", tag(imap), '"Many"'))
    await rec.run("search_many", Command("SEARCH", tag(imap), "ALL", prefix="UID"))
    await rec.run("esearch_many", Command("SEARCH", tag(imap), "RETURN", "(ALL COUNT MIN MAX)", "UID",
                                          "1:200,250:*", prefix="UID", untagged_resp_name="ESEARCH"))
    await rec.run("examine_archive", Command("EXAMINE", tag(imap), '"Archive"'))
    await rec.run("select_missing", Command("SELECT", tag(imap), '"Does Not Exist"'),
                  note="Dovecot 2.3.19 sends no [NONEXISTENT] here")
    await rec.run("select_nonascii", Command("SELECT", tag(imap), '"Entw&APw-rfe 2026"'))
    await rec.run("noop", Command("NOOP", tag(imap)))
    await imap.logout()
    await concurrent_updates(host, port, outdir)


async def concurrent_updates(host: str, port: int, outdir: Path) -> None:
    """Replies that carry changes another connection made (unsolicited FETCH, EXPUNGE, EXISTS)."""
    a = IMAP4(host, port, timeout=10)
    await a.wait_hello_from_server()
    await a.login(USER, PASSWORD)
    b = IMAP4(host, port, timeout=10)
    await b.wait_hello_from_server()
    await b.login(USER, PASSWORD)
    rec = Recorder(a, outdir)
    for client in (a, b):
        await client.protocol.execute(Command("SELECT", tag(client), '"Archive"'))
        client.protocol.state = aioimaplib.SELECTED

    async def on_b(*args: str, **kwargs: Any) -> None:
        await b.protocol.execute(Command(*args[:1], tag(b), *args[1:], **kwargs))

    await on_b("STORE", "1", "+FLAGS", "(\\Seen $Forwarded)", prefix="UID", untagged_resp_name="FETCH")
    await on_b("STORE", "2", "+FLAGS", "(\\Deleted)", prefix="UID", untagged_resp_name="FETCH")
    await on_b("EXPUNGE", "2", prefix="UID")
    await b.append(msg(["From: x@example.test", "Subject: new one"], b"hi\r\n"), mailbox='"Archive"')
    rec.reset()
    await rec.run("fetch_with_unsolicited", Command("FETCH", tag(a), "3:*", "(UID FLAGS)", prefix="UID"),
                  note="another connection changed UID 1's flags, expunged UID 2 and appended; "
                       "aioimaplib drops the EXPUNGE/EXISTS/RECENT lines (see wire)")
    await on_b("STORE", "3", "+FLAGS", "(\\Answered)", prefix="UID", untagged_resp_name="FETCH")
    await b.append(msg(["From: x@example.test", "Subject: newer"], b"hi\r\n"), mailbox='"Archive"')
    rec.reset()
    await rec.run("noop_with_updates", Command("NOOP", tag(a)))
    await on_b("STORE", "3", "-FLAGS", "(\\Answered)", prefix="UID", untagged_resp_name="FETCH")
    await b.append(msg(["From: x@example.test", "Subject: newest"], b"hi\r\n"), mailbox='"Archive"')
    rec.reset()
    await rec.run("search_with_updates", Command("SEARCH", tag(a), "ALL", prefix="UID"))
    await rec.run("status_missing", Command("STATUS", tag(a), '"Nope"', "(MESSAGES)"))
    await rec.run("uid_copy_missing", Command("COPY", tag(a), "1", '"Nope"', prefix="UID"))
    await rec.run("examine_missing", Command("EXAMINE", tag(a), '"Nope"'))
    await rec.run("fetch_no_mailbox", Command("FETCH", tag(a), "1", "(UID FLAGS)", prefix="UID"),
                  note="the failed EXAMINE closed the mailbox: BAD")
    await a.logout()
    await b.logout()


if __name__ == "__main__":
    target = Path(sys.argv[3])
    target.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), target))
