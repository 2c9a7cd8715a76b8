"""Does fine-tuning Whisper's first layers beat the frozen probe on unseen speakers? A CPU-sized study.

The shipped speech model (`whisper-tiny-base`) is a logistic regression on the mean ++ std of frozen Whisper tiny.en
and base hidden states after layer 2. Here the same network is trained end to end on each of the benchmark's 3
speaker-grouped folds: the convolutional stem and positions stay frozen, the first two transformer blocks of each
encoder and the linear head are fine-tuned. The head starts as the frozen probe (standardisation folded in), so epoch
0 is the probe itself; the project's one training loop (`emotion.train.fit_loop`) fine-tunes with early stopping on
validation speakers held out of the fold's training speakers (`emotion.speech.train.inner_val_speakers`: one per
corpus), and the probe is kept when no epoch beats it on them. Scored on the fold's test speakers, beside the frozen
probe fitted on the same clips.

    python bench/speech_finetune.py --manifest speech.csv --models tiny.en,base --epochs 6 --lr 1e-5

The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402  (after the repository is on sys.path, like the other bench scripts)


class TunedWhisper(torch.nn.Module):
    """Whisper encoders cut after `layers` blocks, mean ++ std pooling, one linear head over the standardised vector.

    Args:
        encoders: transformers `WhisperEncoder`s (blocks beyond `layers` are dropped).
        layers: blocks run (2 = the shipped probe's layer).
        n_classes: output classes.
    """

    def __init__(self, encoders: list[Any], layers: int, n_classes: int = 4) -> None:
        super().__init__()
        for enc in encoders:
            enc.layers = enc.layers[:layers]
            for p in (*enc.conv1.parameters(), *enc.conv2.parameters(), enc.embed_positions.weight):
                p.requires_grad_(False)
        self.encs = torch.nn.ModuleList(encoders)
        dim = sum(2 * int(e.config.d_model) for e in encoders)
        self.head = torch.nn.Linear(dim, n_classes)
        self.register_buffer("mu", torch.zeros(dim))
        self.register_buffer("sd", torch.ones(dim))

    def pooled(self, mel: torch.Tensor) -> torch.Tensor:
        """[n_mels, T] log-Mel -> [dim] mean ++ std of every encoder's last kept block."""
        from emotion.features.whisper import encoder_states

        out = []
        for enc in self.encs:
            x = encoder_states(enc, mel, (len(enc.layers),))[len(enc.layers)][0]
            out += [x.mean(0), x.std(0)]
        return torch.cat(out)

    def forward(self, mels: list[torch.Tensor]) -> torch.Tensor:
        v = torch.stack([self.pooled(m) for m in mels])
        return self.head((v - self.mu) / self.sd)


def fold_run(model: TunedWhisper, mels: list[torch.Tensor], y: np.ndarray, tr: np.ndarray, va: np.ndarray, te: np.ndarray,
             args: argparse.Namespace) -> dict[str, Any]:
    from emotion.probes import fit_linear_probe, full_class_coefficients
    from emotion.speech.train import metrics
    from emotion.train import fit_loop

    with torch.no_grad():
        feats = np.stack([model.pooled(m).numpy() for m in mels])
    scaler, lr = fit_linear_probe(feats[tr], y[tr], 0.1, max_iter=3000)
    coef, bias = full_class_coefficients(lr, 4)
    model.mu.copy_(torch.as_tensor(scaler.mean_, dtype=torch.float32))
    model.sd.copy_(torch.as_tensor(scaler.scale_, dtype=torch.float32))
    model.head.weight.data.copy_(torch.as_tensor(coef, dtype=torch.float32))
    model.head.bias.data.copy_(torch.as_tensor(bias, dtype=torch.float32))

    def probs(idx: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.cat([torch.softmax(model([mels[i] for i in idx[j : j + 16]]), -1) for j in range(0, len(idx), 16)]).numpy()

    probe_test = probs(te)
    probe_val = metrics(y[va], probs(va))
    init = copy.deepcopy(model.state_dict())
    rng = np.random.default_rng(args.seed)

    def batches() -> Any:
        order = rng.permutation(tr)
        return (order[i : i + args.batch] for i in range(0, len(order), args.batch))

    def step(m: torch.nn.Module, idx: np.ndarray) -> tuple[torch.Tensor, int]:
        logits = m([mels[i] for i in idx])
        return torch.nn.functional.cross_entropy(logits, torch.as_tensor(y[idx]), label_smoothing=args.smoothing), len(idx)

    t0 = time.process_time()
    res = fit_loop(model, batches, step, lambda m: metrics(y[va], probs(va)), epochs=args.epochs, lr=args.lr,
                   weight_decay=args.weight_decay, grad_clip=1.0, early_stop=args.early_stop, desc="finetune", progress=False)
    tuned_val = float(res.best_metrics.get("macro_f1", -1.0))
    kept = "tuned" if tuned_val > probe_val["macro_f1"] else "probe"
    if kept == "probe":
        model.load_state_dict(init)
    return {"probe": probe_test, "tuned": probs(te), "chosen": kept, "best_epoch": res.best_epoch,
            "val": {"probe": round(probe_val["macro_f1"], 3), "tuned": round(tuned_val, 3)},
            "history": [{k: round(float(v), 4) for k, v in h.items()} for h in res.history], "cpu_s": round(time.process_time() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--models", default="tiny.en,base", help="packaged Whisper models, comma-separated")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--early-stop", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--smoothing", type=float, default=0.0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="2 folds of 120 clips, 1 epoch: a smoke run")
    args = ap.parse_args()

    from catalog.audio import AudioError
    from catalog.manifest import corpus_of, read
    from emotion.features.whisper import log_mel
    from emotion.features.whisper_weights import load_packaged
    from emotion.speech.preprocess import prepare
    from emotion.speech.train import LABELS, inner_val_speakers, metrics, speaker_folds

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    items = [it for it in read(args.manifest).items if it.audio is not None and it.label in LABELS]
    if args.quick:
        items, args.folds, args.epochs = items[:: max(1, len(items) // 120)], 2, 1
    mels, ys, gs = [], [], []
    for it in items:
        try:
            assert it.audio is not None
            mels.append(log_mel(prepare(it.audio)))
        except AudioError:
            continue
        ys.append(LABELS.index(it.label))
        gs.append(it.group)
    y, g = np.array(ys), np.array(gs)
    names = [m for m in args.models.split(",") if m]
    folds = speaker_folds(sorted(set(gs)), args.folds)
    probe, tuned = np.zeros((len(y), 4)), np.zeros((len(y), 4))
    per_fold = []
    for k, test_speakers in enumerate(folds):
        rest = sorted(set(gs) - set(test_speakers))
        val_speakers = inner_val_speakers(rest, k)
        te, va = np.flatnonzero(np.isin(g, test_speakers)), np.flatnonzero(np.isin(g, val_speakers))
        tr = np.flatnonzero(~np.isin(g, test_speakers) & ~np.isin(g, val_speakers))
        model = TunedWhisper([load_packaged(m) for m in names], args.layers)
        out = fold_run(model, mels, y, tr, va, te, args)
        probe[te], tuned[te] = out.pop("probe"), out.pop("tuned")
        out.update(fold=k, val_speakers=val_speakers, probe_acc=round(metrics(y[te], probe[te])["accuracy"], 3),
                   tuned_acc=round(metrics(y[te], tuned[te])["accuracy"], 3))
        per_fold.append(out)
        print(json.dumps(out), flush=True)
    rows = {}
    for name, p in (("frozen probe (same training clips)", probe), ("fine-tuned (probe kept when val says so)", tuned)):
        s = metrics(y, p)
        row = {"accuracy": round(s["accuracy"], 3), "macro_f1": round(s["macro_f1"], 3)}
        for c in sorted({corpus_of(v) for v in gs}):
            idx = np.array([corpus_of(v) == c for v in gs])
            pc = metrics(y[idx], p[idx])
            row[c] = [round(pc["accuracy"], 3), round(pc["macro_f1"], 3)]
        rows[name] = row
        print(f"{name:45s}", row, flush=True)
    print(json.dumps({"models": names, "layers": args.layers, "epochs": args.epochs, "lr": args.lr, "rows": rows, "folds": per_fold}))


if __name__ == "__main__":
    main()
