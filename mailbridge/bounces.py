"""Delivery status notifications (RFC 3464): which message bounced, and for whom.

A DSN is a ``multipart/report; report-type=delivery-status`` with a ``message/delivery-status``
part (one block of fields per recipient) and the returned message or its headers
(``message/rfc822`` or ``text/rfc822-headers``), whose Message-ID names the message that
bounced. Read with the stdlib ``email`` package; pure, no I/O.
"""

from __future__ import annotations

import email.message
import email.parser
import email.policy
from dataclasses import dataclass

__all__ = ["Bounce", "read_bounce"]

_parser = email.parser.BytesParser(policy=email.policy.default)
_fields = email.parser.HeaderParser(policy=email.policy.default)


@dataclass(frozen=True, slots=True)
class Failed:
    recipient: str
    action: str
    status: str | None
    diagnostic: str | None


@dataclass(frozen=True, slots=True)
class Bounce:
    message_id: str
    """The Message-ID of the message that bounced, without angle brackets."""
    recipients: tuple[Failed, ...]


def read_bounce(raw: bytes) -> Bounce | None:
    """The bounce ``raw`` reports; None when it is not a DSN of a failure or names no message."""
    message = _parser.parsebytes(raw)
    report_type = message.get_param("report-type", "")
    if message.get_content_type() != "multipart/report" \
            or not isinstance(report_type, str) or report_type.lower() != "delivery-status":
        return None
    recipients: list[Failed] = []
    message_id = ""
    for part in message.iter_parts():
        kind = part.get_content_type()
        if kind == "message/delivery-status":
            recipients.extend(_failures(part))
        elif kind in ("message/rfc822", "text/rfc822-headers") and not message_id:
            message_id = _returned_id(part)
    if not message_id or not recipients:
        return None
    return Bounce(message_id, tuple(recipients))


def _failures(part: email.message.Message) -> list[Failed]:
    """The recipients whose Action is ``failed``. The stdlib reads message/delivery-status as
    a list of header blocks (the per-message one first); a plain text payload is split here."""
    payload = part.get_payload()
    if isinstance(payload, list):
        blocks = [block for block in payload if isinstance(block, email.message.Message)]
    else:
        text = _bytes(part)
        blocks = [_fields.parsestr(chunk) for chunk in
                  text.decode("utf-8", "replace").replace("\r\n", "\n").split("\n\n")]
    failed = []
    for block in blocks:
        action = str(block.get("Action", "")).strip().lower()
        recipient = str(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
        if action != "failed" or not recipient:
            continue
        _, _, address = recipient.partition(";")
        diagnostic = block.get("Diagnostic-Code")
        failed.append(Failed(address.strip() or recipient.strip(), action,
                             str(block.get("Status", "")).strip() or None,
                             " ".join(str(diagnostic).split()) if diagnostic else None))
    return failed


def _returned_id(part: email.message.Message) -> str:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        returned = inner[0] if isinstance(inner, list) and inner else None
        value = returned.get("Message-ID") if isinstance(returned, email.message.Message) else None
    else:
        text = _bytes(part)
        value = _fields.parsestr(text.decode("utf-8", "replace")).get("Message-ID")
    return str(value or "").strip().strip("<>")


def _bytes(part: email.message.Message) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""
