"""Webhook subscriptions: who wants which events at which URL, kept in the mail server.

A subscription belongs to the token that made it (by the token's name, which the configuration
keeps unique) and is one record (:mod:`mailbridge.records`, kind ``webhook``) in the mailbridge
mailbox of the first account the token may use; any instance finds it there. It holds the
secret its deliveries are signed with, shown to the caller once, at creation: the mail server is
where the user's mail and mailbridge's state live, and the secret is no more sensitive than the
mail itself. ``scheme`` says how deliveries are signed: ``jasni`` (dialect 1's
``X-Jasni-Signature``) or ``standard`` (Standard Webhooks, dialect 2).

URLs are http or https, without credentials in them; a loopback, private, link-local or other
non-public address needs ``[server] allow_private_webhooks = true``.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from standardwebhooks.webhooks import Webhook

from mailbridge.auth import Principal
from mailbridge.config import AccountConfig, Config
from mailbridge.errors import InvalidInput, NotFound
from mailbridge.mime.headers import header_time, parse_header_time
from mailbridge.records import RecordBox
from mailbridge.views import utcnow

__all__ = ["EVENTS", "JASNI_EVENTS", "Scheme", "Subscription", "SubscriptionService",
           "check_events", "check_secret", "check_url", "static_subscriptions"]

KIND = "webhook"
Scheme = Literal["jasni", "standard"]

EVENTS = ("draft.created", "draft.updated", "draft.deleted", "draft.scheduled", "draft.sent",
          "draft.failed", "draft.approval_requested", "draft.approved", "draft.rejected",
          "email.received", "email.sent", "email.deleted", "email.bounced")
"""The events mailbridge emits."""
JASNI_EVENTS = ("email.received", "email.sent", "email.delivered", "email.bounced", "email.spam",
                "email.rejected", "email.deleted", "domain.verified")
"""The event names the Jasni SDK's models accept: dialect 1 subscriptions use only these (its
``webhooks.list()`` rejects any other), whether or not mailbridge emits them."""
MAX_URL = 2000


@dataclass(frozen=True, slots=True)
class Subscription:
    id: uuid.UUID
    owner: str
    """The name of the token that made it."""
    url: str
    events: tuple[str, ...]
    active: bool
    description: str | None
    scheme: Scheme
    secret: str
    created_at: datetime
    updated_at: datetime | None
    static_accounts: tuple[uuid.UUID, ...] | None = None
    """For a ``[[webhooks]]`` subscription (no owner token): the accounts it hears of."""

    def data(self) -> dict[str, Any]:
        return {"owner": self.owner, "url": self.url, "events": list(self.events),
                "active": self.active, "description": self.description, "scheme": self.scheme,
                "secret": self.secret, "created_at": header_time(self.created_at),
                "updated_at": header_time(self.updated_at) if self.updated_at else None}


def check_url(url: str, *, allow_private: bool, field: str = "url") -> str:
    """``url`` if it may receive deliveries; InvalidInput naming ``field`` otherwise."""
    url = url.strip()
    if len(url) > MAX_URL:
        raise InvalidInput(f"the URL is longer than {MAX_URL} characters", field=field)
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is no number raises here
    except ValueError:
        raise InvalidInput("not a URL", field=field) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("the URL must be http:// or https:// with a host", field=field)
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidInput("the URL may not hold credentials (user:password@); the deliveries "
                           "are signed instead", field=field)
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise InvalidInput("the URL may not hold spaces or control characters", field=field)
    if not allow_private and is_private_host(parts.hostname):
        raise InvalidInput(f"{parts.hostname} is a loopback or private address; such targets "
                           "need [server] allow_private_webhooks = true", field=field)
    return url


def is_private_host(host: str) -> bool:
    """Whether ``host`` (a name or an address literal) is not a public internet address."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False  # a name: its addresses are checked when a delivery connects
    return not address.is_global


