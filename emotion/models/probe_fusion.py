"""Late fusion of frozen-encoder probes across modalities: the strong, closed-form bimodal baseline.

`ProbeFusion` holds two `ProbeEnsemble`s: the audio one (one logistic-regression probe per part of the combined
audio encoder, e.g. musicnn and Whisper tiny.en and base layer 2, as the shipped model) and a lyrics probe on the pooled
lyric segments' *sentence vectors*: the first `lyrics_dim` values of each lyric segment, pooled by `lyrics_pool`.
With the registered recipe's lyrics encoder, "minilm+mpnet" (the sentence vectors of all-MiniLM-L6-v2 and
all-mpnet-base-v2 side by side), that is all 1152 of them (`emotion.runs.with_parts` sets it from the encoder's name);
with bert-cnn, 384: the mean-pooled MiniLM vector (the CNN half is left out, so the probe needs no trained CNN).
`lyrics_pool`: the registered `probe-fusion` takes
their mean ("mean": a song has about 8 windows of 10 s, whose std is noise; docs/emotion.md), the class default is
mean ++ std (what artifacts written before the option hold, and SongGATNet's prior). Class probabilities are mixed as
`(1 - w) p_audio + w p_lyrics`; a song without lyrics gets `p_audio`, one without audio `p_lyrics`. Each probe's C
(and the audio parts' weight) come from `ProbeEnsemble.fit`'s inner artist-grouped CV; `w` minimises the log-loss of
out-of-fold probabilities of the same kind of inner folds over the songs that have both. No epochs, no test data.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import torch

from emotion.data import SongBatch, SongSample, collate
from emotion.models.base import SongModel, present
from emotion.models.ensemble import ProbeEnsemble, inner_folds, mix_weights

log = logging.getLogger(__name__)


class ProbeFusion(SongModel):
    """Audio probe ensemble + lyrics sentence-vector probe, probabilities averaged with the lyrics weight `w_lyrics`.

    forward returns log-probabilities (softmax of them is the mixture itself).
    """

    uses = frozenset({"audio", "lyrics"})

    # an artifact written before `lyrics_pool` existed pooled the lyrics as mean ++ std (emotion.artifact.load)
    legacy_params: ClassVar[dict[str, Any]] = {"lyrics_pool": "mean+std"}

    def __init__(self, dims: dict[str, int], parts: list[int] | tuple[int, ...] = (), lyrics_dim: int = 384, n_classes: int = 4,
                 lyrics_pool: str = "mean+std") -> None:
        super().__init__()
        self.lyrics_pool = lyrics_pool
        self.n_classes = n_classes
        self.dims = {"audio": int(dims["audio"]), "lyrics": int(dims["lyrics"])}
        self.lyrics_dim = min(int(lyrics_dim), int(dims["lyrics"]))
        no_audio = int(dims["audio"]) <= 1  # modality_dims' placeholder: no song of this data set has audio
        self.audio = ProbeEnsemble({"audio": dims["audio"]}, () if no_audio else parts, n_classes)
        self.lyrics = ProbeEnsemble({"audio": self.lyrics_dim}, (), n_classes, lyrics_pool)  # reads the lyrics view (below)
        self.register_buffer("w_lyrics", torch.tensor(0.5))

    def lyrics_view(self, batch: SongBatch) -> SongBatch:
        """The batch as the lyrics probe reads it: its sentence vectors in the audio slot."""
        return replace(batch, audio=batch.lyrics[..., : self.lyrics_dim], audio_mask=batch.lyrics_mask)

    def forward(self, batch: SongBatch) -> torch.Tensor:
        pa, pl = self.audio(batch).exp(), self.lyrics(self.lyrics_view(batch)).exp()
        w = self.w_lyrics
        assert isinstance(w, torch.Tensor)
        wa, wl = (1 - w) * present(batch.audio_mask), w * present(batch.lyrics_mask)
        total = (wa + wl).clamp(min=1e-8)
        return torch.log(((wa / total)[:, None] * pa + (wl / total)[:, None] * pl).clamp(min=1e-12))

    # --- fitting (scikit-learn, through ProbeEnsemble.fit) ------------------------------------------------

    def _lyrics_samples(self, samples: list[SongSample]) -> list[SongSample]:
        return [replace(s, audio=s.lyrics[:, : self.lyrics_dim]) for s in samples if s.lyrics is not None]

    def fit(self, samples: list[SongSample], seed: int = 42, chosen: dict[str, Any] | None = None) -> dict[str, Any]:
        """Fit both probes on `samples`; without `chosen`, their settings and the lyrics weight by inner grouped CV.
        Returns {"audio": .., "lyrics": .., "w_lyrics": w} (a previous return value refits with those choices)."""
        with_audio, with_lyrics = [s for s in samples if s.audio is not None], self._lyrics_samples(samples)
        if not with_audio and not with_lyrics:
            raise ValueError("no training song has audio or lyrics")
        ca = self.audio.fit(with_audio, seed, None if chosen is None else chosen["audio"]) if with_audio else {}
        cl = self.lyrics.fit(with_lyrics, seed, None if chosen is None else chosen["lyrics"]) if with_lyrics else {}
        if not (with_audio and with_lyrics):  # one modality: its probe alone
            w = 0.0 if with_audio else 1.0
        else:
            w = self.choose_weight(samples, ca, cl, seed) if chosen is None else float(chosen["w_lyrics"])
        self.w_lyrics.fill_(w)  # type: ignore[operator]  # a registered buffer (Tensor)
        log.info("probe fusion: audio %s, lyrics %s, lyrics weight %.2f", ca, cl, w)
        return {"audio": ca, "lyrics": cl, "w_lyrics": w}

    def choose_weight(self, samples: list[SongSample], ca: dict[str, Any], cl: dict[str, Any], seed: int) -> float:
        """The lyrics weight minimising the log-loss of out-of-fold mixtures on the songs with both modalities."""
        both = [s for s in samples if s.audio is not None and s.lyrics is not None]
        y = np.array([s.y for s in both])
        folds = inner_folds(y, np.array([s.group or s.id for s in both]), seed)
        if not folds:
            return 0.5
        pa, pl = np.zeros((len(both), self.n_classes)), np.zeros((len(both), self.n_classes))
        d_audio = sum(self.audio.parts)
        for tr, va in folds:
            audio = ProbeEnsemble({"audio": d_audio}, self.audio.parts, self.n_classes)
            lyrics = ProbeEnsemble({"audio": self.lyrics_dim}, (), self.n_classes, self.lyrics_pool)
            audio.fit([both[i] for i in tr], seed, ca)
            lyrics.fit(self._lyrics_samples([both[i] for i in tr]), seed, cl)
            held = [both[i] for i in va]
            with torch.no_grad():
                pa[va] = audio(collate(held, self.dims)).exp().numpy()
                pl[va] = lyrics(collate(self._lyrics_samples(held), {**self.dims, "audio": self.lyrics_dim})).exp().numpy()
        present = np.unique(y)  # mix_weights scores the classes present (columns in that order), rows renormalised
        mix, _ = mix_weights([pa[:, present], pl[:, present]], y)
        return float(mix[1])
