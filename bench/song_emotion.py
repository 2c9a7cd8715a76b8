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

VIEWS = {"pen": slice(0, 200), "tags": slice(200, 250), "pen+tags": slice(0, 250), "all": slice(0, None),
         "sent": slice(0, 384), "sent-mean": slice(0, 384)}  # lyrics: bert-cnn's MiniLM sentence half (mean ++ std / mean only)
EMOPIA_PER_SONG = int(os.environ.get("BENCH_EMOPIA_PER_SONG", "0"))  # 0: every clip
EMOPIA_RENDERS = Path(os.environ.get("MUSICREC_STORE_DIR", REPO / "var")) / "renders" / "emopia"


def manifest_for(name: str, folder: Path) -> Path:
    from catalog.importers.mirex import import_mirex
    from catalog.importers.q4 import import_q4

    out = folder / f"{name}.csv"
    if name == "q4":
        import_q4(SHARED / "q4-audio-dev", out)
    elif name == "mirex":
        import_mirex(SHARED / "mirex-bimodal-dev", out)
    elif name == "nju":
        from catalog.importers.nju import import_nju

        import_nju(SHARED / "nju-musicmood-train", out)
    elif name == "emopia":
        from catalog.importers.emopia import import_emopia

        root = SHARED / "emopia-dev"
        if EMOPIA_PER_SONG:  # the first N clips of every song (rendering all 712 costs ~1 s of CPU each)
            root = folder / "emopia-subset"
            root.mkdir(exist_ok=True)
            seen: dict[str, int] = {}
            for midi in sorted((SHARED / "emopia-dev").rglob("*.mid")):
                song = midi.stem.rsplit("_", 1)[0]
                seen[song] = seen.get(song, 0) + 1
                if seen[song] <= EMOPIA_PER_SONG:
                    (root / midi.name).symlink_to(midi)
        import_emopia(root, out, audio_dir=EMOPIA_RENDERS, workers=1)
    else:
        raise SystemExit(f"unknown set {name!r} (q4, mirex, nju, emopia)")
    return out


def prefill_whisper(items: list[Any], names: list[str], segment_s: float) -> None:
    """Fill the feature cache for pinned Whisper encoders (whisper-<model>-l<k>) with one pass per model and clip:
    the hidden states of every wanted layer come from one run to the deepest (the same vectors, and cache entries,
    as each pinned encoder would compute alone)."""
    import re

    from catalog.fingerprint import sha256_file
    from emotion.features.extract import prepare_audio, spec_suffix
    from emotion.features.whisper import WhisperEncoderFeatures
    from emotion.inputs import InputSpec, feature_cache

    wanted: dict[str, set[int]] = {}
    for name in names:
        m = re.fullmatch(r"whisper-(tiny\.en|base)-l(\d+)", name)
        if m:
            wanted.setdefault(m[1], set()).add(int(m[2]))
    spec = InputSpec(segment_s=segment_s).segments()
    cache = feature_cache()
    for model, layers in wanted.items():
        enc = WhisperEncoderFeatures(model, max(layers))
        todo = []
        for it in items:
            sha = sha256_file(it.audio)
            missing = tuple(k for k in sorted(layers) if cache.lookup("audio", sha, enc.name, enc.version_at(k) + spec_suffix(spec)) is None)
            if missing:
                todo.append((it, sha, missing))
        t0 = time.process_time()
        for n, (it, sha, missing) in enumerate(todo, 1):
            segs, times, _ = prepare_audio(it.audio, enc.sample_rate, spec)
            for k, vectors in enc.encode_layers(segs, missing).items():
                times.vectors = vectors
                cache.save("audio", sha, enc.name, enc.version_at(k) + spec_suffix(spec), times)
            if n % 50 == 0:
                print(f"whisper {model} layers {sorted(layers)}: {n}/{len(todo)} clips, {time.process_time() - t0:.0f} s CPU", flush=True)


def pooled(samples: list[SongSample], view: slice, mean_only: bool = False) -> np.ndarray:
    """Mean ++ std over a song's segments of the view's columns (the audio vectors, else the lyrics vectors)."""
    import numpy as np

    def one(s: SongSample) -> np.ndarray:
        x = (s.audio if s.audio is not None else s.lyrics)[:, view]  # type: ignore[index]  # every sample has one of them
        return x.mean(0) if mean_only else np.concatenate([x.mean(0), x.std(0)])

    return np.stack([one(s) for s in samples])


