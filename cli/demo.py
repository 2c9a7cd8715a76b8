"""The end-to-end demo behind `make demo`: real data -> models -> demo site -> crawl -> workers -> topics -> API -> voice clip.

Every step runs the same commands and processes a user would (the `musicrec` CLI in subprocesses, a Celery worker on the
embedded transport, uvicorn on 127.0.0.1), shows progress, and everything started is stopped at the end. Here: the data
and model steps and `run_demo`; the running system (worker, crawl, topics, API) is in cli/demo_pipeline.py, what the
steps share in cli/demo_common.py, the demo site in cli/demo_site.py.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import typer

from catalog.manifest import Item
from catalog.settings import get_settings
from cli.demo_common import EMOTION_ORDER, Demo, DemoConfig, DemoError, last_json, musicrec, step
from cli.demo_pipeline import build_topics, crawl_through_pipeline, start_worker, talk_to_api, voice_clip
from cli.demo_site import DemoSong

__all__ = ["DemoError", "run_demo"]


# --- steps ----------------------------------------------------------------------------------------------


def setup_database(demo: Demo) -> None:
    from catalog import migrate
    from catalog.settings import mask_url

    get_settings().ensure_dirs()
    migrate.upgrade("head")
    typer.echo(f"catalog {mask_url(get_settings().database_url)} at revision {migrate.current_revision()}")


SONG_SETS = ("nju-musicmood-train", "emodb-dev", "q4-audio-dev")
MORE_VOICES = "ravdess-speech-dev"  # used when present: the speech model then learns from both corpora
Q4_VAL, Q4_TEST = 0.15, 0.3  # the q4 test artists are both the song model's held-out score and the demo site's songs


def stand_in_artists(train_per_quadrant: int, songs: int) -> int:
    """Stand-in artists per quadrant (2 clips each, 4..12): enough clips for the train cap in the train+val artists and
    for the site's songs in the test artists (rendering costs about 0.3 s a clip, so no more than that)."""
    need = max(train_per_quadrant / (2 * (1 - Q4_TEST)), songs / 4 / (2 * Q4_TEST))
    return max(4, min(12, math.ceil(need)))


def import_datasets(demo: Demo) -> dict[str, Path]:
    """Import the three shared data sets (NJU lyrics, EmoDB voices, q4 real recordings), and RAVDESS voices when
    present, split by group, validate; `speech` is EmoDB merged with RAVDESS (splits kept), or EmoDB alone."""
    from catalog.importers.emodb import import_emodb
    from catalog.importers.nju import import_nju
    from catalog.importers.q4 import import_q4
    from catalog.importers.ravdess import import_ravdess
    from catalog.manifest import merge, read, split_file, validate
    from cli.datasets_cmd import print_report

    out = demo.var / "datasets"
    if not all((demo.cfg.data / folder).is_dir() for folder in SONG_SETS):
        from cli.demo_data import generate

        typer.secho(f"{demo.cfg.data} does not hold the shared data sets: generating stand-in clips (synthetic, labelled by "
                    "construction; the demo then shows the system working, not real accuracy)", fg=typer.colors.YELLOW)
        demo.cfg.data = generate(demo.var / "demo-data", songs_per_quadrant=stand_in_artists(demo.cfg.train_per_quadrant, demo.cfg.songs))
        demo.summary["data"] = "generated stand-in clips"
    else:
        demo.summary["data"] = str(demo.cfg.data)
    manifests: dict[str, Path] = {}
    datasets: dict[str, object] = {}
    sets = [("nju", "nju-musicmood-train", import_nju), ("emodb", "emodb-dev", import_emodb), ("q4", "q4-audio-dev", import_q4)]
    if (demo.cfg.data / MORE_VOICES).is_dir():
        sets.append(("ravdess", MORE_VOICES, import_ravdess))
    for name, folder, importer in sets:
        src = demo.cfg.data / folder
        report = importer(src, out / f"{name}.csv")
        print_report(report, name)
        val, test = (Q4_VAL, Q4_TEST) if name == "q4" else (0.15, 0.15)
        _, counts = split_file(report.manifest, val, test, 42)
        problems = validate(read(report.manifest))
        if problems:
            raise DemoError(f"{report.manifest}: {len(problems)} problem(s), e.g. {problems[0]}")
        manifests[name] = report.manifest
        datasets[name] = {"items": report.items, "groups": report.groups, "splits": dict(counts)}
    manifests["speech"] = manifests["emodb"]
    if "ravdess" in manifests:  # one manifest of both corpora; each keeps its speaker-grouped split
        merge([manifests["emodb"], manifests["ravdess"]], out / "speech.csv")
        manifests["speech"] = out / "speech.csv"
    demo.summary["datasets"] = datasets
    return manifests


