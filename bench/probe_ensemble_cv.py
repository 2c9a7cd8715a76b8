"""The shipped `probe-ensemble` (ProbeEnsemble's own choice of Cs and weights, then its fit) under the benchmark's
outer folds, for several combined encoders and fold seeds in one run: which parts the shipped ensemble should have.

    python bench/probe_ensemble_cv.py MANIFEST.csv     # the shipped recipe, seed 42 (q4 or mirex manifest)
    python bench/probe_ensemble_cv.py MANIFEST.csv --seeds 42,7,13 \\
        --encoders musicnn+whisper-tiny.en-l2,musicnn+whisper-tiny.en-l2+whisper-base-l3,musicnn+whisper-tiny.en-l2+lld

Outer folds: StratifiedGroupKFold(folds, shuffle, seed) by the manifest's groups (artists), the folds of
bench/song_emotion.py; inner seed = seed + fold. Per outer fold every distinct part (musicnn, whisper-..., lld) gets
its C and out-of-fold probabilities once (`ensemble.part_oof`, the inner folds of `ensemble.inner_folds`), and each
encoder's ensemble takes its weights from them (`ensemble.mix_weights`) and is fitted with `ProbeEnsemble.fit`: the
same numbers as `ProbeEnsemble.fit` choosing alone, without recomputing shared parts. A one-part encoder is that
part's probe alone. `--prefill` only fills the feature cache (Whisper layers of one model from one pass). Audio
only, 3 s segments (ENSEMBLE_RECIPE). The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def batches(items: list[Any], size: int = 64) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def stacked(oof: list[Any], y: Any, folds: list[Any], test: Any) -> tuple[Any, float]:
    """Multinomial logistic regression on the parts' log-probabilities: fitted on the inner out-of-fold ones `oof`
    (per part [n, C]), its C (0.01-10) by the log-loss of a CV over the same inner folds; (class probabilities of
    `test` [parts, m, C], the C)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    def feats(p: Any) -> Any:
        return np.concatenate([np.log(np.clip(q, 1e-6, 1.0)) for q in p], axis=1)

    x, xt = feats(oof), feats(list(test))
    best: tuple[float, float] | None = None
    for c in (0.01, 0.1, 1.0, 10.0):
        out = np.zeros((len(y), oof[0].shape[1]))
        for tr, va in folds:
            lr = LogisticRegression(C=c, max_iter=2000).fit(x[tr], y[tr])
            out[np.ix_(va, lr.classes_)] = lr.predict_proba(x[va])
        loss = log_loss(y, np.clip(out, 1e-9, 1.0), labels=np.unique(y))
        if best is None or loss < best[0]:
            best = (loss, c)
    assert best is not None
    lr = LogisticRegression(C=best[1], max_iter=2000).fit(x, y)
    probs = np.zeros((len(xt), oof[0].shape[1]))
    probs[:, lr.classes_] = lr.predict_proba(xt)
    return probs, best[1]


