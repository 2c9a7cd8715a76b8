"""The AST encoder's real loading and encoding code on a small randomly initialised AST saved to tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from emotion.features.base import AudioEncoder, EncoderError


def make_tiny_ast(path: Path, max_length: int = 128) -> Path:
    """A random 1-layer AST (hidden 32) with a matching feature extractor."""
    from transformers import ASTConfig, ASTFeatureExtractor, ASTModel

    cfg = ASTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, max_length=max_length)
    torch.manual_seed(0)
    ASTModel(cfg).save_pretrained(path)
    ASTFeatureExtractor(max_length=max_length).save_pretrained(path)
    return path


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_tiny_ast_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from catalog.settings import reload_settings
    from emotion.features.ast import ASTEncoder
    from emotion.features.registry import make_audio_encoder

    monkeypatch.setenv("MUSICREC_AST_CHECKPOINT", str(make_tiny_ast(tmp_path / "ast")))
    reload_settings()
    enc = make_audio_encoder("ast", device="cpu", batch_size=2)
    assert isinstance(enc, ASTEncoder) and isinstance(enc, AudioEncoder) and enc.dim == 32
    rng = np.random.default_rng(0)
    segs = [rng.standard_normal(16000 * s).astype(np.float32) * 0.1 for s in (10, 4, 10)]
    out = enc.encode(segs)
    assert out.shape == (3, 32) and out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_allclose(enc.encode(segs[:1]), out[:1], atol=1e-5)
    assert not np.allclose(out[0], out[1])
    assert ASTEncoder(device="cpu").version == enc.version


def test_missing_checkpoint_says_how_to_point_at_local_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from catalog.settings import reload_settings
    from emotion.features.ast import ASTEncoder

    with pytest.raises(EncoderError, match="MUSICREC_AST_CHECKPOINT"):
        ASTEncoder(device="cpu")
    monkeypatch.setenv("MUSICREC_AST_CHECKPOINT", "MIT/ast-finetuned-audioset-10-10-0.4593")
    reload_settings()
    with pytest.raises(EncoderError, match="never downloads"):
        ASTEncoder(device="cpu")
    with pytest.raises(EncoderError, match="cannot load"):
        ASTEncoder(tmp_path / "nothing", device="cpu")
