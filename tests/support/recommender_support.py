"""Helpers for the recommender tests: EmoDB clips, a tiny trained speech model, a small labelled catalog, a live server."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import func, select

from catalog.db import session_scope
from catalog.models import EMOTIONS

REPO = Path(__file__).resolve().parents[2]
EMODB_LETTERS = {"W": "angry", "F": "happy", "T": "sad", "N": "relaxed"}
TOPICS_PER_EMOTION = 3
SONGS_PER_TOPIC = 4


def emodb_clips(shared_data: Path, per_label: int = 3) -> list[tuple[Path, str, str]]:
    """(path, label, speaker) of `per_label` EmoDB utterances per emotion, spread over speakers."""
    wavs = sorted((shared_data / "emodb-dev").rglob("*.wav"))
    out: list[tuple[Path, str, str]] = []
    for n, (letter, label) in enumerate(EMODB_LETTERS.items()):
        chosen = [w for w in wavs if w.name[5] == letter]
        by_speaker: dict[str, list[Path]] = {}
        for w in chosen:
            by_speaker.setdefault(w.name[:2], []).append(w)
        firsts = [v[0] for v in by_speaker.values()]
        picked = (firsts[n:] + firsts[:n])[:per_label]  # rotate so the clips cover several speakers
        out += [(p, label, p.name[:2]) for p in picked]
    return out


def wav_bytes(y: np.ndarray, sr: int = 16000) -> bytes:
    """16-bit PCM WAV of float samples in [-1, 1]."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes((np.clip(y, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def train_tiny_model(shared_data: Path, out: Path, epochs: int = 2) -> Path:
    """A real hsf-crnn trained for a few epochs on a handful of EmoDB clips (behaviour tests only, not accuracy)."""
    from emotion.speech import artifact
    from emotion.speech.train import LABELS, Example, clip_features, fit

    examples = [Example(p.name, LABELS.index(label), spk, clip_features(p)) for p, label, spk in emodb_clips(shared_data, per_label=2)]
    result = fit("hsf-crnn", examples, None, epochs=epochs, seed=0, progress=False)
    return artifact.save(out, result.model, result.normaliser, {"version": "tiny", "epochs": epochs})


@dataclass
class Catalog:
    """Ids of the small labelled catalog: topics[emotion] = [topic ids], songs[topic_id] = [song ids]."""

    topics: dict[str, list[int]] = field(default_factory=dict)
    songs: dict[int, list[int]] = field(default_factory=dict)
    emotion_model_id: int = 0

    def topic_of(self, song_id: int) -> int:
        return next(t for t, ids in self.songs.items() if song_id in ids)

    def emotion_of_topic(self, topic_id: int) -> str:
        return next(e for e, ids in self.topics.items() if topic_id in ids)


def make_catalog(url: str) -> Catalog:
    """Artists, songs labelled by an active song model, and per emotion an active topic model with 3 topics x 4 songs.

    Each song's topic distribution is 0.7 on its own topic, 0.2 on the next and 0.1 on the one after (cyclic), so the
    nearest topic of topic i is topic i+1.
    """
    from catalog.db import session_scope
    from catalog.models import Artist, EmotionLabel, EmotionModel, Song, SongTopic, Topic, TopicModel

    cat = Catalog()
    with session_scope(url) as s:
        model = EmotionModel(name="test-songs", version="1", kind="song", artifact_path="/nonexistent", active=True)
        artist = Artist(name="Test Artist", name_norm="test artist")
        s.add_all([model, artist])
        s.flush()
        cat.emotion_model_id = model.id
        for emotion in EMOTIONS:
            tm = TopicModel(emotion=emotion, version=1, params={"emotion_model_id": model.id}, artifact_path="/nonexistent", active=True)
            s.add(tm)
            s.flush()
            topics = [Topic(topic_model_id=tm.id, index=i, size=SONGS_PER_TOPIC, description={"label": f"{emotion} {i}"}) for i in range(TOPICS_PER_EMOTION)]
            s.add_all(topics)
            s.flush()
            cat.topics[emotion] = [t.id for t in topics]
            for i, topic in enumerate(topics):
                cat.songs[topic.id] = []
                for j in range(SONGS_PER_TOPIC):
                    song = Song(
                        title=f"{emotion} t{i} s{j}",
                        artist_id=artist.id,
                        album="Test Album",
                        duration_s=180.0 + j,
                        fingerprint=f"{emotion}-{i}-{j}",
                        status="topics",
                    )
                    s.add(song)
                    s.flush()
                    cat.songs[topic.id].append(song.id)
                    probs = {e: (0.7 if e == emotion else 0.1) for e in EMOTIONS}
                    s.add(EmotionLabel(song_id=song.id, model_id=model.id, label=emotion, confidence=0.9 - 0.1 * j, probabilities=probs))
                    for k, w in ((0, 0.7), (1, 0.2), (2, 0.1)):
                        s.add(SongTopic(song_id=song.id, topic_id=topics[(i + k) % TOPICS_PER_EMOTION].id, weight=w, dominant=k == 0))
    return cat


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`uvicorn cli.serve_cmd:create_app --factory` (the app `musicrec serve` runs, with the workers' admin backend)
    in a subprocess on 127.0.0.1."""

    def __init__(self, env: dict[str, str], port: int | None = None) -> None:
        self.port = port or free_port()
        self.env = {**os.environ, **env}
        self.proc: subprocess.Popen | None = None
        self.log = Path(env.get("MUSICREC_VAR_DIR", "/tmp")) / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180.0) -> Server:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "cli.serve_cmd:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=self.env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not start in {timeout} s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="session")
def tiny_speech_model(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real hsf-crnn artifact trained for 2 epochs on 8 EmoDB clips."""
    return train_tiny_model(shared_data, tmp_path_factory.mktemp("speech-model") / "hsf-crnn")


ADMIN_KEY = "test-admin-key"  # the admin key of the API tests' server
BUSY_S = 3.0  # the API tests' db_busy_timeout_s


def count(url: str, model, *where) -> int:
    with session_scope(url) as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)))


def post_clip(base: str, path: Path, listener: str, token: str | None = None, **extra: str) -> httpx.Response:
    headers = {"X-Listener-Token": token} if token else {}
    with path.open("rb") as fh:
        return httpx.post(base + "/v1/recommendations", files={"audio": (path.name, fh, "audio/wav")}, data={"listener": listener, **extra},
                          headers=headers, timeout=60)


def auth(token: str) -> dict[str, str]:
    return {"X-Listener-Token": token}