def probe(train: list[SongSample], test: list[SongSample], view: slice, seed: int, mean_only: bool = False,
          c: float | None = None) -> tuple[np.ndarray, float]:
    """Standardise + logistic regression, C by an inner artist-grouped 3-fold CV (or the given `c`); (class
    probabilities of `test`, the C used)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y, g = pooled(train, view, mean_only), np.array([s.y for s in train]), np.array([s.group for s in train])
    if c is not None:
        fixed = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)).fit(x, y)
        return fixed.predict_proba(pooled(test, view, mean_only)), c
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    search = GridSearchCV(pipe, {"logisticregression__C": [0.003, 0.01, 0.03, 0.1, 0.3]}, scoring="f1_macro",
                          cv=StratifiedGroupKFold(3, shuffle=True, random_state=seed))
    search.fit(x, y, groups=g)
    return search.predict_proba(pooled(test, view, mean_only)), float(search.best_params_["logisticregression__C"])


class Probes:
    """Probe class probabilities memoised per (encoder, view, outer fold, inner fold): ensemble rows share them.
    Inner-fold probes (inner >= 0) reuse the C that the outer training fold's own search chose."""

    def __init__(self, samples_for: Any, seed: int) -> None:
        self.samples_for, self.seed = samples_for, seed
        self.memo: dict[tuple[str, str, int, int], tuple[np.ndarray, float]] = {}

    def probs(self, encoder: str, view: str, k: int, inner: int, tr: Any, te: Any, outer_tr: Any = None, outer_te: Any = None) -> np.ndarray:
        key = (encoder, view, k, inner)
        if key not in self.memo:
            got = self.samples_for(encoder)
            c = None if inner < 0 else self.memo[(encoder, view, k, -1)][1] if (encoder, view, k, -1) in self.memo else \
                self.outer_c(encoder, view, k, outer_tr, outer_te)
            self.memo[key] = probe([got[i] for i in tr], [got[i] for i in te], VIEWS[view], self.seed + k, view.endswith("-mean"), c)
        return self.memo[key][0]

    def outer_c(self, encoder: str, view: str, k: int, tr: Any, te: Any) -> float:
        self.probs(encoder, view, k, -1, tr, te)
        return self.memo[(encoder, view, k, -1)][1]

    def ensemble(self, members: list[str], weight: float | None, k: int, tr: Any, te: Any, y: Any, g: Any) -> tuple[np.ndarray, dict[str, Any]]:
        """musicnn's pen+tags probe averaged with the probe of one Whisper member: the member and the musicnn weight
        (0, 0.05, .., 1) minimising the log-loss of out-of-fold probabilities of an inner artist-grouped 3-fold CV
        of the training fold (the test fold is never seen); `weight` fixes the weight instead."""
        import numpy as np
        from sklearn.metrics import log_loss
        from sklearn.model_selection import StratifiedGroupKFold

        musicnn = ("", "pen+tags")
        grid = [weight] if weight is not None else [i / 20 for i in range(21)]
        best: tuple[float, str, float] | None = None
        if weight is None or len(members) > 1:
            inner = StratifiedGroupKFold(3, shuffle=True, random_state=self.seed + k)
            oof: dict[tuple[str, str], np.ndarray] = {}
            for j, (itr, iva) in enumerate(inner.split(np.zeros(len(tr)), y[tr], g[tr])):
                for enc, view in [musicnn] + [(m, "all") for m in members]:
                    p = self.probs(enc, view, k, j, tr[itr], tr[iva], tr, te)
                    oof.setdefault((enc, view), np.zeros((len(tr), p.shape[1])))[iva] = p
            for m in members:
                for w in grid:
                    loss = log_loss(y[tr], w * oof[musicnn] + (1 - w) * oof[(m, "all")], labels=list(range(oof[musicnn].shape[1])))
                    if best is None or loss < best[0]:
                        best = (loss, m, w)
        else:
            best = (float("nan"), members[0], weight)
        assert best is not None
        _, member, w = best
        probs = w * self.probs(*musicnn, k, -1, tr, te) + (1 - w) * self.probs(member, "all", k, -1, tr, te)
        return probs, {"member": member, "musicnn_weight": w}


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
    ap.add_argument("--prefill", default="", help="Comma-separated pinned Whisper encoders (whisper-base-l4,...) to cache, "
                    "all layers of a model from one pass, then exit.")
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
        if args.prefill:
            prefill_whisper(items, args.prefill.split(","), DEFAULT_RECIPE["segment_s"])
            continue
        lyrics_only = not items and bool(manifest.items)
        if lyrics_only:  # NJU: lyrics only (bert-cnn = MiniLM sentence vectors ++ its CNN), in the default 10 s windows
            items = [it for it in manifest.items if it.lyrics is not None][:: max(1, len(manifest.items) // 60) if args.quick else 1]
        encoder = "" if lyrics_only else args.audio_encoder or DEFAULT_RECIPE["audio_encoder"]
        spec = InputSpec(audio_encoder=encoder, lyrics_encoder="bert-cnn" if lyrics_only else "",
                         segment_s=0.0 if lyrics_only else DEFAULT_RECIPE["segment_s"])
        t0 = time.perf_counter()
        built = build_samples(items, spec, progress=False)
        artist = {it.id: it.artist for it in items}
        samples = [replace(s, group=artist.get(s.id) or s.group) if lyrics_only else s for s in built.samples]  # NJU: by performer
        labels = manifest.labels()
        y, g = np.array([s.y for s in samples]), np.array([s.group for s in samples])
        recipe = DEFAULT_RECIPE if args.recipe == "default" else {"early_stop": 15, "segment_s": DEFAULT_RECIPE["segment_s"]}
        cfg = TrainConfig(**{**recipe, "audio_encoder": encoder, "label_set": manifest.label_set, "lyrics_encoder": spec.lyrics_encoder,
                             "epochs": 3 if args.quick else args.epochs, "threads": 1})
        rows: dict[str, dict[str, object]] = {}
        cv = StratifiedGroupKFold(folds, shuffle=True, random_state=args.seed)
        by_encoder: dict[str, list[SongSample]] = {"": samples}

        def samples_for(enc: str, items: list[Any] = items, samples: list[SongSample] = samples, spec: InputSpec = spec,
                        by_encoder: dict[str, list[SongSample]] = by_encoder) -> list[SongSample]:
            """The same songs' samples from another audio encoder (in the order of `samples`)."""
            if enc not in by_encoder:
                got = {s.id: s for s in build_samples(items, replace(spec, audio_encoder=enc), progress=False).samples}
                by_encoder[enc] = [got[s.id] for s in samples]
            return by_encoder[enc]

        probes = Probes(samples_for, args.seed)
        for name in args.models.split(","):
            accs, f1s, epochs, chosen = [], [], [], []
            t1 = time.perf_counter()
            for k, (tr_idx, te_idx) in enumerate(cv.split(np.zeros(len(y)), y, g)):
                tr, te = [samples[i] for i in tr_idx], [samples[i] for i in te_idx]
                if name.startswith("probe@"):  # probe on another encoder's whole vector: probe@whisper-base-l4
                    probs = probes.probs(name[len("probe@"):], "all", k, -1, tr_idx, te_idx)
                elif name.startswith("ens"):  # ens@a|b (member and weight by inner CV), ens0.5@a (fixed weight)
                    fixed, _, members = name[len("ens"):].partition("@")
                    probs, pick = probes.ensemble(members.split("|"), float(fixed) if fixed else None, k, tr_idx, te_idx, y, g)
                    chosen.append(pick)
                elif name.startswith("probe-"):
                    probs = probes.probs("", name[len("probe-"):], k, -1, tr_idx, te_idx)
                else:
                    probs, best = trained(name, tr, te, cfg, args.seed + k)
                    epochs.append(best)
                m = scores(y[te_idx], probs, labels)
                accs.append(m["accuracy"])
                f1s.append(m["macro_f1"])
            rows[name] = {"accuracy": round(float(np.mean(accs)), 4), "accuracy_std": round(float(np.std(accs)), 4),
                          "macro_f1": round(float(np.mean(f1s)), 4), "macro_f1_std": round(float(np.std(f1s)), 4),
                          "seconds": round(time.perf_counter() - t1, 1), **({"best_epochs": epochs} if epochs else {}),
                          **({"chosen": chosen} if chosen else {})}
            print(f"{set_name} {name}: acc {rows[name]['accuracy']:.3f}±{rows[name]['accuracy_std']:.3f} "
                  f"macro-F1 {rows[name]['macro_f1']:.3f}±{rows[name]['macro_f1_std']:.3f}{' ' + str(chosen) if chosen else ''}", flush=True)
        out["sets"][set_name] = {"audio_encoder": encoder, "n": len(samples), "groups": len(set(g)), "labels": list(labels), "failed": len(built.failures),
                                 "features_seconds": round(time.perf_counter() - t0, 1), "models": rows}
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
