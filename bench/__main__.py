"""`make bench`: runs every benchmark against a fresh dev stack, prints a table, writes JSON."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import drafts_bench
from bench.harness import running_service


def _table(results: dict[str, dict[str, object]]) -> str:
    lines = []
    for name, figures in results.items():
        verdict = figures.get("pass")
        mark = "PASS" if verdict is True else "FAIL" if verdict is False else "    "
        shown = ", ".join(f"{k}={v}" for k, v in figures.items() if k != "pass")
        lines.append(f"{mark}  {name:<18} {shown}")
    return "\n".join(lines)


def main() -> int:
    with running_service() as service:
        where = "tmpfs (/dev/shm)" if service.on_tmpfs else "disk (/var/tmp; tmpfs unavailable)"
        print(f"mailbridge benchmarks; mail folder on {where}", flush=True)
        results = drafts_bench.main_sync(service)
    print(_table(results))
    out = Path("bench/results")
    out.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out / f"bench-{stamp}.json"
    path.write_text(json.dumps({"when": stamp, "mail_on_tmpfs": service.on_tmpfs,
                                "results": results}, indent=2))
    print(f"figures written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
