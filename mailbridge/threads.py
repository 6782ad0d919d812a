"""Threads (conversations) of a folder: which messages answer which.

Messages are linked as RFC 5256's REFERENCES algorithm links them (section 3): by Message-ID,
References (or In-Reply-To when there is no References), and then the threads whose roots share
a base subject (``Re: [list] Fwd: Plan (fwd)`` is ``plan``) are joined. Where the server offers
``THREAD=REFERENCES`` it does the grouping (:meth:`~mailbridge.imap.ImapConnection.uid_thread`);
elsewhere :func:`group` does the same here. The tests hold the two to the same answers on
Dovecot.

A thread's id is the Message-ID at the top of its oldest message's references (the
conversation's first message, whether or not it is in this folder), so a conversation has the
same id in INBOX and in Sent; a thread of messages without any Message-ID is ``uid:<UID>``.

Threads are built from the newest messages of a folder only: the ``limit`` newest for a list,
the :data:`WINDOW` newest for one thread.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from mailbridge.config import AccountConfig
from mailbridge.errors import NotFound
from mailbridge.imap import ImapConnection, uid_set
from mailbridge.model import ParsedMessage
from mailbridge.reading import fetch_summaries, parse_stored, select_named
from mailbridge.views import StoredMessage

__all__ = ["WINDOW", "Thread", "ThreadKey", "base_subject", "find_thread", "group",
           "list_threads"]

WINDOW = 1000
"""How many of a folder's newest messages one thread is looked for among."""


@dataclass(frozen=True, slots=True)
class ThreadKey:
    """What threading needs of a message."""

    uid: int
    message_id: str | None
    """Without angle brackets."""
    references: tuple[str, ...]
    """References, else In-Reply-To; without angle brackets."""
    subject: str
    sent: datetime | None
    """The Date header, else the arrival time (RFC 5256 section 2.2)."""

    @classmethod
    def of(cls, uid: int, parsed: ParsedMessage, internaldate: datetime | None) -> ThreadKey:
        c = parsed.content
        refs = c.references or ((c.in_reply_to,) if c.in_reply_to else ())
        return cls(uid, _bare(parsed.message_id), tuple(filter(None, map(_bare, refs))),
                   c.subject or "", parsed.date or internaldate)

    def order(self) -> tuple[float, int]:
        return (self.sent.timestamp() if self.sent else 0.0, self.uid)


@dataclass(frozen=True, slots=True)
class Thread:
    id: str
    messages: tuple[StoredMessage, ...]
    """Oldest first."""


def _bare(value: str | None) -> str | None:
    bare = (value or "").strip().strip("<>").strip()
    return bare or None


# ----------------------------------------------------------------------------- on the server

async def list_threads(conn: ImapConnection, account: AccountConfig, folder: str,
                       limit: int) -> tuple[list[Thread], int]:
    """The threads of the ``limit`` newest messages of ``folder``, the most recently active
    first, and how many messages they hold."""
    info = await select_named(conn, account, folder)
    uids = (await conn.uid_search("UNDELETED", esearch=True)).uids[-limit:]
    messages = await fetch_summaries(conn, account, folder, info.uidvalidity, uids)
    keys = [ThreadKey.of(m.uid, m.parsed, m.internaldate) for m in messages]
    groups = await _groups(conn, keys)
    by_uid = {m.uid: m for m in messages}
    threads = [Thread(_thread_id(members), tuple(by_uid[k.uid] for k in members))
               for members in groups]
    threads.sort(key=lambda t: ThreadKey.of(t.messages[-1].uid, t.messages[-1].parsed,
                                            t.messages[-1].internaldate).order(), reverse=True)
    return threads, len(messages)


async def find_thread(conn: ImapConnection, account: AccountConfig, folder: str,
                      thread_id: str) -> Thread:
    """The thread ``thread_id`` (a thread's id, or the Message-ID of any of its messages) among
    the :data:`WINDOW` newest messages of ``folder``; NotFound when none has it."""
    info = await select_named(conn, account, folder)
    uids = (await conn.uid_search("UNDELETED", esearch=True)).uids[-WINDOW:]
    keys: list[ThreadKey] = []
    if uids:
        fields = "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID REFERENCES IN-REPLY-TO SUBJECT DATE)]"
        for item in await conn.uid_fetch(uids, f"(UID INTERNALDATE {fields})"):
            header = next(iter(item.sections.values()), b"")
            keys.append(ThreadKey.of(item.uid or 0, parse_stored(header + b"\r\n"),
                                     item.internaldate))
    wanted = _bare(thread_id)
    for members in await _groups(conn, keys) if wanted else ():
        if wanted == _thread_id(members) or any(k.message_id == wanted for k in members):
            found = {m.uid: m for m in await fetch_summaries(
                conn, account, folder, info.uidvalidity, [k.uid for k in members])}
            return Thread(_thread_id(members), tuple(found[k.uid] for k in members
                                                     if k.uid in found))
    raise NotFound(f"no thread {thread_id!r} among the newest {WINDOW} messages of {folder!r} "
                   f"of {account.email}", field="thread_id")