class SubscriptionService:
    """Webhook subscriptions of the tokens, in the accounts' mailbridge mailboxes."""

    def __init__(self, records: RecordBox, *, allow_private: bool) -> None:
        self.records = records
        self.allow_private = allow_private
        self.on_change: Callable[[], None] = lambda: None
        """Told after every change (the dispatcher then reads the subscriptions again)."""

    async def all(self, accounts: Sequence[AccountConfig]) -> list[Subscription]:
        """Every subscription kept in ``accounts``' mailboxes."""
        return list((await self._held(accounts)).keys())

    async def _held(self, accounts: Sequence[AccountConfig]
                    ) -> dict[Subscription, list[AccountConfig]]:
        """Each subscription in ``accounts``' mailboxes, with the accounts whose mailbox holds a
        record of it (one, unless the configuration changed the token's first account)."""
        found: dict[uuid.UUID, tuple[Subscription, list[AccountConfig]]] = {}
        for account in accounts:
            for record in await self.records.read(account, KIND):
                sub = _subscription(record.key, record.data)
                if sub is not None:
                    found.setdefault(sub.id, (sub, []))[1].append(account)
        return dict(found.values())

    async def of(self, principal: Principal) -> list[Subscription]:
        """The token's own subscriptions, oldest first."""
        subs = [s for s in await self.all(principal.accounts) if s.owner == principal.name]
        return sorted(subs, key=lambda s: s.created_at)

    async def get(self, principal: Principal, sub_id: uuid.UUID) -> Subscription:
        return (await self._own(principal, sub_id))[0]

    async def _own(self, principal: Principal,
                   sub_id: uuid.UUID) -> tuple[Subscription, list[AccountConfig]]:
        """The token's subscription ``sub_id`` and the accounts holding it; NotFound else."""
        for sub, holders in (await self._held(principal.accounts)).items():
            if sub.id == sub_id and sub.owner == principal.name:
                return sub, holders
        raise NotFound(f"no webhook {sub_id}", field="id")

    async def create(self, principal: Principal, url: str, events: Sequence[str],
                     description: str | None, scheme: Scheme) -> Subscription:
        sub = Subscription(
            id=uuid.uuid4(), owner=principal.name,
            url=check_url(url, allow_private=self.allow_private),
            events=check_events(events, scheme),
            active=True, description=description or None, scheme=scheme,
            secret=_new_secret(scheme), created_at=utcnow(), updated_at=None)
        await self.records.add(principal.accounts[0], KIND, str(sub.id), sub.data())
        self.on_change()
        return sub

    async def update(self, principal: Principal, sub_id: uuid.UUID, *, url: str | None = None,
                     events: Sequence[str] | None = None, active: bool | None = None,
                     description: str | None = None) -> Subscription:
        """Changes the fields given (None keeps one): the record is replaced, new first."""
        old, holders = await self._own(principal, sub_id)
        new = replace(
            old, url=old.url if url is None else check_url(url, allow_private=self.allow_private),
            events=old.events if events is None else check_events(events, old.scheme),
            active=old.active if active is None else active,
            description=old.description if description is None else (description or None),
            updated_at=utcnow())
        await self.records.replace(holders[0], KIND, str(sub_id), new.data())
        self.on_change()
        return new

    async def delete(self, principal: Principal, sub_id: uuid.UUID) -> Subscription:
        sub, holders = await self._own(principal, sub_id)
        for account in holders:
            await self.records.remove(account, KIND, str(sub_id))
        self.on_change()
        return sub


def check_secret(secret: str, scheme: Scheme) -> str:
    """``secret`` if it can sign deliveries of ``scheme``; InvalidInput naming ``secret``."""
    if scheme == "standard":
        body = secret.removeprefix("whsec_")
        try:
            key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
            Webhook(secret)  # and as the library reads it
        except (ValueError, TypeError, RuntimeError):
            key = b""
        if not secret.startswith("whsec_") or len(key) < 16:
            raise InvalidInput("a Standard Webhooks secret is whsec_ and the base64 of at least "
                               "16 bytes", field="secret")
    elif len(secret) < 16:
        raise InvalidInput("a secret has at least 16 characters", field="secret")
    return secret


def check_events(events: Sequence[str], scheme: Scheme) -> tuple[str, ...]:
    allowed = JASNI_EVENTS if scheme == "jasni" else EVENTS
    if not events:
        raise InvalidInput("name at least one event", field="events")
    for i, event in enumerate(events):
        if event not in allowed:
            raise InvalidInput(f"unknown event {event!r}; one of: {', '.join(allowed)}",
                               field=f"events[{i}]")
    return tuple(dict.fromkeys(events))


def _new_secret(scheme: Scheme) -> str:
    raw = secrets.token_bytes(32)
    if scheme == "standard":  # Standard Webhooks: whsec_ + base64 of the key
        return "whsec_" + base64.b64encode(raw).decode("ascii")
    return "whsec_" + raw.hex()


def _subscription(key: str, data: Any) -> Subscription | None:
    """The subscription a record holds; None when it is damaged (a person edited it)."""
    try:
        created = parse_header_time(str(data["created_at"]))
        scheme = data.get("scheme")
        if created is None or scheme not in ("jasni", "standard"):
            return None
        return Subscription(
            id=uuid.UUID(key), owner=str(data["owner"]), url=str(data["url"]),
            events=tuple(str(e) for e in data["events"]), active=bool(data.get("active", True)),
            description=str(data["description"]) if data.get("description") else None,
            scheme=scheme, secret=str(data["secret"]), created_at=created,
            updated_at=parse_header_time(data.get("updated_at") or None))
    except (KeyError, TypeError, ValueError):
        return None


def static_subscriptions(config: Config) -> list[Subscription]:
    """The ``[[webhooks]]`` of the configuration, as subscriptions without an owner token."""
    found = []
    for i, hook in enumerate(config.webhooks):
        accounts = config.accounts if "*" in hook.accounts else \
            [a for a in (config.account(ref) for ref in hook.accounts) if a is not None]
        found.append(Subscription(
            id=uuid.uuid5(uuid.NAMESPACE_URL, f"mailbridge-static-{i}:{hook.url}"), owner="",
            url=hook.url, events=tuple(hook.events), active=True, description=hook.description,
            scheme=hook.scheme, secret=hook.secret, created_at=_LOADED, updated_at=None,
            static_accounts=tuple(a.id for a in accounts)))
    return found


_LOADED = utcnow()
