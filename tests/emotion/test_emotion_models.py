"""Every registered model: forward/backward on a tiny synthetic batch, mixed and one-modality songs (shapes only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from emotion.data import SongSample, collate
from emotion.graphs import song_graph
from emotion.losses import FocalLoss, class_weight_tensor
from emotion.models import REGISTRY, UnknownModel, build_model

DIMS = {"audio": 10, "lyrics": 6}


def songs() -> list[SongSample]:
    rng = np.random.default_rng(1)
    out = []
    for i, (has_a, has_l) in enumerate([(True, True), (True, False), (False, True), (True, True), (False, True)]):
        out.append(SongSample(
            id=str(i), label=("happy", "angry", "sad", "relaxed")[i % 4],
            audio=rng.normal(size=(2 + i, 10)).astype(np.float32) if has_a else None,
            lyrics=rng.normal(size=(1 + i, 6)).astype(np.float32) if has_l else None,
            lld=rng.normal(size=(3 + i, 62)).astype(np.float32) if has_a else None,
            mel=rng.normal(size=(64, 40 + 5 * i)).astype(np.float32) if has_a else None,
            tokens=rng.normal(size=(8 + i, 384)).astype(np.float32) if has_l else None,
        ))
    return out


def batch_for(model, samples):
    from functools import partial

    builder = partial(song_graph, variant=model.graph) if model.graph else None
    return collate(samples, DIMS, model.needs, builder)


@pytest.mark.parametrize("name", [n for n in REGISTRY if n not in ("probe-ensemble", "probe-fusion")])  # closed form: test_emotion_ensemble.py
def test_forward_backward_shapes(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, DIMS)
    model.train()
    batch = batch_for(model, songs())
    loss, logits = model.loss(batch, FocalLoss(class_weight_tensor()))
    assert logits.shape == (5, 4)
    assert torch.isfinite(loss) and torch.isfinite(logits).all()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad():
        single = model(batch_for(model, songs()[2:3]))  # one lyrics-only song, eval mode
    assert single.shape == (1, 4) and torch.isfinite(single).all()


def test_registry_names_and_unknown_model() -> None:
    assert {"songgatnet", "homogeneous", "no-cross", "single-layer", "sparse-gat", "concat-mlp", "cnn-lstm", "lstm-attention",
            "late-fusion", "feature-cross", "feature-average", "joint-mtl", "audio-only", "lyrics-only"} <= set(REGISTRY)
    with pytest.raises(UnknownModel, match="unknown model 'gat9'"):
        build_model("gat9", DIMS)


def test_songgatnet_paper_layout_follows_the_paper() -> None:
    m = build_model("songgatnet-paper", DIMS)
    assert m.gat1.heads == 8 and m.gat2.heads == 1
    head = list(m.head)
    assert head[0].out_features == 256 and isinstance(head[1], torch.nn.BatchNorm1d)
    assert isinstance(head[2], torch.nn.ELU) and head[3].p == 0.6 and head[4].out_features == 4
    assert head[0].in_features == 2 * 128  # mean ++ max readout of 128-d nodes
    assert m.probe is None
    assert build_model("single-layer", DIMS).gat2 is None
    assert build_model("homogeneous", DIMS).typed is False


def test_paper_recipe_is_train_configs_defaults() -> None:
    from emotion.models import PAPER_RECIPE
    from emotion.train import TrainConfig

    assert {k: getattr(TrainConfig(), k) for k in PAPER_RECIPE} == PAPER_RECIPE


def test_songgatnet_and_its_ablations_share_the_small_data_recipe() -> None:
    from emotion.models import GAT_PARAMS, GAT_RECIPE

    for name in ("songgatnet", "homogeneous", "no-cross", "single-layer", "sparse-gat"):
        m = build_model(name, DIMS)
        assert m.prior is not None and m.probe is None and m.gat1.heads == GAT_PARAMS["heads"] and REGISTRY[name].recipe == GAT_RECIPE


def test_songgatnet_probe_residual_and_input_dropout() -> None:
    torch.manual_seed(0)
    plain, probed = build_model("songgatnet-paper", DIMS), build_model("songgatnet-paper", DIMS, {"probe": True, "in_dropout": 0.3})
    assert plain.probe is None and probed.probe is not None and probed.probe.in_features == 2 * (10 + 6)
    probed.train()
    batch = batch_for(probed, songs())
    loss, logits = probed.loss(batch, FocalLoss(class_weight_tensor(), 0.0, smoothing=0.1))
    loss.backward()
    assert logits.shape == (5, 4) and probed.probe.weight.grad is not None and torch.isfinite(probed.probe.weight.grad).all()


def test_songgatnet_prior_starts_from_the_fitted_probes() -> None:
    from emotion.train import TrainConfig, predict, train_model

    labels = ("happy", "angry", "sad", "relaxed")
    rng = np.random.default_rng(0)
    train = []
    for i in range(40):
        a, lyr = rng.normal(size=(3, 10)).astype(np.float32), rng.normal(size=(2, 6)).astype(np.float32)
        a[:, i % 4] += 2.0
        lyr[:, i % 4] += 2.0
        train.append(SongSample(id=str(i), label=labels[i % 4], audio=a, lyrics=None if i % 5 == 0 else lyr, group=f"g{i // 2}"))
    cfg = TrainConfig(model="songgatnet", model_params={"prior": True, "probe": False, "lyrics_dim": 4}, epochs=0, threads=1)
    model = train_model(train, [], cfg, progress=False).model  # no epochs: the fitted probes and a zero correction
    assert model.prior is not None and 0.0 <= float(model.prior.w_lyrics) <= 1.0
    probs = predict(model, train, {"audio": 10, "lyrics": 6})
    with torch.no_grad():
        expected = torch.softmax(model.prior(collate(train, {"audio": 10, "lyrics": 6})), -1).numpy()
    assert np.allclose(probs, expected, atol=1e-5) and (probs.argmax(1) == [s.y for s in train]).mean() > 0.8


def test_label_smoothing_mixes_in_the_mean_log_probability() -> None:
    logits, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 3])
    expected = torch.nn.functional.cross_entropy(logits, y, label_smoothing=0.2)
    assert FocalLoss(torch.ones(4), gamma=0.0, smoothing=0.2)(logits, y).item() == pytest.approx(expected.item(), rel=1e-5)


def test_focal_loss_reduces_to_weighted_cross_entropy() -> None:
    logits = torch.randn(6, 4)
    y = torch.tensor([0, 1, 2, 3, 0, 3])
    w = class_weight_tensor()
    assert w.tolist() == pytest.approx([1.3, 1.0, 1.0, 1.3])
    ce = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    assert FocalLoss(w, gamma=0.0)(logits, y).item() == pytest.approx((w[y] * ce).mean().item(), rel=1e-5)
    assert FocalLoss(w, gamma=2.0)(logits, y).item() < FocalLoss(w, gamma=0.0)(logits, y).item()


def test_feature_fusion_encoders_end_in_bilstms() -> None:
    for name in ("feature-cross", "feature-average"):
        model = build_model(name, DIMS)
        assert model.enc.audio_lstm.bidirectional and model.enc.lstm.bidirectional
        model.eval()
        batch = batch_for(model, songs()[:1])
        reordered = batch_for(model, songs()[:1])
        reordered.audio = reordered.audio.flip(1)  # the BiLSTM reads the segments in order
        with torch.no_grad():
            assert not torch.allclose(model(batch), model(reordered))


def test_cnn_lstm_reads_bert_token_states_not_the_embedding_table() -> None:
    model = build_model("cnn-lstm", {**DIMS, "tokens": 384})
    assert not any("words" in name for name, _ in model.named_buffers())
    assert model.text[0].in_features == 384


def test_lstm_attention_trains_with_its_own_recipe_and_default_resolves() -> None:
    from cli.emotion_cmd import _config

    cfg = _config("lstm-attention", None, None, None, None, None, None, None, [], [], None)
    assert (cfg.lr, cfg.focal_gamma, cfg.batch_size, cfg.class_weights) == (1e-3, 0.0, 16, {})
    gat = _config("songgatnet", None, None, None, None, None, None, None, [], [], None)
    assert (gat.lr, gat.focal_gamma, gat.label_smoothing) == (3e-4, 0.0, 0.1)
    paper = _config("songgatnet-paper", None, None, None, None, None, None, None, [], [], None)
    assert (paper.lr, paper.focal_gamma, paper.label_smoothing) == (5e-5, 2.0, 0.0)
    default = _config("default", None, None, None, None, None, None, None, [], ["epochs=5"], None)
    assert (default.model, default.audio_encoder, default.segment_s, default.epochs) == ("probe-ensemble", "musicnn+whisper-tiny.en-l2+whisper-base-l2", 3.0, 5)
    pooled = _config("pooled-mlp", None, None, None, None, None, None, None, [], [], None)
    assert (pooled.audio_encoder, pooled.segment_s, pooled.epochs) == ("musicnn", 3.0, 80)


def test_default_follows_the_manifests_modalities(shared_data: Path, tmp_path: Path) -> None:
    """`--model default` on real manifests: mirex (audio + lyrics for most songs) gets the bimodal probe fusion, q4
    (audio only) the audio probe ensemble, NJU (lyrics only) the fusion, and a manifest where under half the songs
    have lyrics stays audio-only."""
    from catalog.importers.mirex import import_mirex
    from catalog.importers.q4 import import_q4
    from catalog.manifest import read
    from cli.emotion_cmd import _config

    mirex, q4 = tmp_path / "mirex.csv", tmp_path / "q4.csv"
    import_mirex(shared_data / "mirex-bimodal-dev", mirex)
    import_q4(shared_data / "q4-audio-dev", q4)
    fusion = _config("default", None, None, None, None, None, None, None, [], [], None, mirex)
    default_audio = "musicnn+whisper-tiny.en-l2+whisper-base-l2"
    assert (fusion.model, fusion.audio_encoder, fusion.segment_s, fusion.lyrics_cnn_epochs) == ("probe-fusion", default_audio, 3.0, 0)
    audio = _config("default", None, None, None, None, None, None, None, [], [], None, q4)
    assert (audio.model, audio.audio_encoder) == ("probe-ensemble", default_audio)
    from emotion.models import default_for

    items = read(mirex).items
    with_lyrics = [it for it in items if it.lyrics is not None and it.audio is not None]
    without = [it for it in items if it.lyrics is None]
    assert len(with_lyrics) > len(items) / 2 and without  # the real set: 478 of 568 songs have lyrics
    assert default_for(with_lyrics[: len(without)] + without) == "probe-fusion"  # half and half
    assert default_for(with_lyrics[: len(without) - 1] + without) == "probe-ensemble"
    assert default_for([]) == "probe-ensemble"
    from catalog.importers.nju import import_nju  # lyrics only: the fusion's lyrics probe alone (training it: test_emotion_ensemble)

    import_nju(shared_data / "nju-musicmood-train", tmp_path / "nju.csv")
    assert default_for(read(tmp_path / "nju.csv").items) == "probe-fusion"
