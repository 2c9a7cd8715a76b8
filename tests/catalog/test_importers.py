"""Importers on the real shared data (and on the layout quirks the held-back halves share)."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from catalog.importers.emodb import import_emodb
from catalog.importers.emopia import import_emopia
from catalog.importers.nju import import_nju, parse_info
from catalog.importers.ravdess import import_ravdess
from catalog.manifest import merge, read, split_file, validate


def test_nju_info_quirks() -> None:
    data = "1:Caf\xe9 Del Mar:Energy 52:245\r2:Re: Stacks:Bon Iver:401\r\r3:Song:Artist:\r".encode("latin-1")
    records = parse_info(data)
    assert records[1].title == "Café Del Mar" and records[1].performer == "Energy 52" and records[1].duration_s == 245.0
    assert records[2].title == "Re: Stacks" and records[2].performer == "Bon Iver"
    assert records[3].duration_s is None


def test_nju_full_dev_set(shared_data: Path, tmp_path: Path) -> None:
    report = import_nju(shared_data / "nju-musicmood-train", tmp_path / "nju.csv")
    assert report.items == 400 and report.groups == 400
    assert report.labels == {"angry": 100, "happy": 100, "relaxed": 100, "sad": 100}
    manifest = read(report.manifest)
    assert validate(manifest) == []
    by_id = {it.id: it for it in manifest.items}
    assert by_id["nju-angry-1"].title == "All Messed Up" and by_id["nju-angry-1"].artist == "Sum 41"
    assert by_id["nju-angry-7"].lyrics is not None and by_id["nju-angry-7"].lyrics.name == "angry_7.txt"
    assert all(it.audio is None for it in manifest.items)


def test_nju_with_train_test_level(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "nju-musicmood-train" / "Sad"
    for split in ("Train", "Test"):
        dest = tmp_path / "nju" / split / "Sad"
        dest.mkdir(parents=True)
        shutil.copy(src / "info.txt", dest)
        for f in sorted(src.glob("sad_*.txt"))[:3] if split == "Train" else sorted(src.glob("sad_*.txt"))[3:5]:
            shutil.copy(f, dest)
    report = import_nju(tmp_path / "nju", tmp_path / "out" / "m.csv")
    manifest = read(report.manifest)
    assert report.items == 5
    assert sorted(it.split for it in manifest.items) == ["test", "test", "train", "train", "train"]
    assert validate(manifest) == []


def test_emodb_maps_four_emotions_and_reports_the_rest(shared_data: Path, tmp_path: Path) -> None:
    report = import_emodb(shared_data / "emodb-dev", tmp_path / "emodb.csv")
    manifest = read(report.manifest)
    assert report.groups == 6
    assert {it.group for it in manifest.items} == {f"speaker-{s}" for s in ("03", "08", "09", "10", "13", "15")}
    assert set(report.labels) == {"angry", "happy", "sad", "relaxed"}
    assert set(report.excluded) == {"boredom", "disgust", "fear"}
    assert report.items + sum(report.excluded.values()) == 305
    assert validate(manifest) == []
    w = next(it for it in manifest.items if it.audio and it.audio.stem[5] == "W")
    assert w.label == "angry" and w.category == "angry"
    assert {it.category for it in manifest.items if it.label == "relaxed"} == {"neutral"}


def test_emopia_renders_clips_grouped_by_song(shared_data: Path, tmp_path: Path) -> None:
    src = tmp_path / "emopia"
    src.mkdir()
    mids = sorted((shared_data / "emopia-dev").rglob("*.mid"))
    q1 = [m for m in mids if m.name.startswith("Q1_")][:2]
    q3 = [m for m in mids if m.name.startswith("Q3_")][:1]
    for m in q1 + q3:
        shutil.copy(m, src / m.name)
    (src / "README.mid").write_bytes(b"MThd")  # a badly named file is reported, not imported
    report = import_emopia(src, tmp_path / "out" / "emopia.csv")
    manifest = read(report.manifest)
    assert report.items == 3
    assert report.excluded == {"unexpected file name": 1}
    assert {it.label for it in manifest.items} == {"happy", "sad"}
    assert validate(manifest) == []
    songs = {m.stem.rsplit("_", 1)[0].split("_", 1)[1] for m in q1 + q3}
    assert {it.group for it in manifest.items} == {f"emopia-{s}" for s in songs}
    from catalog.audio import probe

    audio = manifest.items[0].audio
    assert audio is not None
    info = probe(audio)
    assert info.format == "flac" and info.channels == 1 and info.duration_s > 1.0
    before = audio.stat().st_mtime_ns
    import_emopia(src, tmp_path / "out" / "emopia.csv")
    assert audio.stat().st_mtime_ns == before


def _datasets_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`musicrec datasets ARGS` in a subprocess, output captured as text."""
    return subprocess.run([sys.executable, "-m", "cli.main", "datasets", *args], capture_output=True, text=True)


