"""Dialect 1 labels: on messages (IMAP keywords) and the registry (:mod:`mailbridge.labels`)."""

from __future__ import annotations

import contextlib
from typing import Any

from aiohttp import web

from mailbridge.api.access import authorize
from mailbridge.api.bodies import read_json_object, validate_body
from mailbridge.api.jasni.common import (
    account_of,
    folder_in,
    folder_of,
    ok,
)
from mailbridge.api.keys import LABELS
from mailbridge.api.params import (
    parse_uid,
    query_bool,
    query_text,
)
from mailbridge.api.schemas import (
    JasniCreatedLabel,
    JasniEmailLabel,
    JasniEmailLabels,
    JasniLabel,
    JasniLabelAssign,
    JasniLabelCreate,
    JasniLabelCreated,
    JasniLabelDeleted,
    JasniLabelList,
    JasniLabelsAssigned,
    JasniLabelsRemoved,
    rfc3339,
)
from mailbridge.auth import Principal
from mailbridge.config import AccountConfig
from mailbridge.errors import (
    Conflict,
    InvalidInput,
    NotFound,
)
from mailbridge.labels import Label, keyword_of
from mailbridge.views import utcnow


def _label_out(label: Label, count: int | None = None) -> JasniLabel:
    return JasniLabel(id=label.id, name=label.name, color=label.color,
                      description=label.description, created_at=label.created_at,
                      email_count=count)


def _registry_accounts(request: web.Request, principal: Principal) -> list[AccountConfig]:
    """The accounts a registry call acts on: ``account`` when given, else every one the token
    may use (the Jasni SDK's label calls name none)."""
    ref = query_text(request, "account")
    return [account_of(principal, ref)] if ref is not None else list(principal.accounts)


async def list_labels(request: web.Request) -> web.Response:
    """GET /api/v1/labels?include_count=&account= -> {labels, total}: every account's labels,
    one entry per id (counts summed)."""
    principal = authorize(request, "read")
    with_count = query_bool(request, "include_count")
    service = request.app[LABELS]
    labels: dict[str, Label] = {}
    counts: dict[str, int] = {}
    for account in _registry_accounts(request, principal):
        registry = await service.registry(account)
        for label in registry:
            labels.setdefault(label.id, label)
        if with_count:
            for key, n in (await service.count(account, registry)).items():
                counts[key] = counts.get(key, 0) + n
    out = [_label_out(lb, counts.get(lb.id, 0) if with_count else None) for lb in labels.values()]
    return ok(JasniLabelList(labels=out, total=len(out)))


async def create_label(request: web.Request) -> web.Response:
    """POST /api/v1/labels?account= {name, color, description} -> 201 {label, message}: in
    every account the token may use (or ``account``), under the same id."""
    principal = authorize(request, "write")
    body = validate_body(JasniLabelCreate, await read_json_object(request))
    accounts = _registry_accounts(request, principal)
    service = request.app[LABELS]
    label: Label | None = None
    for account in accounts:  # 409 before anything is written when any account has it
        if any(lb.name.casefold() == body.name.strip().casefold()
               for lb in await service.registry(account)):
            raise Conflict(f"{account.email} has a label {body.name.strip()!r} already",
                           field="name")
    for account in accounts:
        made = await service.create(account, body.name, body.color, body.description)
        label = label or made
    assert label is not None
    return ok(JasniLabelCreated(label=_label_out(label), message="Label created"), status=201)


async def delete_label(request: web.Request) -> web.Response:
    """DELETE /api/v1/labels?id=&account= -> {deleted_id, deleted_name, message}: from the
    registry and from every message, in every account that has it."""
    principal = authorize(request, "write")
    label_id = query_text(request, "id")
    if not label_id:
        raise InvalidInput("id is required: the label's id", field="id")
    service = request.app[LABELS]
    deleted: Label | None = None
    for account in _registry_accounts(request, principal):
        with contextlib.suppress(NotFound):
            deleted = await service.delete(account, label_id)
    if deleted is None:
        raise NotFound(f"no label {label_id!r}", field="id")
    return ok(JasniLabelDeleted(deleted_id=deleted.id, deleted_name=deleted.name,
                                message="Label deleted successfully"))


def _email_label(label: Label, by: str = "", at: str = "",
                 metadata: dict[str, Any] | None = None) -> JasniEmailLabel:
    return JasniEmailLabel(**_label_out(label).model_dump(), applied_by=by, applied_at=at,
                           metadata=metadata)


async def list_email_labels(request: web.Request) -> web.Response:
    """GET /api/v1/emails/{uid}/labels?account=&folder=INBOX -> {labels, message_id, account}."""
    account, folder = await folder_in(request, "read")
    uid = parse_uid(request.match_info["uid"])
    labels, mid = await request.app[LABELS].on_message(account, folder, uid)
    return ok(JasniEmailLabels(labels=[_email_label(lb) for lb in labels], message_id=mid,
                               account=account.email))


async def assign_email_labels(request: web.Request) -> web.Response:
    """POST /api/v1/emails/{uid}/labels?account=&folder=INBOX {label_ids, labels, agent_name,
    metadata} -> the labels the message carries now, and those created."""
    principal = authorize(request, "write")
    body = validate_body(JasniLabelAssign, await read_json_object(request))
    if not body.label_ids and not body.labels:
        raise InvalidInput("give label_ids or labels (names)", field="labels")
    account = account_of(principal, query_text(request, "account"))
    folder = await folder_of(request, account)
    uid = parse_uid(request.match_info["uid"])
    on, created, mid = await request.app[LABELS].assign(account, folder, uid,
                                                         body.label_ids or [], body.labels or [])
    given = {lb.id for lb in on} & {*(body.label_ids or []),
                                    *(keyword_of(n.strip()) for n in body.labels or [])}
    at = rfc3339(utcnow())
    out = [_email_label(lb, body.agent_name or "", at, body.metadata) if lb.id in given
           else _email_label(lb) for lb in on]
    return ok(JasniLabelsAssigned(
        labels=out, created_labels=[JasniCreatedLabel(id=lb.id, name=lb.name, color=lb.color)
                                    for lb in created],
        message_id=mid, account=account.email, message=f"{len(given)} label(s) assigned"))


async def remove_email_labels(request: web.Request) -> web.Response:
    """DELETE /api/v1/emails/{uid}/labels?account=&folder=INBOX&label_ids=a,b ->
    {removed_count, message_id, message}."""
    principal = authorize(request, "write")
    ids = [i.strip() for i in (query_text(request, "label_ids") or "").split(",") if i.strip()]
    if not ids:
        raise InvalidInput("label_ids is required: comma-separated label ids", field="label_ids")
    account = account_of(principal, query_text(request, "account"))
    folder = await folder_of(request, account)
    uid = parse_uid(request.match_info["uid"])
    removed, mid = await request.app[LABELS].remove(account, folder, uid, ids)
    return ok(JasniLabelsRemoved(removed_count=removed, message_id=mid,
                                 message=f"{removed} label(s) removed"))
