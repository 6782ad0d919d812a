"""The one route table of mailbridge's HTTP API.

Every route the app serves is a line here: method, path, handler, and what the OpenAPI document
says about it (:class:`~mailbridge.api.routing.Route`). :func:`add_routes` registers the handlers
from this table and :mod:`mailbridge.api.openapi` builds the document from it, so a route cannot
be served without being documented, or documented without being served. The handlers are the
dialects' adapters (:mod:`~mailbridge.api.jasni`, :mod:`~mailbridge.api.exante`), the health
probes and the documentation (:mod:`~mailbridge.api.docs`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from aiohttp import web

from mailbridge.api import docs, exante, health, jasni, mcp_tools, review
from mailbridge.api.keys import ROUTE_TABLE
from mailbridge.api.params import DEFAULT_LIMIT, MAX_IDEMPOTENCY_KEY, MAX_LIMIT, MAX_UID
from mailbridge.api.routing import (
    TAG_DOCS,
    TAG_EXANTE,
    TAG_HEALTH,
    TAG_JASNI,
    TAG_MCP,
    TAG_METRICS,
    TAG_REVIEW,
    Param,
    Route,
)
from mailbridge.api.schemas import (
    ExanteDraft,
    ExanteDraftList,
    ExanteDraftUpsert,
    ExanteForwardDraft,
    ExanteReplyDraft,
    ExanteWebhookDeliveries,
    ExanteWebhookList,
    HealthStatus,
    JasniAccountList,
    JasniApprovalAnswer,
    JasniAttachmentList,
    JasniAttachmentOne,
    JasniDraftCreate,
    JasniDraftData,
    JasniDraftDeleted,
    JasniDraftList,
    JasniDraftSaved,
    JasniDraftUpdate,
    JasniEmailAction,
    JasniEmailChanged,
    JasniEmailData,
    JasniEmailDeleted,
    JasniEmailLabels,
    JasniEmailList,
    JasniForwarded,
    JasniForwardRequest,
    JasniLabelAssign,
    JasniLabelCreate,
    JasniLabelCreated,
    JasniLabelDeleted,
    JasniLabelList,
    JasniLabelsAssigned,
    JasniLabelsRemoved,
    JasniOk,
    JasniPreview,
    JasniRaw,
    JasniReplied,
    JasniReplyRequest,
    JasniSendEmail,
    JasniSendRequest,
    JasniSent,
    JasniThread,
    JasniThreadList,
    JasniWebhookData,
    JasniWebhookDeleted,
    JasniWebhookDeliveries,
    JasniWebhookList,
    JasniWebhookUpdate,
    Readiness,
    RejectRequest,
    Webhook,
    WebhookCreate,
    WebhookUpdate,
)
from mailbridge.threads import WINDOW

# --- parameters

def _query(name: str, description: str, schema: Mapping[str, Any] | None = None) -> Param:
    return Param(name, "query", schema or {"type": "string"}, description)


_UID_INT = {"type": "integer", "minimum": 1, "maximum": MAX_UID}
_UUID = {"type": "string", "format": "uuid"}

JASNI_DRAFT_UID = Param(
    "uid", "path", {"oneOf": [_UID_INT, _UUID]},
    "The IMAP UID of the message holding the draft (it changes on every update; the old one then "
    "answers 404), or the draft's stable id (UUID), which never changes.", required=True)
UID_QUERY = _query("uid", "The draft: its IMAP UID or its stable id (UUID).",
                   {"oneOf": [_UID_INT, _UUID]})
JASNI_EMAIL_UID = Param("uid", "path", _UID_INT, "The message's IMAP UID in `folder`.",
                        required=True)
EXANTE_UID = Param("uid", "path", _UUID,
                   "The draft's stable id (`uid` of the record; not an IMAP UID).", required=True)

ACCOUNT = _query("account", "The account's email address or its configured id (UUID). May be "
                 "omitted when the token may use exactly one account; otherwise its absence is a 422.")
FOLDER = _query("folder", "Any mailbox name (IMAP, UTF-8). Default `INBOX`. `Drafts`, `Sent`, "
                "`Trash`, `Junk` and `Archive` (any case) mean the account's folder of that role, "
                "whatever the server calls it (`[Gmail]/Drafts`, `INBOX.Drafts`...).",
                {"type": "string", "default": "INBOX", "maxLength": 1000})
LIMIT = _query("limit", f"Page size, {DEFAULT_LIMIT} when omitted, at most {MAX_LIMIT}; "
               "anything else is a 400.",
               {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT})
FROM_ACCOUNT = _query("from_account_id", "The account's id (UUID) or email address. May be "
                      "omitted when the token may use exactly one account.")
FROM_ACCOUNT_HINT = _query("from_account_id", "Look for the draft in this account only (id or "
                           "email). Without it every account the token may use is searched.")
CONTEXT_TYPE = _query("context_type", "Only drafts linked to this kind of entity (exact match).")
CONTEXT_ID = _query("context_id", "Only drafts linked to this entity id (exact match).")
STATUS = _query("status", "Only drafts in this state; another value is a 400.",
                {"$ref": "#/components/schemas/Status"})
CURSOR = _query("cursor", "`next_cursor` of the previous page; omit it for the first page. "
                "A cursor this service did not hand out is a 400.")
IF_MATCH = Param(
    "If-Match", "header", {"type": "string"},
    "The `ETag` of the draft as last seen (or `*`; several comma-separated tags allowed, RFC "
    "9110). When the draft changed since, the call answers 412 and changes nothing.")
IDEMPOTENCY_KEY = Param(
    "Idempotency-Key", "header",
    {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY, "pattern": "^[ -~]+$"},
    f"1-{MAX_IDEMPOTENCY_KEY} printable ASCII characters chosen by the caller. A retry with the "
    "same key (and the same token) returns the first result and does no second create or send; "
    "keys of different tokens never meet.")


# --- examples (posted to the real API by tests/test_openapi.py)

EXAMPLE_ACCOUNT = "alice@example.com"
EXAMPLE_ACCOUNT_ID = "6f1c9f0e-8a51-4d0b-9a8e-2a7d0c1e5b42"
EXAMPLE_DRAFT_ID = "0d3b7c52-4a8e-4f5e-b1c6-93e2d7f04a18"

_JASNI_CREATE = {
    "account": EXAMPLE_ACCOUNT,
    "to": ["Bob Builder <bob@example.com>"], "cc": "carol@example.com",
    "subject": "Quarterly report",
    "text": "Hello Bob,\n\nthe report is attached.",
    "html": "<p>Hello Bob,</p><p>the report is attached.</p>",
    "attachments": [{"filename": "report.txt", "contentType": "text/plain",
                     "content": "UXVhcnRlcmx5IHJlcG9ydAo="}],
    "contextType": "invoice", "contextId": "inv-2026-0042",
}
_JASNI_UPDATE = {"subject": "Quarterly report (final)",
                 "plannedSendAt": "2031-06-02T09:00:00+02:00"}
_EXANTE_CREATE = {
    "from_account_id": EXAMPLE_ACCOUNT_ID,
    "to": ["Bob Builder <bob@example.com>"], "cc": ["carol@example.com"],
    "subject": "Quarterly report", "body_text": "Hello Bob,\n\nthe report is attached.",
    "attachments": [{"filename": "report.txt", "content_type": "text/plain",
                     "data_base64": "UXVhcnRlcmx5IHJlcG9ydAo="}],
    "context_type": "invoice", "context_id": "inv-2026-0042",
}
_EXANTE_UPDATE = {"uid": EXAMPLE_DRAFT_ID, "subject": "Quarterly report (final)",
                  "planned_send_at": "2031-06-02T07:00:00Z"}

_SEND_OUTCOMES = (
    "Sends exactly once: a retry, or a send of a draft already sent, returns the same result and "
    "delivers nothing again. The recipients get the message without Bcc; the Sent folder gets a "
    "copy with Bcc.")

_APPROVAL = (
    "A token without the `send` scope (an agent's: `write` only), or any token on an account "
    "with `require_approval = true`, does not send: the draft then awaits approval (status "
    "`awaiting_approval`, who asked in its `approval`), answered with 202, and is sent when a "
    "token with the `approve` scope approves it. A draft that awaits approval, was rejected, or "
    "changed since it was approved is never sent without a new approval.")

_SEND_NOTES = {
    409: "Another send of this draft is in flight (`conflict`).",
    422: "The draft has no recipient, too many, or an invalid address (`invalid_input`; `field` "
         "names it).",
    502: "The SMTP server refused the message (`smtp_rejected`, `smtp_auth_failed`, "
         "`smtp_outcome_unknown` when the connection dropped after the data was sent: do not retry "
         "blindly). The draft is kept with status `failed` and `last_error` = the server's reply.",
    503: "The SMTP or IMAP server could not be reached or answered \"try later\" (`smtp_unavailable`, "
         "`smtp_temporary_failure`, `imap_unavailable`). Nothing was delivered; the draft is kept "
         "unchanged and a retry is safe.",
}

_SEND_NEW_NOTES = {**_SEND_NOTES, 422: "The Idempotency-Key was used before with another "
                  "request (`idempotency_key_reused`). Recipients missing or invalid are a 400, "
                  "checked before anything is stored."}

_BODY_ERRORS = (400, 401, 403, 404, 409, 413, 415, 422, 502, 503)

_LABELS_TEXT = (
    "A label on a message is an IMAP keyword, so mail clients that show keywords "
    "(Thunderbird's tags) see it; the keyword is the label's `id`: its name where that is a "
    "safe keyword (at most 50 ASCII characters, no IMAP specials, no leading `$`), else "
    "`mb_` and 26 characters of the name's SHA-256 (base32), so any name of up to 100 "
    "characters works and has the same id in every account. The registry (name, colour, "
    "description) is kept in the mail server: one small message per label in the account's "
    "`Mailbridge` folder (`[accounts.folders] mailbridge`), never in a side database. Names are "
    "unique per account whatever their case.")
_REGISTRY_ACCOUNT = _query(
    "account", "Only this account (email or id). Without it the call acts on every account the "
    "token may use, and a label has the same `id` in each.")

def _refused_account_call(method: Literal["POST", "PATCH", "DELETE"], verb: str) -> Route:
    return Route(
        method, f"{jasni.PREFIX}/accounts", jasni.change_accounts,
        f"jasni{verb}Account", TAG_JASNI, f"{verb} an account (refused)",
        f"The Jasni SDK's `accounts.{verb.lower()}`, which provisions mailboxes on a hosted "
        "service. mailbridge is a gateway to mailboxes its operator configured (`[[accounts]]`), "
        "so this always answers 403 `accounts_from_configuration`: a refusal by design, not a "
        "server fault to retry (so not 501, which callers and monitors count as an error of the "
        "server).",
        "read", None, refused=True, errors=(401, 403),
        error_notes={403: "Always: accounts come from the operator's configuration "
                          "(`accounts_from_configuration`)."})


_WEBHOOKS_TEXT = (
    "A subscription belongs to the token that made it: a token sees and changes only its own, "
    "and is sent only events of accounts it may read. Subscriptions live in the mail server (a "
    "record in the mailbridge folder of the token's first account), so every instance knows "
    "them. URLs are http or https without credentials; loopback and private addresses need "
    "`[server] allow_private_webhooks = true`.")
_DELIVERIES = (
    "Deliveries are POSTs of JSON, signed, with a stable event id (`eventId` / `webhook-id`) "
    "that a receiver can drop repeats by. A timeout, a lost connection or a 5xx (or 429) is "
    "retried after 1, 2, 4... seconds for `[server] webhook_retry_seconds`. These attempts are "
    "every instance's (the last 100 per subscription, kept 7 days as records in the mail "
    "server).")
_WEBHOOK_ID = Param("id", "path", _UUID, "The subscription's id.", required=True)

ROUTES: tuple[Route, ...] = (
    # ------------------------------------------------------------------ dialect 1: Jasni
    Route(
        "GET", f"{jasni.PREFIX}/accounts", jasni.list_accounts,
        "jasniListAccounts", TAG_JASNI, "List the accounts of the token",
        "Not in the original contract: the accounts this token may use (id, email address, "
        "display name), so a caller can find the `account` to pass.",
        "read", JasniOk[JasniAccountList], errors=(401, 403)),
    _refused_account_call("POST", "Create"),
    _refused_account_call("PATCH", "Update"),
    _refused_account_call("DELETE", "Delete"),
    Route(
        "POST", f"{jasni.PREFIX}/emails/drafts", jasni.create_draft,
        "jasniCreateDraft", TAG_JASNI, "Create a draft",
        "Stores a new draft in the account's Drafts folder (flags `\\Draft \\Seen`).\n\n"
        "- `account` may be omitted when the token may use exactly one account (the contract "
        "lists it as required; without it and with several accounts the answer is 422).\n"
        "- `to`, `cc`, `bcc`: one address, a comma-separated string or a list; `Name <a@b>` "
        "accepted.\n"
        "- `attachments[].content` is base64 (RFC 4648, padded); `contentType` is guessed from "
        "the filename when omitted.\n"
        "- `references`: a space-separated string or a list of Message-IDs.\n"
        "- `plannedSendAt` (RFC 3339 with offset) schedules the draft.\n\n"
        "With an `Idempotency-Key`, a retry returns the draft the first call created, again with "
        "201. The response carries the draft's `ETag`.",
        "write", JasniOk[JasniDraftSaved], status=201, status_description="The draft was stored.",
        body=JasniDraftCreate,
        examples={"create": ("A draft with an attachment", _JASNI_CREATE)},
        params=(IDEMPOTENCY_KEY,), errors=_BODY_ERRORS, etag=True, idempotency=True),
    Route(
        "GET", f"{jasni.PREFIX}/emails/drafts", jasni.list_drafts,
        "jasniListDrafts", TAG_JASNI, "List drafts",
        f"The drafts of the account, newest first: the first `limit` (default {DEFAULT_LIMIT}, "
        f"at most {MAX_LIMIT}); `total` counts them all. Drafts written by other mail clients are "
        "listed too. Dialect 1 has no paging cursor (dialect 2 has).",
        "read", JasniOk[JasniDraftList], params=(ACCOUNT, LIMIT),
        errors=(400, 401, 403, 404, 502, 503)),
    Route(
        "GET", f"{jasni.PREFIX}/emails/drafts/{{uid}}", jasni.get_draft,
        "jasniGetDraft", TAG_JASNI, "Get a draft",
        "The whole draft, with its `ETag`.",
        "read", JasniOk[JasniDraftData], params=(JASNI_DRAFT_UID, ACCOUNT),
        errors=(400, 401, 403, 404, 502, 503), etag=True),
    Route(
        "GET", f"{jasni.PREFIX}/emails/drafts/{{uid}}/preview", jasni.preview_draft,
        "jasniPreviewDraft", TAG_JASNI, "Preview what a send would deliver",
        "Exactly the message that a send of the draft would hand to the SMTP server now: "
        "without Bcc and without mailbridge's own `X-Mailbridge-*` headers, its `Date` the time "
        "of the request; `envelopeFrom` and `envelopeTo` are the SMTP envelope. As JSON (`raw` "
        "as text) unless the `Accept` header leaves JSON out: then the message itself "
        "(`message/rfc822`) with the envelope in `X-Envelope-From` and `X-Envelope-To`, as "
        "dialect 2 answers. A draft that a send would refuse (no valid recipient) answers as "
        "the send does.",
        "read", JasniOk[JasniPreview], alt_media={"message/rfc822": {"type": "string"}},
        params=(JASNI_DRAFT_UID, ACCOUNT), errors=(400, 401, 403, 404, 422, 502, 503)),
    Route(
        "PUT", f"{jasni.PREFIX}/emails/drafts/{{uid}}", jasni.update_draft,
        "jasniUpdateDraft", TAG_JASNI, "Update a draft",
        "Replaces the draft's message with a new version: omitted fields are kept, `null` "
        "clears a field, `attachments` given replace the whole list. The answer names the new "
        "IMAP `uid` (the old one then answers 404); `id` stays. `account` may come in the body or "
        "as `?account=`. A draft being sent cannot be changed (409).",
        "write", JasniOk[JasniDraftSaved], body=JasniDraftUpdate,
        examples={"reschedule": ("A new subject, scheduled", _JASNI_UPDATE)},
        params=(JASNI_DRAFT_UID, ACCOUNT, IF_MATCH),
        errors=(400, 401, 403, 404, 409, 412, 413, 415, 502, 503), etag=True, if_match=True),
    Route(
        "DELETE", f"{jasni.PREFIX}/emails/drafts/{{uid}}", jasni.delete_draft,
        "jasniDeleteDraft", TAG_JASNI, "Delete a draft",
        "Removes the draft from the Drafts folder; `uid` in the answer is the one it had. A draft "
        "being sent cannot be deleted (409).",
        "write", JasniOk[JasniDraftDeleted], params=(JASNI_DRAFT_UID, ACCOUNT, IF_MATCH),
        errors=(400, 401, 403, 404, 409, 412, 502, 503), if_match=True),
    Route(
        "PUT", f"{jasni.PREFIX}/emails/drafts", jasni.update_draft,
        "jasniUpdateDraftByBody", TAG_JASNI, "Update a draft named in the body",
        "The Jasni SDK's form of the update (`drafts.update`): `uid` (IMAP UID or stable id) comes "
        "in the body instead of the path. Everything else as `PUT /api/v1/emails/drafts/{uid}`; "
        "without `uid` the answer is 422.",
        "write", JasniOk[JasniDraftSaved], body=JasniDraftUpdate,
        params=(ACCOUNT, IF_MATCH),
        errors=(400, 401, 403, 404, 409, 412, 413, 415, 502, 503), etag=True, if_match=True),
    Route(
        "DELETE", f"{jasni.PREFIX}/emails/drafts", jasni.delete_draft,
        "jasniDeleteDraftByQuery", TAG_JASNI, "Delete a draft named in the query",
        "The Jasni SDK's form of the delete (`drafts.delete`): `?uid=` (IMAP UID or stable id) "
        "instead of the path. Everything else as `DELETE /api/v1/emails/drafts/{uid}`; without "
        "`uid` the answer is 422.",
        "write", JasniOk[JasniDraftDeleted], params=(UID_QUERY, ACCOUNT, IF_MATCH),
        errors=(400, 401, 403, 404, 409, 412, 502, 503), if_match=True),
    Route(
        "POST", f"{jasni.PREFIX}/emails/drafts/{{uid}}/send", jasni.send_draft,
        "jasniSendDraft", TAG_JASNI, "Send a draft",
        f"{_SEND_OUTCOMES} The body is optional (`account` may also come as `?account=`). The "
        "answer's `uid` is the message's UID in Sent, or null when the account keeps no Sent "
        "copy (e.g. Gmail, whose submission files its own). "
        f"{_APPROVAL} The 202 answer's data is `{{uid, id, account, status, message}}`.",
        "write", JasniOk[JasniSent], body=JasniSendRequest, body_required=False,
        examples={"send": ("Naming the account", {"account": EXAMPLE_ACCOUNT})},
        params=(JASNI_DRAFT_UID, ACCOUNT, IF_MATCH, IDEMPOTENCY_KEY),
        errors=(400, 401, 403, 404, 409, 412, 415, 422, 502, 503), error_notes=_SEND_NOTES,
        if_match=True, idempotency=True),
    Route(
        "POST", f"{jasni.PREFIX}/emails/drafts/{{uid}}/approve", jasni.approve_draft,
        "jasniApproveDraft", TAG_JASNI, "Approve a draft's send",
        "Approves the draft as it is now (recorded in it: who, when) and sends it, answering as "
        "a send does; a draft with a planned time is left to the scheduler instead (`status` "
        "`scheduled`). Needs the `approve` scope. Any later change sends it back to review.",
        "approve", JasniOk[JasniSent], body=JasniSendRequest, body_required=False,
        params=(JASNI_DRAFT_UID, ACCOUNT, IF_MATCH),
        errors=(400, 401, 403, 404, 409, 412, 415, 422, 502, 503), error_notes=_SEND_NOTES,
        if_match=True),
    Route(
        "POST", f"{jasni.PREFIX}/emails/drafts/{{uid}}/reject", jasni.reject_draft,
        "jasniRejectDraft", TAG_JASNI, "Reject a draft's send",
        "Keeps the draft, status `rejected`, with the `reason` (one line, kept in the draft) and "
        "who rejected it. Needs the `approve` scope. A new send request puts it up again.",
        "approve", JasniOk[JasniApprovalAnswer], body=RejectRequest,
        examples={"reject": ("Why", {"reason": "Wrong invoice amount"})},
        params=(JASNI_DRAFT_UID, ACCOUNT, IF_MATCH),
        errors=(400, 401, 403, 404, 409, 412, 415, 502, 503), if_match=True),
    Route(
        "GET", f"{jasni.PREFIX}/emails", jasni.list_emails,
        "jasniListEmails", TAG_JASNI, "List the messages of a folder",
        f"Any folder, newest first: the first `limit` (default {DEFAULT_LIMIT}, at most "
        f"{MAX_LIMIT}); `total` counts them all. An unknown folder is a 404.",
        "read", JasniOk[JasniEmailList], params=(ACCOUNT, FOLDER, LIMIT),
        errors=(400, 401, 403, 404, 502, 503)),
    Route(
        "GET", f"{jasni.PREFIX}/emails/threads", jasni.list_threads,
        "jasniListThreads", TAG_JASNI, "List a folder's threads",
        "The conversations among the folder's `limit` newest messages, the most recently "
        "active first. Messages are grouped as RFC 5256's REFERENCES algorithm groups them: by "
        "Message-ID, References and In-Reply-To, then threads whose first messages share a base "
        "subject (`Re: [list] Plan` and `plan`). Where the mail server offers `THREAD=REFERENCES` "
        "it does the grouping; elsewhere mailbridge does the same. `threadId` is the Message-ID "
        "of the conversation's first message, whether or not that message is in this folder, "
        "so a conversation has one id in INBOX and in Sent (`uid:<UID>` for a message without "
        "any Message-ID).",
        "read", JasniOk[JasniThreadList],
        params=(ACCOUNT, FOLDER, _query(
            "limit", f"How many of the newest messages to group, {jasni.THREAD_LIMIT} when "
            f"omitted, at most {WINDOW}; anything else is a 400.",
            {"type": "integer", "minimum": 1, "maximum": WINDOW, "default": jasni.THREAD_LIMIT})),
        errors=(400, 401, 403, 404, 502, 503)),
    Route(
        "GET", f"{jasni.PREFIX}/emails/threads/{{thread_id}}", jasni.get_thread,
        "jasniGetThread", TAG_JASNI, "Get one thread",
        f"Every message of the thread, oldest first, as `GET /api/v1/emails/{{uid}}` shows "
        f"them. The thread is looked for among the folder's {WINDOW} newest messages, and "
        "found by its `threadId` or by the Message-ID of any of its messages (angle brackets "
        "optional; URL-encode it).",
        "read", JasniOk[JasniThread],
        params=(Param("thread_id", "path", {"type": "string", "minLength": 1},
                      "The thread's `threadId`, or a Message-ID in it.", required=True),
                ACCOUNT, FOLDER),
        errors=(400, 401, 403, 404, 502, 503)),
    Route(
        "GET", f"{jasni.PREFIX}/emails/{{uid}}", jasni.get_email,
        "jasniGetEmail", TAG_JASNI, "Get a message",
        "The whole message. `bcc` is the sender's own data: it is given for the Drafts and Sent "
        "folders and null in any other.",
        "read", JasniOk[JasniEmailData], params=(JASNI_EMAIL_UID, ACCOUNT, FOLDER),
        errors=(400, 401, 403, 404, 502, 503)),
    Route(
        "PATCH", f"{jasni.PREFIX}/emails/{{uid}}", jasni.change_email,
        "jasniMarkEmail", TAG_JASNI, "Mark a message read or unread",
        "`{\"action\": \"read\"}` sets `\\Seen` on the message, `\"unread\"` clears it "
        "(the Jasni SDK's `emails.mark_as_read` / `mark_as_unread`).",
        "write", JasniOk[JasniEmailChanged], body=JasniEmailAction,
        examples={"read": ("Mark it read", {"action": "read"})},
        params=(JASNI_EMAIL_UID, ACCOUNT, FOLDER),
        errors=(400, 401, 403, 404, 415, 502, 503)),
    Route(
        "DELETE", f"{jasni.PREFIX}/emails/{{uid}}", jasni.delete_email,
        "jasniDeleteEmail", TAG_JASNI, "Delete a message",
        "Moves the message to the account's Trash; deletes it for good when the account has no "
        "Trash or the message is in Trash. A message of Drafts is a draft: it is deleted as "
        "`DELETE /api/v1/emails/drafts/{uid}` deletes drafts (every copy; into Trash when the "
        "account says `delete = \"trash\"`). `movedTo` names Trash, or is null.",
        "write", JasniOk[JasniEmailDeleted], params=(JASNI_EMAIL_UID, ACCOUNT, FOLDER),
        errors=(400, 401, 403, 404, 409, 502, 503)),
    Route(
        "GET", f"{jasni.PREFIX}/emails/{{uid}}/raw", jasni.get_raw,
        "jasniGetRawEmail", TAG_JASNI, "Get a message's source",
        "The message as the server stores it (RFC 5322), as text: UTF-8, a byte that is not "
        "UTF-8 reads as U+FFFD.",
        "read", JasniOk[JasniRaw], params=(JASNI_EMAIL_UID, ACCOUNT, FOLDER),
        errors=(400, 401, 403, 404, 502, 503)),
    Route(
        "GET", f"{jasni.PREFIX}/emails/{{uid}}/attachments", jasni.list_attachments,
        "jasniListAttachments", TAG_JASNI, "Get a message's attachments",
        "Every attachment of the message with its bytes (`content`, base64), in the order of the "
        "message's `attachments`. To fetch one big file, ask for it alone, as bytes: "
        "`GET .../attachments/{attachment}` with `Accept: application/octet-stream`.",
        "read", JasniOk[JasniAttachmentList], params=(JASNI_EMAIL_UID, ACCOUNT, FOLDER),
        errors=(400, 401, 403, 404, 502, 503)),
    Route(
        "GET", f"{jasni.PREFIX}/emails/{{uid}}/attachments/{{attachment}}", jasni.get_attachment,
        "jasniGetAttachment", TAG_JASNI, "Get one attachment",
        "One attachment, by its file name as listed (the first of that name), else by its "
        "0-based index in the message's `attachments`. By default, and whenever the `Accept` "
        "header allows `application/json` (the Jasni SDK sends `*/*`), the answer is JSON with "
        "the bytes base64-encoded. An `Accept` that leaves JSON out (`application/octet-stream`, "
        "or the attachment's own type) gets the bytes themselves, with the attachment's "
        "`Content-Type` and a `Content-Disposition: attachment` naming the file, streamed as "
        "they are read from the mail server in pieces of 256 KiB, so a large file is never held "
        "whole. Should the message vanish while it is being read, the body is cut short (the "
        "chunked encoding is not terminated), never passed off as complete.",
        "read", JasniOk[JasniAttachmentOne],
        alt_media={"application/octet-stream": {"type": "string", "format": "binary"}},
        params=(JASNI_EMAIL_UID, Param("attachment", "path", {"type": "string", "minLength": 1},
                                       "The file name, or the 0-based index.", required=True),
                ACCOUNT, FOLDER),
        errors=(400, 401, 403, 404, 502, 503),
        error_notes={404: "No such message, or it has no attachment of that name or index "
                          "(`not_found`, `field` names `uid` or `attachment`)."}),
    Route(
        "GET", f"{jasni.PREFIX}/emails/{{uid}}/labels", jasni.list_email_labels,
        "jasniListEmailLabels", TAG_JASNI, "List a message's labels",
        f"The registry's labels the message carries. {_LABELS_TEXT} IMAP keeps no author or "
        "time of a keyword, so `applied_by` and `applied_at` are `\"\"` here.",
        "read", JasniOk[JasniEmailLabels], params=(JASNI_EMAIL_UID, ACCOUNT, FOLDER),
        errors=(400, 401, 403, 404, 502, 503)),
    Route(
        "POST", f"{jasni.PREFIX}/emails/{{uid}}/labels", jasni.assign_email_labels,
        "jasniAssignEmailLabels", TAG_JASNI, "Label a message",
        "Puts labels on the message: `label_ids` of the registry (an unknown one is a 404 and "
        "changes nothing), and `labels` by name, created in the registry when missing (listed "
        "in `created_labels`). The answer lists every label the message carries now; those just "
        "applied carry `applied_by` (= `agent_name`), `applied_at` and `metadata`, which are "
        f"not stored. {_LABELS_TEXT} A folder whose PERMANENTFLAGS allow no new keywords "
        "answers 502 `imap_capability_missing`.",
        "write", JasniOk[JasniLabelsAssigned], body=JasniLabelAssign,
        examples={"names": ("By name, created when missing",
                            {"labels": ["Invoices", "Nächste Woche"], "agent_name": "sorter"})},
        params=(JASNI_EMAIL_UID, ACCOUNT, FOLDER),
        errors=(400, 401, 403, 404, 413, 415, 502, 503)),
    Route(
        "DELETE", f"{jasni.PREFIX}/emails/{{uid}}/labels", jasni.remove_email_labels,
        "jasniRemoveEmailLabels", TAG_JASNI, "Take labels off a message",
        "Removes the labels `label_ids` from the message; `removed_count` says how many of them "
        "it carried. The labels stay in the registry.",
        "write", JasniOk[JasniLabelsRemoved],
        params=(JASNI_EMAIL_UID, ACCOUNT, FOLDER,
                _query("label_ids", "Comma-separated label ids.")),
        errors=(400, 401, 403, 404, 502, 503)),
    Route(
        "GET", f"{jasni.PREFIX}/labels", jasni.list_labels,
        "jasniListLabels", TAG_JASNI, "List labels",
        f"The label registry. {_LABELS_TEXT}",
        "read", JasniOk[JasniLabelList],
        params=(_REGISTRY_ACCOUNT, _query(
            "include_count", "`true`: add `email_count`, the messages carrying each label in "
            "every folder but Trash (a SEARCH per folder and label).", {"type": "boolean"})),
        errors=(400, 401, 403, 404, 502, 503)),
    Route(
        "POST", f"{jasni.PREFIX}/labels", jasni.create_label,
        "jasniCreateLabel", TAG_JASNI, "Create a label",
        f"Adds a label to the registry. {_LABELS_TEXT} A name that exists already (any case) is "
        "a 409 and nothing is written; `color` is `#rrggbb`, chosen from the name when omitted.",
        "write", JasniOk[JasniLabelCreated], status=201, body=JasniLabelCreate,
        examples={"label": ("A label", {"name": "Important", "color": "#ff0000",
                                         "description": "Needs an answer today"})},
        params=(_REGISTRY_ACCOUNT,),
        errors=(400, 401, 403, 404, 409, 413, 415, 502, 503)),
    Route(
        "DELETE", f"{jasni.PREFIX}/labels", jasni.delete_label,
        "jasniDeleteLabel", TAG_JASNI, "Delete a label",
        "Removes the label from the registry and from every message that carries it, in every "
        "folder.",
        "write", JasniOk[JasniLabelDeleted],
        params=(_query("id", "The label's id."), _REGISTRY_ACCOUNT),
        errors=(400, 401, 403, 404, 502, 503)),
    Route(
        "POST", f"{jasni.PREFIX}/emails/send", jasni.send_email,
        "jasniSendEmail", TAG_JASNI, "Send a new message",
        "A message made and sent in one call (the Jasni SDK's `emails.send`): `from` names the "
        "account, the other fields are a draft's, plus `replyTo` (one address). It is sent as "
        f"a draft is, with the same guarantees: {_SEND_OUTCOMES} With an `Idempotency-Key`, a "
        "retry returns the first result. A send that fails leaves the message in Drafts with "
        "status `failed`, as a draft's does.",
        "send", JasniOk[JasniSent], body=JasniSendEmail,
        examples={"send": ("A short message", {
            "from": EXAMPLE_ACCOUNT, "to": "Bob Builder <bob@example.com>",
            "subject": "Quarterly report", "text": "Hello Bob,\n\nthe report is attached.",
            "replyTo": "reports@example.com"})},
        params=(IDEMPOTENCY_KEY,), errors=(400, 401, 403, 404, 409, 413, 415, 422, 502, 503),
        error_notes=_SEND_NEW_NOTES, idempotency=True),
    Route(
        "POST", f"{jasni.PREFIX}/emails/{{uid}}/reply", jasni.reply_email,
        "jasniReplyEmail", TAG_JASNI, "Reply to a message",
        "Sends a reply to the message (the Jasni SDK's `emails.reply`): to its Reply-To, else its "
        "From; with `replyAll`, also to everybody it went to (To and Cc), never to the account "
        "itself. Subject `Re:` once, In-Reply-To and References so that it threads under the "
        "original, the original quoted below (`includeOriginal`, default true: `> ` lines in the "
        "text, a `blockquote` in the html). Sent as `/emails/send` sends, once per "
        "Idempotency-Key; the original gets `\\Answered` when it is in INBOX.",
        "send", JasniOk[JasniReplied], body=JasniReplyRequest, body_required=False,
        examples={"reply": ("A short reply", {"text": "Thanks, received.", "replyAll": False})},
        params=(JASNI_EMAIL_UID, ACCOUNT, FOLDER, IDEMPOTENCY_KEY),
        errors=(400, 401, 403, 404, 409, 413, 415, 422, 502, 503), error_notes=_SEND_NEW_NOTES,
        idempotency=True),
    Route(
        "POST", f"{jasni.PREFIX}/emails/{{uid}}/forward", jasni.forward_email,
        "jasniForwardEmail", TAG_JASNI, "Forward a message",
        "Sends the message on to `to` (and `cc`, `bcc`; the Jasni SDK's `emails.forward`): "
        "subject `Fwd:` once, the forwarder's `text`/`html` first, then (`includeOriginal`, "
        "default true) a \"Forwarded message\" block naming the original's sender, date, "
        "subject and recipients, and its text and html; the original's attachments always go "
        "along. Sent as `/emails/send` sends, once per Idempotency-Key; the original gets "
        "`$Forwarded`.",
        "send", JasniOk[JasniForwarded], body=JasniForwardRequest,
        examples={"forward": ("To a colleague", {"to": "Bob Builder <bob@example.com>",
                                                 "text": "FYI, see below."})},
        params=(JASNI_EMAIL_UID, ACCOUNT, FOLDER, IDEMPOTENCY_KEY),
        errors=(400, 401, 403, 404, 409, 413, 415, 422, 502, 503), error_notes=_SEND_NEW_NOTES,
        idempotency=True),
    Route(
        "POST", f"{jasni.PREFIX}/emails/{{uid}}/reply/draft", jasni.reply_draft,
        "jasniReplyDraft", TAG_JASNI, "Draft a reply",
        "The reply `POST /emails/{uid}/reply` would send, stored as a draft instead, to be "
        "reviewed, edited and sent like any draft (the agent's flow: draft, review, send). It is "
        "threaded (`In-Reply-To`, `References`) and quoted as a reply is; when it is sent the "
        "original gets `\\Answered` (in INBOX). The answer is a create's; `Idempotency-Key` "
        "as on create.",
        "write", JasniOk[JasniDraftSaved], status=201, body=JasniReplyRequest,
        params=(JASNI_EMAIL_UID, ACCOUNT, FOLDER, IDEMPOTENCY_KEY),
        errors=(400, 401, 403, 404, 409, 413, 415, 422, 502, 503), etag=True,
        idempotency=True),
    Route(
        "POST", f"{jasni.PREFIX}/emails/{{uid}}/forward/draft", jasni.forward_draft,
        "jasniForwardDraft", TAG_JASNI, "Draft a forward",
        "The forward `POST /emails/{uid}/forward` would send, stored as a draft instead, the "
        "original's attachments in it. It carries `X-Forwarded-Message-Id` (as Thunderbird's "
        "forwards do); when it is sent the original gets `$Forwarded` (in INBOX).",
        "write", JasniOk[JasniDraftSaved], status=201, body=JasniForwardRequest,
        params=(JASNI_EMAIL_UID, ACCOUNT, FOLDER, IDEMPOTENCY_KEY),
        errors=(400, 401, 403, 404, 409, 413, 415, 422, 502, 503), etag=True,
        idempotency=True),
    Route(
        "GET", f"{jasni.PREFIX}/webhooks", jasni.list_webhooks,
        "jasniListWebhooks", TAG_JASNI, "List webhooks",
        f"The token's subscriptions, without their secrets. {_WEBHOOKS_TEXT}",
        "read", JasniOk[JasniWebhookList], errors=(401, 403, 502, 503)),
    Route(
        "POST", f"{jasni.PREFIX}/webhooks", jasni.create_webhook,
        "jasniCreateWebhook", TAG_JASNI, "Create a webhook",
        "Subscribes `url` to `events`, which are the Jasni SDK's event names (its models accept "
        "no other). The answer holds the `secret` deliveries are signed with "
        "(`X-Jasni-Signature: t=<unix>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">`), shown only "
        f"now. {_WEBHOOKS_TEXT}",
        "read", JasniOk[JasniWebhookData], status=201, body=WebhookCreate,
        examples={"create": ("Mail arriving and sent", {
            "url": "https://crm.example.com/hooks/mail", "events": ["email.received", "email.sent"],
            "description": "CRM inbox sync"})},
        errors=(400, 401, 403, 413, 415, 502, 503)),
    Route(
        "GET", f"{jasni.PREFIX}/webhooks/{{id}}", jasni.get_webhook,
        "jasniGetWebhook", TAG_JASNI, "Get a webhook", "One of the token's subscriptions.",
        "read", JasniOk[JasniWebhookData], params=(_WEBHOOK_ID,),
        errors=(400, 401, 403, 404, 502, 503)),
    Route(
        "PATCH", f"{jasni.PREFIX}/webhooks", jasni.update_webhook,
        "jasniUpdateWebhookById", TAG_JASNI, "Update a webhook (id in the body)",
        "The Jasni SDK's form of `PATCH /api/v1/webhooks/{id}`: `id` in the body. Changes the "
        "fields given; a field left out or null is kept.",
        "read", JasniOk[JasniWebhookData], body=JasniWebhookUpdate,
        errors=(400, 401, 403, 404, 413, 415, 502, 503)),
    Route(
        "PATCH", f"{jasni.PREFIX}/webhooks/{{id}}", jasni.update_webhook,
        "jasniUpdateWebhook", TAG_JASNI, "Update a webhook",
        "Changes the fields given (`url`, `events`, `active`, `description`); a field left out "
        "or null is kept. An `id` in the body must be the path's.",
        "read", JasniOk[JasniWebhookData], body=JasniWebhookUpdate, params=(_WEBHOOK_ID,),
        errors=(400, 401, 403, 404, 413, 415, 502, 503)),
    Route(
        "GET", f"{jasni.PREFIX}/webhooks/{{id}}/deliveries", jasni.webhook_deliveries,
        "jasniWebhookDeliveries", TAG_JASNI, "A webhook's recent deliveries",
        f"The latest delivery attempts, newest first, with status and latency. {_DELIVERIES}",
        "read", JasniOk[JasniWebhookDeliveries], params=(_WEBHOOK_ID,),
        errors=(400, 401, 403, 404, 502, 503)),
    Route(
        "DELETE", f"{jasni.PREFIX}/webhooks", jasni.delete_webhook,
        "jasniDeleteWebhookById", TAG_JASNI, "Delete a webhook (id in the query)",
        "The Jasni SDK's form of `DELETE /api/v1/webhooks/{id}`.",
        "read", JasniOk[JasniWebhookDeleted], params=(_query("id", "The subscription's id."),),
        errors=(400, 401, 403, 404, 502, 503)),
    Route(
        "DELETE", f"{jasni.PREFIX}/webhooks/{{id}}", jasni.delete_webhook,
        "jasniDeleteWebhook", TAG_JASNI, "Delete a webhook",
        "Ends the subscription; nothing more is delivered to it.",
        "read", JasniOk[JasniWebhookDeleted], params=(_WEBHOOK_ID,),
        errors=(400, 401, 403, 404, 502, 503)),
    # ------------------------------------------------------------------ dialect 2: Exante
    Route(
        "POST", f"{exante.PREFIX}/drafts/reply", exante.reply_draft,
        "exanteReplyDraft", TAG_EXANTE, "Draft a reply to a message",
        "A new draft replying to the message `message_uid` of `folder` (default INBOX) of the "
        "account: to its Reply-To or From (and with `reply_all` its To and Cc, the account "
        "left out), subject `Re:` once, `In-Reply-To` and `References` set, your `body_text` / "
        "`body_html` above the original quoted (`include_original`, default true). "
        "`context_type`, `context_id` and `planned_send_at` as on create. When it is sent the "
        "original gets `\\Answered` (in INBOX). 201 and the draft record with its `ETag`; "
        "`Idempotency-Key` as on create.",
        "write", ExanteDraft, status=201, status_description="Created: the new draft record.",
        body=ExanteReplyDraft, params=(IDEMPOTENCY_KEY,),
        errors=(400, 401, 403, 404, 409, 413, 415, 422, 502, 503), etag=True, idempotency=True),
    Route(
        "POST", f"{exante.PREFIX}/drafts/forward", exante.forward_draft,
        "exanteForwardDraft", TAG_EXANTE, "Draft a forward of a message",
        "A new draft forwarding the message `message_uid` of `folder` (default INBOX) to `to` "
        "(and `cc`, `bcc`): subject `Fwd:` once, your words first, then the original's details, "
        "text and html (`include_original`, default true); its attachments always go along. "
        "When it is sent the original gets `$Forwarded` (in INBOX). 201 and the draft record.",
        "write", ExanteDraft, status=201, status_description="Created: the new draft record.",
        body=ExanteForwardDraft, params=(IDEMPOTENCY_KEY,),
        errors=(400, 401, 403, 404, 409, 413, 415, 422, 502, 503), etag=True, idempotency=True),
    Route(
        "POST", f"{exante.PREFIX}/drafts", exante.upsert_draft,
        "exanteUpsertDraft", TAG_EXANTE, "Create or update a draft",
        "Upsert. Without `uid`: create a draft (201); `from_account_id` may be omitted when the "
        "token may use exactly one account. With `uid`: update only the fields given (200); "
        "`null` clears a field (`planned_send_at: null` unschedules the draft) and "
        "`attachments` given replace the list. A draft cannot move to another account (422).\n\n"
        "`Idempotency-Key` is honoured on create (a retry returns the first draft, again 201), "
        "`If-Match` on update. The answer is the draft record with its `ETag`.",
        "write", ExanteDraft, status=201, status_description="Created: the new draft record.",
        also={200: "Updated: the draft record as it is now."},
        body=ExanteDraftUpsert,
        examples={"create": ("Create a draft", _EXANTE_CREATE),
                  "update": ("Update two fields of a draft", _EXANTE_UPDATE)},
        params=(IF_MATCH, IDEMPOTENCY_KEY),
        errors=(400, 401, 403, 404, 409, 412, 413, 415, 422, 502, 503), etag=True, if_match=True,
        idempotency=True),
    Route(
        "GET", f"{exante.PREFIX}/drafts", exante.list_drafts,
        "exanteListDrafts", TAG_EXANTE, "List drafts",
        f"The drafts of one account, newest first, filtered on the mail server; `limit` default "
        f"{DEFAULT_LIMIT}, at most {MAX_LIMIT}. `next_cursor` is null on the last page; pass it "
        "back as `cursor` for the next one.",
        "read", ExanteDraftList,
        params=(FROM_ACCOUNT, CONTEXT_TYPE, CONTEXT_ID, STATUS, LIMIT, CURSOR),
        errors=(400, 401, 403, 404, 422, 502, 503)),
    Route(
        "GET", f"{exante.PREFIX}/drafts/{{uid}}", exante.get_draft,
        "exanteGetDraft", TAG_EXANTE, "Get a draft",
        "The draft record with its `ETag`, also after it was sent (status `sent`). The draft is "
        "looked for in every account the token may use unless `from_account_id` names one.",
        "read", ExanteDraft, params=(EXANTE_UID, FROM_ACCOUNT_HINT),
        errors=(400, 401, 403, 404, 502, 503), etag=True),
    Route(
        "GET", f"{exante.PREFIX}/drafts/{{uid}}/preview", exante.preview_draft,
        "exantePreviewDraft", TAG_EXANTE, "Preview what a send would deliver",
        "Exactly the message (`message/rfc822`) that a send of the draft would hand to the SMTP "
        "server now: without Bcc and without mailbridge's own `X-Mailbridge-*` headers, its `Date` "
        "the time of the request. The envelope is in the response headers `X-Envelope-From` and "
        "`X-Envelope-To` (comma-separated; an address that is not ASCII percent-encoded). A draft "
        "that a send would refuse (no valid recipient) answers as the send does.",
        "read", {"type": "string"}, media_type="message/rfc822",
        params=(EXANTE_UID, FROM_ACCOUNT_HINT), errors=(400, 401, 403, 404, 422, 502, 503)),
    Route(
        "DELETE", f"{exante.PREFIX}/drafts/{{uid}}", exante.delete_draft,
        "exanteDeleteDraft", TAG_EXANTE, "Delete a draft",
        "Removes the draft; 204 without a body. A draft being sent cannot be deleted (409).",
        "write", None, status=204, status_description="Deleted.",
        params=(EXANTE_UID, FROM_ACCOUNT_HINT, IF_MATCH),
        errors=(400, 401, 403, 404, 409, 412, 502, 503), if_match=True),
    Route(
        "GET", f"{exante.PREFIX}/webhooks", exante.list_webhooks,
        "exanteListWebhooks", TAG_EXANTE, "List webhooks",
        f"The token's subscriptions, without their secrets. {_WEBHOOKS_TEXT}",
        "read", ExanteWebhookList, errors=(401, 403, 502, 503)),
    Route(
        "POST", f"{exante.PREFIX}/webhooks", exante.create_webhook,
        "exanteCreateWebhook", TAG_EXANTE, "Create a webhook",
        "Subscribes `url` to `events` (`draft.created`, `draft.updated`, `draft.deleted`, "
        "`draft.scheduled`, `draft.sent`, `draft.failed`, `email.received`, `email.sent`, "
        "`email.deleted`, `email.bounced`). Deliveries are signed per Standard Webhooks "
        "(`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`) with the "
        f"`secret` (`whsec_...`) of this answer, shown only now. {_WEBHOOKS_TEXT}",
        "read", Webhook, status=201, body=WebhookCreate,
        examples={"create": ("Drafts changing", {
            "url": "https://crm.example.com/hooks/drafts",
            "events": ["draft.created", "draft.sent"]})},
        errors=(400, 401, 403, 413, 415, 422, 502, 503)),
    Route(
        "GET", f"{exante.PREFIX}/webhooks/{{id}}", exante.get_webhook,
        "exanteGetWebhook", TAG_EXANTE, "Get a webhook", "One of the token's subscriptions.",
        "read", Webhook, params=(_WEBHOOK_ID,), errors=(400, 401, 403, 404, 502, 503)),
    Route(
        "PATCH", f"{exante.PREFIX}/webhooks/{{id}}", exante.update_webhook,
        "exanteUpdateWebhook", TAG_EXANTE, "Update a webhook",
        "Changes the fields given (`url`, `events`, `active`, `description`); a field left out "
        "or null is kept.",
        "read", Webhook, body=WebhookUpdate, params=(_WEBHOOK_ID,),
        errors=(400, 401, 403, 404, 413, 415, 422, 502, 503)),
    Route(
        "GET", f"{exante.PREFIX}/webhooks/{{id}}/deliveries", exante.webhook_deliveries,
        "exanteWebhookDeliveries", TAG_EXANTE, "A webhook's recent deliveries",
        f"The latest delivery attempts, newest first, with status and latency. {_DELIVERIES}",
        "read", ExanteWebhookDeliveries, params=(_WEBHOOK_ID,),
        errors=(400, 401, 403, 404, 502, 503)),
    Route(
        "DELETE", f"{exante.PREFIX}/webhooks/{{id}}", exante.delete_webhook,
        "exanteDeleteWebhook", TAG_EXANTE, "Delete a webhook",
        "Ends the subscription; 204.",
        "read", None, status=204, status_description="Deleted.", params=(_WEBHOOK_ID,),
        errors=(400, 401, 403, 404, 502, 503)),
    Route(
        "POST", f"{exante.PREFIX}/drafts/{{uid}}/send", exante.send_draft,
        "exanteSendDraft", TAG_EXANTE, "Send a draft",
        f"{_SEND_OUTCOMES} No request body. The answer is the draft record with status `sent`. "
        f"{_APPROVAL}",
        "write", ExanteDraft, params=(EXANTE_UID, FROM_ACCOUNT_HINT, IF_MATCH, IDEMPOTENCY_KEY),
        also={202: "Not sent: the draft awaits approval (its record)."},
        errors=(400, 401, 403, 404, 409, 412, 415, 422, 502, 503), error_notes=_SEND_NOTES, etag=True,
        if_match=True, idempotency=True),
    Route(
        "POST", f"{exante.PREFIX}/drafts/{{uid}}/approve", exante.approve_draft,
        "exanteApproveDraft", TAG_EXANTE, "Approve a draft's send",
        "Approves the draft as it is now (recorded in it: who, when) and sends it: the record "
        "with status `sent`; a draft with a planned time is left to the scheduler (`scheduled`). "
        "No request body. Needs the `approve` scope. Any later change sends it back to review.",
        "approve", ExanteDraft, params=(EXANTE_UID, FROM_ACCOUNT_HINT, IF_MATCH),
        errors=(400, 401, 403, 404, 409, 412, 415, 422, 502, 503), error_notes=_SEND_NOTES,
        etag=True, if_match=True),
    Route(
        "POST", f"{exante.PREFIX}/drafts/{{uid}}/reject", exante.reject_draft,
        "exanteRejectDraft", TAG_EXANTE, "Reject a draft's send",
        "Keeps the draft, status `rejected`, with the `reason` and who rejected it in its "
        "`approval`. Needs the `approve` scope. A new send request puts it up again.",
        "approve", ExanteDraft, body=RejectRequest,
        examples={"reject": ("Why", {"reason": "Wrong invoice amount"})},
        params=(EXANTE_UID, FROM_ACCOUNT_HINT, IF_MATCH),
        errors=(400, 401, 403, 404, 409, 412, 415, 502, 503), etag=True, if_match=True),
    # ------------------------------------------------------------------ health and docs
    Route(
        "GET", "/healthz", health.healthz,
        "healthz", TAG_HEALTH, "Liveness",
        "200 while the process serves HTTP; no authentication, no I/O.",
        None, HealthStatus),
    Route(
        "GET", "/metrics", health.metrics,
        "metrics", TAG_METRICS, "Prometheus metrics",
        "The service's metrics in the Prometheus text format (`prometheus-client`), names "
        "starting with `mailbridge_`: histograms of HTTP requests (by route template, method and "
        "status), IMAP commands (by command and account) and SMTP submissions (by outcome); "
        "gauges of each account's IMAP pool (connections open, in use, operations waiting) and "
        "of the scheduler's lag behind the oldest due draft; counters of webhook deliveries (by "
        "outcome) and events (by type).",
        "metrics", {"type": "string"}, media_type="text/plain; version=0.0.4",
        status_description="The metrics.", errors=(401, 403)),
    Route(
        "GET", "/readyz", health.readyz,
        "readyz", TAG_HEALTH, "Readiness",
        "Logs in to every configured account's IMAP server. No authentication: it reveals only "
        "the account addresses an operator configured, never a password.",
        None, Readiness, status_description="Every account's IMAP server accepts the login.",
        also={503: "At least one account failed; its entry says why."}),
    Route(
        "GET", docs.OPENAPI_PATH, docs.openapi_json,
        "openapi", TAG_DOCS, "This document",
        "The OpenAPI 3.1 document, generated from the service's request and response models. "
        "Like every call but the health checks it needs a token.",
        "read", {"type": "object"}, status_description="The OpenAPI document.",
        errors=(401, 403)),
    Route(
        "GET", docs.DOCS_PATH, docs.docs_page,
        "docs", TAG_DOCS, "Readable API documentation",
        "Swagger UI (shipped with the service, no CDN) rendering this document. The page holds "
        "no data of its own; it asks for a token, keeps it in the browser tab's sessionStorage "
        "and sends it with the request for `/openapi.json` and with every \"Try it out\" call.",
        None, {"type": "string"}, media_type="text/html", status_description="The page."),
    # ------------------------------------------------------------------ review page
    Route(
        "GET", review.PAGE_PATH, review.page,
        "reviewPage", TAG_REVIEW, "The review page",
        "Where people review what agents drafted: the drafts awaiting approval first, then the "
        "others, across the token's accounts; a draft opens with its text, its HTML version "
        "(sandboxed, nothing remote loaded), attachments and exact recipients, to edit "
        "(Save), approve (Approve and send) or reject with a reason. The page holds no data: "
        "it asks for a token, keeps it in the browser tab's sessionStorage, and fetches the "
        "two fragments below with it; its actions are this API's update, approve and reject "
        "calls, each with the draft's ETag in If-Match.",
        None, {"type": "string"}, media_type="text/html", status_description="The page."),
    Route(
        "GET", review.LIST_PATH, review.drafts_fragment,
        "reviewDrafts", TAG_REVIEW, "The review page's list",
        "An HTML fragment: every draft of the token's accounts awaiting approval (oldest "
        "request first), then each account's newest others, with subject, recipients, "
        "account, status, age and context.",
        "read", {"type": "string"}, media_type="text/html",
        params=(Param("selected", "query", _UUID, "The draft shown as selected."),),
        errors=(400, 401, 403, 502, 503)),
    Route(
        "GET", review.DRAFT_PATH, review.draft_fragment,
        "reviewDraft", TAG_REVIEW, "The review page's draft",
        "An HTML fragment: one draft, its form and its actions (those the token's scopes "
        "allow), with its ETag.",
        "read", {"type": "string"}, media_type="text/html", params=(EXANTE_UID,),
        errors=(400, 401, 403, 404, 502, 503), etag=True),
    # ------------------------------------------------------------------ MCP
    Route(
        "POST", mcp_tools.PATH, mcp_tools.serve,
        "mcp", TAG_MCP, "MCP tools (Model Context Protocol)",
        "The MCP endpoint for agents, on the streamable HTTP transport (stateless; JSON "
        "answers): a JSON-RPC message in, its answer out, as the official `mcp` SDK's client "
        "sends and reads them. Tools: `list_drafts`, `get_draft`, `create_draft`, "
        "`update_draft`, `delete_draft`, `send_draft` (for a token without `send`, or in an "
        "account that requires approval, it puts the draft up for approval), `reply_draft`, "
        "`list_emails`, `get_email`; `tools/list` gives each one's schema. The token needs "
        "`read`; the tools that change the mailbox need `write`, as the API's calls do. A "
        "failure is a tool error (`isError`) with the API's message.",
        "read", {"type": "object", "description": "A JSON-RPC response (or none: 202)."},
        also={202: "A notification or a response was accepted (no body)."},
        errors=(401, 403)),
)
"""Every route of the app, in the order the document lists them."""


def add_routes(app: web.Application) -> None:
    """Registers every route of :data:`ROUTES` (aiohttp adds HEAD to each GET), and keeps the
    table in the app for the document (:mod:`mailbridge.api.docs`)."""
    app[ROUTE_TABLE] = ROUTES
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
    docs.add_assets(app)
    review.add_assets(app)


__all__ = ["ROUTES", "add_routes"]
