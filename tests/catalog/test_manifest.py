"""Manifest validation lists every offending row; group splits never straddle."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from catalog.manifest import Item, ManifestError, assign_splits, read, split_file, validate


def _write(tmp_path: Path, body: str) -> Path:
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    (tmp_path / "l.txt").write_text("[00:01.00]hello")
    p = tmp_path / "m.csv"
    p.write_text(body)
    return p


def test_every_problem_is_listed_with_its_row(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "id,label,audio,lyrics,group,split\n"
        "s1,happy,a.wav,,g1,train\n"
        "s1,sad,a.wav,,g2,train\n"  # duplicate id
        "s3,ecstatic,a.wav,,g3,\n"  # unknown label
        "s4,angry,missing.wav,,g4,\n"  # missing file
        "s5,relaxed,,l.txt,g1,test\n"  # g1 straddles train/test
        "s6,sad,,,g6,\n"  # no audio, no lyrics
        "s7,sad,a.wav,,,holdout\n",  # empty group, unknown split
    )
    problems = validate(read(p))
    text = "\n".join(map(str, problems))
    assert "row 3 (id=s1): duplicate id (first on row 2)" in text
    assert "row 4 (id=s3): unknown label 'ecstatic'" in text
    assert "row 5 (id=s4): audio file missing" in text
    assert "row 2 (id=s1): group 'g1' straddles splits test, train" in text
    assert "row 6 (id=s5): group 'g1' straddles" in text
    assert "row 7 (id=s6): neither audio nor lyrics given" in text
    assert "row 8 (id=s7): empty group" in text and "unknown split 'holdout'" in text
    cli = subprocess.run([sys.executable, "-m", "cli.main", "datasets", "validate", str(p)], capture_output=True, text=True)
    assert cli.returncode == 1
    assert cli.stdout.count("\n") == len(problems) + 1
    assert f"{len(problems)} problem(s)" in cli.stdout


def test_missing_columns_and_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.csv"
    p.write_text("id,label\nx,happy\n")
    with pytest.raises(ManifestError, match="missing column"):
        read(p)
    with pytest.raises(ManifestError, match="not found"):
        read(tmp_path / "nope.csv")
    cli = subprocess.run([sys.executable, "-m", "cli.main", "datasets", "validate", str(p)], capture_output=True, text=True)
    assert cli.returncode == 2 and "missing column" in cli.stderr


def test_group_split_is_disjoint_stratified_and_seeded() -> None:
    items = [Item(f"i{n}", ("happy", "sad", "angry", "relaxed")[n % 4], None, None, f"g{n // 3}") for n in range(300)]
    a = assign_splits(items, 0.15, 0.15, seed=42)
    assert a == assign_splits(items, 0.15, 0.15, seed=42)
    assert a != assign_splits(items, 0.15, 0.15, seed=7)
    sizes = Counter(a[it.group] for it in items)
    assert 30 <= sizes["test"] <= 60 and 30 <= sizes["val"] <= 60
    for label in ("happy", "sad"):
        assert {a[it.group] for it in items if it.label == label} == {"train", "val", "test"}


def test_split_file_writes_the_column(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    rows = "".join(f"s{n},{('happy', 'sad')[n % 2]},a.wav,,g{n // 2},\n" for n in range(40))
    p = tmp_path / "m.csv"
    p.write_text("id,label,audio,lyrics,group,split,title\n" + rows)
    _, counts = split_file(p, 0.2, 0.2, 1)
    assert sum(counts.values()) == 40 and counts["train"] > 0
    m = read(p)
    assert validate(m) == []
    assert p.read_text().splitlines()[0] == "id,label,audio,lyrics,group,split,title"


def test_label_set_is_inferred_and_mixed_sets_are_refused(tmp_path: Path) -> None:
    from catalog.manifest import label_set_of

    assert label_set_of(["happy", "sad"]) == "quadrants" and label_set_of(["cluster2"]) == "mirex5"
    assert label_set_of(["happy", "cluster1"]) is None
    p = _write(tmp_path, "id,label,audio,lyrics,group,split\n"
                         "a,cluster1,a.wav,,g1,\nb,cluster5,a.wav,,g2,\nc,happy,a.wav,,g3,\n")
    m = read(p)
    assert m.label_set is None
    problems = validate(m)
    assert [pr.row for pr in problems] == [4]
    assert "unknown label 'happy'" in str(problems[0]) and "mirex5" in str(problems[0])
    with pytest.raises(ManifestError, match="fit no known label set"):
        m.labels()
    ok = _write(tmp_path, "id,label,audio,lyrics,group,split\na,cluster1,a.wav,,g1,\nb,cluster5,a.wav,,g2,\n")
    assert read(ok).labels() == ("cluster1", "cluster2", "cluster3", "cluster4", "cluster5") and validate(read(ok)) == []
