"""`whisper` audio encoder: the encoder of OpenAI's Whisper (MIT) as `transformers`' `WhisperEncoder`, run offline.

Weights: `emotion.features.whisper_weights` (packaged CTranslate2 files, sha256 check, conversion, a local
checkpoint). Nothing is downloaded at run time.

Running. Whisper's log-Mel input (80 bands, 25 ms Hann window, 10 ms hop, log10 clamped at 8 below its maximum,
scaled as (x + 4) / 4) is computed on the clip's own length, not on a 30 s window; the positional embeddings are
cut to the number of frames (one per 20 ms after the stride-2 convolution), and only the first `layer` blocks
run. `layer=0` is the output of the convolutional stem plus positions; `layer=n_layers` adds the final layer norm
(what Whisper's decoder sees). Longer inputs than 30 s run in consecutive 30 s chunks.

Segment vector (`encode`): mean and standard deviation over the segment's frames of the chosen layer's hidden
states, `2 * d_model` values (768 for tiny.en, 1024 for base). `frames` gives the hidden states themselves.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from emotion.features.base import EncoderError
from emotion.features.whisper_weights import CONVERSION_VERSION, MAX_FRAMES, N_MELS, WHISPER_MODELS, load_checkpoint, load_packaged

if TYPE_CHECKING:
    from catalog.store import FileStore

log = logging.getLogger(__name__)

SR = 16000
N_FFT = 400
HOP = 160
CHUNK_S = 30
# ---------------------------------------------------------------- input and running


@lru_cache(maxsize=2)
def _mel_filters(n_mels: int = N_MELS) -> torch.Tensor:
    import librosa

    return torch.from_numpy(librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=n_mels)).float()


def log_mel(y: np.ndarray | torch.Tensor, n_mels: int = N_MELS) -> torch.Tensor:
    """Whisper's log-Mel input of 16 kHz audio: [n_mels, len(y) // 160] float32 (as whisper.audio.log_mel_spectrogram)."""
    audio = torch.as_tensor(np.asarray(y, dtype=np.float32))
    stft = torch.stft(audio, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True)
    power = stft[..., :-1].abs() ** 2
    spec = torch.clamp(_mel_filters(n_mels) @ power, min=1e-10).log10()
    spec = torch.maximum(spec, spec.max() - 8.0)
    return (spec + 4.0) / 4.0


def quantize_int8(encoder: Any) -> Any:
    """The encoder with its linear layers dynamically int8-quantized (weights int8, activations quantized per call;
    CPU only): about 1.5x faster to layer 2, pooled hidden states within about 2 % of float32."""
    import warnings

    with warnings.catch_warnings():  # torch.ao's eager quantization warns that it moves to torchao; it still works
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(encoder, {torch.nn.Linear}, dtype=torch.qint8)


def encoder_states(encoder: Any, mel: torch.Tensor, layers: tuple[int, ...]) -> dict[int, torch.Tensor]:
    """The hidden states [1, ceil(T / 2), d_model] after each of `layers` blocks of a `WhisperEncoder`, from one pass
    over the log-Mel `mel` [n_mels, T] (T <= 3000; positional embeddings cut to the frames). Layer 0 is the stem
    (convs + positions); the final layer norm applies only after the model's last block (`config.encoder_layers`).
    Differentiable: the inference runner wraps it in `inference_mode`, fine-tuning calls it as is."""
    x = torch.nn.functional.gelu(encoder.conv1(mel.unsqueeze(0)))
    x = torch.nn.functional.gelu(encoder.conv2(x)).transpose(1, 2)  # [1, T', d]
    x = x + encoder.embed_positions.weight[: x.shape[1]]
    last = int(encoder.config.encoder_layers)
    out: dict[int, torch.Tensor] = {}
    for i in range(max(layers) + 1):
        if i:
            x = encoder.layers[i - 1](x, None)
        if i in layers:
            out[i] = encoder.layer_norm(x) if i == last else x
    return out


