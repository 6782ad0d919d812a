"""Draft fields <-> RFC 5322 messages: building, reading, and the small textual edits of sending.

Pure: no I/O. Everything here works on ``bytes`` and the domain objects of :mod:`mailbridge.model`.
The package's modules, each one concern: :mod:`~mailbridge.mime.headers` (mailbridge's header
names, the header-injection check, the header block scanner), :mod:`~mailbridge.mime.build`
(writing), :mod:`~mailbridge.mime.read` (reading), :mod:`~mailbridge.mime.decoding` (the one
decoder of charsets, RFC 2047, RFC 2231, transfer encodings, format=flowed),
:mod:`~mailbridge.mime.addresses` and :mod:`~mailbridge.mime.edit`. This module re-exports what
the rest of mailbridge uses.

Writing (:func:`build_message`) produces a 7-bit clean message with CRLF line endings, ready for
IMAP APPEND: header values are folded by mailbridge (RFC 5322 section 2.2.3) and non-ASCII text is
carried in RFC 2047 encoded-words, so that unfolding and decoding give back every value exactly --
leading and trailing spaces, runs of spaces, tabs and all. The MIME tree is written here as well
(RFC 2045/2046, RFC 2231 for file names), streaming attachments through base64 block by block.

Reading (:func:`parse_message`) accepts any message a mail client or server produced and never
raises. The header block and the multipart structure are split on the raw bytes (offsets, no
copies), so a 20 MB attachment is decoded once, straight from the message into its ``bytes``;
the stdlib's ``email.policy.default`` header classes read the Content-Type and
Content-Disposition parameters (RFC 2231 continuations and charsets).

Conventions, the same in both directions:

* Message-IDs (``message_id``, ``in_reply_to``, ``references``) are passed and returned WITHOUT
  angle brackets; :func:`build_message` adds them. Given ones with brackets are accepted.
* Text and HTML bodies use ``"\\n"`` line endings (CRLF and lone CR are normalised to ``"\\n"``);
  an empty body is ``None``. On the wire every line ends in CRLF.
* Subjects and other free-text header values come back exactly as given (no stripping).
* Display names come back exactly as given, with whitespace at their ends removed.
* Attachments with a ``content_id`` are written inline inside ``multipart/related`` next to the
  HTML body, so they come back before the other attachments (each group keeps its order) and
  with ``inline=True``.
* Addresses with an internationalised domain and an ASCII local part are written with the
  domain's IDNA A-label (``xn--...``), which is what comes back; a non-ASCII local part makes the
  message an RFC 6532 one (UTF-8 in the address headers).
"""

from mailbridge.mime.addresses import parse_address_list
from mailbridge.mime.build import build_message, make_message_id, state_headers
from mailbridge.mime.edit import client_headers, set_header, strip_for_sending
from mailbridge.mime.headers import (
    HEADER_CONTEXT_ID,
    HEADER_CONTEXT_TYPE,
    HEADER_CREATED_AT,
    HEADER_ID,
    HEADER_LAST_ERROR,
    HEADER_PLANNED_SEND_AT,
    HEADER_UPDATED_AT,
    INTERNAL_HEADER_PREFIX,
    LINE_BREAKS,
    check_header_value,
    header_time,
    parse_header_time,
)
from mailbridge.mime.read import parse_message, snippet

__all__ = [
    "HEADER_CONTEXT_ID",
    "HEADER_CONTEXT_TYPE",
    "HEADER_CREATED_AT",
    "HEADER_ID",
    "HEADER_LAST_ERROR",
    "HEADER_PLANNED_SEND_AT",
    "HEADER_UPDATED_AT",
    "INTERNAL_HEADER_PREFIX",
    "LINE_BREAKS",
    "build_message",
    "check_header_value",
    "client_headers",
    "header_time",
    "make_message_id",
    "parse_address_list",
    "parse_header_time",
    "parse_message",
    "set_header",
    "snippet",
    "state_headers",
    "strip_for_sending",
]
