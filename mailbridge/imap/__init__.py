"""The IMAP layer: connection pool, one command per connection, timeouts, typed replies.

Only :mod:`mailbridge.imap.connection` imports aioimaplib; the rest of mailbridge uses what this
package exports.
"""

from mailbridge.imap.connection import FETCH_CHUNK, ImapConnection, ImapEndpoint, StoreResult
from mailbridge.imap.folders import SpecialFolders, discover
from mailbridge.imap.pool import ImapPool
from mailbridge.imap.responses import (
    AppendUid,
    CopyUid,
    FetchItem,
    MailboxInfo,
    SearchResult,
    SelectInfo,
    uid_set,
)

__all__ = [
    "FETCH_CHUNK",
    "AppendUid",
    "CopyUid",
    "FetchItem",
    "ImapConnection",
    "ImapEndpoint",
    "ImapPool",
    "MailboxInfo",
    "SearchResult",
    "SelectInfo",
    "SpecialFolders",
    "StoreResult",
    "discover",
    "uid_set",
]
