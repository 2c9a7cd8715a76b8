"""Readable topic descriptions: what sets a topic apart from the other topics of its emotion.

In listener numbers (tempo in BPM, loudness and brightness in dB, pitch range in Hz, energy as beat strength)
against the emotion's median song, two or three representative songs to listen to, common artists and, where
lyrics exist, distinctive lyric words. Also the plain descriptors of audio words (codewords), so heat maps can
name a codeword by how it sounds instead of by its id.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

# Descriptors as (plus names, minus names) of emotion.features.lld.LLD_NAMES (the paper's 62-d layout,
# section 2.2): band energies are log10 powers, so "brightness" is a log ratio high/low bands; a longer
# beat period is a slower tempo.
DESCRIPTORS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "tempo": ((), ("beat_period1",)),
    "brightness": (("band2500_3000", "band3000_3500", "band3500_4000"), ("band0_500", "band500_1000")),
    "loudness": (tuple(f"band{i * 500}_{(i + 1) * 500}" for i in range(8)), ()),
    "pitch range": (("pitch_range",), ()),
    "energy": (("beat_sum",), ()),
}
WORDS = {
    "tempo": ("fast", "slow"),
    "brightness": ("bright", "dark"),
    "loudness": ("loud", "soft"),
    "pitch range": ("wide pitch range", "narrow pitch range"),
    "energy": ("energetic", "gentle"),
}
# Song measures in listener units: name -> (descriptor, unit, word when above / below the emotion's median).
MEASURES: dict[str, tuple[str, str, str, str]] = {
    "tempo_bpm": ("tempo", "BPM", "faster", "slower"),
    "loudness_db": ("loudness", "dB", "louder", "softer"),
    "brightness_db": ("brightness", "dB", "brighter", "darker"),
    "pitch_range_hz": ("pitch range", "Hz", "wider pitch range", "narrower pitch range"),
    "energy": ("energy", "", "more energetic", "gentler"),
}
STOP = frozenset(
    "the a an and or but if of to in on at by for with from as is are was were be been am i you he she it we they me my "
    "your his her its our their this that these those not no so do does did have has had will would can could just oh "
    "yeah ooh la na all what when where who how there here up down out over into than then too very im dont cant youre "
    "ill ive its thats let get got like one".split()
)
TOKEN = re.compile(r"[^\W\d_]{3,}", re.UNICODE)


def layout_for(dim: int) -> dict[str, dict[str, list[int]]]:
    """Descriptor -> feature indices into the frame vector; empty when frames are not the 62-d LLD."""
    names = _lld_names()
    if not names or len(names) != dim:
        return {}
    index = {n: i for i, n in enumerate(names)}
    out = {}
    for desc, (plus, minus) in DESCRIPTORS.items():
        if all(n in index for n in plus + minus):
            out[desc] = {"plus": [index[n] for n in plus], "minus": [index[n] for n in minus]}
    return out


def _lld_names() -> list[str] | None:
    try:
        from emotion.features.lld import LLD_NAMES
    except ImportError:
        return None
    return list(LLD_NAMES)


def descriptor_values(vectors: np.ndarray, layout: dict[str, dict[str, list[int]]]) -> dict[str, np.ndarray]:
    """Each descriptor evaluated on each row of `vectors` [n, d]."""
    out = {}
    for desc, idx in layout.items():
        v = np.zeros(len(vectors))
        if idx["plus"]:
            v = v + vectors[:, idx["plus"]].mean(axis=1)
        if idx["minus"]:
            v = v - vectors[:, idx["minus"]].mean(axis=1)
        out[desc] = v
    return out


def _adjectives(z: dict[str, float], threshold: float) -> list[str]:
    return [WORDS[d][0] if s > 0 else WORDS[d][1] for d, s in z.items() if abs(s) >= threshold]


@dataclass
class TopicDescription:
    label: str
    audio: dict[str, float] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)
    top_words: list[dict] = field(default_factory=list)
    artists: list[list] = field(default_factory=list)
    lyric_words: list[str] = field(default_factory=list)
    measures: dict[str, dict[str, float]] = field(default_factory=dict)
    songs: list[dict] = field(default_factory=list)

    def as_json(self) -> dict:
        return {
            "label": self.label, "audio": self.audio, "values": self.values, "top_words": self.top_words, "artists": self.artists,
            "lyric_words": self.lyric_words, "measures": self.measures, "songs": self.songs,
        }


def measures(vectors: np.ndarray, layout: dict[str, dict[str, list[int]]]) -> dict[str, np.ndarray]:
    """LLD vectors [n, d] in listener units: tempo_bpm, loudness_db, brightness_db, pitch_range_hz, energy -> [n].

    Band energies are log10 powers (x10 gives dB); a beat period in seconds gives BPM (NaN when no beat);
    energy is the beat histogram's sum (how strongly the music pulses).
    """
    out: dict[str, np.ndarray] = {}

    def mean(d: str, part: str) -> np.ndarray:
        return vectors[:, layout[d][part]].mean(axis=1)

    if "tempo" in layout:
        period = mean("tempo", "minus")
        with np.errstate(divide="ignore", invalid="ignore"):
            out["tempo_bpm"] = np.where(period > 0, 60.0 / np.where(period > 0, period, 1.0), np.nan)
    if "loudness" in layout:
        out["loudness_db"] = 10.0 * mean("loudness", "plus")
    if "brightness" in layout:
        out["brightness_db"] = 10.0 * (mean("brightness", "plus") - mean("brightness", "minus"))
    if "pitch range" in layout:
        out["pitch_range_hz"] = mean("pitch range", "plus")
    if "energy" in layout:
        out["energy"] = mean("energy", "plus")
    return out


ROUND = {"tempo_bpm": 1, "loudness_db": 2, "brightness_db": 2, "pitch_range_hz": 1, "energy": 3}


def physical_values(vector: np.ndarray, layout: dict[str, dict[str, list[int]]]) -> dict[str, float]:
    """An LLD vector's descriptors in their own units: tempo in BPM, dB, Hz."""
    values = measures(vector[None, :], {d: v for d, v in layout.items() if d != "energy"})
    return {k: round(float(v[0]), ROUND[k]) for k, v in values.items() if np.isfinite(v[0])}


