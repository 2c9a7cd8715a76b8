"""The PyTorch musicnn port (MSD_musicnn and MTT_musicnn) against TensorFlow reference outputs recorded by scripts/convert_musicnn.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from emotion.features.base import AudioEncoder, EncoderError
from emotion.features.musicnn import (
    CHECKPOINTS,
    MSD_LABELS,
    MTT_LABELS,
    MusicnnEncoder,
    load_musicnn,
    log_mel,
    patches,
    tag_names_from_weights,
    weights_path,
)
from emotion.features.registry import make_audio_encoder

REPO = Path(__file__).resolve().parents[2]
WEIGHTS = REPO / "emotion" / "features" / "weights"


def _convert_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("convert_musicnn", REPO / "scripts" / "convert_musicnn.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", params=sorted(CHECKPOINTS))
def checkpoint(request: pytest.FixtureRequest) -> str:
    """Each converted checkpoint: "msd" (MSD_musicnn) and "mtt" (MTT_musicnn)."""
    return str(request.param)


@pytest.fixture(scope="module")
def ref(checkpoint: str) -> dict[str, np.ndarray]:
    return dict(np.load(WEIGHTS / f"musicnn_{checkpoint}_reference.npz"))


def test_weights_and_licence_ship_with_the_package(checkpoint: str) -> None:
    assert weights_path(checkpoint).is_file()
    assert "Permission to use, copy, modify" in (weights_path(checkpoint).parent / "LICENSE-musicnn.md").read_text()
    assert tag_names_from_weights(checkpoint=checkpoint) == list(CHECKPOINTS[checkpoint][2])
    assert {"sad", "happy", "Mellow", "chill"} <= set(MSD_LABELS)
    assert {"slow", "fast", "loud", "quiet", "soft"} <= set(MTT_LABELS)


def test_checkpoints_are_different_encoders() -> None:
    """Names, labels and versions (weights fingerprints) apart, so the feature cache keeps them apart."""
    msd, mtt = make_audio_encoder("musicnn", device="cpu"), make_audio_encoder("musicnn-mtt", device="cpu")
    assert isinstance(msd, MusicnnEncoder) and isinstance(mtt, MusicnnEncoder)
    assert (msd.name, mtt.name) == ("musicnn", "musicnn-mtt") and msd.version != mtt.version
    assert msd.labels == MSD_LABELS and mtt.labels == MTT_LABELS
    assert make_audio_encoder("musicnn-mtt-pool", device="cpu").name == "musicnn-mtt-pool"
    with pytest.raises(EncoderError, match="checkpoint"):
        MusicnnEncoder(checkpoint="xyz", device="cpu")


def test_port_matches_tensorflow_on_reference_patches(checkpoint: str, ref: dict[str, np.ndarray]) -> None:
    model = load_musicnn(checkpoint=checkpoint)
    with torch.inference_mode():
        logits, penultimate = model(torch.from_numpy(ref["patches"]))
    np.testing.assert_allclose(torch.sigmoid(logits).numpy(), ref["tags"], atol=1e-5)
    np.testing.assert_allclose(penultimate.numpy(), ref["penultimate"], atol=1e-4)


def test_preprocessing_matches_musicnn_batch_data(ref: dict[str, np.ndarray]) -> None:
    audio = _convert_script().reference_audio()
    got = patches(log_mel(audio))
    np.testing.assert_allclose(got[: len(ref["patches"])], ref["patches"], atol=1e-4)


def test_encoder_segment_vectors(checkpoint: str, ref: dict[str, np.ndarray]) -> None:
    enc = MusicnnEncoder(checkpoint=checkpoint, device="cpu")
    assert isinstance(enc, AudioEncoder) and enc.dim == 250
    audio = _convert_script().reference_audio()
    six = audio[: int(6.0 * 16000)]  # exactly the two reference patches (375 frames: no extra tail patch)
    out = enc.encode([six, audio[: 16000 * 2]])
    assert out.shape == (2, 250) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, :200], ref["penultimate"].mean(0), atol=1e-4)
    np.testing.assert_allclose(out[0, 200:], ref["tags"].mean(0), atol=1e-5)
    assert np.isfinite(out[1]).all() and (out[1, 200:] >= 0).all() and (out[1, 200:] <= 1).all()


def test_patching_rules() -> None:
    rep = np.arange(700 * 96, dtype=np.float32).reshape(700, 96)
    assert patches(rep[:626]).shape == (3, 187, 96)  # 10 s: a 65-frame remainder is dropped
    p = patches(rep)  # 139-frame remainder > half a patch: one more patch ending at the end
    assert p.shape == (4, 187, 96) and p[-1, -1, 0] == rep[-1, 0]
    assert patches(rep[:400]).shape == (2, 187, 96)
    short = patches(rep[:50])
    assert short.shape == (1, 187, 96) and short[0, 50, 0] == rep[0, 0]


def test_missing_weights_message(tmp_path: Path) -> None:
    with pytest.raises(EncoderError, match="convert_musicnn"):
        load_musicnn(tmp_path / "none.safetensors")


def test_blocked_front_end_equals_musicnn_plain_order(checkpoint: str, ref: dict[str, np.ndarray]) -> None:
    """The eval-mode front-end (max over frequency before ReLU + BN, conv in cache-sized blocks, any batch size)
    gives musicnn's own conv -> ReLU -> BN -> max numbers; training mode keeps the plain order."""
    model = load_musicnn(checkpoint=checkpoint)
    x = torch.from_numpy(np.concatenate([ref["patches"], ref["patches"][:, ::-1].copy()]))
    with torch.inference_mode():
        model.blocked = False
        plain = model.forward_all(x)
        model.blocked = True
        blocked = model.forward_all(x)
        one_by_one = [model.forward_all(x[i : i + 1]) for i in range(len(x))]
    for p, b in zip(plain, blocked, strict=True):
        np.testing.assert_allclose(b.numpy(), p.numpy(), rtol=1e-5, atol=1e-4)
    for i, outs in enumerate(one_by_one):
        for p, b in zip(plain, outs, strict=True):
            np.testing.assert_allclose(b.numpy()[0], p.numpy()[i], rtol=1e-5, atol=1e-4)
    assert MusicnnEncoder(device="cpu").model.blocked