def test_import_cli_and_validate_cli(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "emodb.csv"
    run = _datasets_cli
    imp = run("import", "emodb", str(shared_data / "emodb-dev"), "--out", str(out))
    assert imp.returncode == 0, imp.stderr
    assert "in 6 groups" in imp.stdout and "excluded:" in imp.stdout
    split = run("split", str(out), "--by", "group", "--val", "0.15", "--test", "0.15", "--seed", "42")
    assert split.returncode == 0, split.stderr
    ok = run("validate", str(out))
    assert ok.returncode == 0 and "0 problem(s)" in ok.stdout
    rows = list(csv.DictReader(out.open()))
    speakers_per_split: dict[str, set[str]] = {}
    for r in rows:
        speakers_per_split.setdefault(r["group"], set()).add(r["split"])
    assert all(len(v) == 1 for v in speakers_per_split.values())


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a folder"):
        import_emodb(tmp_path / "absent", tmp_path / "m.csv")


def test_q4_groups_by_artist_and_keeps_title(shared_data: Path, tmp_path: Path) -> None:
    from catalog.importers.q4 import import_q4

    report = import_q4(shared_data / "q4-audio-dev", tmp_path / "q4.csv")
    assert report.items == 542 and not report.problems
    assert set(report.labels) == {"happy", "angry", "sad", "relaxed"}
    manifest = read(tmp_path / "q4.csv")
    assert manifest.label_set == "quadrants" and validate(manifest) == []
    first = next(it for it in manifest.items if it.id == "q4-MT0000004637")
    assert (first.label, first.artist, first.title) == ("sad", "Charlie Poole", "Bulldog Down in Sunny Tennessee")
    by_artist: dict[str, set[str]] = {}
    for it in manifest.items:
        by_artist.setdefault(it.artist, set()).add(it.group)
    unknown = by_artist.pop("", set())  # a few rows name no artist: each song is its own group
    assert all(g.startswith("song:") for g in unknown)
    assert all(len(g) == 1 for g in by_artist.values())
    assert report.groups < report.items  # several artists have more than one song
    # Latin-1 metadata decoded (no replacement characters anywhere)
    assert not any("\ufffd" in it.artist + it.title for it in manifest.items)


def test_mirex_clusters_categories_artists_and_lyrics(shared_data: Path, tmp_path: Path) -> None:
    from catalog.importers.mirex import import_mirex, parse_info

    report = import_mirex(shared_data / "mirex-bimodal-dev", tmp_path / "mirex.csv")
    assert report.items == 568 and not report.problems
    assert set(report.labels) == {f"cluster{k}" for k in range(1, 6)}
    manifest = read(tmp_path / "mirex.csv")
    assert manifest.label_set == "mirex5" and validate(manifest) == []
    assert sum(it.lyrics is not None for it in manifest.items) == 478
    assert all(it.audio is not None for it in manifest.items)
    song = next(it for it in manifest.items if it.id == "mirex-001")
    assert (song.label, song.category, song.artist) == ("cluster1", "Boisterous", "Brown, Ruth")
    assert song.title == "(Mama) He Treats Your Daughter Mean" and song.group == "artist:brown, ruth"
    # a title holding ';' itself: fields are counted from the line's end
    info = parse_info("Title;Artist;Album;Track;Year;Length;Size;Last Modified;Filename;\n"
                      "Love; Hate;Some One;An Album;3;1999;30;352,00 KB;09-09-2010;123.mp3;\n")
    assert info["123"] == {"title": "Love; Hate", "artist": "Some One", "album": "An Album"}


def test_q4_and_mirex_import_cli(shared_data: Path, tmp_path: Path) -> None:
    run = _datasets_cli
    imp = run("import", "mirex", str(shared_data / "mirex-bimodal-dev"), "--out", str(tmp_path / "m.csv"))
    assert imp.returncode == 0, imp.stderr
    assert "568 items" in imp.stdout and "cluster3=140" in imp.stdout
    ok = run("validate", str(tmp_path / "m.csv"))
    assert ok.returncode == 0 and "label set mirex5" in ok.stdout
    bad = run("import", "mirex", str(tmp_path), "--out", str(tmp_path / "x.csv"))
    assert bad.returncode == 2 and "split-by-categories-audio.bat" in bad.stderr

def test_ravdess_maps_four_emotions_groups_by_actor(shared_data: Path, tmp_path: Path) -> None:
    report = import_ravdess(shared_data / "ravdess-speech-dev", tmp_path / "ravdess.csv")
    manifest = read(report.manifest)
    assert report.groups == 16 and {it.group for it in manifest.items} == {f"actor-{a:02d}" for a in range(1, 17)}
    assert set(report.labels) == {"angry", "happy", "sad", "relaxed"}
    assert set(report.excluded) == {"fearful", "disgust", "surprised"}
    assert report.items + sum(report.excluded.values()) == 956
    # relaxed gathers neutral and calm, so it outnumbers each single emotion
    assert report.labels["relaxed"] > report.labels["happy"] > 0
    assert validate(manifest) == []
    by_name = {it.audio.name: it for it in manifest.items if it.audio}
    assert by_name["03-01-01-01-01-01-01.opus"].label == "relaxed"  # neutral
    # the acted emotion is kept as the category: relaxed is neutral or calm
    assert (by_name["03-01-01-01-01-01-01.opus"].category, by_name["03-01-02-01-01-01-01.opus"].category) == ("neutral", "calm")
    assert {it.category for it in manifest.items if it.label == "relaxed"} == {"neutral", "calm"}
    assert by_name["03-01-05-02-01-01-01.opus"].label == "angry" and by_name["03-01-05-02-01-01-01.opus"].group == "actor-01"
    assert not any(it.audio.name.startswith("03-01-06-") for it in manifest.items if it.audio)


def test_merge_rewrites_paths_keeps_ids_unique_and_groups_distinct(shared_data: Path, tmp_path: Path) -> None:
    emodb = import_emodb(shared_data / "emodb-dev", tmp_path / "a" / "emodb.csv").manifest
    ravdess = import_ravdess(shared_data / "ravdess-speech-dev", tmp_path / "b" / "ravdess.csv").manifest
    split_file(emodb, val=0.2, test=0.2, seed=1)
    # a second copy of EmoDB in another folder: same ids and the same speaker names must not collide
    copy = tmp_path / "c" / "emodb.csv"
    import_emodb(shared_data / "emodb-dev", copy)
    out = tmp_path / "merged" / "deep" / "speech.csv"
    report = merge([emodb, ravdess, copy], out)
    merged = read(out)
    n_emodb, n_ravdess = len(read(emodb).items), len(read(ravdess).items)
    assert report.items == len(merged.items) == 2 * n_emodb + n_ravdess
    assert report.renamed_ids == n_emodb
    assert validate(merged) == []  # every rewritten path resolves, ids unique, no group straddles splits
    groups = {it.group for it in merged.items}
    assert report.groups == len(groups) == 6 + 16 + 6
    assert "emodb1/speaker-03" in groups and "emodb2/speaker-03" in groups and "ravdess/actor-16" in groups
    source_split = {it.id: it.split for it in read(emodb).items}
    assert all(it.split == source_split[it.id] for it in merged.items if it.group.startswith("emodb1/"))
    assert {it.split for it in merged.items if it.group.startswith("emodb1/")} == {"train", "val", "test"}
    assert all(it.split == "" for it in merged.items if it.group.startswith("ravdess/"))
    source_category = {it.id: it.category for it in read(ravdess).items}
    assert all(it.category == source_category[it.id] for it in merged.items if it.group.startswith("ravdess/"))
    assert all(not Path(line.split(",")[2]).is_absolute() for line in out.read_text().splitlines()[1:])


def test_merge_cli(shared_data: Path, tmp_path: Path) -> None:
    run = _datasets_cli
    imp = run("import", "ravdess", str(shared_data / "ravdess-speech-dev"), "--out", str(tmp_path / "ravdess.csv"))
    assert imp.returncode == 0, imp.stderr
    assert "in 16 groups" in imp.stdout and "fearful=" in imp.stdout
    assert run("import", "emodb", str(shared_data / "emodb-dev"), "--out", str(tmp_path / "emodb.csv")).returncode == 0
    merged = run("merge", str(tmp_path / "emodb.csv"), str(tmp_path / "ravdess.csv"), "--out", str(tmp_path / "m" / "speech.csv"))
    assert merged.returncode == 0, merged.stderr
    assert "in 22 groups" in merged.stdout
    assert run("validate", str(tmp_path / "m" / "speech.csv")).returncode == 0
