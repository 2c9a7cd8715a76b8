"""Segmenting audio and lyrics into aligned windows, and cleaning lyrics."""

from __future__ import annotations

import numpy as np
import pytest

from catalog.lyrics import LyricLine, parse_lrc
from emotion.features.cleaning import LyricsError, clean_line, decode_lyrics, prepare_lyrics, tags_out_of_order
from emotion.features.segments import (
    SegmentError,
    SegmentSpec,
    audio_segments,
    chunk_lines,
    lyric_segments,
    windows,
)

SR = 8000


def test_windows_keep_long_enough_last_partial() -> None:
    wins = windows(34.0)
    assert [(w.start_s, w.end_s) for w in wins] == [(0, 10), (10, 20), (20, 30), (30, 34)]
    assert [(w.start_s, w.end_s) for w in windows(32.0)] == [(0, 10), (10, 20), (20, 30)]
    assert len(windows(30.0)) == 3


def test_windows_hop_and_length_configurable() -> None:
    wins = windows(20.0, SegmentSpec(length_s=10, hop_s=5, min_last_s=3))
    assert [(w.start_s, w.end_s) for w in wins] == [(0, 10), (5, 15), (10, 20)]
    wins = windows(7.5, SegmentSpec(length_s=5, hop_s=2.5, min_last_s=0))
    assert [(w.start_s, w.end_s) for w in wins] == [(0, 5), (2.5, 7.5)]


def test_short_audio_one_partial_segment_or_refused() -> None:
    assert [(w.start_s, w.end_s) for w in windows(6.0)] == [(0, 6.0)]
    with pytest.raises(SegmentError, match="shorter than the minimum segment of 3 s"):
        windows(2.0)


def test_audio_segments_cut_samples() -> None:
    y = np.arange(25 * SR, dtype=np.float32)
    segs, wins = audio_segments(y, SR)
    assert [len(s) for s in segs] == [10 * SR, 10 * SR, 5 * SR]
    assert segs[1][0] == 10 * SR and wins[2].end_s == 25.0
    with pytest.raises(SegmentError, match="mono"):
        audio_segments(np.zeros((2, 100)), SR)


def test_lyrics_aligned_to_audio_windows_by_time_tag() -> None:
    lines = parse_lrc("[00:01.00]first\n[00:09.50]second\n[00:12.00]third\n[00:31.00]tail\n")
    wins = windows(25.0)
    segs = lyric_segments(lines, wins)
    assert [(s.window, s.lines) for s in segs] == [(0, ["first", "second"]), (1, ["third"]), (2, ["tail"])]
    assert segs[0].start_s == 0 and segs[0].end_s == 10


def test_lyrics_overlapping_windows_share_lines() -> None:
    lines = [LyricLine(6.0, "a"), LyricLine(11.0, "b")]
    segs = lyric_segments(lines, windows(20.0, SegmentSpec(10, 5, 3)))
    assert [(s.window, s.lines) for s in segs] == [(0, ["a"]), (1, ["a", "b"]), (2, ["b"])]


def test_lyrics_only_windows_from_tags_and_untagged_chunks() -> None:
    lines = [LyricLine(float(t), f"l{t}") for t in (0, 4, 15, 27)]
    segs = lyric_segments(lines)
    assert [s.lines for s in segs] == [["l0", "l4"], ["l15"], ["l27"]]
    untagged = [LyricLine(None, f"u{i}") for i in range(10)]
    chunks = lyric_segments(untagged, windows(60.0), lines_per_chunk=4)
    assert [len(c.lines) for c in chunks] == [4, 4, 2] and all(c.window is None for c in chunks)
    assert chunk_lines(["a", " ", "b"], 1)[1].text == "b"


def test_clean_line_removes_tags_markers_credits() -> None:
    assert clean_line("[00:12.30]I walk alone x2") == "I walk alone"
    assert clean_line("[Chorus]") == ""
    assert clean_line("[Verse 2: Jay]") == ""
    assert clean_line("Hold on (repeat)") == "Hold on"
    assert clean_line("Hold me now (x3)") == "Hold me now"
    assert clean_line("Repeat chorus") == ""
    assert clean_line("Lyrics by: John Smith") == ""
    assert clean_line("Written by A. Person") == ""
    assert clean_line("www.lyrics-site.com") == ""
    assert clean_line("作词：某人") == ""
    assert clean_line("Three x-rays later") == "Three x-rays later"


def test_prepare_lyrics_notes_and_refusals() -> None:
    raw = "[ar:Someone]\n[00:20.00]and the night is over\n[00:05.00]you and me we walk in the rain\n[Chorus]\n"
    assert tags_out_of_order(raw) == 1
    prepared = prepare_lyrics(raw)
    assert [ln.time_s for ln in prepared.lines] == [5.0, 20.0]
    assert any("out of order" in n for n in prepared.notes)
    with pytest.raises(LyricsError, match="not English"):
        prepare_lyrics("[00:01.00]我爱你中国\n[00:03.00]你是我的眼\n")
    with pytest.raises(LyricsError, match="not English"):
        prepare_lyrics("Der Mond ist aufgegangen, die goldnen Sternlein prangen, am Himmel hell und klar")
    with pytest.raises(LyricsError, match="empty"):
        prepare_lyrics("[Chorus]\n(x2)\n")


def test_non_utf8_lyrics_decoded_with_note_or_refused() -> None:
    text, notes = decode_lyrics("you don’t know".encode("cp1252"))
    assert text == "you don’t know" and "not UTF-8" in notes[0]
    with pytest.raises(LyricsError, match="not UTF-8"):
        decode_lyrics(b"you \x81\x8d know")
    prepared = prepare_lyrics("I can’t stop the love I feel for you tonight".encode("cp1252"))
    assert prepared.notes and prepared.lines[0].text.startswith("I can’t")


def test_real_nju_lyrics_segment(shared_data) -> None:
    path = shared_data / "nju-musicmood-train" / "Angry" / "angry_1.txt"
    prepared = prepare_lyrics(path.read_bytes())
    segs = lyric_segments(prepared.lines)
    assert len(segs) >= 5
    assert all("[" not in s.text for s in segs)
    assert segs[0].window == 1 and "Another day wasted" in segs[0].text


def test_lyrics_windows_follow_the_audio_unless_set() -> None:
    """InputSpec cuts time-tagged lyrics like the audio (what SongGATNet aligns, and what artifacts written before
    `lyrics_segment_s` did) unless the recipe gives the lyrics their own window length (probe-fusion: 0 = 10 s)."""
    from emotion.inputs import InputSpec

    old = InputSpec(segment_s=3.0)
    assert old.lyrics_segments() == old.segments() == SegmentSpec(3.0, min_last_s=1.5)
    assert InputSpec(segment_s=3.0, lyrics_segment_s=0.0).lyrics_segments() == SegmentSpec()
    assert InputSpec(segment_s=3.0, lyrics_segment_s=5.0).lyrics_segments() == SegmentSpec(5.0, min_last_s=2.5)
    lines = [LyricLine(float(t), f"line {t}") for t in range(0, 30, 2)]  # a line every 2 s over 30 s
    assert len(lyric_segments(lines, spec=InputSpec(segment_s=3.0, lyrics_segment_s=0.0).lyrics_segments())) == 3
    assert len(lyric_segments(lines, spec=old.lyrics_segments())) == 10
