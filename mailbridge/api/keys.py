"""Typed application state keys (aiohttp ``web.AppKey``)."""

from __future__ import annotations

from aiohttp import web

from mailbridge.accounts import Accounts
from mailbridge.config import Config

CONFIG = web.AppKey("config", Config)
ACCOUNTS = web.AppKey("accounts", Accounts)
