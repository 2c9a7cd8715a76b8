"""Frame descriptors of catalog songs: load the song's audio and run a frame encoder `(y, sr) -> [n, d]`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from catalog.audio import LLD_SR, AudioError, load
from catalog.models import Song
from catalog.store import FileStore
from emotion.features.cache import load_song_frames, save_song_frames
from topics.codebook import clean_frames
from topics.errors import NoFramesError, TopicsError

FrameEncoder = Callable[[np.ndarray, int], np.ndarray]
FRAME_SR = LLD_SR  # the rate the worker pipeline and the emotion models compute song LLD frames at (16 kHz)
# Persisted LLD frames are shared with the worker pipeline through emotion.features.cache (load_song_frames,
# save_song_frames: encoder SONG_FRAMES_ENCODER).


def lld_encoder(frame_s: float = 3.0) -> FrameEncoder:
    """The 62-d LLD frame descriptor of emotion.features.lld (3 s frames by default)."""
    try:
        from emotion.features.lld import lld_frames
    except ImportError as exc:  # pragma: no cover - depends on the features package being present
        raise TopicsError(f"the LLD frame encoder (emotion.features.lld) is not available: {exc}") from exc

    def encode(y: np.ndarray, sr: int) -> np.ndarray:
        return lld_frames(y, sr, frame_s=frame_s)

    encode.__name__ = f"lld_{frame_s:g}s"
    return encode


def audio_path(song: Song, store: FileStore) -> Path:
    """Absolute path of a song's audio file (asset paths are store-relative or absolute)."""
    if song.audio is None:
        raise NoFramesError(f"song {song.id} has no audio asset")
    p = Path(song.audio.path)
    return p if p.is_absolute() else store.resolve(song.audio.path)


class SongFrames:
    """Callable giving a song's finite frames [n, d]; raises NoFramesError with the reason.

    Memoised in memory by audio hash; with `persist` (the default for the LLD encoder at FRAME_SR, 16 kHz) the
    frames are also read from and written to the catalog's feature cache shared with the workers, so a
    rebuild does not analyse the audio again.
    """

    def __init__(self, encoder: FrameEncoder | None = None, sr: int = FRAME_SR, store: FileStore | None = None,
                 cache: bool | dict[str, np.ndarray] = True, persist: bool | None = None, url: str | None = None) -> None:
        self.encoder = encoder or lld_encoder()
        self.sr = sr
        self.store = store or FileStore()
        self.url = url
        self._cache: dict[str, np.ndarray] | None = cache if isinstance(cache, dict) else ({} if cache else None)
        self.persist = (encoder is None and sr == FRAME_SR) if persist is None else persist

    @property
    def name(self) -> str:
        return getattr(self.encoder, "__name__", type(self.encoder).__name__)

    def __call__(self, song: Song) -> np.ndarray:
        key = f"{song.audio.sha256}:{self.name}:{self.sr}" if song.audio is not None else None
        if self._cache is not None and key and key in self._cache:
            return self._cache[key]
        frames = self._load_persisted(song) if self.persist else None
        if frames is None:
            frames = self._compute(song)
            if self.persist:
                self.persist_frames(song, frames)
        good = clean_frames(frames)
        if len(good) == 0:
            raise NoFramesError(f"all {len(frames)} frames have non-finite values")
        if self._cache is not None and key:
            self._cache[key] = good
        return good

    def _compute(self, song: Song) -> np.ndarray:
        path = audio_path(song, self.store)
        try:
            y = load(path, sr=self.sr)
        except AudioError as exc:
            raise NoFramesError(f"audio unusable: {exc}") from exc
        except FileNotFoundError as exc:
            raise NoFramesError(f"audio file missing: {path}") from exc
        try:
            frames = np.asarray(self.encoder(y, self.sr), dtype=np.float32)
        except Exception as exc:  # an encoder failure on one song is recorded, not fatal
            raise NoFramesError(f"frame encoder failed: {type(exc).__name__}: {exc}") from exc
        if frames.ndim != 2 or frames.shape[0] == 0:
            raise NoFramesError(f"frame encoder returned no frames (shape {frames.shape}); audio of {len(y) / self.sr:.1f} s")
        return frames

    def _load_persisted(self, song: Song) -> np.ndarray | None:
        return load_song_frames(song.audio.sha256, self.url, self.store) if song.audio is not None else None

    def persist_frames(self, song: Song, frames: np.ndarray) -> None:
        """Store frames in the shared feature cache (a row recorded meanwhile by someone else is kept)."""
        if song.audio is not None:
            save_song_frames(song.id, song.audio.sha256, frames, self.url, self.store)
