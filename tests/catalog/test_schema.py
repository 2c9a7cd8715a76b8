"""Schema and migrations on SQLite and PostgreSQL: round trips, model/migration agreement, constraints."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from catalog import migrate
from catalog.db import get_engine, session_scope
from catalog.fingerprint import song_fingerprint
from catalog.models import Artist, AudioAsset, Base, EmotionLabel, EmotionModel, Song


def test_upgrade_downgrade_upgrade_and_no_pending_diff(db_url: str) -> None:
    assert migrate.current_revision(db_url) is not None
    assert migrate.pending_diff(db_url) == []
    migrate.downgrade("base", db_url)
    assert migrate.current_revision(db_url) is None
    tables = set(inspect(get_engine(db_url)).get_table_names()) - {"alembic_version"}
    assert tables == set()
    migrate.upgrade("head", db_url)
    tables = set(inspect(get_engine(db_url)).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert migrate.pending_diff(db_url) == []


def _song(title: str = "Song", **kw: object) -> Song:
    return Song(title=title, fingerprint=song_fingerprint(title, "A", None, 100.0), **kw)


def test_song_round_trip_with_relations(db_url: str) -> None:
    with session_scope(db_url) as s:
        artist = Artist(name="Green Day", name_norm="green day")
        song = _song(artist=artist, album="American Idiot", duration_s=176.0, tags=["punk"])
        song.audio = AudioAsset(sha256="a" * 64, path="audio/aa/aa/x.flac", format="flac", sample_rate=22050, channels=1, duration_s=176.0, size_bytes=1000)
        s.add(song)
    with session_scope(db_url) as s:
        got = s.scalars(select(Song)).one()
        assert got.artist is not None and got.artist.name == "Green Day"
        assert got.audio is not None and got.audio.format == "flac"
        assert got.tags == ["punk"] and got.status == "new"
        assert got.created_at is not None


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: [_song("x"), _song("x")], id="duplicate-fingerprint"),
        pytest.param(lambda: [_song("x", status="bogus")], id="unknown-status"),
        pytest.param(lambda: [_song("x", artist_id=999)], id="dangling-artist"),
    ],
)
def test_constraints_refuse_bad_rows(db_url: str, make: Callable[[], list[Song]]) -> None:
    with pytest.raises(IntegrityError):
        with session_scope(db_url) as s:
            s.add_all(make())
            s.flush()


def test_label_is_unique_per_song_and_model_and_checked(db_url: str) -> None:
    with session_scope(db_url) as s:
        song, model = _song(), EmotionModel(name="m", version="1", artifact_path="/tmp/m")
        s.add_all([song, model])
        s.flush()
        s.add(EmotionLabel(song_id=song.id, model_id=model.id, label="happy", confidence=0.9, probabilities={"happy": 0.9}))
        ids = (song.id, model.id)
    with pytest.raises(IntegrityError):
        with session_scope(db_url) as s:
            s.add(EmotionLabel(song_id=ids[0], model_id=ids[1], label="sad", confidence=0.5))
            s.flush()
    with pytest.raises(IntegrityError):
        with session_scope(db_url) as s:
            s.add(EmotionLabel(song_id=ids[0], model_id=ids[1], label="ecstatic", confidence=0.5))
            s.flush()


def test_deleting_a_song_cascades_to_its_asset(db_url: str) -> None:
    with session_scope(db_url) as s:
        song = _song()
        song.audio = AudioAsset(sha256="b" * 64, path="p", format="wav", sample_rate=16000, channels=1, duration_s=1.0, size_bytes=10)
        s.add(song)
    with session_scope(db_url) as s:
        s.delete(s.scalars(select(Song)).one())
    with session_scope(db_url) as s:
        assert s.scalars(select(AudioAsset)).all() == []


def test_db_cli_upgrade_and_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {**__import__("os").environ, "MUSICREC_DATABASE_URL": url}
    def run(*a: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cli.main", "db", *a], env=env, capture_output=True, text=True)

    up = run("upgrade")
    assert up.returncode == 0, up.stderr
    assert "at revision 0002" in up.stdout
    assert run("check").returncode == 0
    assert run("downgrade", "base").returncode == 0
    assert run("current").stdout.strip() == "base"


def test_0002_backfills_public_ids_and_downgrades(db_url: str) -> None:
    """Sessions made before 0002 get distinct unguessable public ids; 0002 goes down and up again with data in it."""
    from sqlalchemy import text

    migrate.downgrade("0001", db_url)
    engine = get_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO listeners (id, external_id, created_at) VALUES (1, 'old', CURRENT_TIMESTAMP)"))
        for sid in (1, 2):
            conn.execute(text(
                "INSERT INTO recommendation_sessions (id, listener_id, emotion, status, preferred_topics, version, created_at, updated_at) "
                "VALUES (:id, 1, 'sad', 'active', '{}', 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"), {"id": sid})
    migrate.upgrade("head", db_url)
    with engine.connect() as conn:
        ids = [r[0] for r in conn.execute(text("SELECT public_id FROM recommendation_sessions ORDER BY id"))]
        assert conn.execute(text("SELECT token_hash FROM listeners")).scalar() is None
    assert len(ids) == 2 and len(set(ids)) == 2 and all(len(i) >= 22 for i in ids)
    assert migrate.pending_diff(db_url) == []
    migrate.downgrade("0001", db_url)
    assert "public_id" not in {c["name"] for c in inspect(engine).get_columns("recommendation_sessions")}
    migrate.upgrade("head", db_url)