def round_robin(items: list[Item], n: int) -> list[Item]:
    """Up to `n` items, taken one per quadrant in turn (balanced while every quadrant has some left)."""
    by_label = {e: [it for it in items if it.label == e] for e in EMOTION_ORDER}
    chosen: list[Item] = []
    while len(chosen) < n and any(by_label.values()):
        for e in EMOTION_ORDER:
            if by_label[e] and len(chosen) < n:
                chosen.append(by_label[e].pop(0))
    return chosen


def demo_song_manifest(demo: Demo, manifest: Path) -> Path:
    """The demo's song manifest: at most `train_per_quadrant` train+val clips per quadrant (musicnn and Whisper tiny.en
    and base cost ~1.3 s of CPU per 30 s clip together, so this bounds the demo's time), keeping the split's val share, and `songs` test clips (held-out
    artists, balanced over the quadrants): the song model's test score and the demo site's songs."""
    from catalog.manifest import read

    rows = read(manifest).items
    cap = demo.cfg.train_per_quadrant
    n_val = max(1, round(cap * Q4_VAL / (1 - Q4_TEST)))
    keep: set[str] = set()
    for e in EMOTION_ORDER:
        val = [it.id for it in rows if it.label == e and it.split == "val"][:n_val]
        train = [it.id for it in rows if it.label == e and it.split == "train"][: cap - len(val)]
        keep.update(val + train)
    keep.update(it.id for it in round_robin([it for it in rows if it.split == "test"], demo.cfg.songs))
    out = manifest.with_name(f"{manifest.stem}-demo.csv")
    with manifest.open(newline="", encoding="utf-8") as src, out.open("w", newline="", encoding="utf-8") as dst:
        reader = csv.DictReader(src)
        writer = csv.DictWriter(dst, fieldnames=list(reader.fieldnames or []))
        writer.writeheader()
        for row in reader:
            if row["id"] in keep:
                row["audio"] = str((manifest.parent / row["audio"]).resolve())
                writer.writerow(row)
    counts = Counter(it.split for it in read(out).items)
    demo.summary["song_manifest"] = {"manifest": str(out), "train_per_quadrant_cap": cap, "splits": dict(counts)}
    typer.echo(f"song manifest {out.name}: {counts['train']} train + {counts['val']} val clips (at most {cap} per quadrant), "
               f"{counts['test']} test clips of held-out artists")
    return out


def train_song_model(demo: Demo, manifest: Path) -> None:
    """Train the default song model (probe-ensemble: musicnn + Whisper tiny.en and base probes) on the q4 train/val artists, activate it, score it on the
    held-out test artists (whose clips become the demo site)."""
    out = demo.var / "models" / "song-default"
    epochs = ("--epochs", str(demo.cfg.song_epochs)) if demo.cfg.song_epochs else ()
    proc = musicrec("train", "emotion", "--manifest", str(manifest), "--model", demo.cfg.song_model, *epochs, "--out", str(out))
    typer.echo(proc.stdout.strip())
    model_id = next((int(tok.rstrip(")")) for line in proc.stdout.splitlines() if "emotion_models id" in line for tok in line.split()[-1:]), None)
    if model_id is None:
        raise DemoError("the song model was not registered")
    musicrec("models", "activate", str(model_id))
    evaluation = last_json(musicrec("evaluate", "emotion", "--model", str(out), "--manifest", str(manifest), "--split", "test", "--json").stdout)
    typer.echo(f"song model on the held-out q4 test artists: accuracy {evaluation['accuracy']:.3f}, "
               f"macro-F1 {evaluation['macro_f1']:.3f} (n={evaluation['n']})")
    demo.summary["song_model"] = {"name": demo.cfg.song_model, "artifact": str(out), "test_accuracy": evaluation["accuracy"],
                                  "test_macro_f1": evaluation["macro_f1"], "n_test": evaluation["n"]}


