"""Training bert-cnn's lyrics branch on labelled lyrics (SongGATNet section 2.2): the lyrics encoder learns.

`LyricsClassifier` = the `bert-cnn` encoder (MiniLM token states -> CNN with kernels 3, 4, 5, 128 filters each,
max-pooled, ++ the sentence vector) + a linear layer that classifies a song from the mean of its segments' logits.
`train_layers` says how much of BERT learns with the CNN: 0 = frozen BERT (only the CNN and the head train),
k = its top k transformer layers are fine-tuned too (the word embeddings and lower layers stay frozen), all of them
= BERT fine-tuned end to end. The frozen part's outputs are computed once per song (`song_states`), so training
costs only the layers that learn. A training step draws up to `segments_per_step` segments of each song (a fresh
draw every epoch); evaluation reads every segment.

Training runs in the project's one loop (`emotion.train.fit_loop`): Adam with the CNN and head at `lr` and the
BERT layers at `bert_lr`, early stopping on the validation songs' macro-F1 (with no validation songs the last
epoch is kept). The encoder's trained weights (the CNN and the fine-tuned BERT layers) are written as one
safetensors file that the `bert-cnn` encoder loads (`cnn_state`); its version carries a hash of those weights, so
the feature cache never mixes features of trained and untrained weights. The model artifact stores the file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from emotion.features.bert_cnn import BertCNN

log = logging.getLogger(__name__)
STATE_FILE = "lyrics_cnn.safetensors"
SEGMENTS_PER_STEP = 4  # segments of each song drawn per training step (bench/lyrics_encoder.py --segments)
TUNED_EPOCHS, TUNED_PATIENCE = 3, 2  # a fine-tuned encoder's epoch cap and early-stop patience (as measured)


@dataclass
class LyricsCNNResult:
    path: Path
    best_epoch: int
    val_macro_f1: float | None
    n_train: int
    n_val: int
    train_layers: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class SongStates:
    """One song below the layers that learn: the frozen part's token states [S, T, H], mask [S, T], class index."""

    hidden: torch.Tensor
    mask: torch.Tensor
    y: int


def lyric_texts(raw: bytes, spec: Any = None) -> list[str]:
    """The non-empty lyric segments of a song (cleaned, 10 s windows over the time tags by default)."""
    from emotion.features.cleaning import prepare_lyrics
    from emotion.features.segments import lyric_segments

    return [s.text for s in lyric_segments(prepare_lyrics(raw).lines, spec=spec) if s.text.strip()]