def contrast(song_vectors: np.ndarray, dominant: np.ndarray, num_topics: int, min_effect: float = 0.3) -> list[dict]:
    """Per topic: each measure's median over the topic's songs against the median over the emotion's songs.

    song_vectors: [n_songs, d] mean LLD frame of each song; dominant: [n_songs] each song's dominant topic.
    A measure sets a topic apart when |topic median - emotion median| is at least `min_effect` x the emotion's
    interquartile range of that measure; the phrase names up to three, largest effect first, in listener units.
    Returns [{"measures": {name: {"topic", "median", "diff", "effect"}}, "label": str}] per topic.
    """
    layout = layout_for(song_vectors.shape[1])
    values = measures(song_vectors, layout)
    out = []
    for t in range(num_topics):
        members = dominant == t
        rows: dict[str, dict[str, float]] = {}
        for name, v in values.items():
            ok = np.isfinite(v)
            if not ok.any() or not (members & ok).any():
                continue
            med = float(np.median(v[ok]))
            q1, q3 = np.percentile(v[ok], [25, 75])
            spread = float(q3 - q1) or float(np.std(v[ok])) or 1.0
            topic = float(np.median(v[members & ok]))
            r = ROUND[name]
            rows[name] = {"topic": round(topic, r), "median": round(med, r), "diff": round(topic - med, r), "effect": round((topic - med) / spread, 3)}
        named = sorted((m for m in rows.items() if abs(m[1]["effect"]) >= min_effect), key=lambda m: -abs(m[1]["effect"]))[:3]
        phrases = [_phrase(name, m) for name, m in named]
        label = ", ".join(phrases) if phrases else "close to the emotion's median on tempo, loudness, brightness, pitch range and energy"
        out.append({"measures": rows, "label": label})
    return out


