"""Benchmark: build topics for N songs of synthetic 62-d LLD frames, MiniBatchKMeans codebook (ours) vs full KMeans (baseline).

Each variant runs the real build (SQLite catalog, codebook, bags, LDA, rows, artifact) in its own child process
and fresh temporary database, and reports wall time, peak resident memory of that process (resource.ru_maxrss,
and its growth over the process before the build) and inference time per new song against the built model.
Synthetic frames: song-level Dirichlet mixtures of latent scenes, each a mixture of Gaussian prototypes in 62 dimensions,
so only shapes and timings mean anything, not topic quality.
Last line of stdout: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DIM = 62


class SyntheticFrames:
    """Deterministic frames per song id: [frames_per_song, 62] float32."""

    name = "synthetic-lld62"

    def __init__(self, frames_per_song: int, seed: int = 0, scenes: int = 6, prototypes: int = 40) -> None:
        rng = np.random.default_rng(seed)
        self.n = frames_per_song
        self.protos = rng.normal(0, 3, size=(prototypes, DIM)).astype(np.float32)
        self.scene_mix = rng.dirichlet(np.full(prototypes, 0.2), size=scenes)
        self.seed = seed

    def frames(self, key: int) -> np.ndarray:
        rng = np.random.default_rng((self.seed, key))
        theta = rng.dirichlet(np.full(len(self.scene_mix), 0.3))
        p = theta @ self.scene_mix
        idx = rng.choice(len(self.protos), size=self.n, p=p / p.sum())
        return (self.protos[idx] + rng.normal(0, 1, size=(self.n, DIM))).astype(np.float32)

    def __call__(self, song) -> np.ndarray:
        return self.frames(song.id)


def make_catalog(url: str, songs: int) -> None:
    from sqlalchemy import insert

    from catalog import migrate
    from catalog.db import session_scope
    from catalog.models import EmotionLabel, EmotionModel, Song

    migrate.upgrade("head", url)
    with session_scope(url) as s:
        model = EmotionModel(name="bench", version="1", kind="song", artifact_path="-", active=True)
        s.add(model)
        s.flush()
        s.execute(insert(Song), [{"id": i, "title": f"song {i}", "fingerprint": f"bench-{i}", "status": "labelled", "tags": []} for i in range(1, songs + 1)])
        rng = np.random.default_rng(1)
        s.execute(
            insert(EmotionLabel),
            [
                {"song_id": i, "model_id": model.id, "label": "happy", "confidence": float(c), "probabilities": {}}
                for i, c in zip(range(1, songs + 1), rng.uniform(0.5, 1, songs), strict=True)
            ],
        )


def run_variant(method: str, args: argparse.Namespace, gen: SyntheticFrames, workdir: Path) -> dict:
    from catalog.db import get_engine
    from catalog.settings import reload_settings
    from topics.build import BuildConfig, build_emotion
    from topics.infer import infer_frames

    var = workdir / method
    os.environ["MUSICREC_VAR_DIR"] = str(var)
    os.environ["MUSICREC_STORE_DIR"] = str(var / "store")
    url = f"sqlite:///{var / 'bench.db'}"
    os.environ["MUSICREC_DATABASE_URL"] = url
    reload_settings()
    make_catalog(url, args.songs)
    cfg = BuildConfig(k=args.k, num_topics=args.topics, seed=args.seed, method=method, passes=args.passes, progress=False)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    report = build_emotion("happy", cfg, frames_for=gen, url=url)
    build_s = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    new = [gen.frames(10_000_000 + i) for i in range(args.infer_songs)]
    infer_frames("happy", new[0], url=url)  # loads the artifact once (cached afterwards)
    t0 = time.perf_counter()
    for f in new:
        infer_frames("happy", f, url=url)
    infer_ms = (time.perf_counter() - t0) * 1000 / len(new)
    get_engine.cache_clear()
    return {
        "method": report.params["codebook_method"],
        "build_s": round(build_s, 2),
        "codebook_s": report.metrics["timings"]["codebook_s"],
        "lda_s": report.metrics["timings"]["lda_s"],
        "peak_mb": round(peak, 1),
        "peak_growth_mb": round(peak - rss_before, 1),
        "lda_passes": report.params["lda_passes"],
        "infer_ms_per_song": round(infer_ms, 2),
        "inertia_per_frame": round(report.metrics["inertia"] / report.metrics["frames"], 3),
        "sizes": report.sizes,
    }


def child(method: str, args: argparse.Namespace) -> dict:
    """Run one variant in a fresh interpreter, so its peak memory is its own."""
    cmd = [
        sys.executable,
        __file__,
        "--variant",
        method,
        "--songs",
        str(args.songs),
        "--frames-per-song",
        str(args.frames_per_song),
        "--k",
        str(args.k),
        "--topics",
        str(args.topics),
        "--seed",
        str(args.seed),
        "--infer-songs",
        str(args.infer_songs),
    ]
    if args.passes:
        cmd += ["--passes", str(args.passes)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{method} variant failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--songs", type=int, default=10_000)
    ap.add_argument("--frames-per-song", type=int, default=60, help="3 s frames per song (60 = a 3-minute song)")
    ap.add_argument("--k", type=int, default=150)
    ap.add_argument("--topics", type=int, default=5)
    ap.add_argument("--passes", type=int, default=None, help="LDA passes (default: the build's auto rule)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--infer-songs", type=int, default=200)
    ap.add_argument("--no-baseline", action="store_true", help="skip the full-KMeans baseline")
    ap.add_argument("--variant", choices=("minibatch", "kmeans"), help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="400 songs x 25 frames, 5 LDA passes, 20 inferences (about a minute on a loaded 2-core machine)")
    args = ap.parse_args()
    if args.quick:
        args.songs, args.frames_per_song, args.passes, args.infer_songs = 400, 25, 5, 20
    logging.basicConfig(level=logging.WARNING)
    if args.variant:
        gen = SyntheticFrames(args.frames_per_song, seed=args.seed)
        with tempfile.TemporaryDirectory(prefix="bench-topics-") as tmp:
            print(json.dumps(run_variant(args.variant, args, gen, Path(tmp))))
        return
    ours = child("minibatch", args)
    print(f"MiniBatchKMeans codebook: {ours}", flush=True)
    base = None if args.no_baseline else child("kmeans", args)
    if base:
        print(f"full KMeans codebook:     {base}", flush=True)
    result = {
        "songs": args.songs,
        "frames_per_song": args.frames_per_song,
        "dim": DIM,
        "k": args.k,
        "topics": args.topics,
        "build_s": ours["build_s"],
        "peak_mb": ours["peak_mb"],
        "infer_ms_per_song": ours["infer_ms_per_song"],
        "ours": ours,
        "baseline": base,
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
