"""The bench's mail stack process: ``python -m bench.stack --state DIR --ready FILE ...``.

Runs mailbridge's DevStack (private Dovecot + dev SMTP server) with the given users, writes
``{"dovecot_pid": ...}`` to the ready file, and stops (then wipes the state) when its stdin
ends or on SIGTERM/SIGINT. Dovecot is started from the main thread on purpose: it is told to
end with the thread that started it, so no Dovecot outlives a killed bench.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from mailbridge.devstack.stack import DevPorts, DevStack


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state", required=True)
    parser.add_argument("--ready", required=True)
    parser.add_argument("--users", required=True, help="JSON object email -> password")
    parser.add_argument("--imap", type=int, required=True)
    parser.add_argument("--smtp", type=int, required=True)
    parser.add_argument("--lmtp", type=int, required=True)
    parser.add_argument("--dovecot", default="{}", help="JSON object of extra Dovecot settings")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def watch_stdin() -> None:
        sys.stdin.buffer.read()  # returns when the bench closes the pipe (or dies)
        stop.set()

    stack = DevStack(Path(args.state), ports=DevPorts(api=0, imap=args.imap, smtp=args.smtp,
                                                     lmtp=args.lmtp),
                     users=json.loads(args.users), dovecot_settings=json.loads(args.dovecot))
    stack.start()
    try:
        ready = Path(args.ready)
        tmp = ready.with_suffix(".tmp")
        tmp.write_text(json.dumps({"dovecot_pid": stack.dovecot.pid}))
        tmp.replace(ready)
        threading.Thread(target=watch_stdin, daemon=True).start()
        while not stop.wait(0.5):
            pass
    finally:
        stack.stop()
        stack.wipe()
    return 0


if __name__ == "__main__":
    sys.exit(main())
