"""Cutting songs into segments: fixed audio windows (10 s by default) and lyric segments aligned to them.

The same `Window` list drives both modalities: audio segment *i* is `y[start_i:end_i]`, and lyric
segment *i* holds the lines whose time tag falls inside window *i*. Lyrics without time tags cannot be
aligned; they are cut into chunks of `lines_per_chunk` lines instead (`LyricSegment.window` is None).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from catalog.lyrics import LyricLine, has_time_tags

SEGMENT_S = 10.0
MIN_LAST_S = 3.0
LINES_PER_CHUNK = 4


class SegmentError(ValueError):
    """Input that cannot be segmented (too short, empty); the message says why."""


@dataclass(frozen=True)
class SegmentSpec:
    """Window length, hop (default: the length, i.e. no overlap) and the shortest kept last window."""

    length_s: float = SEGMENT_S
    hop_s: float | None = None
    min_last_s: float = MIN_LAST_S

    def __post_init__(self) -> None:
        if self.length_s <= 0 or self.step_s <= 0:
            raise ValueError("segment length and hop must be positive")
        if not 0 <= self.min_last_s <= self.length_s:
            raise ValueError("min_last_s must be between 0 and length_s")

    @property
    def step_s(self) -> float:
        return self.length_s if self.hop_s is None else float(self.hop_s)


@dataclass(frozen=True)
class Window:
    index: int
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass
class LyricSegment:
    """Cleaned text of one lyric segment; `window` is the aligned audio window index (None when untagged)."""

    index: int
    text: str
    window: int | None = None
    start_s: float | None = None
    end_s: float | None = None
    lines: list[str] = field(default_factory=list)


def windows(duration_s: float, spec: SegmentSpec | None = None) -> list[Window]:
    """Full windows every `hop_s`, plus a last partial window when it is at least `min_last_s` long.

    Audio shorter than one window gives a single partial window if it is at least `min_last_s` long,
    otherwise a SegmentError.
    """
    spec = spec or SegmentSpec()
    eps = 1e-9
    if duration_s + eps < max(spec.min_last_s, eps):
        raise SegmentError(
            f"audio is {duration_s:.2f} s long, shorter than the minimum segment of {spec.min_last_s:g} s"
        )
    out: list[Window] = []
    n_full = 0 if duration_s + eps < spec.length_s else int(math.floor((duration_s - spec.length_s) / spec.step_s + eps)) + 1
    for i in range(n_full):
        start = i * spec.step_s
        out.append(Window(i, round(start, 6), round(start + spec.length_s, 6)))
    next_start = n_full * spec.step_s
    covered = out[-1].end_s if out else 0.0
    rest = duration_s - next_start
    if duration_s - covered > eps and rest + eps >= spec.min_last_s and rest > eps:
        out.append(Window(len(out), round(next_start, 6), round(duration_s, 6)))
    if not out:
        raise SegmentError(f"audio of {duration_s:.2f} s gives no segment of at least {spec.min_last_s:g} s")
    return out


def audio_segments(y: np.ndarray, sr: int, spec: SegmentSpec | None = None) -> tuple[list[np.ndarray], list[Window]]:
    """Cut mono audio into segments (views into `y`) and return them with their windows."""
    if y.ndim != 1:
        raise SegmentError(f"expected mono audio (1-D array), got shape {y.shape}")
    wins = windows(len(y) / sr, spec)
    segs = [y[int(round(w.start_s * sr)) : int(round(w.end_s * sr))] for w in wins]
    return segs, wins


def lyric_segments(
    lines: list[LyricLine],
    wins: list[Window] | None = None,
    *,
    spec: SegmentSpec | None = None,
    lines_per_chunk: int = LINES_PER_CHUNK,
) -> list[LyricSegment]:
    """Lyric segments for cleaned lines: by time tag into `wins` when tagged, else chunks of a few lines.

    Without `wins` (lyrics-only songs) the windows are laid over the span of the time tags. Lines are
    assigned to every window that contains their start time; windows without lines give no segment.
    Lines after the last window go to the last window. Untagged lines in a tagged text are dropped.
    """
    lines = [ln for ln in lines if ln.text.strip()]
    if not lines:
        return []
    if not has_time_tags(lines):
        return chunk_lines([ln.text for ln in lines], lines_per_chunk)
    timed = sorted((ln for ln in lines if ln.time_s is not None), key=lambda ln: ln.time_s or 0.0)
    if wins is None:
        span = (timed[-1].time_s or 0.0) + 1e-3
        spec = spec or SegmentSpec()
        wins = windows(span, SegmentSpec(spec.length_s, spec.hop_s, 0.0))
    buckets: dict[int, list[str]] = {}
    last = wins[-1]
    for ln in timed:
        t = ln.time_s or 0.0
        hit = [w.index for w in wins if w.start_s <= t < w.end_s]
        if not hit and t >= last.end_s:
            hit = [last.index]
        for idx in hit:
            buckets.setdefault(idx, []).append(ln.text)
    out: list[LyricSegment] = []
    for w in wins:
        texts = buckets.get(w.index)
        if texts:
            out.append(LyricSegment(len(out), "\n".join(texts), w.index, w.start_s, w.end_s, texts))
    return out


def chunk_lines(texts: list[str], lines_per_chunk: int = LINES_PER_CHUNK) -> list[LyricSegment]:
    """Consecutive chunks of `lines_per_chunk` non-empty lines (untagged lyrics)."""
    if lines_per_chunk < 1:
        raise ValueError("lines_per_chunk must be >= 1")
    texts = [t for t in texts if t.strip()]
    chunks = [texts[i : i + lines_per_chunk] for i in range(0, len(texts), lines_per_chunk)]
    return [LyricSegment(i, "\n".join(c), None, None, None, c) for i, c in enumerate(chunks)]
