"""Encoders by name: `make_audio_encoder("lld" | "tonal" | "musicnn" | "musicnn-mtt" | "ast" | "whisper")`,
`make_lyrics_encoder("bert-cnn" | "minilm" | "mpnet")`; "a+b" puts encoders of one kind side by side."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from emotion.features.base import AudioEncoder, EncoderError, LyricsEncoder
from emotion.features.text_models import TEXT_MODELS

AUDIO_ENCODERS: tuple[str, ...] = ("lld", "tonal", "musicnn", "musicnn-pool", "musicnn-mtt", "musicnn-mtt-pool", "ast", "whisper")
LYRICS_ENCODERS: tuple[str, ...] = ("bert-cnn", *TEXT_MODELS)


class CombinedEncoder:
    """Encoders side by side ("musicnn-pool+whisper", "minilm+mpnet"): per segment, the parts' vectors concatenated
    in order.

    Each part is extracted and cached on its own (emotion.features.extract), so a combination never recomputes
    or duplicates what its parts have cached. Audio parts must share the sample rate.
    """

    def __init__(self, parts: list[Any]) -> None:
        rates = {getattr(p, "sample_rate", None) for p in parts}
        if len(rates) != 1:
            raise EncoderError(f"combined encoders need one sample rate, got {sorted(map(str, rates))}")
        self.parts = parts
        self.name = "+".join(p.name for p in parts)
        self.version = "+".join(str(p.version) for p in parts)
        self.dim = sum(int(p.dim) for p in parts)
        rate = rates.pop()
        if rate is not None:
            self.sample_rate = rate

    def encode(self, segments: list[Any]) -> np.ndarray:
        return np.concatenate([p.encode(segments) for p in self.parts], axis=1)


def make_audio_encoder(name: str, **kwargs: object) -> AudioEncoder:
    """Build the named audio encoder (EncoderError when its weights are missing); "a+b" combines encoders."""
    if "+" in name:
        return CombinedEncoder([make_audio_encoder(part, **kwargs) for part in name.split("+")])
    pinned = re.fullmatch(r"whisper-(tiny\.en|base)-l(\d+)", name)
    if pinned:  # a pinned Whisper model and layer (e.g. whisper-base-l3), independent of the settings
        from emotion.features.whisper import WhisperEncoderFeatures

        return WhisperEncoderFeatures(pinned[1], int(pinned[2]), **kwargs)  # type: ignore[arg-type]  # kwargs: the encoder's own options, checked by its constructor
    if name == "lld":
        from emotion.features.lld import LLDEncoder

        return LLDEncoder(**kwargs)  # type: ignore[arg-type]  # kwargs: the encoder's own options, checked by its constructor
    if name == "tonal":
        from emotion.features.tonal import TonalEncoder

        if kwargs:
            raise EncoderError(f"the tonal encoder takes no options, got {sorted(kwargs)}")
        return TonalEncoder()
    musicnn = re.fullmatch(r"musicnn(-mtt)?(-pool)?", name)
    if musicnn:  # MSD_musicnn ("musicnn") or MTT_musicnn ("musicnn-mtt"), "-pool" adds the back-end's input
        from emotion.features.musicnn import MusicnnEncoder

        return MusicnnEncoder(checkpoint="mtt" if musicnn[1] else "msd", pool=bool(musicnn[2]), **kwargs)  # type: ignore[arg-type]  # kwargs: the encoder's own options, checked by its constructor
    if name == "ast":
        from emotion.features.ast import ASTEncoder

        return ASTEncoder(**kwargs)  # type: ignore[arg-type]  # kwargs: the encoder's own options, checked by its constructor
    if name == "whisper":
        from emotion.features.whisper import WhisperEncoderFeatures

        return WhisperEncoderFeatures(**kwargs)  # type: ignore[arg-type]  # kwargs: the encoder's own options, checked by its constructor
    raise EncoderError(f"unknown audio encoder {name!r}; choose one of {', '.join(AUDIO_ENCODERS)}")


def make_lyrics_encoder(name: str, **kwargs: object) -> LyricsEncoder:
    """Build the named lyrics encoder; "minilm+mpnet" puts sentence encoders side by side."""
    if "+" in name:
        return CombinedEncoder([make_lyrics_encoder(part, **kwargs) for part in name.split("+")])
    if name == "bert-cnn":
        from emotion.features.bert_cnn import BertCNNEncoder

        return BertCNNEncoder(**kwargs)  # type: ignore[arg-type]  # kwargs: the encoder's own options, checked by its constructor
    if name in TEXT_MODELS:
        from emotion.features.bert_cnn import SentenceEncoder

        return SentenceEncoder(name, **kwargs)  # type: ignore[arg-type]  # kwargs: the encoder's own options, checked by its constructor
    raise EncoderError(f"unknown lyrics encoder {name!r}; choose one of {', '.join(LYRICS_ENCODERS)}, or several joined by '+'")


def default_audio_encoder_name() -> str:
    """"musicnn" when its converted weights are installed, else "lld"."""
    from importlib.resources import files

    weights = files("emotion.features") / "weights" / "musicnn_msd.safetensors"
    return "musicnn" if weights.is_file() else "lld"
