"""Draft benchmarks of the drafts issue: list cost vs folder size, and a 20 MB attachment.

Run: ``make bench`` (or ``.venv/bin/python -m bench``). Prints figures; asserts nothing.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import statistics
import time
from typing import Any

import aiohttp

from bench.harness import ALICE, TOKEN, Service, seed_drafts

HEADERS = {"Authorization": f"Bearer {TOKEN}"}


async def _timed_list(session: aiohttp.ClientSession, service: Service, rounds: int) -> float:
    """Median milliseconds of GET first page (50 drafts) in dialect 2, after one warm-up."""
    url = f"{service.api}/api/email/drafts"
    params = {"from_account_id": ALICE, "limit": "50"}
    samples = []
    for i in range(rounds + 1):
        started = time.perf_counter()
        async with session.get(url, params=params, headers=HEADERS) as resp:
            body = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"list answered {resp.status}: {body}")
        if i:  # the first one warms caches (Dovecot indexes the seeded files)
            samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def list_scaling(service: Service, rounds: int = 30) -> dict[str, Any]:
    """First list page with 100 and with 10,000 drafts in the folder; the ratio."""
    async with aiohttp.ClientSession() as session:
        seed_drafts(service, ALICE, 100)
        small = await _timed_list(session, service, rounds)
        seed_drafts(service, ALICE, 9_900, start=100)
        large = await _timed_list(session, service, rounds)
    return {"list_100_ms": round(small, 2), "list_10000_ms": round(large, 2),
            "ratio": round(large / small, 2), "target": "<= 2.0", "pass": large / small <= 2.0}


async def big_attachment(service: Service, size: int = 20 * 1024 * 1024) -> dict[str, Any]:
    """Create a draft with a ``size``-byte attachment, read it back, compare bytes, watch RSS."""
    data = os.urandom(size)
    body = {"from_account_id": ALICE, "to": ["bob@example.test"], "subject": "big attachment",
            "body_text": "see attachment",
            "attachments": [{"filename": "big.bin", "content_type": "application/octet-stream",
                             "data_base64": base64.b64encode(data).decode()}]}
    rss_before, _ = service.rss_kib()
    service.reset_peak()
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        started = time.perf_counter()
        async with session.post(f"{service.api}/api/email/drafts", json=body,
                                headers=HEADERS) as resp:
            created = await resp.json()
            if resp.status != 201:
                raise RuntimeError(f"create answered {resp.status}: {str(created)[:300]}")
        create_s = time.perf_counter() - started
        _, peak_create = service.rss_kib()
        uid = created["uid"]
        started = time.perf_counter()
        async with session.get(f"{service.api}/api/email/drafts/{uid}", headers=HEADERS) as resp:
            record = await resp.json()
        read_s = time.perf_counter() - started
        # the record lists attachments without bytes; dialect 1's get carries none either, so
        # read the bytes back from the mail server itself, as a mail client would
        from bench.imap_read import fetch_attachment

        back = await fetch_attachment(service, ALICE, "alice-dev-pass", "big.bin")
    _, peak = service.rss_kib()
    growth = (peak - rss_before) * 1024
    same = hashlib.sha256(back).digest() == hashlib.sha256(data).digest()
    return {"attachment_mb": size / 2**20, "create_s": round(create_s, 2),
            "read_s": round(read_s, 2), "bytes_identical": same,
            "listed_size": record["attachments"][0]["size"] if record.get("attachments") else None,
            "rss_before_mb": round(rss_before / 1024, 1), "rss_peak_mb": round(peak / 1024, 1),
            "growth_create_x": round((peak_create - rss_before) * 1024 / size, 2),
            "growth_x_attachment": round(growth / size, 2), "target": "< 6.0",
            "pass": same and growth / size < 6.0}


async def run(service: Service) -> dict[str, Any]:
    return {"list_scaling": await list_scaling(service),
            "attachment_20mb": await big_attachment(service)}


def main_sync(service: Service) -> dict[str, Any]:
    return asyncio.run(run(service))
