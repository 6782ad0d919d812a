"""mailbridge: an HTTP API for email drafts; the user's IMAP server is the only store."""

__version__ = "0.1.0"
