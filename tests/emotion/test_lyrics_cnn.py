"""The learning lyrics branch (emotion.lyrics_cnn) on a few real NJU lyrics: shapes and behaviour only (frozen vs
fine-tuned layers, what is stored, what the bert-cnn encoder loads back); accuracy is measured by bench/lyrics_encoder.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from emotion.features.base import EncoderError
from emotion.features.bert_cnn import BertCNNEncoder
from emotion.lyrics_cnn import LyricsClassifier, fit_classifier, lyric_texts, predict_songs, song_states, train_lyrics_cnn


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def songs(shared_data: Path) -> list[tuple[bytes, int]]:
    """Two real songs per mood folder, class index by folder, the first 6 lyric lines of each (fast)."""
    out = []
    for y, mood in enumerate(("Happy", "Angry", "Sad", "Relaxed")):
        for path in sorted((shared_data / "nju-musicmood-train" / mood).glob("*_1*.txt"))[:2]:
            out.append((b"\n".join(path.read_bytes().splitlines()[:6]), y))
    return out


@pytest.mark.parametrize("k", [0, 2])
def test_frozen_part_then_trained_layers_equal_the_whole_encoder(songs: list[tuple[bytes, int]], k: int) -> None:
    model = LyricsClassifier(4, k).eval()
    texts = lyric_texts(songs[0][0])
    hidden, mask = model.lower(texts)
    batch = model.encoder.tokenize(texts)
    with torch.no_grad():
        whole = model.head(model.encoder(**batch)).mean(0)
        np.testing.assert_allclose(model(hidden, mask).numpy(), whole.numpy(), atol=1e-5)
    assert hidden.shape == (len(texts), batch["input_ids"].shape[1], 384) and whole.shape == (4,)


def test_fine_tuning_moves_only_the_top_layers_cnn_and_head(songs: list[tuple[bytes, int]]) -> None:
    model = LyricsClassifier(4, train_layers=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    states = song_states(model, songs)
    assert len(states) == len(songs)
    fit = fit_classifier(model, states[:6], states[6:], epochs=1, patience=1, seed=0)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert fit.best_epoch == 1 and changed
    assert all(k.startswith(("encoder.convs.", "head.", "encoder.bert.encoder.layer.5.")) for k in changed)
    assert any(k.startswith("encoder.bert.encoder.layer.5.") for k in changed)
    probs = predict_songs(model, states)
    assert probs.shape == (len(songs), 4) and np.allclose(probs.sum(1), 1.0, atol=1e-5)


def test_trained_weights_go_with_the_encoder_and_change_its_version(songs: list[tuple[bytes, int]], tmp_path: Path) -> None:
    out = tmp_path / "lyrics_cnn.safetensors"
    result = train_lyrics_cnn(songs[:6], songs[6:], 4, out, epochs=1, train_layers=1, seed=0)
    assert result.train_layers == 1 and result.n_train == 6 and result.n_val == 2 and out.is_file()
    from safetensors.torch import load_file

    keys = set(load_file(str(out)))
    assert {k.split(".")[0] for k in keys} == {"convs", "bert"} and all(".layer.5." in k for k in keys if k.startswith("bert."))
    frozen, tuned = BertCNNEncoder(device="cpu"), BertCNNEncoder(device="cpu", cnn_state=out)
    assert tuned.version != frozen.version
    texts = lyric_texts(songs[0][0])
    # the fine-tuned layer changes the sentence half too (the random-CNN encoder's MiniLM half is the pretrained one)
    assert not np.allclose(tuned.encode(texts)[:, :384], frozen.encode(texts)[:, :384], atol=1e-6)
    bad = tmp_path / "bad.safetensors"
    from safetensors.torch import save_file

    save_file({**load_file(str(out)), "bert.encoder.layer.9.nonsense": torch.zeros(2)}, str(bad))
    with pytest.raises(EncoderError, match="do not fit"):
        BertCNNEncoder(device="cpu", cnn_state=bad)
