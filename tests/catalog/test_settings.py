"""Settings: defaults, musicrec.toml, environment precedence, secret masking."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from catalog.settings import mask_url, reload_settings


def test_defaults_live_under_var(isolated_settings: Path) -> None:
    s = reload_settings()
    assert s.database_url == f"sqlite:///{isolated_settings / 'musicrec.db'}"
    assert s.broker_url.startswith("sqla+sqlite:///") and s.broker_url.endswith("broker.db")
    assert s.store_dir == isolated_settings / "store"
    assert s.device == "auto"
    assert s.torch_device() in ("cpu", "cuda")


def test_toml_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "musicrec.toml").write_text('device = "cpu"\nlog_level = "DEBUG"\napi_keys = ["k1", "k2"]\n')
    s = reload_settings()
    assert s.device == "cpu" and s.log_level == "DEBUG"
    assert [k.get_secret_value() for k in s.api_keys] == ["k1", "k2"]
    monkeypatch.setenv("MUSICREC_DEVICE", "cuda")
    assert reload_settings().device == "cuda"


def test_invalid_device_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("MUSICREC_DEVICE", "tpu")
    with pytest.raises(ValidationError, match="device"):
        reload_settings()


def test_masking_hides_secrets_and_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSICREC_DATABASE_URL", "postgresql://app:s3cret@db.example/musicrec")
    monkeypatch.setenv("MUSICREC_JAMENDO_CLIENT_ID", "abcd1234")
    monkeypatch.setenv("MUSICREC_API_KEYS", '["topsecret"]')
    masked = reload_settings().masked()
    text = json.dumps(masked)
    assert "s3cret" not in text and "abcd1234" not in text and "topsecret" not in text
    assert masked["database_url"] == "postgresql://app:********@db.example/musicrec"
    assert mask_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_config_show_cli_masks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSICREC_API_KEYS", '["topsecret"]')
    out = subprocess.run([sys.executable, "-m", "cli.main", "config", "show", "--json"], capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    assert data["api_keys"] == ["********"]
    assert "topsecret" not in out


def test_one_settings_object_no_raw_environment_reads() -> None:
    """Only catalog/settings.py reads MUSICREC_* configuration from the environment (issue 14: one of each)."""
    import re
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    pattern = re.compile(r"os\.environ\.get\(|os\.getenv\(|os\.environ\[|BaseSettings\)")
    offenders = [
        f"{path.relative_to(repo)}:{n}"
        for package in ("catalog", "crawler", "emotion", "topics", "recommender", "workers", "cli", "migrations")
        for path in sorted((repo / package).rglob("*.py"))
        if path.relative_to(repo).as_posix() != "catalog/settings.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []
