"""Song emotion under artist-grouped cross-validation: frozen-encoder probes vs the trainable song models.

    python bench/song_emotion.py --quick                      # 60 q4 songs, 2 folds: a smoke run (under a minute once cached)
    python bench/song_emotion.py --sets q4,mirex --folds 5    # the table in README / docs/emotion.md

Per set (q4-audio 4 quadrants; mirex-bimodal audio, 5 clusters), songs are split with scikit-learn's
StratifiedGroupKFold by artist (an artist's songs never straddle folds). Inside each training fold a
group-aware validation part picks the epoch (early stopping on validation macro-F1) of the trained models.

Rows:
- probe-*: the frozen-encoder baselines of the issue: mean+std of the segment vectors pooled per song,
  standardised, logistic regression (C picked by an inner grouped CV on the training fold). Views of the
  musicnn vector: `pen` (penultimate layer, 200), `tags` (the 50 MSD tag probabilities), `pen+tags`.
- pooled-mlp / audio-only: SongModels trained with the project's one training loop (emotion.train).

Features come from the one feature cache (extracted once; musicnn over 3 s segments = one patch each).
The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from emotion.data import SongSample
    from emotion.train import TrainConfig

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("MUSICREC_SHARED_DATA", REPO.parent / "shared" / "data"))

VIEWS = {"pen": slice(0, 200), "tags": slice(200, 250), "pen+tags": slice(0, 250), "all": slice(0, None)}


def manifest_for(name: str, folder: Path) -> Path:
    from catalog.importers.mirex import import_mirex
    from catalog.importers.q4 import import_q4

    out = folder / f"{name}.csv"
    if name == "q4":
        import_q4(SHARED / "q4-audio-dev", out)
    elif name == "mirex":
        import_mirex(SHARED / "mirex-bimodal-dev", out)
    else:
        raise SystemExit(f"unknown set {name!r} (q4, mirex)")
    return out


def pooled(samples: list[SongSample], view: slice) -> np.ndarray:
    import numpy as np

    return np.stack([np.concatenate([s.audio[:, view].mean(0), s.audio[:, view].std(0)]) for s in samples])


def probe(train: list[SongSample], test: list[SongSample], view: slice, seed: int) -> np.ndarray:
    """Standardise + logistic regression, C by an inner artist-grouped 3-fold CV; class probabilities of `test`."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y, g = pooled(train, view), np.array([s.y for s in train]), np.array([s.group for s in train])
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    search = GridSearchCV(pipe, {"logisticregression__C": [0.003, 0.01, 0.03, 0.1, 0.3]}, scoring="f1_macro",
                          cv=StratifiedGroupKFold(3, shuffle=True, random_state=seed))
    search.fit(x, y, groups=g)
    return search.predict_proba(pooled(test, view))


