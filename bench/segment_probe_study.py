"""Study (2026-12-07): the shipped song-level probe on pooled segment vectors (mean ++ std of the 3 s segments) against
a segment-level probe (every 3 s segment a training row with its song's label; a song's answer is the mean of its
segments' log-probabilities), and the two summed; per part (musicnn, Whisper tiny.en layer 2) and both parts.
Artist-grouped 5-fold CV (fold seeds 42, 7, 13), one C for all probes, the grid shown in the open. Results in
docs/emotion.md. Reads the feature cache that `bench/probe_ensemble_cv.py MANIFEST --prefill` fills.

    python bench/segment_probe_study.py q4.csv

The last line of stdout is one JSON object: accuracy per variant and fold seed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PARTS = ("musicnn", "whisper-tiny.en-l2")
CS = (0.003, 0.01, 0.03, 0.1)
SEEDS = (42, 7, 13)


def main() -> None:
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.preprocessing import StandardScaler

    from catalog.manifest import read
    from emotion.inputs import InputSpec, build_samples

    items = [it for it in read(Path(sys.argv[1])).items if it.audio is not None]
    by_part = {p: {s.id: s for s in build_samples(items, InputSpec(audio_encoder=p, lyrics_encoder="", segment_s=3.0), progress=False).samples}
               for p in PARTS}
    ids = [i for i in by_part[PARTS[0]] if all(i in by_part[p] for p in PARTS)]
    y = np.array([by_part[PARTS[0]][i].y for i in ids])
    groups = np.array([by_part[PARTS[0]][i].group for i in ids])
    seg = {p: [np.asarray(by_part[p][i].audio, dtype=np.float32) for i in ids] for p in PARTS}
    pooled = {p: np.stack([np.concatenate([a.mean(0), a.std(0)]) for a in seg[p]]) for p in PARTS}
    print(f"songs {len(ids)}, segments per song (median) {np.median([len(a) for a in seg[PARTS[0]]]):.0f}", flush=True)

    def song_pooled(p: str, tr: Any, te: Any, c: float) -> Any:
        sc = StandardScaler().fit(pooled[p][tr])
        lr = LogisticRegression(C=c, max_iter=2000).fit(sc.transform(pooled[p][tr]), y[tr])
        return np.log(np.clip(lr.predict_proba(sc.transform(pooled[p][te])), 1e-9, 1))

    def song_segments(p: str, tr: Any, te: Any, c: float) -> Any:
        x = np.concatenate([seg[p][i] for i in tr])
        labels = np.concatenate([[y[i]] * len(seg[p][i]) for i in tr])
        sc = StandardScaler().fit(x)
        lr = LogisticRegression(C=c, max_iter=1000).fit(sc.transform(x), labels)
        return np.stack([np.log(np.clip(lr.predict_proba(sc.transform(seg[p][i])), 1e-9, 1)).mean(0) for i in te])

    res: dict[str, dict[int, float]] = {}
    for seed in SEEDS:
        acc: dict[str, list[float]] = {}
        for tr, te in StratifiedGroupKFold(5, shuffle=True, random_state=seed).split(np.zeros(len(y)), y, groups):
            for c in CS:
                out = {}
                for p in PARTS:
                    out[("pooled", p)] = song_pooled(p, tr, te, c)
                    out[("segments", p)] = song_segments(p, tr, te, c)
                for kind in ("pooled", "segments"):
                    for p in PARTS:
                        acc.setdefault(f"{kind} {p} C={c}", []).append(accuracy_score(y[te], out[(kind, p)].argmax(1)))
                    both = out[(kind, PARTS[0])] + out[(kind, PARTS[1])]
                    acc.setdefault(f"{kind} both C={c}", []).append(accuracy_score(y[te], both.argmax(1)))
                mixed = sum(out[(k, p)] for k in ("pooled", "segments") for p in PARTS)
                acc.setdefault(f"pooled+segments both C={c}", []).append(accuracy_score(y[te], mixed.argmax(1)))
        for key, values in acc.items():
            res.setdefault(key, {})[seed] = round(float(np.mean(values)), 4)
        print(f"seed {seed} done", flush=True)
    for key, v in res.items():
        print(f"{key:40s} " + " ".join(f"{v[s]:.3f}" for s in SEEDS) + f"  mean {np.mean(list(v.values())):.3f}")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
