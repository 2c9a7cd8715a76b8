"""The worker supervisor restarts a crashed worker, stops cleanly on SIGTERM and gives up on a crash loop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from workers.supervise import Supervisor


def test_restarts_after_a_crash_until_the_child_succeeds(tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    script = (
        f"import pathlib,sys; p=pathlib.Path({str(counter)!r}); n=len(p.read_text()) if p.exists() else 0; p.write_text('x'*(n+1)); sys.exit(0 if n>=2 else 3)"
    )
    code = Supervisor([sys.executable, "-c", script], max_restarts=5).run()
    assert code == 0
    assert counter.read_text() == "xxx"  # crashed twice, restarted twice, then ended cleanly


def test_gives_up_on_a_crash_loop() -> None:
    started = time.monotonic()
    code = Supervisor([sys.executable, "-c", "import sys; sys.exit(7)"], max_restarts=1, backoff_max_s=1).run()
    assert code == 7
    assert time.monotonic() - started < 10


def test_sigterm_stops_child_and_supervisor(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    child = f"import pathlib,time; pathlib.Path({str(ready)!r}).write_text('1'); time.sleep(60)"
    runner = f"import sys; from workers.supervise import Supervisor; sys.exit(Supervisor([sys.executable, '-c', {child!r}]).run())"
    proc = subprocess.Popen([sys.executable, "-c", runner], cwd=Path(__file__).resolve().parents[2])
    deadline = time.monotonic() + 30
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ready.exists()
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=20) != 0  # the child was ended by the forwarded SIGTERM; no restart
