"""A reply to, or a forward of, a received message, as draft content: pure, no I/O.

A reply: who it goes to (the original's Reply-To, else its From; with everybody else on it for
a reply to all, never the account itself), the subject with ``Re:`` once, In-Reply-To and
References so that it threads under the original, and the original quoted below the reply when
asked. A forward: ``Fwd:`` once, the original below a "Forwarded message" block naming its
sender, date, subject and recipients, and the original's attachments.
"""

from __future__ import annotations

import dataclasses
import html as html_lib
import re
from collections.abc import Mapping
from typing import Any

from mailbridge.config import AccountConfig
from mailbridge.mime import parse_address_list
from mailbridge.model import Address, DraftContent
from mailbridge.views import StoredMessage

_RE_PREFIX = re.compile(r"\s*re\s*:", re.IGNORECASE)
_FWD_PREFIX = re.compile(r"\s*(?:fwd?|wg)\s*:", re.IGNORECASE)


def reply_subject(subject: str) -> str:
    """``Re: subject``, unless it starts with ``Re:`` already (any case)."""
    return subject if _RE_PREFIX.match(subject) else f"Re: {subject}"


def forward_subject(subject: str) -> str:
    """``Fwd: subject``, unless it starts with ``Fwd:``, ``Fw:`` or ``WG:`` already."""
    return subject if _FWD_PREFIX.match(subject) else f"Fwd: {subject}"


def forward_content(original: StoredMessage, *, to: tuple[Address, ...],
                    cc: tuple[Address, ...], bcc: tuple[Address, ...], text: str | None,
                    html: str | None, include_original: bool) -> DraftContent:
    """The draft of a forward of ``original`` (read whole: its attachments always go along;
    ``include_original`` adds its text and html below the caller's own)."""
    own = text
    if include_original:
        who = original.parsed.sender
        when = original.parsed.date or original.internaldate
        lines = ["---------- Forwarded message ----------",
                 f"From: {who if who is not None else ''}",
                 f"Date: {when:%a, %d %b %Y %H:%M %z}" if when else "Date:",
                 f"Subject: {original.content.subject}",
                 f"To: {', '.join(str(a) for a in original.content.to)}"]
        body = original.content.text or ""
        text = f"{own or ''}\n\n" + "\n".join(lines) + f"\n\n{body}"
        text = text.lstrip("\n")
        if html is not None or original.content.html is not None:
            inner = original.content.html if original.content.html is not None \
                else "<pre>" + html_lib.escape(body) + "</pre>"
            mine = html if html is not None else html_lib.escape(own or "").replace("\n", "<br>")
            html = (f"{mine}<p>" + "<br>".join(html_lib.escape(line) for line in lines)
                    + f"</p>{inner}")
    return DraftContent(to=to, cc=cc, bcc=bcc, subject=forward_subject(original.content.subject),
                        text=text, html=html, attachments=original.content.attachments)


FORWARDED_MESSAGE_ID = "X-Forwarded-Message-Id"
"""The header Thunderbird gives a forward: the forwarded message's Message-ID. mailbridge writes
it too, and a send of a draft that has it flags that message ``$Forwarded``."""


def forwarding_headers(original: StoredMessage) -> tuple[tuple[str, str], ...]:
    """The headers a forward of ``original`` carries (none when it has no Message-ID)."""
    mid = original.parsed.message_id
    bare = (mid or "").strip().strip("<>")
    return ((FORWARDED_MESSAGE_ID, f"<{bare}>"),) if bare else ()


def answer_content(original: StoredMessage, account: AccountConfig, given: Mapping[str, Any], *,
                   forward: bool, reply_all: bool = False,
                   include_original: bool = True) -> DraftContent:
    """A reply to (or, with ``forward``, a forward of) ``original`` from ``account``, with what
    the caller gave (checked DraftContent fields: ``text``, ``html``; ``to``, ``cc``, ``bcc``
    of a forward; ``context_type``, ``context_id``, ``planned_send_at`` kept as given)."""
    if forward:
        content = forward_content(original, to=given.get("to", ()), cc=given.get("cc", ()),
                                  bcc=given.get("bcc", ()), text=given.get("text"),
                                  html=given.get("html"), include_original=include_original)
    else:
        content = reply_content(original, account, text=given.get("text"),
                                html=given.get("html"), reply_all=reply_all,
                                include_original=include_original)
    links = {k: given[k] for k in ("context_type", "context_id", "planned_send_at") if k in given}
    return dataclasses.replace(content, **links)


def reply_content(original: StoredMessage, account: AccountConfig, *, text: str | None,
                  html: str | None, reply_all: bool, include_original: bool) -> DraftContent:
    """The draft of a reply from ``account`` to ``original``."""
    own = account.email.lower()
    reply_to = original.header("Reply-To")
    to = list(parse_address_list(reply_to, "Reply-To")) if reply_to else []
    if not to and original.parsed.sender is not None:
        to = [original.parsed.sender]
    to = [a for a in to if a.email.lower() != own] or to
    cc: list[Address] = []
    if reply_all:
        taken = {a.email.lower() for a in to} | {own}
        for a in (*original.content.to, *original.content.cc):
            if a.email.lower() not in taken:
                taken.add(a.email.lower())
                cc.append(a)
    mid = original.parsed.message_id
    references = (*original.content.references, mid) if mid else original.content.references
    if include_original:
        text, html = _quoted(original, text, html)
    return DraftContent(to=tuple(to), cc=tuple(cc), subject=reply_subject(original.content.subject),
                        text=text, html=html, in_reply_to=mid, references=tuple(references))


def _quoted(original: StoredMessage, text: str | None,
            html: str | None) -> tuple[str | None, str | None]:
    """The reply's text and html with the original quoted below: ``> `` lines in the text, a
    ``blockquote`` in the html (only when the reply or the original has html)."""
    who = original.parsed.sender
    name = (who.name or who.email) if who is not None else "someone"
    when = original.parsed.date or original.internaldate
    intro = f"On {when:%a, %d %b %Y %H:%M}, {name} wrote:" if when else f"{name} wrote:"
    body = original.content.text or ""
    quoted = "\n".join(f"> {line}" if line else ">" for line in body.splitlines())
    new_text = f"{text or ''}\n\n{intro}\n{quoted}\n".lstrip("\n")
    new_html = html
    if html is not None or original.content.html is not None:
        inner = original.content.html if original.content.html is not None \
            else "<pre>" + html_lib.escape(body) + "</pre>"
        mine = html if html is not None else html_lib.escape(text or "").replace("\n", "<br>")
        new_html = (f"{mine}<p>{html_lib.escape(intro)}</p>"
                    f'<blockquote type="cite">{inner}</blockquote>')
    return new_text, new_html