class LyricsClassifier(nn.Module):
    """bert-cnn (top `train_layers` BERT layers trainable) + a linear head over the mean of segment logits."""

    def __init__(self, n_classes: int, train_layers: int = 0, encoder: BertCNN | None = None) -> None:
        super().__init__()
        self.encoder = encoder or BertCNN(freeze_encoder=True)
        n_layers = len(self.encoder.bert.encoder.layer)
        if not 0 <= train_layers <= n_layers:
            raise ValueError(f"train_layers must be 0..{n_layers}, not {train_layers}")
        self.train_layers, self.first = train_layers, n_layers - train_layers
        for layer in self.tuned():
            layer.requires_grad_(True)
        self.head = nn.Linear(self.encoder.out_dim, n_classes)

    def tuned(self) -> list[nn.Module]:
        return list(self.encoder.bert.encoder.layer[self.first :])

    def train(self, mode: bool = True) -> LyricsClassifier:
        super().train(mode)  # BertCNN keeps its frozen BERT in eval mode (no dropout) ...
        for layer in self.tuned():  # ... except the layers that learn
            layer.train(mode)
        return self

    def param_groups(self, lr: float, bert_lr: float) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = [{"params": [*self.encoder.convs.parameters(), *self.head.parameters()], "lr": lr}]
        if self.train_layers:
            groups.append({"params": [p for layer in self.tuned() for p in layer.parameters()], "lr": bert_lr})
        return groups

    def _layers(self, hidden: torch.Tensor, mask: torch.Tensor, layers: list[nn.Module]) -> torch.Tensor:
        """BERT transformer `layers` applied to token states [S, T, H] under the padding mask [S, T]."""
        from transformers.masking_utils import create_bidirectional_mask

        if layers:
            attn = create_bidirectional_mask(config=self.encoder.bert.config, inputs_embeds=hidden, attention_mask=mask)
            for layer in layers:
                out = layer(hidden, attn)
                hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    @torch.no_grad()
    def lower(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token states of `texts` after the frozen layers (the input of the first trained layer) and the mask."""
        was = self.training
        self.eval()
        batch = self.encoder.tokenize(texts)
        bert = self.encoder.bert
        hidden = bert.embeddings(input_ids=batch["input_ids"], token_type_ids=batch.get("token_type_ids"))
        hidden = self._layers(hidden, batch["attention_mask"], list(bert.encoder.layer[: self.first]))
        self.train(was)
        return hidden.float(), batch["attention_mask"]

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Frozen-part states [S, T, H] + mask [S, T] of one song's segments -> song logits [C]."""
        hidden = self._layers(hidden, mask, self.tuned())
        return self.head(self.encoder.features(hidden, mask)).mean(0)

    def encoder_state(self) -> dict[str, torch.Tensor]:
        """The encoder's trained weights: `convs.*` and the fine-tuned layers as `bert.encoder.layer.<i>.*`."""
        state = {f"convs.{k}": v for k, v in self.encoder.convs.state_dict().items()}
        for i, layer in enumerate(self.tuned(), self.first):
            state.update({f"bert.encoder.layer.{i}.{k}": v for k, v in layer.state_dict().items()})
        return {k: v.detach().contiguous().clone() for k, v in state.items()}


def song_states(model: LyricsClassifier, rows: list[tuple[bytes, int]], spec: Any = None, progress: bool = False) -> list[SongStates]:
    """The frozen part's token states of every usable song (unusable lyrics are left out, logged)."""
    from tqdm import tqdm

    out = []
    for raw, y in tqdm(rows, desc="lyrics token states", disable=not progress, leave=False):
        try:
            texts = lyric_texts(raw, spec)
        except Exception as exc:  # noqa: BLE001 - unusable lyrics are left out of training
            log.info("lyrics left out of training: %s", exc)
            continue
        if texts:
            hidden, mask = model.lower(texts)
            out.append(SongStates(hidden, mask, y))
    return out


def _draw(song: SongStates, n: int, gen: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to `n` of the song's segments, padding trimmed to the longest drawn."""
    idx = np.sort(gen.choice(len(song.mask), n, replace=False)) if len(song.mask) > n else np.arange(len(song.mask))
    mask = song.mask[idx]
    width = min(max(int(mask.sum(1).max()), 5), song.hidden.shape[1])  # at least the widest kernel
    return song.hidden[idx, :width], mask[:, :width]


@torch.no_grad()
def predict_songs(model: LyricsClassifier, songs: list[SongStates]) -> np.ndarray:
    """Class probabilities [n, C] from every segment of each song."""
    model.eval()
    return np.stack([torch.softmax(model(s.hidden, s.mask), -1).numpy() for s in songs])


def fit_classifier(model: LyricsClassifier, train: list[SongStates], val: list[SongStates], *, epochs: int = 20,
                   lr: float = 1e-3, bert_lr: float = 2e-5, patience: int = 6, batch_size: int = 16,
                   segments_per_step: int = SEGMENTS_PER_STEP, seed: int = 42, progress: bool = False) -> Any:
    """Train `model` on precomputed states with `emotion.train.fit_loop`; the best epoch's weights stay in it."""
    from emotion.evaluate import scores
    from emotion.train import fit_loop

    torch.manual_seed(seed)
    gen = np.random.default_rng(seed)
    n_classes = model.head.out_features
    labels = tuple(str(i) for i in range(n_classes))

    def batches() -> list[list[SongStates]]:
        order = gen.permutation(len(train))
        return [[train[i] for i in order[s : s + batch_size]] for s in range(0, len(order), batch_size)]

    def step(m: nn.Module, rows: list[SongStates]) -> tuple[torch.Tensor, int]:
        logits = torch.stack([m(*_draw(r, segments_per_step, gen)) for r in rows])
        return nn.functional.cross_entropy(logits, torch.tensor([r.y for r in rows])), len(rows)

    def evaluate(m: nn.Module) -> dict[str, Any]:
        return scores(np.array([r.y for r in val]), predict_songs(model, val), labels)

    return fit_loop(model, batches, step, evaluate if val else None, epochs=epochs, lr=lr, grad_clip=1.0,
                    params=model.param_groups(lr, bert_lr), early_stop=patience,
                    desc=f"lyrics encoder ({model.train_layers} BERT layers tuned)", progress=progress)


def train_lyrics_cnn(train: list[tuple[bytes, int]], val: list[tuple[bytes, int]], n_classes: int, out: str | Path, *,
                     spec: Any = None, epochs: int = 20, lr: float = 1e-3, bert_lr: float = 2e-5, train_layers: int = 0,
                     seed: int = 42, patience: int = 6, progress: bool = False) -> LyricsCNNResult:
    """Train the lyrics branch on (lyrics bytes, class index) songs; write the encoder's best weights to `out`."""
    from safetensors.torch import save_file

    from emotion.features.segments import SegmentSpec

    spec = spec or SegmentSpec()
    torch.manual_seed(seed)
    model = LyricsClassifier(n_classes, train_layers)
    tr, va = song_states(model, train, spec, progress), song_states(model, val, spec, progress)
    if not tr:
        raise ValueError("no usable lyrics to train the bert-cnn lyrics encoder on")
    result = fit_classifier(model, tr, va, epochs=epochs, lr=lr, bert_lr=bert_lr, patience=patience, seed=seed, progress=progress)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(model.encoder_state(), str(out))
    best = result.best_metrics.get("macro_f1") if va else None
    return LyricsCNNResult(out, result.best_epoch, None if best is None else float(best), len(tr), len(va), train_layers, result.history)
