"""Keep the ARI app running: restart it within two seconds whenever it dies.

`verifyline lab up` runs `verifyline supervise`, which runs `verifyline serve` as its child and
writes the child's PID to ``app.pid`` (so `lab app stop`, the tests and an operator's
``kill -9`` act on the app itself). A crash costs callers nothing: callers waiting keep their
music on hold in Asterisk, bridged calls go on, and the restarted app adopts them. In
production systemd does the same job (``Restart=always``, ``RestartSec=1``; see docs/lab.md).

A crash loop does not spin: an app that dies within ``STABLE_SECONDS`` of starting waits
twice as long before the next start, up to ``MAX_DELAY`` (still under two seconds).
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

log = logging.getLogger(__name__)

FIRST_DELAY = 0.25
MAX_DELAY = 1.5
STABLE_SECONDS = 30.0


class Supervisor:
    """Runs one command again and again until told to stop (SIGTERM / SIGINT)."""

    def __init__(self, argv: Sequence[str], pidfile: Path) -> None:
        self.argv = list(argv)
        self.pidfile = pidfile
        self.stopping = False
        self.child: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        log.info("supervisor: signal %d, stopping the app", signum)
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        delay = FIRST_DELAY
        while not self.stopping:
            started = time.monotonic()
            self.child = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL)
            self.pidfile.write_text(f"{self.child.pid}\n")
            code = self.child.wait()
            if self.stopping:
                break
            lived = time.monotonic() - started
            delay = FIRST_DELAY if lived >= STABLE_SECONDS else min(MAX_DELAY, delay * 2)
            self.restarts += 1
            log.error("supervisor: the app (PID %d) exited with %s after %.1f s; restart %d "
                      "in %.2f s", self.child.pid, code, lived, self.restarts, delay)
            time.sleep(delay)
        self.pidfile.unlink(missing_ok=True)
        return 0
