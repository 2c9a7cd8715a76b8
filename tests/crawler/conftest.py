"""Fixtures of the crawler tests: real audio clips for the local sites."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support.crawler_site import convert, tone


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> dict[str, bytes]:
    """Real audio: generated tones, two EmoDB recordings, MP3/OGG/FLAC re-encodes, and broken files."""
    d = tmp_path_factory.mktemp("clips")
    out: dict[str, bytes] = {}
    for i, freq in enumerate((220, 330, 440, 550, 660, 770), start=1):
        out[f"t{i}.wav"] = tone(d / f"t{i}.wav", freq).read_bytes()
    emodb = sorted((shared_data / "emodb-dev" / "wav").glob("*.wav"))[:2]
    out["emo1.wav"] = emodb[0].read_bytes()
    out["emo2.wav"] = emodb[1].read_bytes()
    out["t7.mp3"] = convert(tone(d / "t7.wav", 880), d / "t7.mp3").read_bytes()
    out["t8.ogg"] = convert(tone(d / "t8.wav", 990), d / "t8.ogg").read_bytes()
    out["t9.flac"] = convert(tone(d / "t9.wav", 1100, seconds=2.0), d / "t9.flac").read_bytes()
    out["big.wav"] = tone(d / "big.wav", 300, seconds=6.0).read_bytes()  # ~190 kB > AUDIO_MAX_BYTES in tests
    flac = out["t9.flac"]
    out["truncated.flac"] = flac[: len(flac) // 2]
    wav = out["t6.wav"]
    out["truncated.wav"] = wav[: len(wav) // 2]
    out["corrupt.flac"] = b"fLaC" + np.random.default_rng(7).integers(0, 256, 20000, dtype=np.uint8).tobytes()
    return out