def main() -> None:
    from emotion.models import ENSEMBLE_RECIPE

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest", type=Path)
    ap.add_argument("--encoders", default=str(ENSEMBLE_RECIPE["audio_encoder"]), help="comma-separated combined encoders")
    ap.add_argument("--seeds", default="42", help="comma-separated fold seeds")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--stack", action="store_true", help="also: a stacked combiner per multi-part encoder (multinomial "
                    "logistic regression on the parts' log-probabilities, trained on their inner out-of-fold ones)")
    ap.add_argument("--cs", default="", help="the probes' C grid instead of ensemble.PROBE_CS (comma-separated)")
    ap.add_argument("--c-by", choices=("macro_f1", "log_loss"), default="macro_f1", help="how each probe's C is chosen")
    ap.add_argument("--prefill", action="store_true", help="extract the parts' features into the cache, then exit")
    args = ap.parse_args()

    import numpy as np
    import torch
    from sklearn.model_selection import StratifiedGroupKFold

    from catalog.manifest import label_names, read
    from emotion.evaluate import scores
    from emotion.inputs import InputSpec, build_samples, part_dims
    from emotion.models import ProbeEnsemble, build_model
    from emotion.models.ensemble import inner_folds, mix_weights, part_oof
    from emotion.train import predict

    if args.cs:
        from emotion.models import ensemble

        ensemble.PROBE_CS = tuple(float(c) for c in args.cs.split(","))
    manifest = read(args.manifest)
    items = [it for it in manifest.items if it.audio is not None]
    labels = label_names(manifest.label_set or "quadrants")
    segment_s = float(ENSEMBLE_RECIPE["segment_s"])
    encoders = args.encoders.split(",")
    parts = list(dict.fromkeys(p for enc in encoders for p in enc.split("+")))
    if args.prefill:
        from bench.song_emotion import prefill_whisper

        for p in parts:  # in order; every wanted layer of a Whisper model from one pass, at its first part
            t0 = time.process_time()
            if p.startswith("whisper-"):
                model = p.rsplit("-l", 1)[0]
                prefill_whisper(items, [q for q in parts if q.rsplit("-l", 1)[0] == model], segment_s)
            build_samples(items, InputSpec(audio_encoder=p, lyrics_encoder="", segment_s=segment_s), progress=False)
            print(f"{p}: cached ({time.process_time() - t0:.0f} s CPU)", flush=True)
        return
    by_part = {p: build_samples(items, InputSpec(audio_encoder=p, lyrics_encoder="", segment_s=segment_s), progress=False).samples
               for p in parts}
    ids = [s.id for s in by_part[parts[0]]]
    for p in parts:
        by_id = {s.id: s for s in by_part[p]}
        by_part[p] = [by_id[i] for i in ids if i in by_id]
        if len(by_part[p]) != len(ids):
            raise SystemExit(f"{p}: {len(ids) - len(by_part[p])} songs without features")
    first = by_part[parts[0]]
    # a combined encoder's segment vectors are its parts' side by side (what CombinedEncoder builds from the cache)
    samples = {enc: [replace(s, audio=np.concatenate([by_part[p][i].audio for p in enc.split("+")], axis=1))
                     for i, s in enumerate(first)] for enc in encoders}
    y, g = np.array([s.y for s in first]), np.array([s.group for s in first])
    pooled = {p: ProbeEnsemble({"audio": int(by_part[p][0].audio.shape[1])}).pooled(by_part[p])[0] for p in parts}  # type: ignore[union-attr]  # every sample has audio
    names = encoders + [f"{enc} (stack)" for enc in encoders if args.stack and "+" in enc]
    rows: dict[str, dict[str, Any]] = {enc: {} for enc in names}
    for seed in (int(s) for s in args.seeds.split(",")):
        per: dict[str, dict[str, list[Any]]] = {enc: {"accuracy": [], "macro_f1": [], "mix": [], "c": []} for enc in names}
        cv = StratifiedGroupKFold(args.folds, shuffle=True, random_state=seed)
        for k, (tr, te) in enumerate(cv.split(np.zeros(len(y)), y, g)):
            folds = inner_folds(y[tr], g[tr], seed + k)
            oof = {p: part_oof(pooled[p][tr], y[tr], folds, args.c_by) for p in parts}  # (C, out-of-fold probabilities)
            for enc in encoders:
                pnames = enc.split("+")
                mix = mix_weights([oof[p][1] for p in pnames], y[tr])[0] if len(pnames) > 1 else [1.0]
                chosen = {"c": [oof[p][0] for p in pnames], "mix": mix}
                dims = {"audio": sum(part_dims(enc))}
                model = build_model("probe-ensemble", dims, {"parts": part_dims(enc), "n_classes": len(labels)})
                assert isinstance(model, ProbeEnsemble)
                model.fit([samples[enc][i] for i in tr], seed + k, chosen=chosen)
                m = scores(y[te], predict(model, [samples[enc][i] for i in te], dims), labels)
                for key, v in (("accuracy", m["accuracy"]), ("macro_f1", m["macro_f1"]), ("mix", mix), ("c", chosen["c"])):
                    per[enc][key].append(v)
                if f"{enc} (stack)" in per:
                    from emotion.data import collate

                    test = [torch.stack(model.part_probs(collate(part, dims))).numpy() for part in batches([samples[enc][i] for i in te])]
                    probs, c = stacked([oof[p][1] for p in pnames], y[tr], folds, np.concatenate(test, axis=1))
                    m = scores(y[te], probs, labels)
                    for key, v in (("accuracy", m["accuracy"]), ("macro_f1", m["macro_f1"]), ("mix", [c]), ("c", chosen["c"])):
                        per[f"{enc} (stack)"][key].append(v)
        for enc in names:
            acc, f1 = np.array(per[enc]["accuracy"]), np.array(per[enc]["macro_f1"])
            rows[enc][str(seed)] = {"accuracy": [round(float(acc.mean()), 4), round(float(acc.std()), 4)],
                                    "macro_f1": [round(float(f1.mean()), 4), round(float(f1.std()), 4)],
                                    "mix": [[round(w, 2) for w in mix] for mix in per[enc]["mix"]], "c": per[enc]["c"]}
            print(f"seed {seed} {enc}: accuracy {acc.mean():.3f} ± {acc.std():.3f}, macro-F1 {f1.mean():.3f} ± {f1.std():.3f}, "
                  f"weights {rows[enc][str(seed)]['mix']}", flush=True)
    print(json.dumps({"n": len(ids), "folds": args.folds, "encoders": rows}))


if __name__ == "__main__":
    main()
