"""What makes the frozen-Whisper probe better on unseen speakers: layers, normalisation, class weights, augmentation,
handcrafted features, a trained head. Scored on the same 3 speaker-grouped folds as `musicrec benchmark speech`.

Step 1 (`extract`): for every clip of the manifest (and, for training, speed-perturbed 0.9 / 1.1 and noisy copies)
every hidden state of both packaged Whisper encoders is pooled (mean + std, and mean + std of per-frame layer-normed
frames), clip-level HSF statistics of the LLD frames and openSMILE eGeMAPS functionals are computed; frames of the
layers named by --keep-frames are kept for the trained head. Everything goes to one .npz (--cache).
Step 2 (`study`): the variants, each a row of accuracy / macro-F1 per corpus; the last stdout line is one JSON object.

    python bench/speech_probe_study.py extract --manifest var/speech.csv --cache var/study.npz
    python bench/speech_probe_study.py study --cache var/study.npz
    python bench/speech_probe_study.py history --cache var/study.npz   # per-speaker centring vs the history's moods
    python bench/speech_probe_study.py int8 --manifest var/speech.csv --cache var/study.npz   # the served int8 encoders
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

AUGMENTS = ("orig", "speed0.9", "speed1.1", "noise")


def augment(y: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A perturbed copy of prepared speech: Kaldi-style speed perturbation (tempo and pitch) or white noise at a
    random 10-30 dB SNR. (Gain is not a perturbation here: `prepare` normalises loudness.)"""
    import librosa

    if kind.startswith("speed"):
        f = float(kind[5:])
        return librosa.resample(y, orig_sr=int(16000 * f), target_sr=16000).astype(np.float32)
    if kind == "noise":
        snr = rng.uniform(10, 30)
        p = float(np.mean(y**2))
        return (y + rng.standard_normal(len(y)) * np.sqrt(p / 10 ** (snr / 10))).astype(np.float32)
    return y


def pooled_layers(states: list[np.ndarray]) -> np.ndarray:
    """(layers, 4d): mean, std, then mean and std of frames layer-normed over the feature axis."""
    out = []
    for h in states:
        ln = (h - h.mean(1, keepdims=True)) / (h.std(1, keepdims=True) + 1e-5)
        out.append(np.r_[h.mean(0), h.std(0), ln.mean(0), ln.std(0)])
    return np.stack(out).astype(np.float32)


def extract(args: argparse.Namespace) -> None:
    import torch
    from tqdm import tqdm

    from bench.speech_whisper_layers import hidden_states
    from catalog.audio import AudioError
    from catalog.manifest import read
    from emotion.features.whisper_weights import WHISPER_MODELS, load_packaged
    from emotion.speech import features as F
    from emotion.speech.preprocess import prepare
    from emotion.speech.train import LABELS

    torch.set_num_threads(1)
    items = [it for it in read(args.manifest).items if it.audio is not None and it.label in LABELS]
    encoders = {m: load_packaged(m) for m in WHISPER_MODELS}
    keep = [tuple(k.split(":")) for k in args.keep_frames.split(",") if k]
    rng = np.random.default_rng(0)
    out: dict[str, list[Any]] = {"ids": [], "labels": [], "groups": [], "hsf": [], "egemaps": []}
    try:
        import opensmile

        smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals)
    except ImportError:  # opensmile is optional here: the eGeMAPS rows are then left out
        smile = None
    frames: dict[str, list[np.ndarray]] = {f"{m}:{layer}": [] for m, layer in keep}
    for it in tqdm(items, unit="clip"):
        try:
            assert it.audio is not None
            y = prepare(it.audio)
        except AudioError:
            continue
        out["ids"].append(it.id)
        out["labels"].append(LABELS.index(it.label))
        out["groups"].append(it.group)
        out["hsf"].append(F.hsf(F.lld_frames(y)))
        if smile is not None:
            out["egemaps"].append(smile.process_signal(y, 16000).to_numpy()[0].astype(np.float32))
        for a in args.augments.split(","):
            ya = augment(y, a, rng)
            for m, enc in encoders.items():
                states = hidden_states(enc, ya)
                out.setdefault(f"{m}/{a}", []).append(pooled_layers(states))
                if a == "orig":
                    for km, kl in keep:
                        if km == m:
                            frames[f"{km}:{kl}"].append(states[int(kl)].astype(np.float16))
    arrays = {k: np.asarray(v) for k, v in out.items()}
    for k, fr in frames.items():
        arrays[f"frames/{k}"] = np.concatenate(fr)
        arrays[f"frame_len/{k}"] = np.array([len(f) for f in fr])
    np.savez(args.cache, **arrays)
    print(f"wrote {args.cache}: {len(out['ids'])} clips", flush=True)


