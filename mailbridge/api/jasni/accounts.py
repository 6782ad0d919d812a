"""Dialect 1 accounts: the token's, and the refusal of a hosted service's provisioning calls."""

from __future__ import annotations

from aiohttp import web

from mailbridge.api.access import authorize
from mailbridge.api.jasni.common import (
    ok,
)
from mailbridge.api.schemas import (
    JasniAccount,
    JasniAccountList,
)
from mailbridge.errors import (
    AccountsFromConfiguration,
)


async def list_accounts(request: web.Request) -> web.Response:
    """GET /api/v1/accounts -> {accounts: [{id, email, name}], total}: those the token may use."""
    principal = authorize(request, "read")
    accounts = [JasniAccount(id=a.id, email=a.email, name=a.display_name,
                             created_at=a.created_at) for a in principal.accounts]
    return ok(JasniAccountList(accounts=accounts, total=len(accounts)))


async def change_accounts(request: web.Request) -> web.Response:
    """POST, PATCH and DELETE /api/v1/accounts (the Jasni SDK's accounts.create, update, delete):
    always 403 ``accounts_from_configuration``. A hosted service provisions mailboxes there;
    mailbridge serves the mailboxes its operator configured, so no token can add, change or
    remove one."""
    authorize(request, "read")
    raise AccountsFromConfiguration(
        "accounts come from the operator's configuration ([[accounts]] in mailbridge's config "
        "file): this service cannot create, change or delete mailboxes; ask its operator")
