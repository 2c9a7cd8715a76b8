"""The encoders of the Whisper-only probe models (`emotion.speech.model.STACKS`; the default `whisper-tiny-base`).

`WhisperStack` runs several frozen packaged Whisper encoders on one shared log-Mel of the clip (tiny.en and base
take the same 80-band input), each stopped after its own layer, and concatenates their hidden states per 20 ms frame
(384 + 512 = 896 values for tiny.en and base). It has the encoder interface of `WhisperEncoderFeatures` (name,
version, frames), so the feature store caches its frames like any encoder's. Why this pair: on speakers no run
heard (the benchmark's 3 speaker-grouped folds and leave-one-speaker-out on the merged EmoDB + RAVDESS dev
manifest), the logistic regression on mean + std of both layer-2 states beat tiny.en's or base's layer 2 alone,
adjacent layers, frame normalisation, augmentation and trained heads; per-speaker centring scored higher only with an
emotion-balanced history, which a listener does not have (README, `bench/speech_probe_study.py`).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np

from emotion.features.base import EncoderError

if TYPE_CHECKING:
    from catalog.store import FileStore


class WhisperStack:
    """Frozen Whisper encoders [(packaged model, layer), ...] on one log-Mel: frames (T, sum of d_model)."""

    name = "whisper"
    sample_rate = 16000

    def __init__(self, specs: tuple[tuple[str, int], ...], store: FileStore | None = None, int8: bool = False) -> None:
        from emotion.features.whisper import WhisperEncoderFeatures

        self.specs = tuple((str(m), int(layer)) for m, layer in specs)
        # packaged weights only: a local checkpoint setting (MUSICREC_WHISPER_CHECKPOINT) replaces one encoder, not a pair
        self.encoders = [WhisperEncoderFeatures(m, layer, checkpoint="", store=store, int8=int8) for m, layer in self.specs]
        mels = {e.runner.n_mels for e in self.encoders}
        if len(mels) != 1:
            raise EncoderError(f"Whisper encoders {self.specs} take different log-Mel inputs ({sorted(mels)} bands)")
        self.n_mels = mels.pop()
        self.model = "+".join(e.model for e in self.encoders)
        self.layer = max(e.layer for e in self.encoders)
        self.d_model = sum(e.d_model for e in self.encoders)
        self.dim = 2 * self.d_model
        self.version = "+".join(e.version for e in self.encoders)
        self._lock = threading.Lock()

    def frames(self, y: np.ndarray) -> np.ndarray:
        """[frames, d_model] hidden states of every encoder side by side (20 ms per frame; log-Mel computed once)."""
        from emotion.features.whisper import log_mel

        mel = log_mel(y, self.n_mels)
        with self._lock:
            parts = [e.runner.frames_of_mel(mel) for e in self.encoders]
        n = min(len(p) for p in parts)
        return np.concatenate([p[:n] for p in parts], axis=1)


def encoder_for(name: str, store: FileStore | None = None):  # type: ignore[no-untyped-def]
    """The Whisper encoder model `name` reads: its `WhisperStack`, or the configured `WhisperEncoderFeatures`
    (settings whisper_model, whisper_layer) for `whisper-hsf-crnn`; None for the models without Whisper."""
    from emotion.features.whisper import WhisperEncoderFeatures
    from emotion.speech.model import STACKS

    if name in STACKS:
        return WhisperStack(STACKS[name], store)
    return WhisperEncoderFeatures(store=store) if name.startswith("whisper") else None