def _phrase(name: str, m: dict[str, float]) -> str:
    _, unit, up, down = MEASURES[name]
    word = up if m["diff"] > 0 else down
    if name == "tempo_bpm":
        return f"{word} ({m['topic']:.0f} vs {m['median']:.0f} BPM)"
    if unit == "dB":
        return f"{word} ({m['diff']:+.1f} dB)"
    if unit == "Hz":
        return f"{word} ({m['topic']:.0f} vs {m['median']:.0f} Hz)"
    return f"{word} (beat strength {m['topic']:.2f} vs {m['median']:.2f})"


def word_sounds(centers_raw: np.ndarray, word_freq: np.ndarray | None = None, threshold: float = 0.75) -> list[str]:
    """A short plain name per codeword from its descriptors against the weighted mean codeword ("loud, slow").

    centers_raw: [k, d] codewords in descriptor units; word_freq: [k] how often each is used (uniform when None).
    A codeword with no descriptor beyond `threshold` standard deviations is "typical".
    """
    layout = layout_for(centers_raw.shape[1])
    if not layout:
        return [f"codeword {w}" for w in range(len(centers_raw))]
    freq = np.ones(len(centers_raw)) if word_freq is None or word_freq.sum() <= 0 else np.asarray(word_freq, dtype=float)
    p = freq / freq.sum()
    vals = descriptor_values(centers_raw, layout)
    stats = {}
    for d, v in vals.items():
        mean = float((p * v).sum())
        sd = float(np.sqrt((p * (v - mean) ** 2).sum()))
        stats[d] = (mean, sd if sd > 1e-9 * max(1.0, abs(mean)) else 1.0)  # a constant descriptor names nothing
    out = []
    for w in range(len(centers_raw)):
        z = {d: (float(vals[d][w]) - stats[d][0]) / stats[d][1] for d in vals}
        top = sorted((d for d in z if abs(z[d]) >= threshold), key=lambda d: -abs(z[d]))[:2]
        out.append(", ".join(_adjectives({d: z[d] for d in top}, threshold)) or "typical")
    return out


def audio_descriptions(centers_raw: np.ndarray, topic_word: np.ndarray, word_freq: np.ndarray, top_n: int = 5, min_z: float = 0.15) -> list[dict]:
    """Per topic: descriptor z-scores, values in units, label words and top audio words.

    z = (topic value - mean over the emotion's topics) / spread of the emotion's frames (codewords weighted by
    use). A topic is a blend of many codewords, so its z-scores are small; a descriptor names a topic when its
    |z| is at least `min_z` and at least half the largest |z| of that descriptor among the topics.
    """
    layout = {d: v for d, v in layout_for(centers_raw.shape[1]).items() if d != "energy"}
    p = word_freq / word_freq.sum() if word_freq.sum() > 0 else np.full(len(word_freq), 1 / len(word_freq))
    word_vals = descriptor_values(centers_raw, layout)
    stats = {}
    for d, v in word_vals.items():
        mean = float((p * v).sum())
        sd = float(np.sqrt((p * (v - mean) ** 2).sum())) or 1.0
        stats[d] = (mean, sd)
    # Centre on the mean over topics: rare outlying codewords (near-silent frames) get some probability in every
    # topic and would otherwise shift all topics the same way.
    raw = {d: topic_word @ v for d, v in word_vals.items()}
    zs = [{d: round((float(raw[d][t]) - float(raw[d].mean())) / stats[d][1], 3) for d in word_vals} for t in range(len(topic_word))]
    thresholds = {d: max(min_z, 0.5 * max(abs(z[d]) for z in zs)) for d in word_vals}
    out = []
    for row, z in zip(topic_word, zs, strict=True):
        named = [WORDS[d][0] if z[d] > 0 else WORDS[d][1] for d in word_vals if abs(z[d]) >= thresholds[d]]
        words = []
        for w in np.argsort(-row)[:top_n]:
            wz = {d: (float(word_vals[d][w]) - stats[d][0]) / stats[d][1] for d in word_vals}
            words.append({"word": int(w), "p": round(float(row[w]), 4), "sounds": ", ".join(_adjectives(wz, 1.0)) or "typical"})
        values = physical_values(row @ centers_raw, layout)
        out.append({"z": z, "values": values, "label": ", ".join(named) or "typical of the emotion", "top_words": words})
    return out


