"""Command line: ``python -m mailbridge serve | check-config | dev``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import signal
import sys
import time
from collections.abc import Sequence

from aiohttp import web

from mailbridge import logs
from mailbridge.config import Config, describe, load_config
from mailbridge.errors import ConfigError

log = logging.getLogger("mailbridge")


class _OutOfDescriptors:
    """The event loop's exception handler: running out of file descriptors (EMFILE, ENFILE)
    is logged at most once a minute, not once per failed accept(); asyncio pauses accepting
    for a moment by itself and the service goes on once descriptors are free again."""

    EVERY_SECONDS = 60.0

    def __init__(self) -> None:
        self._last = -self.EVERY_SECONDS
        self._missed = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        exc = context.get("exception")
        if not (isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE)):
            loop.default_exception_handler(context)
            return
        now = time.monotonic()
        if now - self._last < self.EVERY_SECONDS:
            self._missed += 1
            return
        log.error("out of file descriptors (%s); new connections wait until some close "
                  "(%d more such errors since the last message; raise the limit, ulimit -n, "
                  "or lower [server.limits] request_timeout_seconds)", exc.strerror, self._missed)
        self._last, self._missed = now, 0


def _serve(app: web.Application, host: str, port: int, on_ready: str | None = None, *,
           request_timeout: float = 30.0) -> None:
    """Serves ``app`` until SIGINT or SIGTERM, then shuts it down cleanly (``web.run_app``). A
    connection that sends no complete request within ``request_timeout`` seconds (also between
    keep-alive requests) is closed."""
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(_OutOfDescriptors())
    # lingering_time: how long aiohttp goes on reading an unread body after an early answer
    web.run_app(app, host=host, port=port, loop=loop, keepalive_timeout=request_timeout,
                lingering_time=min(request_timeout, 10.0),
                print=lambda _: print(on_ready, flush=True) if on_ready else None)
    log.info("stopped")


def cmd_serve(args: argparse.Namespace) -> int:
    from mailbridge.api import create_app

    config = load_config(args.config)
    logs.setup(args.log_level, config.logging.format)
    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    app = create_app(config)
    _serve(app, host, port, on_ready=f"mailbridge listening on http://{host}:{port}",
           request_timeout=config.server.limits.request_timeout_seconds)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Runs the scheduler alone: scheduled sends, retries, recovery of interrupted sends."""
    from mailbridge.accounts import Accounts
    from mailbridge.drafts import DraftService
    from mailbridge.scheduler import Scheduler
    from mailbridge.sending import SendService
    from mailbridge.smtp import Sender

    config = load_config(args.config)
    logs.setup(args.log_level, config.logging.format)

    async def work() -> None:
        accounts = Accounts(config)
        sender = Sender()
        service = SendService(DraftService(accounts), sender, config)
        task = asyncio.create_task(Scheduler(service).run(list(config.accounts)))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(f"mailbridge worker running for {len(config.accounts)} account(s)", flush=True)
        await stop.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await sender.close()
        await accounts.close()

    asyncio.run(work())
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    print(f"{args.file}: OK")
    print(describe(config))
    return 0


def dev_banner(config: Config, stack: object) -> str:
    from mailbridge.devstack.stack import DEV_TOKEN, DEV_USERS, DevStack

    assert isinstance(stack, DevStack)
    p = stack.ports
    api = f"http://127.0.0.1:{p.api}"
    users = "\n".join(f"             {email} / {pw}" for email, pw in DEV_USERS.items())
    accounts = "\n".join(f"             {a.email}  id {a.id}" for a in config.accounts)
    imaps = f", implicit TLS on {p.imaps}" if p.imaps else ""
    return f"""
mailbridge dev stack is up (Ctrl-C stops all of it)
  API        {api}
  token      {DEV_TOKEN}   (read, write, send on every account)
  accounts
{accounts}
  IMAP       127.0.0.1:{p.imap} (plain, or STARTTLS with a self-signed certificate{imaps})
  SMTP       127.0.0.1:{p.smtp} (AUTH PLAIN/LOGIN required; everything is delivered locally,
             mail to outside addresses lands in catchall@example.test's INBOX)
  LMTP       127.0.0.1:{p.lmtp}
  users      (IMAP and SMTP logins; point Thunderbird or mutt here)
{users}
  state      {stack.state_dir}   (`make clean-dev` wipes it)
  config     {stack.state_dir / "config.toml"}   (the same stack for `serve` / `worker`)
try:
  curl -s {api}/readyz
  curl -s -H 'Authorization: Bearer {DEV_TOKEN}' {api}/api/v1/accounts
"""


def cmd_dev(args: argparse.Namespace) -> int:
    from mailbridge.api import create_app
    from mailbridge.devstack.dovecot import DovecotFailed, DovecotMissing
    from mailbridge.devstack.stack import DevPorts, DevStack, default_state_dir

    stack = DevStack(default_state_dir(), ports=DevPorts.from_env())
    if args.wipe:
        stack.wipe()
        print(f"wiped the dev stack state in {stack.state_dir}")
        return 0
    try:
        # Started from the main thread on purpose: Dovecot is told to end when the thread that
        # started it ends, which is what guarantees no process is left behind.
        stack.start()
    except (DovecotMissing, DovecotFailed) as exc:
        print(f"mailbridge dev: {exc}", file=sys.stderr)
        return 1
    try:
        config = stack.config()
        import tomli_w

        (stack.state_dir / "config.toml").write_text(tomli_w.dumps(stack.config_data()))
        app = create_app(config)
        _serve(app, "127.0.0.1", stack.ports.api, on_ready=dev_banner(config, stack),
               request_timeout=config.server.limits.request_timeout_seconds)
    finally:
        stack.stop()
        print("mailbridge dev stack stopped", flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mailbridge", description=__doc__)
    parser.add_argument("--log-level", default="info", help="debug, info, warning, error")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--config", required=True, help="path to the TOML configuration")
    serve.add_argument("--host", default=None, help="override [server] host")
    serve.add_argument("--port", type=int, default=None, help="override [server] port")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run only the scheduler (scheduled sends, retries)")
    worker.add_argument("--config", required=True, help="path to the TOML configuration")
    worker.set_defaults(func=cmd_worker)

    check = sub.add_parser("check-config", help="validate a configuration file and exit")
    check.add_argument("file")
    check.set_defaults(func=cmd_check_config)

    dev = sub.add_parser("dev", help="run a private Dovecot + dev SMTP server + the API (make run)")
    dev.add_argument("--wipe", action="store_true",
                     help="delete the dev stack's state (mail, users, logs) instead (make clean-dev)")
    dev.set_defaults(func=cmd_dev)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.setup(args.log_level)
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        print(f"configuration error:\n{exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result
