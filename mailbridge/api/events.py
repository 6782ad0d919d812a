"""What a webhook delivery says: an event as each dialect shows it.

- ``jasni`` (dialect 1): ``{"event": "<type>", "data": {...}}``, the message as a list entry of
  ``GET /api/v1/emails`` shows it, plus ``account``, ``folder``, ``origin`` and ``eventId``.
- ``standard`` (dialect 2): ``{"type": "<type>", "timestamp": "<RFC 3339>", "data": {...}}`` as
  the Standard Webhooks spec suggests; ``data`` has ``event_id``, ``origin`` (``api`` or
  ``mailbox``), ``account``, and ``draft`` (the draft record) for ``draft.*`` events or
  ``email`` for ``email.*`` events.

Both add what the event's ``detail`` says (``bounce`` for ``email.bounced``: the DSN's UID, the
Message-ID that bounced, and each failed recipient with its status and diagnostic).

No secret is ever in a body, and no Bcc of a message that was received.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mailbridge.api.conversion import format_address, message_id
from mailbridge.api.exante import render_draft
from mailbridge.api.jasni.common import render_email_summary
from mailbridge.api.schemas import rfc3339
from mailbridge.events import Event
from mailbridge.subscriptions import Scheme

__all__ = ["payload"]


def payload(event: Event, scheme: Scheme) -> Mapping[str, Any]:
    m = event.message
    if scheme == "jasni":
        entry = render_email_summary(m).model_dump(mode="json", by_alias=True)
        return {"event": event.type, "data": {**entry, "account": event.account.email,
                                              "folder": m.folder, "origin": event.origin,
                                              "eventId": event.id, **event.detail}}
    data: dict[str, Any] = {"event_id": event.id, "origin": event.origin,
                            "account": event.account.email}
    if event.type.startswith("draft."):
        data["draft"] = render_draft(m).model_dump(mode="json")
    else:
        data["email"] = {
            "folder": m.folder, "uid": m.uid, "message_id": message_id(m.parsed.message_id),
            "from": format_address(m.parsed.sender) if m.parsed.sender else None,
            "to": [format_address(a) for a in m.content.to],
            "cc": [format_address(a) for a in m.content.cc], "subject": m.content.subject,
            "date": rfc3339(m.parsed.date or m.internaldate or event.occurred_at)}
    data.update(event.detail)
    return {"type": event.type, "timestamp": rfc3339(event.occurred_at), "data": data}
