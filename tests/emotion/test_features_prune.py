"""`musicrec features prune`: the cached features no lookup reaches any more, on both databases."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from catalog.db import session_scope
from catalog.models import FeatureSet
from emotion.features.cache import FeatureCache, SegmentFeatures, is_stale, prune, stored_version


def _rows(url: str) -> int:
    with session_scope(url) as s:
        return s.scalar(select(func.count()).select_from(FeatureSet)) or 0


def test_prune_reports_then_removes_what_no_lookup_reaches(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows of an earlier decode pipeline (short and hashed versions) with their files, a row whose file is gone and
    an old temporary file are reported without change, then removed with --apply (rows first); today's audio rows,
    lyrics rows (they decode no audio) and a fresh temporary file stay, and their lookups still hit."""
    from catalog import audio
    from cli.main import app

    cache = FeatureCache()
    feats = SegmentFeatures(np.ones((2, 3), dtype=np.float32))
    long = "tiny.en.L2.1a5afae06a4d.1+base.L2.d01c3014881c.1:frames:prep1"  # longer than the column with +dec
    now = audio.DECODE_VERSION
    monkeypatch.setattr(audio, "DECODE_VERSION", f"{now}-before")
    stale = [cache.save("audio", "a" * 64, "enc", "1", feats), cache.save("speech", "b" * 64, "whisper", long, feats)]
    monkeypatch.setattr(audio, "DECODE_VERSION", now)
    kept = [cache.save("audio", "a" * 64, "enc", "1", feats), cache.save("speech", "b" * 64, "whisper", long, feats),
            cache.save("lyrics", "c" * 64, "bert", "1", feats)]
    cache.save("audio", "d" * 64, "enc", "1", feats).unlink()  # its row stays, its file is gone
    old_tmp, new_tmp = kept[0].parent / ".tmp-old", kept[0].parent / ".tmp-new"
    old_tmp.write_bytes(b"x" * 10)
    new_tmp.write_bytes(b"y")
    os.utime(old_tmp, (time.time() - 7200, time.time() - 7200))
    assert stored_version("speech", long).endswith(f"+dec{now}") and "~" in stored_version("speech", long)
    assert is_stale("audio", "1") and is_stale("speech", "x~0123456789abcdef") and not is_stale("lyrics", "1")
    assert _rows(db_url) == 6

    with session_scope(db_url) as s:
        found = prune(s, cache.store)
    assert (found.stale_rows, found.dangling_rows, found.temp_files, found.files) == (2, 1, 1, 3) and not found.applied
    assert found.bytes == sum(p.stat().st_size for p in stale) + 10
    assert _rows(db_url) == 6 and all(p.exists() for p in stale) and old_tmp.exists()

    runner = CliRunner()
    res = runner.invoke(app, ["features", "prune"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1]) == found.summary()
    res = runner.invoke(app, ["features", "prune", "--apply"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1]) == {**found.summary(), "applied": True}
    assert not any(p.exists() for p in stale) and not old_tmp.exists() and new_tmp.exists()
    assert all(p.exists() for p in kept) and _rows(db_url) == 3
    assert cache.lookup("audio", "a" * 64, "enc", "1") is not None and cache.lookup("speech", "b" * 64, "whisper", long) is not None
    assert cache.lookup("lyrics", "c" * 64, "bert", "1") is not None

    with session_scope(db_url) as s:
        again = prune(s, cache.store, apply=True)
    assert (again.stale_rows, again.dangling_rows, again.temp_files, again.files, again.bytes) == (0, 0, 0, 0, 0)


def test_a_file_named_by_a_kept_row_is_never_deleted(db_url: str) -> None:
    """Two rows may name one content-addressed file (the song LLD frames are stored by their bytes): removing the
    stale row leaves the file that the current row still reads."""
    from emotion.features.cache import SONG_FRAMES_ENCODER, load_song_frames, save_song_frames

    frames = np.arange(12, dtype=np.float32).reshape(2, 6)
    assert save_song_frames(None, "e" * 64, frames)
    with session_scope(db_url) as s:
        row = s.scalars(select(FeatureSet)).one()
        s.add(FeatureSet(song_id=None, modality="audio", content_sha256="e" * 64, encoder_name=SONG_FRAMES_ENCODER,
                         encoder_version="1", path=row.path, shape=row.shape))  # an old row, the same file
    with session_scope(db_url) as s:
        report = prune(s, FeatureCache().store, apply=True)
    assert (report.stale_rows, report.files, report.bytes) == (1, 0, 0)
    assert _rows(db_url) == 1
    got = load_song_frames("e" * 64)
    assert got is not None and np.array_equal(got, frames)