class WhisperEncoderRunner:
    """A `WhisperEncoder` run on inputs of any length, stopping after `layers` blocks."""

    def __init__(self, encoder: Any, layers: int, device: str = "cpu") -> None:
        self.encoder = encoder.to(device)
        self.n_layers = len(encoder.layers)
        if not 0 <= layers <= self.n_layers:
            raise EncoderError(f"Whisper layer {layers} out of range 0..{self.n_layers}")
        self.layers = layers
        self.device = device
        self.d_model = int(encoder.config.d_model)
        self.n_mels = int(encoder.config.num_mel_bins)

    @torch.inference_mode()
    def run_mel(self, mel: torch.Tensor) -> torch.Tensor:
        """[n_mels, T] log-Mel (T <= 3000) -> hidden states [ceil(T / 2), d_model] after `layers` blocks."""
        return self.run_mel_layers(mel, (self.layers,))[self.layers]

    @torch.inference_mode()
    def run_mel_layers(self, mel: torch.Tensor, layers: tuple[int, ...]) -> dict[int, torch.Tensor]:
        """The hidden states after each of `layers` blocks (each <= the runner's `layers`), from one pass."""
        return {i: x[0].float() for i, x in encoder_states(self.encoder, mel.to(self.device), layers).items()}

    def frames(self, y: np.ndarray) -> np.ndarray:
        """Hidden states of 16 kHz audio, one row per 20 ms: float32 [frames, d_model]; 30 s chunks beyond 30 s."""
        return self.frames_of_mel(log_mel(y, self.n_mels))

    def frames_of_mel(self, mel: torch.Tensor) -> np.ndarray:
        """`frames` of an already computed log-Mel [n_mels, T] (several encoders can share one)."""
        if mel.shape[1] < 2:
            raise EncoderError("audio too short for Whisper (under 20 ms)")
        chunk = 2 * MAX_FRAMES
        parts = [self.run_mel(mel[:, i : i + chunk]) for i in range(0, mel.shape[1], chunk) if mel.shape[1] - i >= 2]
        return torch.cat(parts).cpu().numpy()


class WhisperEncoderFeatures:
    """AudioEncoder "whisper": mean and std over frames of one encoder layer's hidden states, per segment."""

    name = "whisper"
    sample_rate = SR

    def __init__(self, model: str | None = None, layer: int | None = None, *, checkpoint: str | Path | None = None,
                 device: str | None = None, store: FileStore | None = None, int8: bool = False) -> None:
        from catalog.settings import get_settings

        settings = get_settings()
        checkpoint = checkpoint if checkpoint is not None else settings.whisper_checkpoint
        self.model = model or settings.whisper_model
        if checkpoint:
            encoder = load_checkpoint(checkpoint)
            self.model = f"local:{Path(str(checkpoint)).name}"
            self.source = hashlib.sha256(str(Path(str(checkpoint)).resolve()).encode()).hexdigest()
        else:
            encoder = load_packaged(self.model, store)
            self.source = WHISPER_MODELS[self.model].sha256
        n_layers = len(encoder.layers)
        if int8:
            encoder = quantize_int8(encoder)
        self.layer = settings.whisper_layer if layer is None else layer
        self.layer = min(self.layer, n_layers)
        self.runner = WhisperEncoderRunner(encoder, self.layer, device or "cpu")
        self.d_model = self.runner.d_model
        self.dim = 2 * self.d_model
        self.version = f"{self.model}.L{self.layer}.{self.source[:12]}.{CONVERSION_VERSION}" + (".int8" if int8 else "")
        self._lock = threading.Lock()

    def frames(self, y: np.ndarray) -> np.ndarray:
        """[frames, d_model] hidden states of the configured layer (20 ms per frame)."""
        with self._lock:
            return self.runner.frames(y)

    def version_at(self, layer: int) -> str:
        """The cache version of this encoder at another layer (what `WhisperEncoderFeatures(model, layer)` has)."""
        return f"{self.model}.L{layer}.{self.source[:12]}.{CONVERSION_VERSION}"

    def encode_layers(self, segments: list[np.ndarray], layers: tuple[int, ...]) -> dict[int, np.ndarray]:
        """`encode` at each of `layers` (<= this encoder's layer) from one pass per segment (segments under 30 s)."""
        out = {k: np.zeros((len(segments), self.dim), dtype=np.float32) for k in layers}
        for i, seg in enumerate(segments):
            mel = log_mel(seg, self.runner.n_mels)
            if mel.shape[1] < 2 or mel.shape[1] > 2 * MAX_FRAMES:
                raise EncoderError("encode_layers takes segments of 20 ms to 30 s")
            with self._lock:
                states = self.runner.run_mel_layers(mel, layers)
            for k, h in states.items():
                out[k][i, : self.d_model] = h.mean(0).cpu().numpy()
                out[k][i, self.d_model :] = h.std(0, unbiased=False).cpu().numpy()
        return out

    def encode(self, segments: list[np.ndarray]) -> np.ndarray:
        """float32 [len(segments), 2 * d_model]: mean then std over each segment's frames."""
        out = np.zeros((len(segments), self.dim), dtype=np.float32)
        for i, seg in enumerate(segments):
            h = self.frames(seg)
            out[i, : self.d_model] = h.mean(0)
            out[i, self.d_model :] = h.std(0)
        return out
