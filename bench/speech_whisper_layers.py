"""Which Whisper, which layer: a frozen-encoder probe per layer of tiny.en and base, speaker-grouped, per corpus.

For every clip of a speech manifest (merged EmoDB + RAVDESS dev: groups `<corpus>/<speaker>`), every hidden state of
both packaged Whisper encoders (run on the clip's own length) is pooled to mean + std; a standardised logistic
regression (C = 0.1) is scored with leave-one-speaker-out (scikit-learn LeaveOneGroupOut), pooled and per corpus.
Beside it, the encoder's own cost on a 5 s clip (1 thread) up to each layer. The last stdout line is one JSON object.

    python bench/speech_whisper_layers.py --manifest var/datasets/speech.csv [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def hidden_states(enc: Any, y: np.ndarray) -> list[np.ndarray]:
    """Every layer's hidden states (layer 0 = convolutional stem + positions; the last one after the final norm)."""
    import torch

    from emotion.features.whisper import log_mel

    with torch.inference_mode():
        x = log_mel(y).unsqueeze(0)
        x = torch.nn.functional.gelu(enc.conv1(x))
        x = torch.nn.functional.gelu(enc.conv2(x)).transpose(1, 2)
        x = x + enc.embed_positions.weight[: x.shape[1]]
        out = [x[0].numpy()]
        for block in enc.layers:
            x = block(x, None)
            out.append(x[0].numpy())
        out[-1] = enc.layer_norm(x)[0].numpy()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--quick", action="store_true", help="6 speakers only")
    args = ap.parse_args()

    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import LeaveOneGroupOut, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from catalog.audio import AudioError
    from catalog.manifest import corpus_of, read
    from emotion.features.whisper import WhisperEncoderFeatures
    from emotion.features.whisper_weights import WHISPER_MODELS, load_packaged
    from emotion.speech.preprocess import prepare
    from emotion.speech.train import LABELS, metrics

    torch.set_num_threads(1)
    items = [it for it in read(args.manifest).items if it.audio is not None and it.label in LABELS]
    if args.quick:
        keep = sorted({it.group for it in items})[:3] + sorted({it.group for it in items})[-3:]
        items = [it for it in items if it.group in keep]
    encoders = {m: load_packaged(m) for m in WHISPER_MODELS}
    pooled: dict[str, list[np.ndarray]] = {m: [] for m in encoders}
    labels, groups = [], []
    for it in items:
        try:
            assert it.audio is not None  # speech manifests always carry audio
            y = prepare(it.audio)
        except AudioError:
            continue
        for m, enc in encoders.items():
            pooled[m].append(np.stack([np.r_[h.mean(0), h.std(0)] for h in hidden_states(enc, y)]))
        labels.append(LABELS.index(it.label))
        groups.append(it.group)
    y_true, g = np.array(labels), np.array(groups)
    clip = (0.1 * np.random.default_rng(0).standard_normal(5 * 16000)).astype(np.float32)
    result: dict[str, Any] = {"n": len(labels), "speakers": len(set(groups)), "protocol": "leave-one-speaker-out", "models": {}}
    print(f"{'model':10s}{'layer':>6s}{'acc':>7s}{'F1':>7s}  per corpus acc/F1{'':14s}{'ms (5 s)':>9s}")
    for m in encoders:
        x = np.stack(pooled[m])
        rows = {}
        for layer in range(x.shape[1]):
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
            probs = cross_val_predict(clf, x[:, layer], y_true, groups=g, cv=LeaveOneGroupOut(), method="predict_proba")
            s = metrics(y_true, probs)
            per = {}
            for c in sorted({corpus_of(x) for x in groups}):
                idx = np.array([corpus_of(x) == c for x in groups])
                pc = metrics(y_true[idx], probs[idx])
                per[c] = {"accuracy": round(pc["accuracy"], 3), "macro_f1": round(pc["macro_f1"], 3)}
            enc = WhisperEncoderFeatures(m, layer)
            enc.frames(clip)
            t = time.perf_counter()
            for _ in range(5):
                enc.frames(clip)
            ms = round(1000 * (time.perf_counter() - t) / 5, 1)
            rows[layer] = {"accuracy": round(s["accuracy"], 3), "macro_f1": round(s["macro_f1"], 3), "per_corpus": per, "ms_5s": ms}
            pcs = " ".join(f"{c} {v['accuracy']:.3f}/{v['macro_f1']:.3f}" for c, v in per.items())
            print(f"{m:10s}{layer:6d}{s['accuracy']:7.3f}{s['macro_f1']:7.3f}  {pcs:30s}{ms:9.1f}", flush=True)
        result["models"][m] = rows
    print(json.dumps(result))


if __name__ == "__main__":
    main()
