"""A small real catalog for the console tests: real 30 s song clips of the 4-quadrant audio set (Panda et al.), with
their artists and titles, labelled by quadrant, real topic models per emotion; and a headless Chromium."""

from __future__ import annotations

import csv
import os
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

    from catalog.models import Song

QUAD = {"Q1": "happy", "Q2": "angry", "Q3": "sad", "Q4": "relaxed"}
SONGS_PER_EMOTION = 8
EXCERPT_S = 9.0  # topic frames from the first 9 s of each clip keep the build to a few seconds
CHROMIUM = os.environ.get("MUSICREC_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MUSICREC_CHROMEDRIVER", "/usr/bin/chromedriver")


@dataclass
class ConsoleCatalog:
    songs: dict[str, list[int]] = field(default_factory=dict)  # emotion -> song ids
    titles: dict[int, str] = field(default_factory=dict)
    emotion_model_id: int = 0


def q4_clips(shared_data: Path, per_emotion: int = SONGS_PER_EMOTION) -> list[tuple[Path, str, str, str]]:
    """(path, emotion, artist, title) of the first `per_emotion` clips (sorted by name) of each quadrant."""
    root = shared_data / "q4-audio-dev"
    with (root / "panda_dataset_taffc_metadata.csv").open(encoding="latin-1", newline="") as fh:
        meta = {row["Song"]: row for row in csv.DictReader(fh)}
    out = []
    for quad, emotion in QUAD.items():
        for path in sorted((root / quad).glob("*.opus"))[:per_emotion]:
            row = meta.get(path.stem, {})
            out.append((path, emotion, row.get("Artist") or "unknown artist", row.get("Title") or path.stem))
    return out


def excerpt_frames(store_root: Path):
    """A topic frame encoder over the first EXCERPT_S seconds of a song: 62-d LLD frames of 1.5 s."""
    from catalog.audio import load
    from catalog.store import FileStore
    from emotion.features.lld import lld_frames
    from topics.frames import audio_path

    store = FileStore(store_root)

    def frames(song: Song) -> np.ndarray:
        y = load(audio_path(song, store), sr=22050, max_duration_s=EXCERPT_S)
        return lld_frames(y, 22050, frame_s=1.5)

    frames.name = "lld_1.5s_excerpt"  # type: ignore[attr-defined]  # recorded as the topic model's encoder
    return frames


def build_console_catalog(url: str, shared_data: Path) -> ConsoleCatalog:
    """Songs with stored audio, an active quadrant 'emotion model' whose labels are the quadrants, and an active
    topic model per emotion (k=12 codewords, up to 3 topics) built by the real topic pipeline."""
    from catalog.db import session_scope
    from catalog.models import Artist, EmotionModel
    from catalog.store import FileStore
    from tests.support.topics_catalog import add_song
    from topics.build import BuildConfig, build_emotion

    store = FileStore()
    cat = ConsoleCatalog()
    with session_scope(url) as s:
        model = EmotionModel(name="q4-quadrant", version="1", kind="song", artifact_path="-", active=True, metrics={"source": "4-quadrant audio set labels"})
        s.add(model)
        s.flush()
        cat.emotion_model_id = model.id
        artists: dict[str, Artist] = {}
        for i, (path, emotion, artist_name, title) in enumerate(q4_clips(shared_data)):
            key = artist_name.lower()
            artist = artists.setdefault(key, Artist(name=artist_name, name_norm=key))
            song = add_song(s, store, path, title, emotion, model.id, artist, confidence=round(0.95 - 0.05 * (i % 8), 2))
            cat.songs.setdefault(emotion, []).append(song.id)
            cat.titles[song.id] = title
    frames = excerpt_frames(store.root)
    for emotion in cat.songs:
        build_emotion(emotion, BuildConfig(k=12, num_topics=3, seed=42, progress=False), frames_for=frames, url=url, store=store)
    return cat


def fake_mic_wav(src: Path, dest: Path, rate: int = 48000) -> Path:
    """A speech clip as Chromium's fake capture device reads it: 16-bit PCM WAV at 48 kHz, mono."""
    import librosa

    y, _ = librosa.load(str(src), sr=rate, mono=True)
    with wave.open(str(dest), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(y, -1, 1) * 32767).astype("<i2").tobytes())
    return dest


def require_browser() -> None:
    """Skip (locally) or fail (in CI) when Debian's chromium / chromium-driver or selenium are missing."""
    from tests.support.services import in_ci

    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (Path(p).is_file() and os.access(p, os.X_OK))]
    try:
        import selenium  # noqa: F401 - only checking that it is installed
    except ImportError:
        missing.append("selenium (pip)")
    if missing:
        message = f"browser tests need {', '.join(missing)} (apt-get install chromium chromium-driver; scripts/bootstrap.sh does it)"
        if in_ci():
            pytest.fail(message + "; CI needs it", pytrace=False)
        pytest.skip(message)


def chromium(profile: Path, fake_audio: Path | None = None, width: int = 1280, height: int = 900):
    """Headless Chromium driven by the system chromedriver (Selenium Manager never runs: both paths are given)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # belt and braces: Selenium Manager must not fetch anything
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--autoplay-policy=no-user-gesture-required",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
    ):
        opts.add_argument(flag)
    if fake_audio is not None:
        opts.add_argument("--use-fake-ui-for-media-stream")
        opts.add_argument("--use-fake-device-for-media-stream")
        opts.add_argument(f"--use-file-for-fake-audio-capture={fake_audio}")
    log = profile.parent / f"{profile.name}-chromedriver.log"
    return webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER, log_output=str(log)))


def screenshot(driver: WebDriver, out: Path, width: int, max_height: int = 5000) -> Path:
    """A PNG of the whole page at `width` CSS pixels (the window is resized to the page's height)."""
    driver.set_window_size(width, 900)
    height = int(driver.execute_script("return Math.ceil(document.documentElement.scrollHeight)"))
    driver.set_window_size(width, min(max(height, 600), max_height) + 120)  # + the window chrome headless still counts
    driver.execute_script("window.scrollTo(0, 0)")
    out.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(out))
    return out


def artifacts_dir() -> Path:
    """Where the browser tests write their screenshots (gitignored var/; MUSICREC_TEST_ARTIFACTS overrides)."""
    root = Path(os.environ.get("MUSICREC_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "var" / "test-artifacts"))
    out = root / "console"
    out.mkdir(parents=True, exist_ok=True)
    return out