def trained(name: str, train: list[SongSample], test: list[SongSample], cfg: TrainConfig, seed: int) -> tuple[np.ndarray, int]:
    """The project's training loop: group-aware validation part of the training fold for early stopping."""
    from catalog.manifest import Item, assign_splits
    from emotion.train import predict, train_model

    items = [Item(s.id, s.label or "", None, None, s.group) for s in train]
    split = assign_splits(items, val=0.15, test=0.0, seed=seed)
    tr = [s for s in train if split[s.group] == "train"]
    va = [s for s in train if split[s.group] == "val"]
    model, _, params = name.partition(":")  # "pooled-mlp:hidden=0/dropout=0.3" sets model parameters
    overrides = {k: json.loads(v) for k, v in (p.split("=") for p in params.split("/") if p)}
    result = train_model(tr, va, replace(cfg, model=model, seed=seed, model_params=overrides), progress=False)
    return predict(result.model, [result.standardizer.apply(s) for s in test], result.dims), result.best_epoch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sets", default="q4,mirex")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--models", default="probe-pen,probe-tags,probe-pen+tags,pooled-mlp,audio-only")
    ap.add_argument("--epochs", type=int, default=80)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "song_emotion.json")
    ap.add_argument("--audio-encoder", default="", help="Audio encoder (default: the default recipe's).")
    ap.add_argument(
        "--recipe",
        choices=("default", "paper"),
        default="default",
        help="Training settings of the trained models: the default model's recipe, or the SongGATNet paper's (TrainConfig defaults, early stop 15).",
    )
    args = ap.parse_args()

    import numpy as np
    import torch
    from sklearn.model_selection import StratifiedGroupKFold

    torch.set_num_threads(1)
    from catalog.manifest import read
    from emotion.evaluate import scores
    from emotion.inputs import InputSpec, build_samples
    from emotion.models import DEFAULT_RECIPE
    from emotion.train import TrainConfig

    tmp = Path(tempfile.mkdtemp(prefix="bench-song-"))
    folds = 2 if args.quick else args.folds
    out: dict[str, Any] = {"benchmark": "song_emotion", "quick": args.quick, "folds": folds, "seed": args.seed, "sets": {}}
    for set_name in args.sets.split(","):
        manifest = read(manifest_for(set_name, tmp))
        items = [it for it in manifest.items if it.audio is not None]
        if args.quick:
            items = items[:: max(1, len(items) // 60)]
        encoder = args.audio_encoder or DEFAULT_RECIPE["audio_encoder"]
        spec = InputSpec(audio_encoder=encoder, lyrics_encoder="", segment_s=DEFAULT_RECIPE["segment_s"])
        t0 = time.perf_counter()
        built = build_samples(items, spec, progress=False)
        samples = built.samples
        labels = manifest.labels()
        y, g = np.array([s.y for s in samples]), np.array([s.group for s in samples])
        recipe = DEFAULT_RECIPE if args.recipe == "default" else {"early_stop": 15, "segment_s": DEFAULT_RECIPE["segment_s"]}
        cfg = TrainConfig(**{**recipe, "audio_encoder": encoder, "label_set": manifest.label_set, "lyrics_encoder": "",
                             "epochs": 3 if args.quick else args.epochs, "threads": 1})
        rows: dict[str, dict[str, object]] = {}
        cv = StratifiedGroupKFold(folds, shuffle=True, random_state=args.seed)
        for name in args.models.split(","):
            accs, f1s, epochs = [], [], []
            t1 = time.perf_counter()
            for k, (tr_idx, te_idx) in enumerate(cv.split(np.zeros(len(y)), y, g)):
                tr, te = [samples[i] for i in tr_idx], [samples[i] for i in te_idx]
                if name.startswith("probe-"):
                    probs = probe(tr, te, VIEWS[name[len("probe-"):]], args.seed + k)
                else:
                    probs, best = trained(name, tr, te, cfg, args.seed + k)
                    epochs.append(best)
                m = scores(y[te_idx], probs, labels)
                accs.append(m["accuracy"])
                f1s.append(m["macro_f1"])
            rows[name] = {"accuracy": round(float(np.mean(accs)), 4), "accuracy_std": round(float(np.std(accs)), 4),
                          "macro_f1": round(float(np.mean(f1s)), 4), "macro_f1_std": round(float(np.std(f1s)), 4),
                          "seconds": round(time.perf_counter() - t1, 1), **({"best_epochs": epochs} if epochs else {})}
            print(f"{set_name} {name}: acc {rows[name]['accuracy']:.3f}±{rows[name]['accuracy_std']:.3f} "
                  f"macro-F1 {rows[name]['macro_f1']:.3f}±{rows[name]['macro_f1_std']:.3f}", flush=True)
        out["sets"][set_name] = {"audio_encoder": encoder, "n": len(samples), "groups": len(set(g)), "labels": list(labels), "failed": len(built.failures),
                                 "features_seconds": round(time.perf_counter() - t0, 1), "models": rows}
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
