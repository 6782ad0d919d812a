"""The command line as a person uses it: check-config, and `dev` (what `make run` runs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from mailbridge.devstack.dovecot import free_port

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailbridge", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


def test_check_config_accepts_the_example() -> None:
    done = run_cli("check-config", "config.example.toml")
    assert done.returncode == 0, done.stderr
    assert "OK" in done.stdout


def test_check_config_names_the_problem_and_hides_secrets(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        '[server]\nport = "eighty"\n\n[[accounts]]\nid = "not-a-uuid"\nemail = "a@example.test"\n'
        '[accounts.imap]\nhost = "127.0.0.1"\nport = 1143\nsecurity = "none"\nusername = "a"\n'
        'password = "hunter2-secret"\n[accounts.smtp]\nhost = "127.0.0.1"\nport = 1587\n'
        'security = "none"\nusername = "a"\npassword = "hunter2-secret"\n'
    )
    done = run_cli("check-config", str(cfg))
    assert done.returncode == 2
    assert "bad.toml" in done.stderr
    assert "[server] port" in done.stderr
    assert "[[accounts]] #1" in done.stderr and "id" in done.stderr
    assert "hunter2-secret" not in done.stderr + done.stdout


@pytest.mark.slow
def test_dev_stack_starts_answers_and_stops_without_leftovers() -> None:
    state = Path("/var/tmp") / f"mailbridge-devcli-{uuid.uuid4().hex[:8]}"
    ports = {name: free_port() for name in ("API", "IMAP", "SMTP", "LMTP")}
    env = dict(os.environ, MAILBRIDGE_DEV_DIR=str(state),
               **{f"MAILBRIDGE_{k}_PORT": str(v) for k, v in ports.items()})
    proc = subprocess.Popen([sys.executable, "-m", "mailbridge", "dev"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        banner = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            banner.append(line)
            if line.startswith("  curl -s http"):
                break
        text = "".join(banner)
        assert f"http://127.0.0.1:{ports['API']}" in text, text
        assert "dev-token" in text and str(ports["IMAP"]) in text and str(ports["SMTP"]) in text
        curl = next(line for line in banner if line.startswith("  curl -s http")).split()[-1]
        with urllib.request.urlopen(curl, timeout=10) as resp:  # the printed readyz URL
            assert resp.status == 200
            assert b'"ready"' in resp.read()
        dovecot_pids = subprocess.run(["pgrep", "-f", str(state)], capture_output=True,
                                      text=True).stdout.split()
        assert dovecot_pids
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        assert proc.returncode == 0
        time.sleep(0.2)
        left = subprocess.run(["pgrep", "-f", str(state)], capture_output=True, text=True).stdout
        assert left.strip() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
        subprocess.run([sys.executable, "-m", "mailbridge", "dev", "--wipe"], cwd=ROOT, env=env,
                       capture_output=True, timeout=30)
    assert not state.exists()
