"""Real-data run: topic subclasses of the EMOPIA clips of a manifest, labelled by their quadrant.

Builds a fresh SQLite catalog (songs + audio assets + an 'EMOPIA quadrant' emotion model whose labels are the
manifest labels), runs the real per-emotion build with the real 62-d LLD frames, and prints per emotion: songs,
K used, topic sizes, descriptions, timings; writes the PNG plots. Last line of stdout: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def make_catalog(manifest: Path, url: str, limit: int | None) -> int:
    import soundfile as sf

    from catalog import migrate
    from catalog.db import session_scope
    from catalog.fingerprint import song_fingerprint
    from catalog.manifest import read
    from catalog.models import AudioAsset, EmotionLabel, EmotionModel, Song
    from catalog.store import FileStore

    migrate.upgrade("head", url)
    items, seen = [], Counter()
    for item in read(manifest).items:  # the first `limit` clips of each label
        if limit is None or seen[item.label] < limit:
            items.append(item)
            seen[item.label] += 1
    store = FileStore()
    with session_scope(url) as s:
        model = EmotionModel(name="emopia-quadrant", version="1", kind="song", artifact_path="-", active=True)
        s.add(model)
        s.flush()
        for item in items:
            path = Path(item.audio)
            path = path if path.is_absolute() else (manifest.parent / path)
            info = sf.info(str(path))
            digest, stored = store.put_file("audio", path)
            song = Song(title=item.id, duration_s=info.duration, fingerprint=song_fingerprint(item.id, None, None, info.duration), status="labelled")
            song.audio = AudioAsset(
                sha256=digest,
                path=store.relative(stored),
                format="flac",
                sample_rate=info.samplerate,
                channels=info.channels,
                duration_s=info.duration,
                size_bytes=stored.stat().st_size,
            )
            s.add(song)
            s.flush()
            s.add(EmotionLabel(song_id=song.id, model_id=model.id, label=item.label, confidence=1.0))
    return len(items)


def reused_count(url: str) -> int:
    from sqlalchemy import func, select

    from catalog.db import session_scope
    from catalog.models import Song

    with session_scope(url) as s:
        return int(s.scalar(select(func.count()).select_from(Song)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("manifest", type=Path, help="EMOPIA manifest (musicrec datasets import emopia ...)")
    ap.add_argument("--k", type=int, default=150)
    ap.add_argument("--topics", type=int, default=5)
    ap.add_argument("--limit", type=int, default=None, help="the first N clips of each emotion only")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the catalog and frame cache here; a second run reuses them")
    ap.add_argument("--out", type=Path, default=Path("var/bench/topics-emopia"), help="folder for the PNG plots")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from catalog.settings import reload_settings

    with tempfile.TemporaryDirectory(prefix="topics-emopia-") as scratch:
        tmp = str(args.workdir or scratch)
        Path(tmp).mkdir(parents=True, exist_ok=True)
        os.environ["MUSICREC_VAR_DIR"] = tmp
        os.environ["MUSICREC_STORE_DIR"] = f"{tmp}/store"
        url = f"sqlite:///{tmp}/catalog.db"
        os.environ["MUSICREC_DATABASE_URL"] = url
        reload_settings()
        reuse = args.workdir is not None and Path(tmp, "catalog.db").exists()
        n = reused_count(url) if reuse else make_catalog(args.manifest, url, args.limit)
        from topics.build import BuildConfig, build_emotion
        from topics.frames import SongFrames
        from topics.playlist import list_topics
        from topics.plots import write_plots

        frames_for = SongFrames()
        summary = {"clips": n, "emotions": {}}
        for emotion in ("happy", "angry", "sad", "relaxed"):
            t0 = time.perf_counter()
            report = build_emotion(emotion, BuildConfig(k=args.k, num_topics=args.topics), frames_for=frames_for, url=url)
            infos = list_topics(emotion, url)
            plots = write_plots(emotion, args.out, url)
            summary["emotions"][emotion] = {
                "descriptions": [{"label": t.label, "values": t.description.get("values", {}), "z": t.description.get("audio", {})} for t in infos],
                "songs": report.songs,
                "frames": report.metrics["frames"],
                "k_used": report.params["k_used"],
                "sizes": report.sizes,
                "skipped": len(report.skipped),
                "seconds": round(time.perf_counter() - t0, 1),
                "timings": report.metrics["timings"],
                "plots": [str(p) for p in plots],
            }
            print(emotion, json.dumps(summary["emotions"][emotion]), flush=True)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
