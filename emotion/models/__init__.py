"""Song emotion models; `REGISTRY` maps each `--model` name to its class and default hyperparameters."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from emotion.models.base import SongModel
from emotion.models.ensemble import ProbeEnsemble
from emotion.models.fusion import FeatureAverage, FeatureCross, LateFusion
from emotion.models.joint import JointMTL
from emotion.models.mlp import AudioOnly, ConcatMLP, LyricsOnly, PooledHead, PooledLyricsHead
from emotion.models.probe_fusion import ProbeFusion
from emotion.models.sequence import CNNLSTM, LSTMAttention
from emotion.models.songgatnet import SongGATNet

# Training settings of the recipes below: the ones a model's own recipe may set (the benchmark keeps its
# shared feature settings and epoch budget, and applies only these).
RECIPE_TRAINING_KEYS: frozenset[str] = frozenset({"lr", "weight_decay", "batch_size", "focal_gamma", "class_weights",
                                                  "plateau_patience", "grad_clip", "label_smoothing"})
# the attention-LSTM baseline's own recipe (not SongGATNet's focal loss at lr 5e-5): plain cross-entropy,
# Adam at 1e-3, batch 16, no weight decay, clipping at 5 as usual for LSTMs
LSTM_RECIPE: dict[str, Any] = {"lr": 1e-3, "batch_size": 16, "weight_decay": 0.0, "focal_gamma": 0.0,
                               "class_weights": {}, "grad_clip": 5.0}
# pooled-mlp's recipe (the shipped default until the probe ensemble): mean+std of musicnn's 3 s patch vectors
# (penultimate layer + 50 MSD tags) and an MLP head trained by fit_loop.
DEFAULT_RECIPE: dict[str, Any] = {
    "audio_encoder": "musicnn",
    "segment_s": 3.0,
    "lr": 1e-3,
    "weight_decay": 1e-3,
    "batch_size": 32,
    "epochs": 80,
    "early_stop": 20,
    "plateau_patience": 8,
    "focal_gamma": 0.0,
    "class_weights": {},
}

# `musicrec train emotion --model default`: the song model the project ships as its best (README, docs/emotion.md):
# per 3 s segment musicnn (250) ++ Whisper tiny.en layer 2 (mean ++ std of its frames, 768) ++ Whisper base layer 2
# (1024; the speech default's two Whisper layers); one logistic-regression probe per encoder on the song's mean ++
# std, probabilities averaged, each C and the weights by inner artist-grouped CV; chosen by artist-grouped 5-fold CV
# on the q4 and mirex dev sets (bench/probe_ensemble_cv.py; README, "Whisper base layer 2 as a third part").
ENSEMBLE_RECIPE: dict[str, Any] = {
    "audio_encoder": "musicnn+whisper-tiny.en-l2+whisper-base-l2",
    "segment_s": 3.0,
    "standardize": False,  # each probe standardises its pooled vector itself
}

# `probe-fusion`, the closed-form bimodal baseline: the shipped audio probes + a lyrics probe on the pooled sentence
# vectors of all-MiniLM-L6-v2 and all-mpnet-base-v2 side by side (384 + 768; no CNN, nothing trained but the probes).
# MPNet beside MiniLM: NJU 0.577 against 0.553 (fold seeds 42 / 7 / 13, higher on each), mirex lyrics alone 0.441
# against 0.428 (README, "A second sentence encoder").
# Time-tagged lyrics in the default 10 s windows, not the audio's 3 s ones (`lyrics_segment_s` 0): the probe averages
# the windows' sentence vectors, and a 3 s window holds a line or a fragment of one. NJU, fold seeds 42 / 7 / 13:
# 0.585 / 0.583 / 0.563 against 0.553 / 0.540 / 0.545 with 3 s windows (README, "Lyrics in 10 s windows").
PROBE_FUSION_RECIPE: dict[str, Any] = {**ENSEMBLE_RECIPE, "lyrics_encoder": "minilm+mpnet", "lyrics_cnn_epochs": 0, "lyrics_segment_s": 0.0}


# SongGATNet for a few hundred training songs (mirex-bimodal: ~370 per split), chosen on validation macro-F1 over 3
# seeds among three recipes (docs/emotion.md, "SongGATNet for a few hundred songs"): half the width (64-d nodes, 4
# heads, a 64-unit head), dropout 0.2 on the node inputs, and the closed-form probes as a frozen prior (`prior`:
# ProbeFusion fitted on the training songs before the epochs, its log-probabilities added to the logits, the head's
# last layer starting at zero), so the graph learns a correction to the probes instead of everything from 370 songs;
# cross-entropy with label smoothing 0.1 (the MIREX clusters overlap, their labels are noisy), Adam 3e-4, batch 16.
# The ablations use the same parameters and recipe; `songgatnet-paper` keeps the paper's (focal loss, lr 5e-5, 128-d
# nodes, 8 heads); `probe: True` (a trained residual linear probe instead of the prior) was the third recipe.
GAT_PARAMS: dict[str, Any] = {"hidden": 64, "heads": 4, "head_hidden": 64, "dropout": 0.5, "in_dropout": 0.2, "prior": True}
GAT_RECIPE: dict[str, Any] = {"lr": 3e-4, "batch_size": 16, "weight_decay": 1e-3, "focal_gamma": 0.0, "class_weights": {},
                              "label_smoothing": 0.1, "plateau_patience": 8}

# the paper's own training recipe (TrainConfig's defaults), pinned for `songgatnet-paper` so that a shared recipe
# given to the other models (bench/emotion.py --recipe) never changes it
PAPER_RECIPE: dict[str, Any] = {"lr": 5e-5, "batch_size": 8, "weight_decay": 0.01, "focal_gamma": 2.0,
                                "class_weights": {"happy": 1.3, "angry": 1.0, "sad": 1.0, "relaxed": 1.3},
                                "label_smoothing": 0.0, "plateau_patience": 15}


@dataclass(frozen=True)
class ModelSpec:
    cls: type[SongModel]
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    recipe: dict[str, Any] = field(default_factory=dict)  # TrainConfig overrides of the model's own training recipe


REGISTRY: dict[str, ModelSpec] = {
    "songgatnet": ModelSpec(SongGATNet, GAT_PARAMS, "heterogeneous graph, 2-layer GAT (4 heads, 1 head), mean+max readout, "
                            "plus the frozen closed-form probes as a prior (small-data recipe)", GAT_RECIPE),
    "homogeneous": ModelSpec(SongGATNet, {**GAT_PARAMS, "typed": False, "graph": "homogeneous"}, "ablation: one node type, no edge types",
                             GAT_RECIPE),
    "no-cross": ModelSpec(SongGATNet, {**GAT_PARAMS, "graph": "no-cross"}, "ablation: no cross-modal edges", GAT_RECIPE),
    "single-layer": ModelSpec(SongGATNet, {**GAT_PARAMS, "layers": 1}, "ablation: first GAT layer only", GAT_RECIPE),
    "sparse-gat": ModelSpec(SongGATNet, {**GAT_PARAMS, "sparse_threshold": 0.55, "sparse_k": 12}, "edges with cosine > 0.55, at most 12 per node",
                            GAT_RECIPE),
    "songgatnet-paper": ModelSpec(SongGATNet, {}, "the paper's SongGATNet and recipe: 128-d nodes, GAT 8 heads then 1, focal loss, lr 5e-5",
                                  PAPER_RECIPE),
    "concat-mlp": ModelSpec(ConcatMLP, {}, "song vectors concatenated, MLP 1024-512-256"),
    "cnn-lstm": ModelSpec(CNNLSTM, {}, "2-D CNN on log-Mel + BERT tokens, 2-layer BiLSTM"),
    "lstm-attention": ModelSpec(LSTMAttention, {}, "62-d LLD frames, 2 LSTM layers, additive attention", LSTM_RECIPE),
    "late-fusion": ModelSpec(LateFusion, {}, "per-modality classifiers, learned decision weights"),
    "feature-cross": ModelSpec(FeatureCross, {}, "(v_a, v_t, v_a*v_t) fusion"),
    "feature-average": ModelSpec(FeatureAverage, {}, "(v_a + v_t)/2 fusion"),
    "joint-mtl": ModelSpec(JointMTL, {}, "private/shared layers, self-attention, valence+arousal auxiliary tasks"),
    "audio-only": ModelSpec(AudioOnly, {}, "audio segment vectors + MLP"),
    "pooled-mlp": ModelSpec(PooledHead, {}, "mean+std of audio segment vectors (3 s musicnn patches) + MLP", DEFAULT_RECIPE),
    "probe-ensemble": ModelSpec(ProbeEnsemble, {}, "musicnn + Whisper tiny.en layer 2 + Whisper base layer 2 (3 s segments): a "
                                "logistic-regression probe on each encoder's pooled mean+std, probabilities averaged (weights by inner grouped CV)",
                                ENSEMBLE_RECIPE),
    "probe-fusion": ModelSpec(ProbeFusion, {"lyrics_pool": "mean"}, "late fusion of frozen probes: the probe ensemble on audio + a logistic-regression "
                              "probe on the mean MiniLM + MPNet sentence vectors of the lyrics, probabilities averaged (weight by inner grouped CV)",
                              PROBE_FUSION_RECIPE),
    "lyrics-only": ModelSpec(LyricsOnly, {}, "lyric segment vectors + CNN (3, 4, 5)"),
    "pooled-lyrics": ModelSpec(PooledLyricsHead, {}, "mean+std of lyric segment vectors (bert-cnn, 10 s windows) + MLP",
                               {**DEFAULT_RECIPE, "segment_s": 0.0}),
}


# `--model default` names the song model the project ships as its best (its recipe: ENSEMBLE_RECIPE)
DEFAULT_MODEL = "probe-ensemble"
# ... and for a manifest whose songs mostly have audio and lyrics, the closed-form late fusion of the same audio probes
# with a lyrics probe: on mirex-bimodal it beat the audio probes alone on each of 5 artist-aware splits (+1.8 to +4.4
# points; docs/emotion.md), while no trained fusion model beat it beyond the seed spread (feature-average +1.0 over 8
# seeds, ahead in 4 splits and behind in 3; SongGATNet below it)
BIMODAL_DEFAULT_MODEL = "probe-fusion"


def default_for(items: Iterable[Any]) -> str:
    """The default song model for a manifest's items (objects with `audio` and `lyrics`, None when missing):
    BIMODAL_DEFAULT_MODEL when at least half of them have lyrics (with audio: both probes; lyrics only, as NJU: its
    lyrics probe alone), else DEFAULT_MODEL (audio only)."""
    rows = [it.lyrics is not None for it in items]
    return BIMODAL_DEFAULT_MODEL if rows and 2 * sum(rows) >= len(rows) else DEFAULT_MODEL


def resolve(name: str) -> str:
    """`default` -> DEFAULT_MODEL; any other name unchanged."""
    return DEFAULT_MODEL if name == "default" else name


class UnknownModel(KeyError):
    def __str__(self) -> str:
        return f"unknown model {self.args[0]!r}; choose one of {', '.join(REGISTRY)}"


def spec(name: str) -> ModelSpec:
    if name not in REGISTRY:
        raise UnknownModel(name)
    return REGISTRY[name]


def model_params(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The registered defaults of `name` updated with `overrides`."""
    return {**spec(name).params, **(overrides or {})}


def build_model(name: str, dims: dict[str, int], params: dict[str, Any] | None = None) -> SongModel:
    """Instantiate model `name` for feature widths `dims` with registered defaults plus `params`."""
    merged = model_params(name, params)
    model = spec(name).cls(dims, **merged)
    model.n_classes = int(merged.get("n_classes", 4))
    return model


__all__ = [
    "BIMODAL_DEFAULT_MODEL",
    "DEFAULT_MODEL",
    "DEFAULT_RECIPE",
    "ENSEMBLE_RECIPE",
    "GAT_PARAMS",
    "GAT_RECIPE",
    "PAPER_RECIPE",
    "RECIPE_TRAINING_KEYS",
    "REGISTRY",
    "resolve",
    "ModelSpec",
    "ProbeEnsemble",
    "ProbeFusion",
    "SongModel",
    "UnknownModel",
    "build_model",
    "model_params",
    "spec",
]
