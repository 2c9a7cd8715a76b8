"""`musicrec train emotion` and `musicrec evaluate emotion --json` through the real CLI on a few real files."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from catalog.importers.emopia import QUADRANTS, find_soundfont, render_midi

pytestmark = pytest.mark.slow
KEYS = {"accuracy", "macro_f1", "per_class_f1", "confusion", "labels", "n"}


def musicrec(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True, text=True, timeout=600)


def mixed_manifest(shared_data: Path, tmp_path: Path) -> Path:
    """8 NJU lyrics (lyrics-only songs), 4 EMOPIA clips rendered to audio (audio-only songs), one corrupt test clip."""
    rows = []
    for mood in ("Angry", "Happy", "Relaxed", "Sad"):
        for k, txt in enumerate(sorted((shared_data / "nju-musicmood-train" / mood).glob("*.txt"))[:2]):
            rows.append({"id": txt.stem, "label": mood.lower(), "audio": "", "lyrics": str(txt), "group": txt.stem, "split": "test" if k else "train"})
    sf2 = find_soundfont()
    mids = sorted((shared_data / "emopia-dev").rglob("*.mid"))
    for q in "1234":
        mid = next(m for m in mids if m.name.startswith(f"Q{q}_"))
        flac = render_midi(mid, tmp_path / "audio" / f"{mid.stem}.flac", sf2)
        rows.append(
            {
                "id": mid.stem,
                "label": QUADRANTS[q],
                "audio": str(flac),
                "lyrics": "",
                "group": mid.stem.rsplit("_", 1)[0],
                "split": "train" if q in "13" else "test",
            }
        )
    bad = tmp_path / "audio" / "broken.flac"
    bad.write_bytes(b"fLaC not really audio")
    rows.append({"id": "broken", "label": "sad", "audio": str(bad), "lyrics": "", "group": "broken", "split": "test"})
    path = tmp_path / "mixed.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "label", "audio", "lyrics", "group", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_train_then_evaluate_json_contract(shared_data: Path, tmp_path: Path) -> None:
    manifest = mixed_manifest(shared_data, tmp_path)
    out = tmp_path / "model"
    train = musicrec("train", "emotion", "--manifest", str(manifest), "--model", "songgatnet", "--out", str(out),
                     "--epochs", "2", "--audio-encoder", "lld", "--no-register", "--set", "val_fraction=0")
    assert train.returncode == 0, train.stderr[-2000:]
    config = json.loads((out / "config.json").read_text())
    assert config["encoders"]["audio"]["name"] == "lld" and config["encoders"]["lyrics"]["name"] == "bert-cnn"
    # the lyrics branch learned: bert-cnn's CNN trained on the training lyrics, stored with the artifact
    assert config["encoders"]["lyrics"]["cnn_state"] == "lyrics_cnn.safetensors" and (out / "lyrics_cnn.safetensors").is_file()
    from emotion.inputs import lyrics_encoder

    assert config["encoders"]["lyrics"]["version"] != lyrics_encoder("bert-cnn").version
    assert len(config["manifest_sha256"]) == 64 and config["epochs"] == 2 and config["modalities"] == ["audio", "lyrics"]
    assert (out / "model.safetensors").is_file() and (out / "curves.png").stat().st_size > 0

    every = musicrec("evaluate", "emotion", "--model", str(out), "--manifest", str(manifest), "--json")
    assert every.returncode == 0, every.stderr[-2000:]
    m = json.loads(every.stdout.strip().splitlines()[-1])
    assert KEYS <= set(m)
    assert m["n"] == 12 and m["failed"] == 1  # the corrupt clip is reported, not scored, not fatal
    assert "broken" in every.stderr
    assert m["labels"] == ["happy", "angry", "sad", "relaxed"]
    assert sum(map(sum, m["confusion"])) == 12 and 0.0 <= m["accuracy"] <= 1.0
    assert set(m["per_class_f1"]) == set(m["labels"])

    test = musicrec("evaluate", "emotion", "--model", str(out), "--manifest", str(manifest), "--split", "test", "--json")
    assert test.returncode == 0, test.stderr[-2000:]
    t = json.loads(test.stdout.strip().splitlines()[-1])
    assert t["n"] == 6 and t["split"] == "test"
    assert list(out.glob("confusion-*.png"))

    missing = musicrec("evaluate", "emotion", "--model", str(tmp_path / "nope"), "--manifest", str(manifest), "--json")
    assert missing.returncode == 2 and "not a model artifact" in missing.stderr
