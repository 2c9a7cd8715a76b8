"""`musicrec topics build|show|playlist`: per-emotion topic subclasses (the playlists)."""

from __future__ import annotations

import logging
from pathlib import Path

import typer


def _quiet_gensim() -> None:
    logging.getLogger("gensim").setLevel(logging.WARNING)


def register(app: typer.Typer) -> None:
    topics_app = typer.Typer(help="Topic subclasses inside each emotion: audio codebook + LDA, playlists.", no_args_is_help=True)
    app.add_typer(topics_app, name="topics")

    @topics_app.command("build")
    def build(
        emotion: list[str] | None = typer.Option(None, "--emotion", "-e", help="Emotion to build (repeatable); default: all four."),
        k: int = typer.Option(150, "--k", help="Codewords in the audio codebook (reduced, with a warning, when frames are fewer)."),
        topics: int = typer.Option(5, "--topics", help="LDA topics per emotion (ignored with --select-topics)."),
        seed: int = typer.Option(42, "--seed"),
        select_topics: str | None = typer.Option(None, "--select-topics", help="Pick the number of topics: coherence | perplexity."),
        candidates: str | None = typer.Option(None, "--candidates", help="Topic counts to try with --select-topics, e.g. 2,3,4,5,6."),
        codebook: str = typer.Option("auto", "--codebook", help="auto | kmeans | minibatch (auto: MiniBatchKMeans above 50k frames)."),
        passes: int | None = typer.Option(None, "--passes", help="LDA passes over the corpus (default: 20 up to 2,000 songs, fewer above)."),
    ) -> None:
        """Refit the topic models from the songs labelled by the active emotion model; new versions become active."""
        from topics.build import BuildConfig, build_all

        _quiet_gensim()
        cands = [int(c) for c in candidates.split(",")] if candidates else None
        cfg = BuildConfig(k=k, num_topics=topics, seed=seed, select=select_topics, candidates=cands, method=codebook, passes=passes)
        reports, errors = build_all(emotion or None, cfg)
        for r in reports:
            moved = r.metrics["movement"]["moved_fraction"]
            moved_s = (
                "first version"
                if moved is None
                else f"{moved:.1%} of {r.metrics['movement']['common_songs']} songs changed dominant topic vs v{r.metrics['previous_version']}"
            )
            typer.echo(
                f"{r.emotion}: v{r.version}, {r.songs} songs, K={r.params['k_used']}, {len(r.sizes)} topics sized {r.sizes}; {moved_s}; {r.seconds:.1f} s"
            )
            for note in r.metrics["notes"]:
                typer.echo(f"  note: {note}")
            for item in r.skipped:
                typer.echo(f"  skipped song {item['song_id']}: {item['reason']}")
        for emo, message in errors.items():
            typer.secho(f"{emo}: not built: {message}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1 if errors else 0)

    @topics_app.command("show")
    def show(
        emotions: list[str] = typer.Argument(None, help="happy | angry | sad | relaxed, one or more (default: every emotion with topics)."),
        out: Path | None = typer.Option(None, "--out", help="Folder for the PNG plots (default: <var_dir>/plots/topics)."),
    ) -> None:
        """Print the topics of each EMOTION with sizes and descriptions; write its heat map, songs-per-topic and song-map PNGs."""
        from catalog.db import session_scope
        from topics.errors import TopicsError
        from topics.infer import emotions_with_topics

        _quiet_gensim()
        if not emotions:
            with session_scope() as s:
                emotions = emotions_with_topics(s)
            if not emotions:
                typer.secho("no emotion has a topic model yet: run `musicrec topics build` first", fg=typer.colors.RED, err=True)
                raise typer.Exit(1)
        for emotion in emotions:
            if len(emotions) > 1:
                typer.secho(f"== {emotion} ==", bold=True)
            try:
                show_one(emotion, out)
            except TopicsError as exc:
                typer.secho(str(exc), fg=typer.colors.RED, err=True)
                raise typer.Exit(1) from exc

    def show_one(emotion: str, out: Path | None) -> None:
        from topics.playlist import list_topics
        from topics.plots import write_plots

        infos = list_topics(emotion)
        paths = write_plots(emotion, out)
        for t in infos:
            d = t.description
            typer.secho(f"topic {t.index}: {t.size} songs - {t.label}", bold=True)
            audio = ", ".join(f"{k} {v:+.2f}" for k, v in d.get("audio", {}).items())
            if audio:
                typer.echo(f"  audio (z vs the mean of the emotion's topics): {audio}")
            if d.get("measures"):
                typer.echo("  vs the emotion's median song: " + ", ".join(f"{k} {m['topic']:g} ({m['diff']:+g})" for k, m in d["measures"].items()))
            elif d.get("values"):
                typer.echo("  values: " + ", ".join(f"{k} {v:g}" for k, v in d["values"].items()))
            if d.get("songs"):
                typer.echo("  listen to: " + "; ".join(f"#{s['id']} {s['title']}" + (f" - {s['artist']}" if s.get("artist") else "") for s in d["songs"]))
            words = "; ".join(f"w{w['word']} ({w['p']:.3f}: {w['sounds']})" for w in d.get("top_words", []))
            typer.echo(f"  top audio words: {words}")
            if d.get("artists"):
                typer.echo("  artists: " + ", ".join(f"{a} ({n})" for a, n in d["artists"]))
            if d.get("lyric_words"):
                typer.echo("  lyric words: " + ", ".join(d["lyric_words"]))
        for p in paths:
            typer.echo(f"wrote {p}")

    @topics_app.command("playlist")
    def playlist_cmd(
        emotion: str = typer.Argument(...),
        topic: int = typer.Argument(..., help="Topic index (see `musicrec topics show EMOTION`)."),
        limit: int | None = typer.Option(None, "--limit", "-n"),
    ) -> None:
        """Print the songs of (EMOTION, TOPIC), best first (topic weight x label confidence)."""
        from topics.errors import TopicsError
        from topics.playlist import playlist

        try:
            entries = playlist(emotion, topic, limit=limit)
        except TopicsError as exc:
            typer.secho(str(exc), fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from exc
        typer.echo(f"{emotion} topic {topic}: {len(entries)} songs")
        for rank, e in enumerate(entries, 1):
            typer.echo(f"{rank:3d}. [{e.song_id}] {e.title} - {e.artist or '?'}  weight {e.weight:.3f}  confidence {e.confidence:.2f}")
