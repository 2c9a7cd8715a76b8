"""The speech probe's sub-classes: a label that gathers several acted emotions (RAVDESS's relaxed: neutral and calm,
kept by the importer as the manifest's `category`) is learnt as its parts, whose probabilities are then added up."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from emotion.speech.model import SpeechModelConfig, SubclassMerge


def test_merge_adds_up_the_subclass_probabilities() -> None:
    """exp(output) is the softmax of the sub-class logits summed per class; a class without a sub-class gets none of
    the mass; without sub-classes the logits pass through unchanged."""
    cfg = SpeechModelConfig(classes=4, subclasses=(0, 1, 3, 3, 0))
    merge = SubclassMerge(cfg)
    assert merge.outputs == 5 and not list(merge.state_dict())  # derived from the config, nothing stored
    logits = torch.randn(6, 5, generator=torch.Generator().manual_seed(0)) * 3
    p = torch.softmax(logits, dim=1)
    expected = torch.stack([p[:, 0] + p[:, 4], p[:, 1], torch.zeros(6), p[:, 2] + p[:, 3]], dim=1)
    got = merge(logits).exp()
    assert torch.allclose(got, expected, atol=1e-5) and torch.allclose(got.sum(1), torch.ones(6), atol=1e-5)
    plain = SubclassMerge(SpeechModelConfig(classes=4))
    assert plain.outputs == 4 and torch.equal(plain(logits[:, :4]), logits[:, :4])


@pytest.mark.slow
def test_default_probe_learns_neutral_and_calm_apart(shared_data: Path, tmp_path: Path) -> None:
    """On real RAVDESS clips imported with their categories, the default model's probe is fitted on (label, category)
    sub-classes; each label's probability is the sum of its parts', through the saved artifact too. A manifest whose
    labels each hold one category trains the plain 4-way probe, as before."""
    from catalog.importers.ravdess import import_ravdess
    from catalog.manifest import read
    from emotion.speech import artifact
    from emotion.speech.data import collate
    from emotion.speech.model import DEFAULT_MODEL, WhisperChannel
    from emotion.speech.probe import encoder_for
    from emotion.speech.train import LABELS, fit, load_examples, predict_normalised, subclass_table

    torch.set_num_threads(1)
    manifest = read(import_ravdess(shared_data / "ravdess-speech-dev", tmp_path / "ravdess.csv").manifest)
    taken: Counter[tuple[str, str]] = Counter()
    items = []
    for it in manifest.items:  # 3 clips of each acted emotion of actors 01-03
        if it.group in ("actor-01", "actor-02", "actor-03") and taken[(it.group, it.category)] < 3:
            taken[(it.group, it.category)] += 1
            items.append(it)
    whisper = encoder_for(DEFAULT_MODEL)
    examples = load_examples(items, progress=False, whisper=whisper, handcrafted=False).examples
    assert len(examples) == 3 * 5 * 3
    table = subclass_table(examples)
    relaxed = LABELS.index("relaxed")
    assert [c for label, c in table if label == relaxed] == ["calm", "neutral"] and len(table) == 5

    train, test = [e for e in examples if e.group != "actor-03"], [e for e in examples if e.group == "actor-03"]
    result = fit(DEFAULT_MODEL, train, progress=False, device="cpu")
    model = result.model
    assert model.cfg.subclasses == tuple(label for label, _ in table)
    assert result.subclasses == ["happy/happy", "angry/angry", "sad/sad", "relaxed/calm", "relaxed/neutral"]
    feats = [result.normaliser.apply(e.feats) for e in test]
    probs = predict_normalised(model, feats)
    batch = collate(feats)
    assert batch.whisper is not None and batch.whisper_lengths is not None
    mask = torch.arange(batch.whisper.shape[1]).unsqueeze(0) < batch.whisper_lengths.unsqueeze(1)
    with torch.no_grad():
        sub = torch.softmax(model.whisper.probe(WhisperChannel.pooled(batch.whisper, mask)), dim=1).numpy()
    by_label = np.stack([sub[:, [i for i, (label, _) in enumerate(table) if label == k]].sum(1) for k in range(4)], axis=1)
    assert probs.shape == (len(test), 4) and np.allclose(probs, by_label, atol=1e-4)
    assert np.allclose(probs.sum(1), 1, atol=1e-5)

    artifact.save(tmp_path / "model", model, result.normaliser, {"whisper": artifact.whisper_meta(whisper)})
    loaded = artifact.SpeechRecognizer(tmp_path / "model", int8=False)
    assert loaded.model.cfg.subclasses == model.cfg.subclasses  # type: ignore[union-attr]  # a speech network's cfg
    first = next(it for it in items if it.group == "actor-03")
    answer = loaded.predict_file(first.audio)  # type: ignore[arg-type]
    assert list(answer.probabilities.values()) == pytest.approx(probs[0].tolist(), abs=1e-4)

    for e in examples:  # one category per label: the plain probe, one output per label
        e.category = ""
    assert subclass_table(examples) == []
    plain = fit(DEFAULT_MODEL, train, progress=False, device="cpu")
    assert plain.model.cfg.subclasses == () and plain.subclasses == []


@pytest.mark.slow
def test_benchmark_scores_the_default_with_and_without_subclasses(shared_data: Path, tmp_path: Path) -> None:
    """`musicrec benchmark speech --quick` on the merged EmoDB + RAVDESS manifest (categories kept by the importers
    and the merge) scores the default beside the same probe without sub-classes and both baselines, on the same
    clips and folds, in one run."""
    import json

    from typer.testing import CliRunner

    from catalog.importers.emodb import import_emodb
    from catalog.importers.ravdess import import_ravdess
    from catalog.manifest import merge
    from cli.main import app

    parts = [import_emodb(shared_data / "emodb-dev", tmp_path / "emodb.csv").manifest,
             import_ravdess(shared_data / "ravdess-speech-dev", tmp_path / "ravdess.csv").manifest]
    merge(parts, tmp_path / "speech.csv")
    out = tmp_path / "bench"
    res = CliRunner().invoke(app, ["benchmark", "speech", "--manifest", str(tmp_path / "speech.csv"), "--models", "default",
                                   "--quick", "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout.strip().splitlines()[-1])
    flat = "whisper-tiny-base (no sub-classes)"
    assert set(rows) == {"whisper-probe", "egemaps-svm", "whisper-tiny-base", flat}
    saved = json.loads((out / "benchmark.json").read_text())["models"]
    assert saved["whisper-tiny-base"]["n"] == saved[flat]["n"] == saved["whisper-probe"]["n"] > 150
    assert set(saved[flat]["per_corpus"]) == {"emodb", "ravdess"}
    assert all(0.25 < rows[m]["accuracy"] <= 1 for m in ("whisper-tiny-base", flat))  # chance: 0.25
    assert flat in (out / "benchmark.md").read_text()
