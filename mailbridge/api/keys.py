"""Typed application state keys (aiohttp ``web.AppKey``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from mailbridge.accounts import Accounts
from mailbridge.api.routing import Route
from mailbridge.approvals import ApprovalService
from mailbridge.auth import Authenticator
from mailbridge.config import Config
from mailbridge.delivery import Dispatcher
from mailbridge.drafts import DraftService
from mailbridge.labels import LabelService
from mailbridge.messages import MessageService
from mailbridge.metrics import Metrics
from mailbridge.sending import SendService
from mailbridge.subscriptions import SubscriptionService
from mailbridge.watching import Watcher

CONFIG = web.AppKey("config", Config)
ACCOUNTS = web.AppKey("accounts", Accounts)
DRAFTS = web.AppKey("drafts", DraftService)
"""The one DraftService of the application (its location cache is shared by both dialects)."""
SENDING = web.AppKey("sending", SendService)
APPROVALS = web.AppKey("approvals", ApprovalService)
"""Requests, approvals and rejections of sends (mailbridge.approvals)."""
MESSAGES = web.AppKey("messages", MessageService)
"""Any message of any folder (dialect 1's /emails calls)."""
LABELS = web.AppKey("labels", LabelService)
"""The label registry and labels on messages (dialect 1's /labels calls)."""
METRICS = web.AppKey("metrics", Metrics)
"""The application's Prometheus metrics (GET /metrics)."""
WEBHOOKS = web.AppKey("webhooks", SubscriptionService)
"""Webhook subscriptions (both dialects' /webhooks calls)."""
DELIVERY = web.AppKey("delivery", Dispatcher)
"""Delivers this instance's events to the webhook subscriptions (and remembers the attempts)."""
WATCHER = web.AppKey("watcher", Watcher)
"""The mailbox watches, when ``[server] watch_mailboxes`` is on."""
AUTH = web.AppKey("authenticator", Authenticator)
ROUTE_TABLE: web.AppKey[Sequence[Route]] = web.AppKey("route_table")
"""The routes the app serves (mailbridge.api.routes.ROUTES), for the OpenAPI document."""
DOCUMENT_CACHE: web.AppKey[dict[str, Any]] = web.AppKey("document_cache")
"""The OpenAPI document once built (mailbridge.api.docs)."""
