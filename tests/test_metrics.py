"""GET /metrics: Prometheus text that prometheus_client's own parser reads, for tokens with the
metrics scope only, with the families issue 12 names, filled by real traffic against the dev
stack (IMAP commands, an SMTP submission, HTTP requests by route template); no secret in it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from api_helpers import FULL_TOKEN, METRICS_TOKEN, Api, running_api
from prometheus_client.parser import text_string_to_metric_families

from conftest import MailUser
from mailbridge.devstack.stack import DevStack


@pytest.fixture
async def api(devstack: DevStack, user: MailUser) -> AsyncIterator[Api]:
    async with running_api(devstack, user) as running:
        yield running


async def _scrape(api: Api) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    answer = await api.client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert answer.status == 200 and answer.content_type == "text/plain"
    text = await answer.text()
    assert api.user.password not in text and METRICS_TOKEN not in text
    return {f.name: [(s.name, s.labels, s.value) for s in f.samples]
            for f in text_string_to_metric_families(text)}


async def test_only_the_metrics_scope_may_scrape(api: Api) -> None:
    assert (await api.call("GET", "/metrics", token=None)).status == 401
    assert (await api.call("GET", "/metrics", token=FULL_TOKEN)).status == 403
    assert (await api.call("GET", "/api/email/drafts", token=METRICS_TOKEN)).status == 403


async def test_the_families_after_real_traffic(api: Api) -> None:
    me = api.user.email
    made = await api.call("POST", "/api/email/drafts", json_body={
        "to": ["bob@example.test"], "subject": "Counted", "body_text": "x"})
    assert made.status == 201
    assert (await api.call("POST", f"/api/email/drafts/{made.body['uid']}/send")).status == 200
    assert (await api.call("GET", "/api/email/drafts/" + "0" * 8)).status == 400
    assert (await api.call("GET", "/no/such/path/123")).status == 404
    families = await _scrape(api)

    http = families["mailbridge_http_request_duration_seconds"]
    counts = {(s[1]["route"], s[1]["method"], s[1]["status"]): s[2] for s in http
              if s[0].endswith("_count")}
    assert counts[("/api/email/drafts", "POST", "201")] == 1
    assert counts[("/api/email/drafts/{uid}/send", "POST", "200")] == 1
    assert counts[("/api/email/drafts/{uid}", "GET", "400")] == 1
    assert counts[("unmatched", "GET", "404")] == 1  # no label per random path

    imap = {(s[1]["command"], s[1]["account"]): s[2] for s in
            families["mailbridge_imap_command_duration_seconds"] if s[0].endswith("_count")}
    assert imap[("APPEND", me)] >= 2 and imap[("UID FETCH", me)] >= 1  # the draft, the Sent copy
    smtp = {s[1]["outcome"]: s[2] for s in families["mailbridge_smtp_submission_duration_seconds"]
            if s[0].endswith("_count")}
    assert smtp == {"sent": 1}

    pools = {(s[0], s[1]["account"]): s[2] for name in (
        "mailbridge_imap_pool_connections_in_use", "mailbridge_imap_pool_waiting",
        "mailbridge_imap_pool_connections_open") for s in families[name]}
    assert pools[("mailbridge_imap_pool_connections_in_use", me)] == 0
    assert pools[("mailbridge_imap_pool_waiting", me)] == 0
    assert pools[("mailbridge_imap_pool_connections_open", me)] >= 1
    assert families["mailbridge_scheduler_lag_seconds"][0][2] >= 0
    assert "mailbridge_webhook_deliveries" in families and "mailbridge_events" in families
