"""Encoders by name: `make_audio_encoder("lld" | "musicnn" | "ast" | "whisper")`, `make_lyrics_encoder("bert-cnn")`."""

from __future__ import annotations

from emotion.features.base import AudioEncoder, EncoderError, LyricsEncoder

AUDIO_ENCODERS: tuple[str, ...] = ("lld", "musicnn", "musicnn-pool", "ast", "whisper")
LYRICS_ENCODERS: tuple[str, ...] = ("bert-cnn",)


def make_audio_encoder(name: str, **kwargs: object) -> AudioEncoder:
    """Build the named audio encoder (EncoderError when its weights are missing)."""
    if name == "lld":
        from emotion.features.lld import LLDEncoder

        return LLDEncoder(**kwargs)  # type: ignore[arg-type]
    if name in ("musicnn", "musicnn-pool"):
        from emotion.features.musicnn import MusicnnEncoder

        return MusicnnEncoder(pool=name == "musicnn-pool", **kwargs)  # type: ignore[arg-type]
    if name == "ast":
        from emotion.features.ast import ASTEncoder

        return ASTEncoder(**kwargs)  # type: ignore[arg-type]
    if name == "whisper":
        from emotion.features.whisper import WhisperEncoderFeatures

        return WhisperEncoderFeatures(**kwargs)  # type: ignore[arg-type]
    raise EncoderError(f"unknown audio encoder {name!r}; choose one of {', '.join(AUDIO_ENCODERS)}")


def make_lyrics_encoder(name: str, **kwargs: object) -> LyricsEncoder:
    """Build the named lyrics encoder."""
    if name == "bert-cnn":
        from emotion.features.bert_cnn import BertCNNEncoder

        return BertCNNEncoder(**kwargs)  # type: ignore[arg-type]
    raise EncoderError(f"unknown lyrics encoder {name!r}; choose one of {', '.join(LYRICS_ENCODERS)}")


def default_audio_encoder_name() -> str:
    """"musicnn" when its converted weights are installed, else "lld"."""
    from importlib.resources import files

    weights = files("emotion.features") / "weights" / "musicnn_msd.safetensors"
    return "musicnn" if weights.is_file() else "lld"
