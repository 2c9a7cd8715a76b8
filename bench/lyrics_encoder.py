"""NJU lyrics: does the bert-cnn lyrics encoder gain from learning? Frozen vs fine-tuned MiniLM under the folds of
bench/song_emotion.py (performer-grouped StratifiedGroupKFold), against the MiniLM sentence-vector probe.

    python bench/lyrics_encoder.py --seeds 42,7 --rows probe-sent-mean,tune0,tune2,tune6

Rows:
- probe-sent-mean: the baseline of bench/song_emotion.py (mean of the MiniLM sentence vectors of a song's 10 s
  lyric windows, standardised, logistic regression, C by an inner performer-grouped CV).
- tune<k>: `emotion.lyrics_cnn.LyricsClassifier` trained with the project's loop: MiniLM with its top k of 6
  transformer layers fine-tuned (tune0 = frozen, only the CNN 3/4/5 and the linear head learn; tune6 = every
  layer, the word embeddings frozen), the CNN + head at --lr, BERT at --bert-lr, early stopping on the
  macro-F1 of a performer-grouped validation part (15 %) of each training fold. The classifier's own predictions
  are scored on the test fold.
- probe-chunk<N>: the probe on other sentence vectors: MiniLM (mean-pooled, normalised, as bert-cnn's sentence half)
  over the song's cleaned lines packed into chunks of up to N tokens (time tags ignored), mean over the chunks.
The frozen part's token states are computed once per k for all songs. The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def chunk_vectors(model: Any, raw: bytes, max_tokens: int) -> Any:
    """MiniLM sentence vectors [n_chunks, 384] of the song's cleaned lines packed into chunks of <= max_tokens tokens."""
    from emotion.features.cleaning import prepare_lyrics

    chunks: list[str] = []
    current: list[str] = []
    used = 0
    for line in (ln.text for ln in prepare_lyrics(raw).lines):
        n = len(model.encoder.tokenizer.tokenize(line))
        if current and used + n > max_tokens - 2:  # room for [CLS] and [SEP]
            chunks.append("\n".join(current))
            current, used = [], 0
        current.append(line)
        used += n
    chunks.append("\n".join(current))
    hidden, mask = model.lower(chunks)
    return model.encoder.features(hidden, mask)[:, :384].detach().numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="42,7", help="Fold seeds (42 = bench/song_emotion.py's default).")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--rows", default="probe-sent-mean,tune0,tune6")
    ap.add_argument("--only-folds", default="", help="Comma-separated fold numbers to run (timing runs); default all.")
    ap.add_argument("--epochs", type=int, default=30, help="Epochs of the frozen rows (tune0).")
    ap.add_argument("--tune-epochs", type=int, default=6, help="Epochs of the fine-tuned rows (tune<k>, k > 0).")
    ap.add_argument("--patience", type=int, default=6)
    ap.add_argument("--tune-patience", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--bert-lr", type=float, default=2e-5)
    ap.add_argument("--segments", type=int, default=8, help="Segments drawn per song per training step.")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "lyrics_encoder.json")
    args = ap.parse_args()

    import numpy as np
    import torch
    from sklearn.model_selection import StratifiedGroupKFold

    torch.set_num_threads(1)
    from bench.song_emotion import VIEWS, manifest_for, probe
    from catalog.manifest import Item, assign_splits, read
    from emotion.evaluate import scores
    from emotion.features.bert_cnn import BertCNN
    from emotion.inputs import InputSpec, build_samples
    from emotion.lyrics_cnn import LyricsClassifier, fit_classifier, predict_songs, song_states

    manifest = read(manifest_for("nju", Path(tempfile.mkdtemp(prefix="bench-lyrics-"))))
    items = [it for it in manifest.items if it.lyrics is not None]
    built = build_samples(items, InputSpec(audio_encoder="", lyrics_encoder="bert-cnn", segment_s=0.0), progress=False)
    by_id = {it.id: it for it in items}
    samples = [replace(s, group=by_id[s.id].artist or s.group) for s in built.samples]  # by performer, as song_emotion
    labels = manifest.labels()
    y, g = np.array([s.y for s in samples]), np.array([s.group for s in samples])
    rows = args.rows.split(",")
    states: dict[int, list[Any]] = {}
    for name in rows:
        if name.startswith("tune"):
            k = int(name[4:])
            t0 = time.process_time()
            got = song_states(LyricsClassifier(len(labels), k), [(by_id[s.id].lyrics.read_bytes(), int(s.y)) for s in samples])  # type: ignore[union-attr]  # items with lyrics only
            if len(got) != len(samples):
                raise SystemExit(f"{len(samples) - len(got)} songs have features but no usable lyric segments")
            states[k] = got
            print(f"frozen part of tune{k}: {time.process_time() - t0:.0f} s CPU", flush=True)
    chunked: dict[str, list[Any]] = {}
    for name in rows:
        if name.startswith("probe-chunk"):
            t0 = time.process_time()
            base = LyricsClassifier(len(labels), 0)
            chunked[name] = [replace(s, lyrics=chunk_vectors(base, by_id[s.id].lyrics.read_bytes(), int(name[len("probe-chunk"):])))  # type: ignore[union-attr]  # items with lyrics only
                             for s in samples]
            print(f"{name} vectors: {time.process_time() - t0:.0f} s CPU", flush=True)
    only = {int(f) for f in args.only_folds.split(",") if f}
    out: dict[str, Any] = {"benchmark": "lyrics_encoder", "n": len(samples), "groups": len(set(g)), "args": {k: str(v) for k, v in vars(args).items()},
                           "seeds": {}}
    for seed in [int(s) for s in args.seeds.split(",")]:
        cv = StratifiedGroupKFold(args.folds, shuffle=True, random_state=seed)
        res: dict[str, dict[str, list[float]]] = {name: {"accuracy": [], "macro_f1": [], "best_epoch": [], "cpu_s": []} for name in rows}
        for fold, (tr_idx, te_idx) in enumerate(cv.split(np.zeros(len(y)), y, g)):
            if only and fold not in only:
                continue
            tr_items = [Item(samples[i].id, samples[i].label or "", None, None, samples[i].group) for i in tr_idx]
            part = assign_splits(tr_items, val=0.15, test=0.0, seed=seed + fold)
            fit_idx = [i for i in tr_idx if part[samples[i].group] == "train"]
            val_idx = [i for i in tr_idx if part[samples[i].group] == "val"]
            for name in rows:
                t0 = time.process_time()
                best = 0
                if name == "probe-sent-mean":
                    probs, _ = probe([samples[i] for i in tr_idx], [samples[i] for i in te_idx], VIEWS["sent-mean"], seed + fold, True)
                elif name in chunked:
                    got = chunked[name]
                    probs, _ = probe([got[i] for i in tr_idx], [got[i] for i in te_idx], VIEWS["sent-mean"], seed + fold, True)
                elif name.startswith("tune"):
                    k = int(name[4:])
                    model = LyricsClassifier(len(labels), k, BertCNN(freeze_encoder=True))
                    st = states[k]
                    fit = fit_classifier(model, [st[i] for i in fit_idx], [st[i] for i in val_idx], lr=args.lr, bert_lr=args.bert_lr,
                                         epochs=args.tune_epochs if k else args.epochs, patience=args.tune_patience if k else args.patience,
                                         segments_per_step=args.segments, seed=seed + fold)
                    probs, best = predict_songs(model, [st[i] for i in te_idx]), fit.best_epoch
                else:
                    raise SystemExit(f"unknown row {name!r}")
                m = scores(y[te_idx], probs, labels)
                for key, value in (("accuracy", m["accuracy"]), ("macro_f1", m["macro_f1"]), ("best_epoch", best), ("cpu_s", time.process_time() - t0)):
                    res[name][key].append(float(value))
                print(f"seed {seed} fold {fold} {name}: acc {m['accuracy']:.3f} macro-F1 {m['macro_f1']:.3f} best epoch {best} "
                      f"({time.process_time() - t0:.0f} s CPU)", flush=True)
        summary = {name: {"accuracy": round(float(np.mean(r["accuracy"])), 4), "accuracy_std": round(float(np.std(r["accuracy"])), 4),
                          "macro_f1": round(float(np.mean(r["macro_f1"])), 4), "macro_f1_std": round(float(np.std(r["macro_f1"])), 4),
                          "folds": r} for name, r in res.items() if r["accuracy"]}
        for name, s in summary.items():
            print(f"seed {seed} {name}: acc {s['accuracy']:.3f}±{s['accuracy_std']:.3f} macro-F1 {s['macro_f1']:.3f}±{s['macro_f1_std']:.3f}", flush=True)
        out["seeds"][str(seed)] = summary
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
