"""Keep a Celery worker running: restart it with backoff when it dies unexpectedly.

kombu can turn a broker outage into an "Unrecoverable error" that ends the worker (seen with Redis stopping while a
task was being acknowledged). A production worker needs a supervisor anyway; `musicrec worker` is its own.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from types import FrameType

log = logging.getLogger("musicrec.worker")


class Supervisor:
    """Run `argv` as a child; restart it after an unexpected exit, at most `max_restarts` times per `window_s`."""

    def __init__(self, argv: Sequence[str], max_restarts: int = 10, window_s: float = 300.0, backoff_max_s: float = 30.0) -> None:
        self.argv = list(argv)
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.backoff_max_s = backoff_max_s
        self.stopping = False
        self.child: subprocess.Popen[bytes] | None = None
        self.restarts: deque[float] = deque()

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True
        if self.child and self.child.poll() is None:
            self.child.send_signal(signum)

    def run(self) -> int:
        """Supervise until a requested stop or too many crashes; return the last exit code."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._forward)
        backoff = 1.0
        while True:
            started = time.monotonic()
            self.child = subprocess.Popen(self.argv)
            code = self.child.wait()
            if self.stopping or code == 0:
                return code
            now = time.monotonic()
            if now - started > self.window_s:
                backoff = 1.0
            self.restarts.append(now)
            while self.restarts and now - self.restarts[0] > self.window_s:
                self.restarts.popleft()
            if len(self.restarts) > self.max_restarts:
                log.error("worker exited with code %s; %d restarts within %.0f s, giving up", code, len(self.restarts), self.window_s)
                return code
            log.warning("worker exited unexpectedly with code %s; restarting in %.0f s", code, backoff)
            time.sleep(backoff)
            backoff = min(backoff * 2, self.backoff_max_s)
            if self.stopping:
                return code


def celery_argv(worker_args: Sequence[str]) -> list[str]:
    """The command line of one Celery worker process of musicrec's app."""
    return [sys.executable, "-m", "celery", "-A", "workers.app", *worker_args]
