"""Song emotion benchmark: SongGATNet vs the Concat+MLP baseline (and more) trained on the same split of real data.

    python bench/emotion.py --quick                          # 24 NJU lyrics, 3 epochs: a smoke run, under a minute once cached
    python bench/emotion.py --manifest M --models all        # a full table (same as `musicrec benchmark emotion`)

Without --manifest the NJU-MusicMood lyrics of ../shared/data are used (N songs per mood, group = song).
Writes benchmark.md/json/png under --out; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SHARED = Path(os.environ.get("MUSICREC_SHARED_DATA", REPO.parent / "shared" / "data"))


def nju_manifest(per_mood: int, folder: Path) -> Path:
    """A manifest of the first `per_mood` NJU lyrics per mood (lyrics-only songs, one group each)."""
    rows = []
    for mood in ("Angry", "Happy", "Relaxed", "Sad"):
        files = sorted((p for p in (SHARED / "nju-musicmood-train" / mood).glob("*_*.txt")), key=lambda p: int(p.stem.split("_")[-1]))
        for txt in files[:per_mood]:
            rows.append({"id": txt.stem, "label": mood.lower(), "audio": "", "lyrics": str(txt), "group": txt.stem, "split": ""})
    path = folder / "nju-bench.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "label", "audio", "lyrics", "group", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="24 songs, 3 epochs, SongGATNet vs Concat+MLP.")
    ap.add_argument("--manifest", type=Path, help="Manifest to benchmark (default: NJU lyrics from shared data).")
    ap.add_argument("--models", default="songgatnet,concat-mlp", help="Comma-separated names or 'all'.")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--audio-encoder", default="lld")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "emotion")
    args = ap.parse_args()

    import torch

    from emotion.benchmark import run_benchmark
    from emotion.models import REGISTRY
    from emotion.train import TrainConfig

    tmp = Path(tempfile.mkdtemp(prefix="bench-emotion-"))
    manifest = args.manifest or nju_manifest(6 if args.quick else 100, tmp)
    epochs = 3 if args.quick else args.epochs
    names = list(REGISTRY) if args.models == "all" else args.models.split(",")
    cfg = TrainConfig(model=names[0], epochs=epochs, audio_encoder=args.audio_encoder, threads=1 if args.jobs > 1 else 0)
    result = run_benchmark(manifest, names, args.out, cfg, progress=not args.quick, jobs=args.jobs)
    print((args.out / "benchmark.md").read_text())
    summary = {
        "benchmark": "emotion",
        "quick": args.quick,
        "manifest": str(manifest),
        "n_train": result["n_train"], "n_val": result["n_val"], "n_test": result["n_test"],
        "epochs": epochs,
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, torch {torch.__version__}",
        "models": {n: ({"accuracy": round(m["accuracy"], 4), "macro_f1": round(m["macro_f1"], 4), "train_seconds": m["train_seconds"]}
                       if "skipped" not in m else m) for n, m in result["models"].items()},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
