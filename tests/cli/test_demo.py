"""`musicrec demo` end to end at a reduced size: a small copy of the shared data, tiny epochs, a temporary var folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
Q4_CLIPS_PER_QUADRANT = 8  # real q4 recordings copied; the demo trains on at most 5 per quadrant and serves 8 test clips


def mini_data(shared: Path, dest: Path) -> Path:
    """A few files of each shared set, in the sets' own layouts."""
    nju = dest / "nju-musicmood-train"
    for mood in ("Angry", "Happy", "Relaxed", "Sad"):
        (nju / mood).mkdir(parents=True)
        shutil.copy(shared / "nju-musicmood-train" / mood / "info.txt", nju / mood)
        for f in sorted((shared / "nju-musicmood-train" / mood).glob("*_[1-3].txt")):
            shutil.copy(f, nju / mood)
    emodb = dest / "emodb-dev" / "wav"
    emodb.mkdir(parents=True)
    for f in sorted((shared / "emodb-dev").rglob("*.wav")):
        if f.stem[5] in "WFTN" and len([p for p in emodb.glob(f"{f.stem[:2]}*{f.stem[5]}*.wav")]) < 3:
            shutil.copy(f, emodb)
    for actor in ("01", "02", "03", "04"):  # 2 clips of each mapped RAVDESS emotion (neutral and calm both: relaxed)
        (dest / "ravdess-speech-dev" / f"Actor_{actor}").mkdir(parents=True)
        for code in ("01", "02", "03", "04", "05"):
            for f in sorted((shared / "ravdess-speech-dev" / f"Actor_{actor}").glob(f"03-01-{code}-*.opus"))[:2]:
                shutil.copy(f, dest / "ravdess-speech-dev" / f"Actor_{actor}")
    q4 = dest / "q4-audio-dev"
    q4.mkdir(parents=True)
    shutil.copy(shared / "q4-audio-dev" / "panda_dataset_taffc_metadata.csv", q4)
    for q in range(1, 5):
        (q4 / f"Q{q}").mkdir()
        for f in sorted((shared / "q4-audio-dev" / f"Q{q}").glob("*.opus"))[:Q4_CLIPS_PER_QUADRANT]:
            shutil.copy(f, q4 / f"Q{q}")
    return dest


def test_demo_runs_end_to_end_and_leaves_nothing_running(shared_data: Path, tmp_path: Path) -> None:
    data = mini_data(shared_data, tmp_path / "data")
    var = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSICREC_")}
    env.update(MUSICREC_VAR_DIR=str(var), PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "demo", "--data", str(data), "--songs", "8", "--train-per-quadrant", "5",
         "--song-epochs", "3", "--speech-epochs", "2"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((var / "demo-summary.json").read_text())
    assert summary["datasets"]["q4"]["items"] == 4 * Q4_CLIPS_PER_QUADRANT
    assert summary["datasets"]["emodb"]["groups"] == 6
    # the speech model learns from both corpora, calm and neutral apart inside relaxed (5 sub-classes)
    assert summary["datasets"]["ravdess"] == {"items": 40, "groups": 4, "splits": summary["datasets"]["ravdess"]["splits"]}
    assert summary["speech_model"]["manifest"].endswith("speech.csv") and summary["speech_model"]["subclasses"] == 5
    splits = summary["song_manifest"]["splits"]
    assert 4 <= splits["train"] + splits["val"] <= 4 * 5 and splits["test"] == summary["site_songs"] >= 6
    assert summary["song_model"]["name"] == "default" and summary["song_model"]["n_test"] == summary["site_songs"]
    site_audio = sorted(p.suffix for p in (var / "demo-site" / "audio").iterdir())
    assert site_audio and set(site_audio) == {".opus"}  # the real q4 recordings, served as they are
    assert summary["crawl"]["new_songs"] == summary["site_songs"] and summary["crawl"]["errors"] == 0
    states = summary["songs_by_state"]
    assert set(states) <= {"topics", "labelled"} and sum(states.values()) == summary["site_songs"]
    assert states.get("topics", 0) >= 1 and summary["topic_emotions"]
    rec = summary["recommendation"]
    assert rec["detected"] in ("happy", "angry", "sad", "relaxed")
    assert abs(sum(rec["probabilities"].values()) - 1.0) < 1e-3
    if rec["first_playlist"]:
        assert rec["picked"] == rec["first_playlist"][0]
        assert not set(rec["second_playlist"]) & set(rec["first_playlist"])
    for name in ("database", "plots", "logs", "models"):
        assert name in summary
    assert (var / "musicrec.db").is_file() and (var / "logs" / "worker.log").is_file()
    assert "summary written to" in proc.stdout
    groups = set(summary["stopped_process_groups"])
    assert len(groups) == 2  # the worker and the API server
    ps = subprocess.run(["ps", "-eo", "pgid=,stat="], capture_output=True, text=True, check=True).stdout.splitlines()
    live = {int(line.split()[0]) for line in ps if line.strip() and not line.split()[1].startswith("Z")}
    assert not groups & live, "a process the demo started is still running"


def test_demo_without_shared_data_generates_stand_in_clips(tmp_path: Path) -> None:
    var = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSICREC_")}
    env.update(MUSICREC_VAR_DIR=str(var), PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "demo", "--data", str(tmp_path / "absent"), "--songs", "8", "--train-per-quadrant", "6",
         "--song-epochs", "3", "--speech-epochs", "3"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "generating stand-in clips" in proc.stdout
    summary = json.loads((var / "demo-summary.json").read_text())
    assert summary["data"] == "generated stand-in clips"
    # 5 stand-in artists a quadrant (2 clips each): enough for 6 train clips a quadrant and 8 test clips, no more rendered
    assert summary["datasets"]["q4"]["items"] == 4 * 5 * 2 and summary["datasets"]["emodb"]["groups"] == 4
    assert "ravdess" not in summary["datasets"] and summary["speech_model"]["subclasses"] == 0  # EmoDB stand-ins alone
    assert summary["song_manifest"]["splits"]["train"] + summary["song_manifest"]["splits"]["val"] <= 4 * 6
    assert summary["crawl"]["new_songs"] == summary["site_songs"] == 8
    assert summary["recommendation"]["detected"] in ("happy", "angry", "sad", "relaxed")
