"""What the demo's steps share: its configuration and state, progress output, `musicrec` subprocesses, waiting."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import typer

EMOTION_ORDER = ("happy", "angry", "sad", "relaxed")


class DemoError(RuntimeError):
    """A demo step that could not finish; the message says which and why."""


@dataclass
class DemoConfig:
    data: Path
    songs: int = 60
    train_per_quadrant: int = 60
    song_model: str = "default"
    song_epochs: int | None = None
    speech_epochs: int = 15
    topics: int = 3
    timeout_s: float = 900.0


@dataclass
class Demo:
    cfg: DemoConfig
    var: Path
    logs: Path
    summary: dict[str, object] = field(default_factory=dict)
    procs: list[subprocess.Popen] = field(default_factory=list)


def step(title: str) -> None:
    typer.secho(f"\n==> {title}", fg=typer.colors.CYAN, bold=True)


def musicrec(*args: str, log_file: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one `musicrec` command in a subprocess (its progress goes to the terminal, or to `log_file`)."""
    cmd = [sys.executable, "-m", "cli.main", *args]
    typer.secho("$ musicrec " + " ".join(args), fg=typer.colors.BRIGHT_BLACK)
    if log_file:
        with log_file.open("a") as fh:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=fh, text=True, check=False)
    else:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    if check and proc.returncode != 0:
        raise DemoError(f"`musicrec {' '.join(args)}` failed with exit code {proc.returncode}:\n{proc.stdout[-2000:]}")
    return proc


def last_json(text: str) -> dict[str, object]:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise DemoError(f"no JSON line in output:\n{text[-1000:]}")


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1.0)
    raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
