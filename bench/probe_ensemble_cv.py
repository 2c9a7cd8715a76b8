"""The shipped `probe-ensemble` (ProbeEnsemble.fit) under the benchmark's outer folds: a check that the shipped code
reproduces bench/song_emotion.py's `ens@whisper-tiny.en-l2` row.

    python bench/probe_ensemble_cv.py MANIFEST.csv    # q4 or mirex manifest (musicrec datasets import q4|mirex ...)

Outer folds: StratifiedGroupKFold(5, shuffle, seed 42) by the manifest's groups (artists); inner seed 42 + fold.
Audio only (musicnn + Whisper tiny.en layer 2 over 3 s segments, from the feature cache). The last line is JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import numpy as np
    from sklearn.model_selection import StratifiedGroupKFold

    from catalog.manifest import label_names, read
    from emotion.evaluate import scores
    from emotion.inputs import InputSpec, build_samples, part_dims
    from emotion.models import ENSEMBLE_RECIPE, ProbeEnsemble, build_model
    from emotion.train import predict

    manifest = read(sys.argv[1])
    labels = label_names(manifest.label_set or "quadrants")
    enc = str(ENSEMBLE_RECIPE["audio_encoder"])
    spec = InputSpec(audio_encoder=enc, lyrics_encoder="", segment_s=float(ENSEMBLE_RECIPE["segment_s"]))
    samples = build_samples(manifest.items, spec, progress=False).samples
    y, g = np.array([s.y for s in samples]), np.array([s.group for s in samples])
    dims = {"audio": sum(part_dims(enc))}
    accs, f1s = [], []
    for k, (tr, te) in enumerate(StratifiedGroupKFold(5, shuffle=True, random_state=42).split(np.zeros(len(y)), y, g)):
        model = build_model("probe-ensemble", dims, {"parts": part_dims(enc), "n_classes": len(labels)})
        assert isinstance(model, ProbeEnsemble)
        chosen = model.fit([samples[i] for i in tr], 42 + k)
        m = scores(y[te], predict(model, [samples[i] for i in te], dims), labels)
        accs.append(m["accuracy"])
        f1s.append(m["macro_f1"])
        print(f"fold {k}: accuracy {m['accuracy']:.4f} C {chosen['c']} weights {chosen['mix']}", flush=True)
    print(json.dumps({"n": len(samples), "accuracy": [round(float(np.mean(accs)), 4), round(float(np.std(accs)), 4)],
                      "macro_f1": [round(float(np.mean(f1s)), 4), round(float(np.std(f1s)), 4)]}))


if __name__ == "__main__":
    main()
