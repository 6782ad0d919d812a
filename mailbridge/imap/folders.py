"""Finding an account's Drafts, Sent, Trash, Junk and Archive folders (RFC 6154 SPECIAL-USE,
then by name).

Pure: takes the LIST result and the configured overrides, returns names. The order of trust is
the operator's override, then the server's special-use attribute, then a well-known name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mailbridge.imap.responses import MailboxInfo

ROLES = ("drafts", "sent", "trash", "junk", "archive")

ATTRIBUTES = {"drafts": "\\Drafts", "sent": "\\Sent", "trash": "\\Trash", "junk": "\\Junk",
              "archive": "\\Archive"}

# Names used by common servers and clients when the server does not mark the folder
# (Dovecot/Courier/Cyrus with "INBOX." prefixes, Exchange, Apple Mail, Gmail, localised German).
FALLBACK_NAMES = {
    "drafts": ("Drafts", "INBOX.Drafts", "INBOX/Drafts", "Draft", "[Gmail]/Drafts", "Entwürfe"),
    "sent": ("Sent", "INBOX.Sent", "INBOX/Sent", "Sent Items", "Sent Messages", "Sent Mail",
             "[Gmail]/Sent Mail", "Gesendet", "Gesendete Elemente"),
    "trash": ("Trash", "INBOX.Trash", "INBOX/Trash", "Deleted Items", "Deleted Messages",
              "[Gmail]/Trash", "[Gmail]/Bin", "Papierkorb", "Gelöschte Elemente"),
    "junk": ("Junk", "INBOX.Junk", "INBOX/Junk", "Spam", "INBOX.Spam", "Junk E-mail",
             "Junk Email", "[Gmail]/Spam", "Bulk Mail", "Junk-E-Mail"),
    "archive": ("Archive", "INBOX.Archive", "INBOX/Archive", "Archives", "[Gmail]/All Mail",
                "Archiv"),
}


@dataclass(frozen=True)
class SpecialFolders:
    """The folder names (decoded, as a person reads them) for each role; None if none found."""

    drafts: str | None
    sent: str | None
    trash: str | None
    junk: str | None = None
    archive: str | None = None

    def get(self, role: str) -> str | None:
        value: str | None = getattr(self, role)
        return value


def discover(mailboxes: Sequence[MailboxInfo], overrides: dict[str, str | None]) -> SpecialFolders:
    """Returns the names of an account's special folders (:data:`ROLES`).

    ``overrides`` maps role -> configured name (None: not configured); a configured name wins
    even when the server does not list it (the caller may create it). Otherwise a selectable
    mailbox carrying the role's special-use attribute, else the first fallback name the server
    has (compared case-insensitively), else None.
    """
    selectable = [m for m in mailboxes if not m.has_attribute("\\Noselect")
                  and not m.has_attribute("\\NonExistent")]
    by_lower = {m.name.lower(): m.name for m in selectable}
    found: dict[str, str | None] = {}
    for role in ROLES:
        override = overrides.get(role)
        if override:
            found[role] = override
            continue
        marked = [m.name for m in selectable if m.has_attribute(ATTRIBUTES[role])]
        if marked:
            found[role] = marked[0]
            continue
        found[role] = next((by_lower[n.lower()] for n in FALLBACK_NAMES[role] if n.lower() in by_lower),
                           None)
    return SpecialFolders(**found)