def train_speech_model(demo: Demo, manifest: Path) -> None:
    """Train the default speech emotion model (the Whisper tiny.en + base probe) on EmoDB (+ RAVDESS) with a
    speaker-independent split; it becomes the active one (the packaged Whisper weights are converted into the demo's
    store on first use)."""
    out = demo.var / "models" / "speech-default"
    result = last_json(musicrec("train", "speech", "--manifest", str(manifest), "--model", "default", "--epochs", str(demo.cfg.speech_epochs),
                                "--out", str(out)).stdout)
    groups = result.get("split_groups")
    test_speakers = groups.get("test") if isinstance(groups, dict) else None
    typer.echo(f"speech model on held-out speakers {test_speakers}: accuracy {result.get('accuracy', float('nan')):.3f}, "
               f"macro-F1 {result.get('macro_f1', float('nan')):.3f}")
    meta = json.loads((out / "meta.json").read_text())
    demo.summary["speech_model"] = {"artifact": str(out), "manifest": str(manifest), "test_accuracy": result.get("accuracy"),
                                    "test_macro_f1": result.get("macro_f1"), "test_speakers": test_speakers,
                                    "subclasses": len(meta["config"].get("subclasses") or [])}


def site_songs(demo: Demo, manifest: Path) -> list[DemoSong]:
    """The demo site's songs: the q4 test-split clips (artists the song model never saw), as they are (Ogg Opus)."""
    from catalog.audio import probe
    from catalog.manifest import read

    chosen = round_robin([it for it in read(manifest).items if it.split == "test" and it.audio], demo.cfg.songs)
    demo.summary["site_songs"] = len(chosen)
    songs = []
    for it in chosen:
        if it.audio is None:
            continue
        songs.append(DemoSong(slug=it.id, title=it.title or it.id, artist=it.artist or "unknown artist",
                              album="4Q audio emotion dataset (Panda et al. 2018)", duration_s=probe(it.audio).duration_s, audio=it.audio, lyrics=[]))
    return songs


def run_demo(data: Path, songs: int = 60, song_epochs: int | None = None, speech_epochs: int = 15, train_per_quadrant: int = 60) -> dict[str, object]:
    settings = get_settings()
    settings.ensure_dirs()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    cfg = DemoConfig(data=data.resolve(), songs=songs, train_per_quadrant=train_per_quadrant, song_epochs=song_epochs, speech_epochs=speech_epochs)
    logs = settings.var_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    demo = Demo(cfg, settings.var_dir, logs)
    started = time.monotonic()
    from cli.demo_site import DemoSite, write_site

    with ExitStack() as stack:
        step("1/7 catalog database")
        setup_database(demo)
        step("2/7 import the shared real data sets (NJU lyrics, EmoDB and RAVDESS voices, q4 recordings)")
        manifests = import_datasets(demo)
        step("3/7 train the default song emotion model (musicnn + Whisper tiny.en and base probes) on q4 train artists")
        songs_manifest = demo_song_manifest(demo, manifests["q4"])
        train_song_model(demo, songs_manifest)
        step("4/7 train the speech emotion model (EmoDB + RAVDESS when present, speaker-independent)")
        train_speech_model(demo, manifests["speech"])
        step("5/7 serve the demo music site and crawl it through the worker pipeline")
        site = stack.enter_context(DemoSite(write_site(site_songs(demo, songs_manifest), demo.var / "demo-site")))
        typer.echo(f"demo site on {site.url}")
        start_worker(demo, stack)
        job_id = crawl_through_pipeline(demo, site.url)
        step("6/7 topic subclasses per emotion")
        build_topics(demo, job_id)
        step("7/7 a voice clip asks for music")
        clip, truth = voice_clip(manifests["emodb"])
        talk_to_api(demo, stack, clip, truth)
        step("stopping the API, the worker and the demo site")
    from catalog.settings import mask_url

    demo.summary["stopped_process_groups"] = [p.pid for p in demo.procs]
    demo.summary.update(database=mask_url(settings.database_url), store=str(settings.store_dir), plots=str(demo.var / "plots"),
                        logs=str(logs), models=str(demo.var / "models"), seconds=round(time.monotonic() - started, 1))
    step("summary (everything the demo started has been stopped)")
    summary_file = demo.var / "demo-summary.json"
    summary_file.write_text(json.dumps(demo.summary, indent=2, default=str))
    typer.echo(json.dumps(demo.summary, indent=2, default=str))
    typer.echo(f"summary written to {summary_file}")
    return demo.summary
