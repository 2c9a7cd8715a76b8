"""`musicrec features extract`: segment features for a manifest or for catalog songs, cached per content and encoder."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from emotion.features.base import AudioEncoder, LyricsEncoder
    from emotion.features.extract import ItemResult, Job
    from emotion.features.segments import SegmentSpec


def _spec(segment_s: float, hop_s: float | None, min_last_s: float) -> SegmentSpec:
    from emotion.features.segments import SegmentSpec

    return SegmentSpec(segment_s, hop_s, min(min_last_s, segment_s))


def _encoders(audio: str, lyrics: str) -> tuple[AudioEncoder | None, LyricsEncoder | None]:
    from emotion.features.base import EncoderError
    from emotion.features.registry import default_audio_encoder_name, make_audio_encoder, make_lyrics_encoder

    try:
        name = default_audio_encoder_name() if audio == "default" else audio
        audio_enc = None if audio == "none" else make_audio_encoder(name)
        lyrics_enc = None if lyrics == "none" else make_lyrics_encoder(lyrics)
    except EncoderError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    return audio_enc, lyrics_enc


def _song_jobs(which: str, limit: int | None) -> list[Job]:
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from catalog.db import session_scope
    from catalog.models import Song
    from catalog.store import FileStore
    from emotion.features.extract import Job

    store = FileStore()
    stmt = select(Song).options(selectinload(Song.audio), selectinload(Song.lyrics)).order_by(Song.id)
    if which == "new":
        stmt = stmt.where(Song.status == "new")
    if limit:
        stmt = stmt.limit(limit)
    with session_scope() as session:
        songs = session.scalars(stmt).all()
        return [
            Job(str(s.id), store.resolve(s.audio.path) if s.audio else None,
                s.lyrics.raw_text.encode("utf-8") if s.lyrics and s.lyrics.raw_text.strip() else None, s.id)
            for s in songs
        ]


def _update_songs(results: dict[str, ItemResult], jobs: list[Job]) -> tuple[int, int]:
    """new -> features for songs with at least one modality; failed (stage features) with the reason otherwise."""
    from catalog.db import session_scope
    from catalog.models import Song

    done = failed = 0
    with session_scope() as session:
        for job in jobs:
            res = results[job.id]
            song = session.get(Song, job.song_id)
            if song is None:
                continue
            if res.audio is None and res.lyrics is None:
                reasons = "; ".join(f"{k}: {v}" for k, v in res.errors.items()) or "no audio and no lyrics"
                song.status, song.failed_stage, song.failure_reason = "failed", "features", reasons[:4000]
                failed += 1
            elif song.status == "new":
                song.status = "features"
                done += 1
    return done, failed


def register(app: typer.Typer) -> None:
    feat_app = typer.Typer(help="Segment features (audio and lyrics encoders, cached).", no_args_is_help=True)
    app.add_typer(feat_app, name="features")

    @feat_app.command("extract")
    def extract_cmd(
        manifest: Path | None = typer.Option(None, "--manifest", "-m", help="Manifest CSV whose items to extract."),
        songs: str | None = typer.Option(None, "--songs", help="Catalog songs instead: 'new' (status new) or 'all'."),
        audio_encoder: str = typer.Option(
            "default", "--audio-encoder", help="lld | musicnn | ast | none (default: musicnn when its weights are installed, else lld)."
        ),
        lyrics_encoder: str = typer.Option("bert-cnn", "--lyrics-encoder", help="bert-cnn, minilm, mpnet, several joined by '+', or none."),
        workers: int = typer.Option(1, "--workers", "-j", help="Worker processes for decoding and CPU encoders."),
        segment_s: float = typer.Option(10.0, "--segment-s", help="Segment length in seconds."),
        hop_s: float | None = typer.Option(None, "--hop-s", help="Segment hop in seconds (default: the length)."),
        min_last_s: float = typer.Option(3.0, "--min-last-s", help="Keep a last partial segment at least this long."),
        limit: int | None = typer.Option(None, "--limit", help="Only the first N items."),
        report: Path | None = typer.Option(None, "--report", help="JSON report (default var/features/extract-<time>.json)."),
    ) -> None:
        """Extract (or read from the cache) segment features; refused items are listed with their reason."""
        from catalog.settings import get_settings
        from emotion.features.cache import FeatureCache
        from emotion.features.extract import Job, extract

        if (manifest is None) == (songs is None):
            typer.echo("error: give exactly one of --manifest or --songs new|all", err=True)
            raise typer.Exit(2)
        if songs is not None and songs not in ("new", "all"):
            typer.echo("error: --songs must be 'new' or 'all'", err=True)
            raise typer.Exit(2)
        if manifest is not None:
            from catalog.manifest import ManifestError, read

            try:
                items = read(manifest).items
            except ManifestError as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(2) from exc
            jobs = [Job(it.id, it.audio, it.lyrics) for it in items][: limit or None]
        else:
            jobs = _song_jobs(songs or "new", limit)
        audio_enc, lyrics_enc = _encoders(audio_encoder, lyrics_encoder)
        cache = FeatureCache()
        results = extract(jobs, audio_enc, lyrics_enc, spec=_spec(segment_s, hop_s, min_last_s), workers=workers, cache=cache)
        refused = {k: r.errors for k, r in results.items() if r.errors}
        summary = {
            "items": len(jobs),
            "audio_encoder": None if audio_enc is None else f"{audio_enc.name}:{audio_enc.version}",
            "lyrics_encoder": None if lyrics_enc is None else f"{lyrics_enc.name}:{lyrics_enc.version}",
            "cache_hits": cache.hits,
            "extracted": cache.misses,
            "refused": len(refused),
        }
        if songs is not None:
            summary["songs_to_features"], summary["songs_failed"] = _update_songs(results, jobs)
        out = report or get_settings().var_dir / "features" / f"extract-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"summary": summary, "items": [r.summary() for r in results.values()]}, indent=2))
        for item_id, errors in refused.items():
            for modality, reason in errors.items():
                typer.echo(f"refused {item_id} {modality}: {reason}", err=True)
        typer.echo(json.dumps(summary))
        typer.echo(f"report: {out}")
        if jobs and all(r.audio is None and r.lyrics is None for r in results.values()):
            raise typer.Exit(1)

    @feat_app.command("prune")
    def prune_cmd(
        apply: bool = typer.Option(False, "--apply", help="Delete what was found (default: only report it)."),
        temp_age_h: float = typer.Option(1.0, "--temp-age-hours", min=0.0, help="Temporary files at least this old count as left over."),
    ) -> None:
        """Find the cached features that no lookup reaches any more: rows of another decode pipeline (a change of
        catalog.audio.DECODE_VERSION keys every audio feature anew), rows whose file is gone, temporary files of an
        interrupted write. Reports them (JSON, last line); --apply deletes the rows, then their files."""
        from catalog.db import session_scope
        from catalog.store import FileStore
        from emotion.features.cache import prune

        with session_scope() as session:
            report = prune(session, FileStore(), apply=apply, temp_age_s=temp_age_h * 3600)
        verb = "removed" if apply else "would remove (run with --apply)"
        typer.echo(f"{verb}: {report.stale_rows} stale rows, {report.dangling_rows} rows without a file, "
                   f"{report.temp_files} temporary files; {report.files} files, {report.bytes / 1e6:.1f} MB", err=True)
        typer.echo(json.dumps(report.summary()))
