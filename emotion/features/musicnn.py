"""`musicnn` audio encoders: a PyTorch port of musicnn's MSD_musicnn and MTT_musicnn (Pons & Serra 2019, ISC licence).

Both checkpoints share one architecture, musicnn's models.py `build_musicnn` with 64 mid-end filters, 200 back-end
units and 50 tags (`define_model` builds MSD_musicnn and MTT_musicnn with the same arguments); only the weights and
the tag vocabulary differ (CHECKPOINTS):
- input: 3 s patches of 187 frames of log-compressed 96-band Mel spectrogram (16 kHz, n_fft 512, hop 256,
  `log10(10000 * mel + 1)` after a float16 cast, exactly as musicnn's `batch_data`), batch-normalised;
- front-end: timbral convs (7 x 38 and 7 x 67 over time x frequency, 204 filters each) and temporal convs
  (128/64/32 x 1, 51 filters each, TF 'same' padding), each ReLU -> batch norm -> max over frequency;
- mid-end: three 7-tap convs over the 561 front-end channels (64 filters), the 2nd and 3rd residual;
- back-end: max and mean over time of [front-end | mid-end] (753 x 2, interleaved as TF flattens them),
  batch norm, dense 200 + ReLU + batch norm (the "penultimate" layer), dense 50 -> sigmoid tag probabilities.

Weights: emotion/features/weights/musicnn_msd.safetensors (Million Song Dataset tags) and musicnn_mtt.safetensors
(MagnaTagATune tags), converted from the checkpoints shipped in the `musicnn` PyPI package by
scripts/convert_musicnn.py --model MSD_musicnn|MTT_musicnn (licence in weights/LICENSE-musicnn.md); the test
compares this port with TensorFlow outputs the script recorded for each.

Segment vector (250-d): the penultimate embedding averaged over the segment's 3 s patches (200) followed
by the averaged 50 tag probabilities (MSD_LABELS, which include sad, happy, Mellow, chill, for "musicnn";
MTT_LABELS, which include slow, fast, loud, quiet, soft, for "musicnn-mtt").
Patches are non-overlapping, from the start of the segment; a remainder longer than half a patch adds one
patch ending at the segment's end; segments shorter than one patch are repeat-padded (musicnn's training
setting `pad_short: repeat-pad`).
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import librosa
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from emotion.features.base import EncoderError

SR = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
PATCH_FRAMES = 187
BN_EPS = 1e-3  # tf.compat.v1.layers.batch_normalization default
POOLED = 2 * (2 * 204 + 3 * 51 + 3 * 64)  # max and mean over time of the 753 front-end + mid-end channels
TIME_BLOCK = 32  # output frames per timbral conv call: a patch's [204, F, 32] map fits a core's L2 cache
FREQ_BLOCK = 16  # frequency bands per temporal conv call, for the same reason
CPU_BATCH = 4  # patches per forward on a CPU: with the blocks above, small batches keep the maps in cache

MSD_LABELS: tuple[str, ...] = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s", "alternative rock", "jazz",
    "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul", "indie rock", "Mellow", "electronica",
    "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic",
    "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy",
    "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop", "sad", "House", "happy",
)
MTT_LABELS: tuple[str, ...] = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano", "ambient", "beat",
    "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing", "vocals", "no vocals", "harpsichord",
    "loud", "quiet", "flute", "woman", "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic",
    "choir", "voice", "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice", "weird",
    "country", "metal", "female voice", "choral",
)
# checkpoint -> (encoder name, weights file, tag labels in the order of the output layer)
CHECKPOINTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "msd": ("musicnn", "musicnn_msd.safetensors", MSD_LABELS),
    "mtt": ("musicnn-mtt", "musicnn_mtt.safetensors", MTT_LABELS),
}


def _checkpoint(checkpoint: str) -> tuple[str, str, tuple[str, ...]]:
    if checkpoint not in CHECKPOINTS:
        raise EncoderError(f"unknown musicnn checkpoint {checkpoint!r}; choose one of {', '.join(CHECKPOINTS)}")
    return CHECKPOINTS[checkpoint]


def weights_path(checkpoint: str = "msd") -> Path:
    """The shipped weights file of `checkpoint` ("msd" or "mtt")."""
    return Path(str(files("emotion.features") / "weights" / _checkpoint(checkpoint)[1]))


class _ConvBN(nn.Module):
    """conv -> ReLU -> batch norm (musicnn's order), 2-D or 1-D."""

    def __init__(self, conv: nn.Module, channels: int, dims: int) -> None:
        super().__init__()
        self.conv = conv
        self.bn = (nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d)(channels, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(torch.relu(self.conv(x)))

    def forward_max_freq(self, x: torch.Tensor) -> torch.Tensor:
        """`forward(x).amax(dim=3)` for the 2-D front-end: [B, 1, T, F] -> [B, C, T] (the plain order, any mode)."""
        return self.forward(x).amax(dim=3)

    def max_freq_blocked(self, xt: torch.Tensor) -> torch.Tensor:
        """The same numbers from the frequency-major input [B, 1, F, T] with less work (eval mode only).

        In eval mode batch norm is a per-channel affine map: increasing where its scale is positive, decreasing
        where negative; ReLU is non-decreasing. So the max over frequency is taken on the conv output first (the
        min where the scale is negative: the max of the conv with that channel's kernel and bias negated, negated
        back), and ReLU + batch norm run on the [B, C, T] result. The conv runs in blocks - TIME_BLOCK output
        frames of a timbral filter, FREQ_BLOCK bands of a temporal one - so each block's [B, C, F, T] map stays in
        the core's cache while it is reduced; the blocks do not change a single value.
        """
        bn = self.bn
        running_var = bn.running_var
        assert running_var is not None  # built with track_running_stats: eval mode uses the running statistics
        sign = torch.where(bn.weight / torch.sqrt(running_var + bn.eps) >= 0, 1.0, -1.0)
        weight, bias = self.conv.weight, self.conv.bias
        assert isinstance(weight, torch.Tensor) and isinstance(bias, torch.Tensor)  # a conv layer with a bias
        w = (weight * sign[:, None, None, None]).transpose(2, 3)  # [C, 1, k_freq, k_time]
        b = bias * sign
        k_freq, k_time = w.shape[2], w.shape[3]
        if k_freq > 1:  # timbral: blocks of output frames (k_time - 1 frames of overlap)
            t_out = xt.shape[3] - k_time + 1
            pooled = torch.cat([F.conv2d(xt[..., t0 : t0 + TIME_BLOCK + k_time - 1], w, b).amax(dim=2)
                                for t0 in range(0, t_out, TIME_BLOCK)], dim=2)
        else:  # temporal: blocks of frequency bands, max of the blocks' maxima
            blocks = [F.conv2d(xt[:, :, f0 : f0 + FREQ_BLOCK], w, b).amax(dim=2) for f0 in range(0, xt.shape[2], FREQ_BLOCK)]
            pooled = blocks[0]
            for blk in blocks[1:]:
                pooled = torch.maximum(pooled, blk)
        pooled = pooled * sign[None, :, None]
        return F.batch_norm(torch.relu(pooled), bn.running_mean, running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


def _same_pad(k: int) -> tuple[int, int]:
    """TensorFlow 'same' padding for stride 1: the extra sample goes after."""
    return (k - 1) // 2, k - 1 - (k - 1) // 2


class Musicnn(nn.Module):
    """MSD_musicnn / MTT_musicnn: [B, 187, 96] log-Mel patches -> (tag logits [B, 50], penultimate [B, 200])."""

    def __init__(self, n_mels: int = N_MELS, n_classes: int = 50, mid_filters: int = 64, backend_units: int = 200) -> None:
        super().__init__()
        self.input_bn = nn.BatchNorm2d(1, eps=BN_EPS)
        self.timbral74 = _ConvBN(nn.Conv2d(1, 204, (7, int(0.4 * n_mels))), 204, 2)
        self.timbral77 = _ConvBN(nn.Conv2d(1, 204, (7, int(0.7 * n_mels))), 204, 2)
        self.temporal128 = _ConvBN(nn.Conv2d(1, 51, (128, 1)), 51, 2)
        self.temporal64 = _ConvBN(nn.Conv2d(1, 51, (64, 1)), 51, 2)
        self.temporal32 = _ConvBN(nn.Conv2d(1, 51, (32, 1)), 51, 2)
        front = 2 * 204 + 3 * 51
        self.mid1 = _ConvBN(nn.Conv1d(front, mid_filters, 7, padding=3), mid_filters, 1)
        self.mid2 = _ConvBN(nn.Conv1d(mid_filters, mid_filters, 7, padding=3), mid_filters, 1)
        self.mid3 = _ConvBN(nn.Conv1d(mid_filters, mid_filters, 7, padding=3), mid_filters, 1)
        pooled = 2 * (front + 3 * mid_filters)
        self.pool_bn = nn.BatchNorm1d(pooled, eps=BN_EPS)
        self.dense = nn.Linear(pooled, backend_units)
        self.dense_bn = nn.BatchNorm1d(backend_units, eps=BN_EPS)
        self.out = nn.Linear(backend_units, n_classes)
        self.blocked = True  # eval-mode front-end in cache-sized blocks (identical values); False: musicnn's plain order

    def frontend(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, F] -> [B, 561, T]: the blocked computation in eval mode, the plain one in training mode."""
        if self.training or not self.blocked:
            return self.frontend_plain(x)
        xt = self.input_bn(x.unsqueeze(1)).transpose(2, 3)  # [B, 1, F, T]: frequency-major
        padded7 = F.pad(xt, (3, 3))
        feats = [self.timbral74.max_freq_blocked(padded7), self.timbral77.max_freq_blocked(padded7)]
        for block, k in ((self.temporal128, 128), (self.temporal64, 64), (self.temporal32, 32)):
            feats.append(block.max_freq_blocked(F.pad(xt, _same_pad(k))))
        return torch.cat(feats, dim=1)

    def frontend_plain(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, F] -> [B, 561, T] in musicnn's own order (conv -> ReLU -> batch norm -> max over frequency)."""
        x = self.input_bn(x.unsqueeze(1))  # [B, 1, T, F]
        padded7 = F.pad(x, (0, 0, 3, 3))
        feats = [self.timbral74.forward_max_freq(padded7), self.timbral77.forward_max_freq(padded7)]
        for block, k in ((self.temporal128, 128), (self.temporal64, 64), (self.temporal32, 32)):
            feats.append(block.forward_max_freq(F.pad(x, (0, 0, *_same_pad(k)))))
        return torch.cat(feats, dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, penultimate, _ = self.forward_all(x)
        return logits, penultimate

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(tag logits [B, 50], penultimate [B, 200], pooled back-end input [B, 1506])."""
        front = self.frontend(x)
        m1 = self.mid1(front)
        m2 = self.mid2(m1) + m1
        m3 = self.mid3(m2) + m2
        feats = torch.cat([front, m1, m2, m3], dim=1)  # [B, 753, T]
        pooled = torch.stack([feats.amax(dim=2), feats.mean(dim=2)], dim=2).flatten(1)  # TF flatten order
        penultimate = self.dense_bn(torch.relu(self.dense(self.pool_bn(pooled))))
        return self.out(penultimate), penultimate, pooled


def load_musicnn(path: str | Path | None = None, checkpoint: str = "msd") -> Musicnn:
    """The port with converted weights (`path`, else the shipped ones of `checkpoint`), in eval mode."""
    from safetensors.torch import load_file

    path = Path(path) if path else weights_path(checkpoint)
    if not path.is_file():
        raise EncoderError(
            f"musicnn weights not found at {path}; they ship with musicrec (emotion/features/weights) - reinstall, "
            "or regenerate them with scripts/convert_musicnn.py; use --audio-encoder lld meanwhile"
        )
    model = Musicnn()
    state = load_file(str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise EncoderError(f"musicnn weights at {path} do not match the port (missing {missing}, unexpected {unexpected})")
    return model.eval()


def log_mel(y: np.ndarray, sr: int = SR) -> np.ndarray:
    """musicnn's input representation [T, 96] (float16-rounded, log-compressed), as its batch_data computes it."""
    if sr != SR:
        raise ValueError(f"musicnn expects {SR} Hz audio, got {sr}")
    mel = librosa.feature.melspectrogram(y=np.asarray(y, dtype=np.float32), sr=SR, hop_length=HOP, n_fft=N_FFT, n_mels=N_MELS).T
    mel = mel.astype(np.float16).astype(np.float32)  # musicnn rounds to float16, then (numpy 1.x) computes in float32
    return np.log10(10000 * mel + 1).astype(np.float32)


def patches(rep: np.ndarray, n: int = PATCH_FRAMES) -> np.ndarray:
    """Non-overlapping [P, n, 96] patches; a remainder over half a patch adds one end-aligned patch; short input repeat-padded."""
    if len(rep) < n:
        reps = int(np.ceil(n / max(len(rep), 1)))
        return np.tile(rep, (reps, 1))[None, :n]
    starts = list(range(0, len(rep) - n + 1, n))
    if len(rep) - (starts[-1] + n) > n // 2:
        starts.append(len(rep) - n)
    return np.stack([rep[s : s + n] for s in starts])


class MusicnnEncoder:
    """AudioEncoder "musicnn" / "musicnn-mtt": mean penultimate embedding (200) + mean tag probabilities (50) per segment.

    `checkpoint` picks the weights: "msd" (MSD_musicnn, name "musicnn") or "mtt" (MTT_musicnn, "musicnn-mtt").
    `pool=True` ("musicnn-pool", "musicnn-mtt-pool") appends the back-end's input, the max and mean over time of the
    front-end and mid-end feature maps (1506 values, before the dense layers): 1756 values per segment.
    The version fingerprints the weights file, so each checkpoint's features are cached apart.
    """

    dim = 250
    sample_rate = SR

    def __init__(self, weights: str | Path | None = None, *, checkpoint: str = "msd", device: str | None = None,
                 batch_size: int | None = None, pool: bool = False) -> None:
        from catalog.settings import get_settings
        from emotion.features.cache import weights_fingerprint

        name, _, self.labels = _checkpoint(checkpoint)
        self.name = name
        self.device = device or get_settings().torch_device()
        self.model = load_musicnn(weights, checkpoint).to(self.device)
        on_cpu = str(self.device).startswith("cpu")
        self.model.blocked = on_cpu  # cache-sized blocks pay on a CPU core; an accelerator wants the big batch
        self.batch_size = batch_size or (CPU_BATCH if on_cpu else 64)
        self.pool = pool
        if pool:
            self.name, self.dim = f"{name}-pool", 250 + POOLED
        self.version = f"2-{weights_fingerprint(Path(weights) if weights else weights_path(checkpoint))}"

    @torch.inference_mode()
    def run_patches(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[P, 187, 96] patches -> (tag probabilities [P, 50], penultimate [P, 200] (++ pooled [P, 1506] with `pool`))."""
        probs, pens = [], []
        for i in range(0, len(x), self.batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(x[i : i + self.batch_size])).to(self.device)
            logits, pen, pooled = self.model.forward_all(batch)
            probs.append(torch.sigmoid(logits).float().cpu().numpy())
            pens.append(torch.cat([pen, pooled], dim=1).float().cpu().numpy() if self.pool else pen.float().cpu().numpy())
        return np.concatenate(probs), np.concatenate(pens)

    def encode(self, segments: list[np.ndarray]) -> np.ndarray:
        """float32 [len(segments), 250]; all patches of all segments go through the network in batches."""
        if not segments:
            return np.zeros((0, self.dim), dtype=np.float32)
        per = [patches(log_mel(s)) for s in segments]
        probs, pens = self.run_patches(np.concatenate(per))
        out = np.zeros((len(segments), self.dim), dtype=np.float32)
        start = 0
        for i, p in enumerate(per):
            sl = slice(start, start + len(p))
            out[i, :200] = pens[sl, :200].mean(0)
            out[i, 200:250] = probs[sl].mean(0)
            if self.pool:
                out[i, 250:] = pens[sl, 200:].mean(0)
            start += len(p)
        return out


def tag_names_from_weights(path: str | Path | None = None, checkpoint: str = "msd") -> list[str]:
    """The label list stored in the weights' metadata by the conversion script."""
    from safetensors import safe_open

    with safe_open(str(path or weights_path(checkpoint)), framework="np") as fh:
        return json.loads((fh.metadata() or {}).get("labels", "[]"))
