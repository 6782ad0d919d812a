"""Typed application state keys (aiohttp ``web.AppKey``)."""

from __future__ import annotations

from aiohttp import web

from mailbridge.accounts import Accounts
from mailbridge.auth import Authenticator
from mailbridge.config import Config
from mailbridge.drafts import DraftService
from mailbridge.sending import SendService

CONFIG = web.AppKey("config", Config)
ACCOUNTS = web.AppKey("accounts", Accounts)
DRAFTS = web.AppKey("drafts", DraftService)
"""The one DraftService of the application (its location cache is shared by both dialects)."""
SENDING = web.AppKey("sending", SendService)
AUTH = web.AppKey("authenticator", Authenticator)
