"""Song emotion benchmark: SongGATNet vs the Concat+MLP baseline (and more) trained on the same split of real data.

    python bench/emotion.py --quick                          # 24 NJU lyrics, 3 epochs: a smoke run, under a minute once cached
    python bench/emotion.py --manifest M --models all        # a full table (same as `musicrec benchmark emotion`)
    python bench/emotion.py --set mirex --seeds 3 --models all --epochs 100 --early-stop 15 \
        --audio-encoder musicnn --segment-s 3                 # mean +- std over 3 seeds (split and initialisation)

`--set q4|mirex` imports the shared dev set (artist groups). With `--seeds N` each seed draws its own
group-aware split and initialisation; the table gives mean +- std of test accuracy and macro-F1.

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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emotion.train import TrainConfig

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
    ap.add_argument("--lyrics-encoder", default="", help="Lyrics encoder (bert-cnn, minilm, mpnet, minilm+mpnet; "
                    "default: the first model's recipe's, else bert-cnn).")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "emotion")
    ap.add_argument("--set", choices=("q4", "mirex"), help="Import this shared dev set (grouped by artist).")
    ap.add_argument("--seeds", type=int, default=1, help="Seeds (split + initialisation); mean +- std when > 1.")
    ap.add_argument("--seed", type=int, default=42, help="The first seed (--seeds N runs seed .. seed + N - 1).")
    ap.add_argument("--early-stop", type=int, default=0, help="Stop after this many epochs without val macro-F1 gain.")
    ap.add_argument("--segment-s", type=float, default=0.0, help="Segment length (3 = one musicnn patch; 0 = 10 s).")
    ap.add_argument("--lyrics-cnn-epochs", type=int, default=20, help="Train bert-cnn's CNN first (0: the seeded random CNN).")
    ap.add_argument("--lyrics-cnn-from", type=Path, metavar="DIR",
                    help="Reuse DIR/seed<N>/lyrics_cnn.safetensors of an earlier run on the same set and seeds (same splits).")
    ap.add_argument("--recipe", type=json.loads, default={}, metavar="JSON",
                    help='Shared training settings of every model without its own recipe, e.g. \'{"lr": 3e-4, "focal_gamma": 0}\'.')
    ap.add_argument("--graph-params", type=json.loads, default={}, metavar="JSON",
                    help='Model parameters for SongGATNet and every ablation alike, e.g. \'{"probe": true, "in_dropout": 0.3}\'.')
    ap.add_argument("--graph-recipe", type=json.loads, default={}, metavar="JSON",
                    help='Training settings for SongGATNet and every ablation alike, e.g. \'{"lr": 3e-4, "focal_gamma": 0}\'.')
    args = ap.parse_args()

    import torch

    from emotion.benchmark import run_benchmark
    from emotion.models import REGISTRY
    from emotion.train import TrainConfig

    tmp = Path(tempfile.mkdtemp(prefix="bench-emotion-"))
    if args.set:
        from catalog.importers.mirex import import_mirex
        from catalog.importers.q4 import import_q4

        manifest = tmp / f"{args.set}.csv"
        (import_q4 if args.set == "q4" else import_mirex)(SHARED / ("q4-audio-dev" if args.set == "q4" else "mirex-bimodal-dev"), manifest)
    else:
        manifest = args.manifest or nju_manifest(6 if args.quick else 100, tmp)
    epochs = 3 if args.quick else args.epochs
    names = list(REGISTRY) if args.models == "all" else args.models.split(",")
    from emotion.models import RECIPE_TRAINING_KEYS

    if set(args.recipe) - RECIPE_TRAINING_KEYS:
        ap.error(f"--recipe: not training settings: {sorted(set(args.recipe) - RECIPE_TRAINING_KEYS)}")
    lyrics_encoder = args.lyrics_encoder or REGISTRY[names[0]].recipe.get("lyrics_encoder", "bert-cnn")
    cfg = TrainConfig(model=names[0], epochs=epochs, audio_encoder=args.audio_encoder, lyrics_encoder=lyrics_encoder,
                      threads=1 if args.jobs > 1 else 0,
                      early_stop=args.early_stop, segment_s=args.segment_s, lyrics_cnn_epochs=args.lyrics_cnn_epochs, seed=args.seed,
                      **args.recipe)
    args.overrides = graph_overrides(names, args.graph_params, args.graph_recipe)
    if args.seeds > 1:
        print(json.dumps(multi_seed(manifest, names, args, cfg)))
        return
    result = run_benchmark(manifest, names, args.out, cfg, progress=not args.quick, jobs=args.jobs, overrides=args.overrides,
                           lyrics_cnn=reused_cnn(args, cfg.seed))
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


def reused_cnn(args: argparse.Namespace, seed: int) -> Path | None:
    """The lyrics CNN an earlier run trained for this seed's split (--lyrics-cnn-from), or None."""
    if args.lyrics_cnn_from is None:
        return None
    from emotion.lyrics_cnn import STATE_FILE

    path = args.lyrics_cnn_from / f"seed{seed}" / STATE_FILE
    if not path.is_file():
        raise SystemExit(f"--lyrics-cnn-from: {path} is missing")
    return path


