"""Pages of messages: drafts by a DraftQuery, or any folder's messages, newest first.

One SEARCH on the server finds the page (filters are IMAP SEARCH keys, so the folder's size
costs only the server's own search), and :func:`mailbridge.reading.fetch_summaries` reads it:
headers, structure and text parts, never attachment bytes. A page of drafts shows each draft
once, by its current version (see :func:`current_versions`).
"""

from __future__ import annotations

from collections.abc import Sequence

from mailbridge.config import AccountConfig
from mailbridge.errors import InvalidInput
from mailbridge.imap import ImapConnection, ImapPool
from mailbridge.mime import HEADER_CONTEXT_ID, HEADER_CONTEXT_TYPE, HEADER_ID, HEADER_PLANNED_SEND_AT
from mailbridge.model import Status
from mailbridge.reading import fetch_summaries, select_named
from mailbridge.store import DraftStore, search_string
from mailbridge.versions import HEADER_REPLACES, KEYWORD_PENDING, KEYWORD_REPLACED, replaces_header
from mailbridge.views import (
    HEADER_APPROVAL,
    HEADER_SEND_STATE,
    DraftQuery,
    Page,
    PagePosition,
    StoredMessage,
    has_flag,
)

APPROVAL_STATES = {Status.AWAITING_APPROVAL: '"requested"', Status.APPROVED: '"approved"',
                   Status.REJECTED: '"rejected"'}
"""The statuses an approval gives, by the X-Mailbridge-Approval value (as a SEARCH string)."""


def needs_utf8(criteria: Sequence[str]) -> bool:
    """Whether SEARCH ``criteria`` must be sent with CHARSET UTF-8."""
    return any(not c.isascii() for c in criteria)


async def list_drafts(store: DraftStore, account: AccountConfig, query: DraftQuery) -> Page:
    """A page of drafts, newest first, filtered by IMAP SEARCH on the server.

    Costs one SEARCH plus two FETCHes of the page's messages (headers, structure, text
    parts), whatever the folder's size beyond the server's own SEARCH.
    """
    folder = await store.folder(account)
    # versions flagged replaced are searched too: until the new version's step 4 they are
    # the draft's only visible copy (see current_versions)
    base: list[str] = ["UNDELETED", "NOT", "KEYWORD", KEYWORD_PENDING]
    versions = True
    filters: list[str] = []
    if query.context_type is not None:
        filters += ["HEADER", HEADER_CONTEXT_TYPE, search_string(query.context_type)]
    if query.context_id is not None:
        filters += ["HEADER", HEADER_CONTEXT_ID, search_string(query.context_id)]
    if query.recipient is not None:
        r = search_string(query.recipient)
        filters += ["OR", "OR", "TO", r, "CC", r, "BCC", r]
    for word in (query.subject or "").split():
        filters += ["SUBJECT", search_string(word)]
    status = query.status
    if status in (Status.DRAFT, Status.SCHEDULED, Status.HELD):
        filters += ["NOT", "HEADER", HEADER_SEND_STATE, '""']
        filters += (["NOT"] if status is Status.DRAFT else []) + [
            "HEADER", HEADER_PLANNED_SEND_AT, '""']
    elif status in (Status.SENDING, Status.FAILED):
        filters += ["HEADER", HEADER_SEND_STATE, search_string(status.value)]
    elif status in APPROVAL_STATES:
        filters += ["NOT", "HEADER", HEADER_SEND_STATE, '""',
                    "HEADER", HEADER_APPROVAL, APPROVAL_STATES[status]]
    elif status is Status.SENT:  # sent drafts live in Sent, still carrying their id
        folder = await store.folder(account, "sent")
        base = ["UNDELETED", "HEADER", HEADER_ID, '""']
        versions = False
    criteria = base + filters
    found = await page(store.pool(account), account, folder, criteria, query.limit, query.after,
                       versions=versions)

    def exact(m: StoredMessage) -> bool:  # HEADER search matches substrings; held is no
        c = m.content                       # SEARCH key (it compares two dates), nor is an
        # approval's bearing on the status
        return ((query.context_type is None or c.context_type == query.context_type)
                and (query.context_id is None or c.context_id == query.context_id)
                and (status is None or status is Status.SENT or m.status is status))

    return Page(items=[m for m in found.items if exact(m)], total=found.total, next=found.next)


async def page(pool: ImapPool, account: AccountConfig, folder: str, criteria: Sequence[str],
               limit: int, after: PagePosition | None, *, versions: bool = False) -> Page:
    """One page of the messages ``criteria`` find, newest first. ``versions``: drafts'
    versions, of which those already superseded by a committed one are left out."""
    async with pool.connection() as conn:
        info = await select_named(conn, account, folder)
        if after is not None:
            if after.uidvalidity != info.uidvalidity:
                raise InvalidInput("the cursor is stale (the folder was rebuilt); start over",
                                   field="cursor")
            if after.before_uid <= 1:
                return Page(items=[], total=0, next=None)
            criteria = [*criteria, "UID", f"1:{after.before_uid - 1}"]
        if needs_utf8(criteria):
            criteria = ["CHARSET", "UTF-8", *criteria]
        found = await conn.uid_search(*criteria, esearch=True)
        newest = sorted(found.uids, reverse=True)
        chosen = newest[:limit]
        items = await fetch_summaries(conn, account, folder, info.uidvalidity, chosen)
        if versions:
            items = list(await current_versions(conn, account, folder, items))
    items.sort(key=lambda m: -m.uid)
    more = len(newest) > limit
    return Page(items=items, total=len(newest),
                next=PagePosition(info.uidvalidity, chosen[-1]) if more else None)


async def current_versions(conn: ImapConnection, account: AccountConfig, folder: str,
                           items: Sequence[StoredMessage]) -> Sequence[StoredMessage]:
    """``items`` with each version flagged $MailbridgeReplaced whose successor is committed
    (no longer pending) replaced by that successor, which stands for the draft (it may have
    been pending still when the page was searched). A replaced version whose successor is
    pending, or was lost, is the draft's copy to show."""
    listed = {m.uid for m in items}
    if any(has_flag(m.flags, KEYWORD_REPLACED) for m in items):
        await conn.noop()  # see the flag changes other sessions made since the SEARCH
    kept: list[StoredMessage] = []
    successors: list[int] = []
    for m in items:
        if has_flag(m.flags, KEYWORD_REPLACED):
            found = await conn.uid_search(
                "UNDELETED", "NOT", "KEYWORD", KEYWORD_PENDING, "HEADER", HEADER_REPLACES,
                search_string(replaces_header(m.uidvalidity, m.uid)))
            if found.uids:
                successors += [u for u in found.uids if u not in listed]
                continue
        kept.append(m)
    if successors:
        kept += await fetch_summaries(conn, account, folder, items[0].uidvalidity,
                                      sorted(set(successors)))
    return kept