def int8(args: argparse.Namespace) -> None:
    """The served configuration (settings.speech_int8): tiny.en + base layer 2 with int8-quantized linear layers.
    Rows: trained and scored on float32 (the benchmark), trained on float32 and run int8 (what serving does),
    trained and run int8; on the benchmark's 3 folds and leave-one-speaker-out."""
    import torch

    from bench.speech_probe_variants import lr, run
    from catalog.manifest import corpus_of, read
    from emotion.features.whisper import WhisperEncoderRunner, log_mel, quantize_int8
    from emotion.features.whisper_weights import load_packaged
    from emotion.speech.preprocess import prepare
    from emotion.speech.train import metrics, speaker_folds

    torch.set_num_threads(1)
    z = np.load(args.cache)
    items = {it.id: it for it in read(args.manifest).items}
    runners = [WhisperEncoderRunner(quantize_int8(load_packaged(m)), 2) for m in ("tiny.en", "base")]
    q8 = []
    for i in z["ids"]:
        mel = log_mel(prepare(items[str(i)].audio))  # type: ignore[arg-type]
        q8.append(np.concatenate([np.r_[h.mean(0), h.std(0)] for h in (r.frames_of_mel(mel) for r in runners)]))
    fp = np.c_[z["tiny.en/orig"][:, 2, :768], z["base/orig"][:, 2, :1024]]
    x8 = np.stack(q8)
    y, g = z["labels"], z["groups"]
    rows = {}
    for protocol, k in (("3-fold", 3), ("LOSO", None)):
        folds = speaker_folds(sorted(set(g.tolist())), k)
        for name, xtr, xte in (("float32", fp, fp), ("train float32, run int8", fp, x8), ("int8", x8, x8)):
            probs = run(xte, y, g, folds, lr(), xtrain=xtr)
            s = metrics(y, probs)
            row = {"accuracy": round(s["accuracy"], 3), "macro_f1": round(s["macro_f1"], 3)}
            for c in sorted({corpus_of(v) for v in g.tolist()}):
                idx = np.array([corpus_of(v) == c for v in g.tolist()])
                pc = metrics(y[idx], probs[idx])
                row[c] = [round(pc["accuracy"], 3), round(pc["macro_f1"], 3)]
            rows[f"{protocol} {name}"] = row
            print(f"{protocol:7s}{name:26s}", row, flush=True)
    print(json.dumps(rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("extract")
    e.add_argument("--manifest", type=Path, required=True)
    e.add_argument("--cache", type=Path, required=True)
    e.add_argument("--keep-frames", default="tiny.en:2,base:2", help="model:layer,... whose frames are kept")
    e.add_argument("--augments", default=",".join(AUGMENTS), help="copies to encode (orig only: no augmentation rows)")
    h = sub.add_parser("history", help="causal per-speaker centring against the emotion mix of the history")
    h.add_argument("--cache", type=Path, required=True)
    q = sub.add_parser("int8")
    q.add_argument("--manifest", type=Path, required=True)
    q.add_argument("--cache", type=Path, required=True)
    s = sub.add_parser("study")
    s.add_argument("--cache", type=Path, required=True)
    s.add_argument("--only", default="", help="comma-separated variant names")
    args = ap.parse_args()
    if args.cmd == "extract":
        extract(args)
    elif args.cmd == "int8":
        int8(args)
    elif args.cmd == "history":
        from bench.speech_probe_variants import history

        history(args)
    else:
        from bench.speech_probe_variants import study

        study(args)


if __name__ == "__main__":
    main()
