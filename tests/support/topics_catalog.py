"""A small real catalog for the topics tests: EMOPIA clips (excerpts rendered from the shared MIDI) labelled by quadrant."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

EXCERPT_S = 18.0
PER_QUADRANT = 6
QUAD = {"1": "happy", "2": "angry", "3": "sad", "4": "relaxed"}
NAME = re.compile(r"^Q([1-4])_(.+)_(\d+)$")


@dataclass(frozen=True)
class Clip:
    path: Path
    emotion: str
    song: str


def pick_midis(root: Path, per_quadrant: int = PER_QUADRANT) -> list[tuple[Path, str, str]]:
    """The first clip of the first `per_quadrant` distinct songs of each quadrant (sorted, so stable)."""
    seen: dict[str, list[tuple[Path, str, str]]] = defaultdict(list)
    songs: set[str] = set()
    for f in sorted(root.rglob("*.mid")):
        m = NAME.match(f.stem)
        if not m or m.group(2) in songs or len(seen[m.group(1)]) >= per_quadrant:
            continue
        songs.add(m.group(2))
        seen[m.group(1)].append((f, QUAD[m.group(1)], m.group(2)))
    return [c for q in sorted(seen) for c in seen[q]]


def trim_midi(src: Path, dest: Path, seconds: float = EXCERPT_S) -> Path:
    """Keep the notes that start in the first `seconds` (cut at `seconds`), so rendering stays fast."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(str(src))
    for inst in pm.instruments:
        inst.notes = [pretty_midi.Note(n.velocity, n.pitch, n.start, min(n.end, seconds)) for n in inst.notes if n.start < seconds - 0.05]
        inst.control_changes = [c for c in inst.control_changes if c.time < seconds]
        inst.pitch_bends = [b for b in inst.pitch_bends if b.time < seconds]
    pm.write(str(dest))
    return dest


def render_clips(root: Path, out: Path) -> list[Clip]:
    from concurrent.futures import ThreadPoolExecutor

    from catalog.importers.emopia import find_soundfont, render_midi

    sf2 = find_soundfont()
    out.mkdir(parents=True, exist_ok=True)

    def one(job: tuple[Path, str, str]) -> Clip:
        midi, emotion, song = job
        short = trim_midi(midi, out / f"{midi.stem}.mid")
        return Clip(render_midi(short, out / f"{midi.stem}.flac", sf2), emotion, song)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(one, pick_midis(root)))


def add_song(session, store, path: Path, title: str, emotion: str | None, model_id: int | None, artist=None, confidence: float = 1.0, status: str = "labelled"):
    """Insert one song with its audio asset (copied into the store) and, when given, its emotion label."""
    from catalog.fingerprint import song_fingerprint
    from catalog.models import AudioAsset, EmotionLabel, Song

    info = sf.info(str(path))
    digest, stored = store.put_file("audio", path)
    song = Song(
        title=title,
        artist=artist,
        duration_s=info.duration,
        fingerprint=song_fingerprint(title, artist.name if artist else None, None, info.duration),
        status=status,
    )
    song.audio = AudioAsset(
        sha256=digest,
        path=store.relative(stored),
        format=path.suffix.lstrip("."),
        sample_rate=info.samplerate,
        channels=info.channels,
        duration_s=info.duration,
        size_bytes=stored.stat().st_size,
    )
    session.add(song)
    session.flush()
    if emotion:
        session.add(EmotionLabel(song_id=song.id, model_id=model_id, label=emotion, confidence=confidence, probabilities={emotion: confidence}))
    return song


def build_catalog(url: str, clips: list[Clip]) -> dict[str, list[int]]:
    """Songs + an active 'EMOPIA quadrant' emotion model whose labels are the clips' quadrants; returns song ids per emotion."""
    from catalog.db import session_scope
    from catalog.models import Artist, EmotionModel
    from catalog.store import FileStore

    store = FileStore()
    ids: dict[str, list[int]] = defaultdict(list)
    rng = np.random.default_rng(0)
    with session_scope(url) as session:
        model = EmotionModel(name="emopia-quadrant", version="1", kind="song", artifact_path="-", active=True, metrics={"source": "EMOPIA quadrant labels"})
        session.add(model)
        session.flush()
        artists: dict[str, Artist] = {}
        for i, clip in enumerate(clips):
            # EMOPIA has no artist field; its YouTube song id stands in, one "artist" per two songs.
            key = f"emopia-{clip.emotion}-{i // 2}"
            artist = artists.setdefault(key, Artist(name=key, name_norm=key))
            song = add_song(
                session, store, clip.path, f"{clip.song} ({clip.path.stem})", clip.emotion, model.id, artist, confidence=round(float(rng.uniform(0.5, 1.0)), 3)
            )
            ids[clip.emotion].append(song.id)
    return dict(ids)