def common_artists(artists_per_topic: list[list[str | None]], top_n: int = 5) -> list[list[list]]:
    """Most common artists of each topic's songs as [name, count] pairs."""
    return [[[a, c] for a, c in Counter(a for a in names if a).most_common(top_n)] for names in artists_per_topic]


def distinctive_words(lyrics_per_topic: list[list[str]], top_n: int = 8) -> list[list[str]]:
    """Words most distinctive of each topic's lyrics: TF-IDF with each topic's lyrics as one document."""
    docs = [" ".join(texts) for texts in lyrics_per_topic]
    tokenised = [[t for t in TOKEN.findall(doc.lower()) if t not in STOP] for doc in docs]
    n_docs = len(tokenised)
    df: Counter[str] = Counter()
    for toks in tokenised:
        df.update(set(toks))
    out: list[list[str]] = []
    for toks in tokenised:
        if not toks:
            out.append([])
            continue
        tf = Counter(toks)
        total = len(toks)
        score = {w: (c / total) * (np.log((1 + n_docs) / (1 + df[w])) + 1.0) for w, c in tf.items()}
        out.append([w for w, _ in sorted(score.items(), key=lambda kv: (-kv[1], kv[0]))[:top_n]])
    return out


def representative_songs(songs: list[dict], dist: np.ndarray, top_n: int = 3) -> list[list[dict]]:
    """Per topic, the `top_n` songs whose dominant topic it is, highest topic weight first.

    songs: one {"id", "title", "artist"} per row of dist [n_songs, T] (topic mixtures).
    """
    dominant = dist.argmax(axis=1)
    out = []
    for t in range(dist.shape[1]):
        idx = [i for i in np.argsort(-dist[:, t], kind="stable") if dominant[i] == t][:top_n]
        out.append([{**songs[i], "weight": round(float(dist[i, t]), 3)} for i in idx])
    return out


def _song_ref(song: dict) -> str:
    return f"\u201c{song['title']}\u201d" + (f" by {song['artist']}" if song.get("artist") else "")


def describe_topics(
    centers_raw: np.ndarray,
    topic_word: np.ndarray,
    word_freq: np.ndarray,
    artists_per_topic: list[list[str | None]],
    lyrics_per_topic: list[list[str]],
    song_vectors: np.ndarray | None = None,
    dist: np.ndarray | None = None,
    songs: list[dict] | None = None,
) -> list[TopicDescription]:
    """One description per topic.

    With the songs' mean LLD vectors (song_vectors [n, d]), their topic mixtures (dist [n, T]) and their
    {"id", "title", "artist"} (songs), the label says how the topic differs from the emotion's median song in
    listener numbers and names representative songs; without them it falls back to the audio-word descriptors.
    """
    audio = audio_descriptions(centers_raw, topic_word, word_freq)
    artists = common_artists(artists_per_topic)
    lyric_words = distinctive_words(lyrics_per_topic)
    contrasts = None
    if song_vectors is not None and dist is not None and layout_for(song_vectors.shape[1]):
        contrasts = contrast(song_vectors, dist.argmax(axis=1), len(audio))
    reps = representative_songs(songs, dist) if songs is not None and dist is not None else [[] for _ in audio]
    out = []
    for t, a in enumerate(audio):
        label = contrasts[t]["label"] if contrasts else a["label"]
        if reps[t]:
            label += "; listen to " + ", ".join(_song_ref(s) for s in reps[t])
        elif artists[t]:
            label += f"; often {artists[t][0][0]}"
        if lyric_words[t]:
            label += f"; lyrics: {', '.join(lyric_words[t][:3])}"
        out.append(
            TopicDescription(
                label=label,
                audio=a["z"],
                values=a["values"],
                top_words=a["top_words"],
                artists=artists[t],
                lyric_words=lyric_words[t],
                measures=contrasts[t]["measures"] if contrasts else {},
                songs=reps[t],
            )
        )
    return out
