"""Topic descriptions a person can tell apart: listener numbers against the emotion's median song, representative
songs, codewords named by sound, and the 2-D song map. LLD vectors are built by hand so the expected words are known."""

from __future__ import annotations

import numpy as np
import pytest

from emotion.features.lld import LLD_NAMES
from topics.describe import contrast, describe_topics, representative_songs, word_sounds
from topics.view import mixture_map, topic_corners

IDX = {n: i for i, n in enumerate(LLD_NAMES)}
BANDS = [IDX[n] for n in LLD_NAMES if n.startswith("band")]


def song(bpm: float = 100.0, loud: float = 0.0, bright: float = 0.0, pitch_range: float = 300.0, beat: float = 2.0) -> np.ndarray:
    """A mean LLD vector with the given tempo, extra log10 band power (loud), high-band tilt (bright), pitch range."""
    v = np.zeros(len(LLD_NAMES))
    v[IDX["beat_period1"]] = 60.0 / bpm
    v[BANDS] = -3.0 + loud
    for n in ("band2500_3000", "band3000_3500", "band3500_4000"):
        v[IDX[n]] += bright
    v[IDX["pitch_range"]] = pitch_range
    v[IDX["beat_sum"]] = beat
    return v


@pytest.fixture()
def three_topics() -> tuple[np.ndarray, np.ndarray]:
    """9 songs: topic 0 fast (150 BPM), topic 1 loud (+5 dB), topic 2 like the median song."""
    vectors = np.stack([song(bpm=150)] * 3 + [song(loud=0.5)] * 3 + [song()] * 3)
    dist = np.zeros((9, 3))
    for i in range(9):
        dist[i] = 0.1
        dist[i, i // 3] = 0.8
    return vectors, dist


def test_contrast_names_what_sets_each_topic_apart_in_listener_units(three_topics) -> None:
    vectors, dist = three_topics
    out = contrast(vectors, dist.argmax(axis=1), 3)
    assert out[0]["label"] == "faster (150 vs 100 BPM)"
    assert out[0]["measures"]["tempo_bpm"] == {"topic": 150.0, "median": 100.0, "diff": 50.0, "effect": 1.0}
    assert out[1]["label"] == "louder (+5.0 dB)"
    assert out[1]["measures"]["loudness_db"]["diff"] == pytest.approx(5.0)
    assert out[2]["label"].startswith("close to the emotion's median")
    assert set(out[2]["measures"]) == {"tempo_bpm", "loudness_db", "brightness_db", "pitch_range_hz", "energy"}


def test_descriptions_name_representative_songs_and_fall_back_without_song_data(three_topics) -> None:
    vectors, dist = three_topics
    dist[1, 0] = 0.9  # song 1 is the most typical of topic 0
    songs = [{"id": 10 + i, "title": f"Song {i}", "artist": "Band" if i else None} for i in range(9)]
    reps = representative_songs(songs, dist)
    assert [s["id"] for s in reps[0]] == [11, 10, 12] and reps[0][0]["weight"] == 0.9
    centers = np.stack([song(bpm=150), song(loud=0.5), song(bright=0.4), song()])
    topic_word = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]])
    freq = np.ones(4)
    lyrics = [["love love night"], [], []]
    described = describe_topics(centers, topic_word, freq, [["Band"]] * 3, lyrics, song_vectors=vectors, dist=dist, songs=songs)
    assert (
        described[0].label
        == "faster (150 vs 100 BPM); listen to \u201cSong 1\u201d by Band, \u201cSong 0\u201d, \u201cSong 2\u201d by Band; lyrics: love, night"
    )
    assert described[0].as_json()["songs"][0]["title"] == "Song 1" and described[1].measures["loudness_db"] == {
        "topic": -25.0,
        "median": -30.0,
        "diff": 5.0,
        "effect": 1.0,
    }
    plain = describe_topics(centers, topic_word, freq, [["Band"]] * 3, [[], [], []])
    assert plain[0].songs == [] and plain[0].measures == {} and plain[0].label.endswith("often Band")


def test_codewords_are_named_by_how_they_sound() -> None:
    centers = np.stack([song(), song(), song(bpm=160), song(loud=0.8), song(bright=0.8), song(pitch_range=900)])
    names = word_sounds(centers)
    assert names[0] == names[1] == "typical"
    assert "fast" in names[2] and "loud" in names[3] and "bright" in names[4] and "wide pitch range" in names[5]
    assert not any(n.startswith("w") and n[1:].isdigit() for n in names)


def test_song_map_puts_pure_topics_on_corners_and_blends_between() -> None:
    corners = topic_corners(3)
    np.testing.assert_allclose(np.linalg.norm(corners, axis=1), 1.0)
    np.testing.assert_allclose(corners[0], [0.0, 1.0], atol=1e-12)  # the first topic at the top
    points = mixture_map(np.array([[1.0, 0, 0], [0, 0, 1.0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0]]))
    np.testing.assert_allclose(points[0], corners[0], atol=1e-12)
    np.testing.assert_allclose(points[1], corners[2], atol=1e-12)
    np.testing.assert_allclose(points[2], [0, 0], atol=1e-12)
    np.testing.assert_allclose(points[3], (corners[0] + corners[1]) / 2, atol=1e-12)
    two = mixture_map(np.array([[0.75, 0.25]]))
    np.testing.assert_allclose(two, [[-0.5, 0.0]])
    assert mixture_map(np.zeros((0, 4))).shape == (0, 2)