def graph_overrides(names: list[str], params: dict[str, Any], recipe: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The same parameters and training settings for every SongGATNet-class model among `names` (ablations alike)."""
    from emotion.models import spec
    from emotion.models.songgatnet import SongGATNet

    if not params and not recipe:
        return {}
    return {n: {"model_params": dict(params), **recipe} for n in names if issubclass(spec(n).cls, SongGATNet)}


def multi_seed(manifest: Path, names: list[str], args: argparse.Namespace, cfg: TrainConfig) -> dict[str, Any]:
    """run_benchmark once per seed (its own split and initialisation); mean +- std per model; Markdown table."""
    from dataclasses import replace

    import numpy as np

    from emotion.benchmark import run_benchmark

    runs = []
    for k in range(args.seeds):
        seed = cfg.seed + k
        runs.append(run_benchmark(manifest, names, args.out / f"seed{seed}", replace(cfg, seed=seed), progress=False,
                                  keep_artifacts=False, jobs=args.jobs, overrides=args.overrides, lyrics_cnn=reused_cnn(args, seed)))
    table: dict[str, dict] = {}
    for name in names:
        done = [r["models"][name] for r in runs if "skipped" not in r["models"][name]]
        if not done:
            table[name] = {"skipped": runs[0]["models"][name]["skipped"]}
            continue
        acc, f1 = np.array([m["accuracy"] for m in done]), np.array([m["macro_f1"] for m in done])
        val = np.array([m["val_macro_f1"] if m.get("val_macro_f1") is not None else np.nan for m in done])
        table[name] = {"accuracy": round(float(acc.mean()), 4), "accuracy_std": round(float(acc.std()), 4),
                       "macro_f1": round(float(f1.mean()), 4), "macro_f1_std": round(float(f1.std()), 4),
                       "val_macro_f1": round(float(val.mean()), 4), "val_macro_f1_std": round(float(val.std()), 4),
                       "params": done[0]["params"], "per_seed_accuracy": [round(float(a), 4) for a in acc],
                       **({"fit": [m["fit"] for m in done]} if "fit" in done[0] else {}),
                       "best_epochs": [m["best_epoch"] for m in done], "train_seconds": round(sum(m["train_seconds"] for m in done), 1)}
    from emotion.benchmark import learns_lyrics

    cnn_note = ("not used by these models" if not learns_lyrics(names) else
                f"trained up to {cfg.lyrics_cnn_epochs} epochs" if cfg.lyrics_cnn_epochs else "random, untrained")
    lines = [f"{manifest.name}: {args.seeds} seeds, up to {cfg.epochs} epochs, early stop {cfg.early_stop}, "
             f"audio {cfg.audio_encoder} (segments {cfg.segment_s or 10:g} s), lyrics {cfg.lyrics_encoder} "
             f"(CNN {cnn_note}"
             f"{', reused from ' + str(args.lyrics_cnn_from) if args.lyrics_cnn_from else ''}); "
             f"n train/val/test per seed: " + ", ".join(f"{r['n_train']}/{r['n_val']}/{r['n_test']}" for r in runs), "",
             f"command: python {' '.join(sys.argv)}", "",
             "| model | accuracy | macro-F1 | val macro-F1 | best epochs | params |", "|---|---|---|---|---|---|"]
    for name, m in table.items():
        if "skipped" in m:
            lines.append(f"| {name} | - | - | - | not run: {m['skipped']} | |")
        else:
            lines.append(f"| {name} | {m['accuracy']:.3f} ± {m['accuracy_std']:.3f} | {m['macro_f1']:.3f} ± {m['macro_f1_std']:.3f} | "
                         f"{m['val_macro_f1']:.3f} ± {m['val_macro_f1_std']:.3f} | {', '.join(map(str, m['best_epochs']))} | {m['params']} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "seeds.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    (args.out / "seeds.json").write_text(json.dumps(table, indent=2) + "\n")
    return {"benchmark": "emotion", "manifest": str(manifest), "seeds": args.seeds, "epochs": cfg.epochs,
            "early_stop": cfg.early_stop, "audio_encoder": cfg.audio_encoder, "segment_s": cfg.segment_s, "models": table}


if __name__ == "__main__":
    main()