async def _groups(conn: ImapConnection, keys: Sequence[ThreadKey]) -> list[list[ThreadKey]]:
    """``keys`` in threads, each oldest first: by the server where it can, else by :func:`group`."""
    if not keys:
        return []
    by_uid = {k.uid: k for k in keys}
    if conn.has("THREAD=REFERENCES"):
        found = await conn.uid_thread("REFERENCES", "UID", uid_set(by_uid))
        groups = [[by_uid[u] for u in members if u in by_uid] for members in found]
        seen = {k.uid for g in groups for k in g}
        groups += [[k] for k in keys if k.uid not in seen]  # expunged meanwhile: alone
    else:
        groups = group(keys)
    return [sorted(g, key=ThreadKey.order) for g in groups if g]


def _thread_id(members: Sequence[ThreadKey]) -> str:
    oldest = members[0]
    top = oldest.references[0] if oldest.references else oldest.message_id
    if top is not None:
        return top
    return next((f"uid:{k.uid}" for k in members if k.message_id is None), f"uid:{oldest.uid}")


# ----------------------------------------------------------------------------- in mailbridge

def group(keys: Iterable[ThreadKey]) -> list[list[ThreadKey]]:
    """The threads RFC 5256's REFERENCES algorithm makes of ``keys`` (section 3, steps 1 to 5;
    the order inside a thread is the caller's).

    A message-id container per Message-ID and per id referenced; each References chain links
    its ids parent to child unless that would make a loop or an id already has a parent, and
    the message is the child of the last one (a duplicate Message-ID counts as a message of
    its own). The roots are the containers without a parent; a root without a message and
    with one child gives way to that child (step 4). Roots whose base subject is the same and
    not empty are one thread (step 5); a root without a message takes its subject from its
    oldest child.
    """
    keys = list(keys)
    parent: dict[str, str] = {}
    children: dict[str, list[str]] = {}
    message: dict[str, ThreadKey] = {}

    def above(node: str, other: str) -> bool:  # is ``node`` ``other`` or one of its ancestors
        at: str | None = other
        while at is not None:
            if at == node:
                return True
            at = parent.get(at)
        return False

    def link(up: str, down: str, *, replace: bool) -> None:
        if (down in parent and not replace) or above(down, up):
            return
        if down in parent:
            children[parent[down]].remove(down)
        parent[down] = up
        children.setdefault(up, []).append(down)

    for k in keys:
        own = k.message_id if k.message_id and k.message_id not in message else f"uid:{k.uid}"
        message[own] = k
        for up, down in zip(k.references, k.references[1:], strict=False):
            link(up, down, replace=False)
        if k.references:
            link(k.references[-1], own, replace=True)
    nodes = set(message) | set(parent) | set(children)

    def members(node: str) -> list[ThreadKey]:
        found, stack = [], [node]
        while stack:
            n = stack.pop()
            if n in message:
                found.append(message[n])
            stack.extend(children.get(n, ()))
        return found

    def first(node: str) -> tuple[float, int]:
        return min((k.order() for k in members(node)), default=(0.0, 0))

    def subject_of(node: str) -> str:
        while node not in message:  # a root without a message: its oldest child's subject
            node = min((c for c in children.get(node, ()) if members(c)), key=first)
        return base_subject(message[node].subject)

    threads: dict[str, list[ThreadKey]] = {}
    for root in sorted((r for r in nodes if r not in parent and members(r)), key=first):
        subject = subject_of(root)
        threads.setdefault(subject or f"\0{root}", []).extend(members(root))
    return list(threads.values())


_WSP = re.compile(r"\s+")
_TRAILER = re.compile(r"(?:\s|\(fwd\))+\Z", re.IGNORECASE)
_BLOB = r"\[[^\[\]]*\]\s*"
_LEADER = re.compile(rf"\A(?:\s+|(?:{_BLOB})*(?:re|fwd?)\s*(?:{_BLOB})?:)", re.IGNORECASE)
_BLOB_LEADER = re.compile(rf"\A{_BLOB}")
_FWD_WRAP = re.compile(r"\A\[fwd:(.*)\]\Z", re.IGNORECASE | re.DOTALL)


def base_subject(subject: str) -> str:
    """The base subject of RFC 5256 section 2.1, case-folded (Dovecot compares it so): without
    ``Re:``/``Fw:``/``Fwd:`` leaders and ``[blob]`` prefixes, ``(fwd)`` trailers and a
    ``[Fwd: ...]`` wrapper; runs of white space as one space."""
    s = _WSP.sub(" ", subject).strip()
    while True:
        s = _TRAILER.sub("", s)  # step 2
        while True:  # steps 3 and 4
            before = s
            s = _LEADER.sub("", s, count=1)
            blob = _BLOB_LEADER.match(s)
            if blob and s[blob.end():].strip():
                s = s[blob.end():]
            if s == before:
                break
        wrapped = _FWD_WRAP.match(s)  # step 6
        if not wrapped:
            return s.strip().casefold()
        s = wrapped.group(1).strip()
