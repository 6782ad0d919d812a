"""Bearer tokens, scopes and account visibility across both dialects."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from api_helpers import BOTH_TOKEN, FULL_TOKEN, OTHER_TOKEN, READ_TOKEN, WRITE_TOKEN, Api, running_api

from conftest import MailUser
from mailbridge.devstack.stack import DevStack


@pytest.fixture
async def api(devstack: DevStack, user: MailUser) -> AsyncIterator[Api]:
    async with running_api(devstack, user) as running:
        yield running


ROUTES = [
    ("GET", "/api/v1/accounts"),
    ("GET", "/api/v1/emails/drafts"),
    ("POST", "/api/v1/emails/drafts"),
    ("GET", "/api/v1/emails/drafts/1"),
    ("PUT", "/api/v1/emails/drafts/1"),
    ("DELETE", "/api/v1/emails/drafts/1"),
    ("POST", "/api/v1/emails/drafts/1/send"),
    ("GET", "/api/v1/emails"),
    ("GET", "/api/v1/emails/1"),
    ("POST", "/api/email/drafts"),
    ("GET", "/api/email/drafts"),
    ("GET", "/api/email/drafts/00000000-0000-4000-8000-000000000000"),
    ("DELETE", "/api/email/drafts/00000000-0000-4000-8000-000000000000"),
    ("POST", "/api/email/drafts/00000000-0000-4000-8000-000000000000/send"),
]


@pytest.mark.parametrize("variant", [
    None, "", "Bearer", "Bearer ", "Basic " + FULL_TOKEN, FULL_TOKEN, "Bearer " + FULL_TOKEN[:-1],
    "Bearer " + FULL_TOKEN + "x", "Bearer " + FULL_TOKEN.upper(), "Bearer x", "Token " + FULL_TOKEN,
])
async def test_only_the_exact_token_is_accepted(api: Api, variant: str | None) -> None:
    headers = {} if variant is None else {"Authorization": variant}
    for method, path in ROUTES:
        reply = await api.call(method, path, token=None, headers=headers, json_body={})
        assert reply.status == 401, (method, path, reply.body)
        assert reply.headers["WWW-Authenticate"] == 'Bearer realm="mailbridge"'
    good = await api.call("GET", "/api/v1/accounts", token=FULL_TOKEN)
    assert good.status == 200
    lower = await api.call("GET", "/api/v1/accounts", token=None,
                           headers={"Authorization": f"bearer {FULL_TOKEN}"})
    assert lower.status == 200  # the scheme is case-insensitive (RFC 9110 11.1)


async def test_health_needs_no_token(api: Api) -> None:
    assert (await api.call("GET", "/healthz", token=None)).status == 200
    assert (await api.call("GET", "/readyz", token=None)).status == 200


async def test_scopes(api: Api) -> None:
    made = await api.call("POST", "/api/v1/emails/drafts", token=WRITE_TOKEN,
                          json_body={"subject": "by the write token"})
    assert made.status == 201
    uid, draft_id = made.body["data"]["uid"], made.body["data"]["id"]

    # read: every GET, nothing else
    for path in ("/api/v1/accounts", "/api/v1/emails/drafts", f"/api/v1/emails/drafts/{uid}",
                 "/api/v1/emails", "/api/email/drafts", f"/api/email/drafts/{draft_id}"):
        assert (await api.call("GET", path, token=READ_TOKEN)).status == 200, path
    for method, path, body in (
        ("POST", "/api/v1/emails/drafts", {"subject": "x"}),
        ("PUT", f"/api/v1/emails/drafts/{uid}", {"subject": "x"}),
        ("DELETE", f"/api/v1/emails/drafts/{uid}", None),
        ("POST", "/api/email/drafts", {"subject": "x"}),
        ("POST", "/api/email/drafts", {"uid": draft_id, "subject": "x"}),
        ("DELETE", f"/api/email/drafts/{draft_id}", None),
        ("POST", f"/api/v1/emails/drafts/{uid}/send", {}),
        ("POST", f"/api/email/drafts/{draft_id}/send", None),
    ):
        reply = await api.call(method, path, token=READ_TOKEN, json_body=body)
        assert reply.status == 403, (method, path, reply.body)
        code = reply.body["code"] if path.startswith("/api/v1") else reply.body["error"]["code"]
        assert code == "forbidden"
    # write but not send: a send call asks for approval, so it is checked as a send would be
    # (this draft has no recipient: 422), and nothing is sent
    assert (await api.call("POST", f"/api/v1/emails/drafts/{uid}/send", token=WRITE_TOKEN,
                           json_body={})).status == 422
    assert (await api.call("POST", f"/api/email/drafts/{draft_id}/send",
                           token=WRITE_TOKEN)).status == 422
    assert len(api.messages("Drafts")) == 1
    # approve: only with the scope
    for path in (f"/api/v1/emails/drafts/{uid}/approve", f"/api/email/drafts/{draft_id}/approve"):
        assert (await api.call("POST", path, token=WRITE_TOKEN)).status == 403
    # with send: past the scope check
    sent = await api.call("POST", f"/api/email/drafts/{draft_id}/send")
    assert sent.status not in (401, 403), sent.body


async def test_accounts_of_other_tokens_look_nonexistent(api: Api) -> None:
    theirs = await api.call("POST", "/api/email/drafts", token=OTHER_TOKEN,
                            json_body={"subject": "not yours"})
    assert theirs.status == 201
    their_id = theirs.body["uid"]
    their_uid = (await api.call("GET", "/api/v1/emails/drafts", token=OTHER_TOKEN)
                 ).body["data"]["drafts"][0]["uid"]

    hidden = await api.call("GET", "/api/v1/emails/drafts", params={"account": api.other.email})
    absent = await api.call("GET", "/api/v1/emails/drafts",
                            params={"account": "absent@example.test"})
    assert hidden.status == absent.status == 404
    assert hidden.body["code"] == absent.body["code"] == "not_found"
    assert hidden.body["field"] == absent.body["field"] == "account"
    by_id = await api.call("GET", "/api/email/drafts", params={"from_account_id": str(api.other.id)})
    assert by_id.status == 404

    # their draft is invisible by its stable id and by its UID in our account
    assert (await api.call("GET", f"/api/email/drafts/{their_id}")).status == 404
    assert (await api.call("GET", f"/api/v1/emails/drafts/{their_id}")).status == 404
    assert (await api.call("POST", "/api/email/drafts",
                           json_body={"uid": their_id, "subject": "hijack"})).status == 404
    assert (await api.call("DELETE", f"/api/email/drafts/{their_id}")).status == 404
    for path in (f"/api/v1/emails/drafts/{their_uid}", f"/api/v1/emails/{their_uid}"):
        reply = await api.call("GET", path, params={"account": api.other.email,
                                                    "folder": "Drafts"})
        assert reply.status == 404, path
    # the accounts list shows only the token's accounts
    mine = (await api.call("GET", "/api/v1/accounts")).body["data"]["accounts"]
    assert [a["email"] for a in mine] == [api.user.email]
    # and their draft is untouched
    got = await api.call("GET", f"/api/email/drafts/{their_id}", token=OTHER_TOKEN)
    assert got.status == 200 and got.body["subject"] == "not yours"
    both = await api.call("GET", f"/api/email/drafts/{their_id}", token=BOTH_TOKEN)
    assert both.status == 200


async def test_account_by_id_or_email(api: Api) -> None:
    for ref in (api.user.email, api.user.email.upper(), str(api.user.id)):
        reply = await api.call("GET", "/api/v1/emails/drafts", params={"account": ref})
        assert reply.status == 200, ref
        assert reply.body["data"]["account"] == api.user.email
