"""The console script answers a catalog without its schema with how to fix it, not a driver traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.services import temporary_pg_database


def _models_list(url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MUSICREC_DATABASE_URL": url}
    return subprocess.run([sys.executable, "-m", "cli.main", "models", "list"], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_unmigrated_catalog_says_run_db_upgrade(backend: str, tmp_path: Path) -> None:
    if backend == "sqlite":
        out = _models_list(f"sqlite:///{tmp_path / 'empty.db'}")
    else:
        with temporary_pg_database() as url:
            out = _models_list(url)
    assert out.returncode == 2, out.stderr
    assert "musicrec db upgrade" in out.stderr
    assert "Traceback" not in out.stderr and "sqlalche.me" not in out.stderr
