"""Dialect 1 (Jasni style) under ``/api/v1``: envelope ``{"success": true, "data": ...}``, camelCase.

Each handler adapts: authenticate (:mod:`~mailbridge.api.access`), read the request
(:mod:`~mailbridge.api.bodies`, :mod:`~mailbridge.api.params`, :mod:`~mailbridge.api.conversion`),
one DraftService call, render. Errors are rendered by the error middleware of
:mod:`mailbridge.api.app` as ``{"success": false, "error", "code", "field"}``.

``{uid}`` in a path is the integer IMAP UID of the message holding the draft (it changes on every
update; the old one then answers 404); the draft's stable UUID is accepted too. ``account`` (the
account's email address or id) may be omitted when the token may use exactly one account.

The handlers live by what they concern: :mod:`.drafts`, :mod:`.mail` (any message: read, act,
attachments, threads), :mod:`.sending` (send, reply, forward, and their drafts), :mod:`.labels`,
:mod:`.webhooks`, :mod:`.accounts`; :mod:`.common` has the envelope and the renderings.
"""

from __future__ import annotations

from mailbridge.api.jasni.accounts import change_accounts, list_accounts
from mailbridge.api.jasni.common import PREFIX, ok
from mailbridge.api.jasni.drafts import (
    approve_draft,
    create_draft,
    delete_draft,
    get_draft,
    list_drafts,
    preview_draft,
    reject_draft,
    send_draft,
    update_draft,
)
from mailbridge.api.jasni.labels import (
    assign_email_labels,
    create_label,
    delete_label,
    list_email_labels,
    list_labels,
    remove_email_labels,
)
from mailbridge.api.jasni.mail import (
    THREAD_LIMIT,
    change_email,
    delete_email,
    get_attachment,
    get_email,
    get_raw,
    get_thread,
    list_attachments,
    list_emails,
    list_threads,
)
from mailbridge.api.jasni.sending import (
    forward_draft,
    forward_email,
    reply_draft,
    reply_email,
    send_email,
)
from mailbridge.api.jasni.webhooks import (
    create_webhook,
    delete_webhook,
    get_webhook,
    list_webhooks,
    update_webhook,
    webhook_deliveries,
)

__all__ = [
    "PREFIX", "THREAD_LIMIT", "approve_draft", "assign_email_labels", "change_accounts",
    "change_email", "create_draft", "create_label", "create_webhook", "delete_draft",
    "delete_email", "delete_label", "delete_webhook", "forward_draft", "forward_email",
    "get_attachment", "get_draft", "get_email", "get_raw", "get_thread", "get_webhook",
    "list_accounts", "list_attachments", "list_drafts", "list_email_labels", "list_emails",
    "list_labels", "list_threads", "list_webhooks", "ok", "preview_draft", "reject_draft",
    "remove_email_labels", "reply_draft",
    "reply_email", "send_draft", "send_email", "update_draft", "update_webhook",
    "webhook_deliveries",
]
