"""Training bert-cnn's CNN on labelled lyrics (SongGATNet section 2.2): the lyrics branch learns.

BERT (frozen) gives the token states of each lyric segment once; the CNN (kernels 3, 4, 5, 128 filters each,
`emotion.features.bert_cnn.BertCNN.convs`) turns them into max-pooled features, ++ the sentence vector, and a
linear layer classifies the song from the mean over its segments. Adam, cross-entropy, early stopping on the
validation songs' macro-F1 (the training songs' when there are none, and then the last epoch is kept). The best
CNN weights are written as a safetensors state dict that the `bert-cnn` encoder loads (`cnn_state`); its version
carries a hash of those weights, so the cache never mixes features of the trained and the random CNN. The model
artifact stores the file and records it, and prediction rebuilds the encoder with it.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)
STATE_FILE = "lyrics_cnn.safetensors"


@dataclass
class LyricsCNNResult:
    path: Path
    best_epoch: int
    val_macro_f1: float | None
    n_train: int
    n_val: int
    history: list[dict[str, float]] = field(default_factory=list)


def _segments(raw: bytes, spec: Any) -> list[str]:
    from emotion.features.cleaning import prepare_lyrics
    from emotion.features.segments import lyric_segments

    return [s.text for s in lyric_segments(prepare_lyrics(raw).lines, spec=spec) if s.text.strip()]


@torch.no_grad()  # not inference_mode: the states feed the CNN's autograd graph
def _states(model: Any, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    batch = model.tokenize(texts)
    return model.bert(**batch).last_hidden_state.float(), batch["attention_mask"]


def train_lyrics_cnn(train: list[tuple[bytes, int]], val: list[tuple[bytes, int]], n_classes: int, out: str | Path, *,
                     spec: Any = None, epochs: int = 20, lr: float = 1e-3, seed: int = 42, patience: int = 6,
                     progress: bool = False) -> LyricsCNNResult:
    """Train the CNN on (lyrics bytes, class index) songs; write the best CNN state to `out`."""
    from safetensors.torch import save_file
    from tqdm import tqdm

    from emotion.evaluate import scores
    from emotion.features.bert_cnn import BertCNN
    from emotion.features.segments import SegmentSpec

    spec = spec or SegmentSpec()
    torch.manual_seed(seed)
    model = BertCNN(freeze_encoder=True)
    head = nn.Linear(model.out_dim, n_classes)

    def prepare(rows: list[tuple[bytes, int]]) -> list[tuple[torch.Tensor, torch.Tensor, int]]:
        out_rows = []
        for raw, y in tqdm(rows, desc="lyrics token states", disable=not progress, leave=False):
            try:
                texts = _segments(raw, spec)
            except Exception as exc:  # noqa: BLE001 - unusable lyrics are left out of CNN training
                log.info("lyrics left out of CNN training: %s", exc)
                continue
            if texts:
                states, mask = _states(model, texts)
                out_rows.append((states, mask, y))
        return out_rows

    tr, va = prepare(train), prepare(val)
    if not tr:
        raise ValueError("no usable lyrics to train the bert-cnn CNN on")
    params = [*model.convs.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=lr)
    gen = np.random.default_rng(seed)

    def logits(rows: list[tuple[torch.Tensor, torch.Tensor, int]]) -> torch.Tensor:
        return torch.stack([head(model.features(s, m)).mean(0) for s, m, _ in rows])

    def evaluate(rows: list[tuple[torch.Tensor, torch.Tensor, int]]) -> float:
        model.convs.eval()
        with torch.no_grad():
            probs = torch.softmax(logits(rows), -1).numpy()
        return float(scores(np.array([y for _, _, y in rows]), probs, tuple(str(i) for i in range(n_classes)))["macro_f1"])

    best: tuple[float, int, dict[str, torch.Tensor]] = (-1.0, 0, copy.deepcopy(model.convs.state_dict()))
    history: list[dict[str, float]] = []
    for epoch in range(1, epochs + 1):
        model.convs.train()
        order = gen.permutation(len(tr))
        total = 0.0
        for start in range(0, len(order), 16):
            rows = [tr[i] for i in order[start : start + 16]]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(logits(rows), torch.tensor([y for _, _, y in rows]))
            loss.backward()
            opt.step()
            total += float(loss) * len(rows)
        f1 = evaluate(va) if va else float("nan")
        history.append({"epoch": epoch, "loss": total / len(tr), **({"val_macro_f1": f1} if va else {})})
        if va and f1 > best[0]:
            best = (f1, epoch, copy.deepcopy(model.convs.state_dict()))
        if not va:
            best = (float("nan"), epoch, copy.deepcopy(model.convs.state_dict()))
        if va and epoch - best[1] >= patience:
            break
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in best[2].items()}, str(out))
    return LyricsCNNResult(out, best[1], best[0] if va else None, len(tr), len(va), history)
