"""Readable topic descriptions: audio words in plain descriptors, common artists, distinctive lyric words."""

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
}
WORDS = {
    "tempo": ("fast", "slow"),
    "brightness": ("bright", "dark"),
    "loudness": ("loud", "soft"),
    "pitch range": ("wide pitch range", "narrow pitch range"),
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

    def as_json(self) -> dict:
        return {"label": self.label, "audio": self.audio, "values": self.values, "top_words": self.top_words, "artists": self.artists, "lyric_words": self.lyric_words}


def physical_values(vector: np.ndarray, layout: dict[str, dict[str, list[int]]]) -> dict[str, float]:
    """An LLD vector's descriptors in their own units: tempo in BPM, dB, Hz."""
    out: dict[str, float] = {}
    if "tempo" in layout:
        period = float(vector[layout["tempo"]["minus"]].mean())
        if period > 0:
            out["tempo_bpm"] = round(60.0 / period, 1)
    if "brightness" in layout:
        out["brightness_db"] = round(10.0 * (float(vector[layout["brightness"]["plus"]].mean()) - float(vector[layout["brightness"]["minus"]].mean())), 2)
    if "loudness" in layout:
        out["loudness_db"] = round(10.0 * float(vector[layout["loudness"]["plus"]].mean()), 2)
    if "pitch range" in layout:
        out["pitch_range_hz"] = round(float(vector[layout["pitch range"]["plus"]].mean()), 1)
    return out


def audio_descriptions(centers_raw: np.ndarray, topic_word: np.ndarray, word_freq: np.ndarray, top_n: int = 5, min_z: float = 0.15) -> list[dict]:
    """Per topic: descriptor z-scores, values in units, label words and top audio words.

    z = (topic value - mean over the emotion's topics) / spread of the emotion's frames (codewords weighted by
    use). A topic is a blend of many codewords, so its z-scores are small; a descriptor names a topic when its
    |z| is at least `min_z` and at least half the largest |z| of that descriptor among the topics.
    """
    layout = layout_for(centers_raw.shape[1])
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
    for row, z in zip(topic_word, zs):
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
    out = []
    for toks in tokenised:
        if not toks:
            out.append([])
            continue
        tf = Counter(toks)
        total = len(toks)
        score = {w: (c / total) * (np.log((1 + n_docs) / (1 + df[w])) + 1.0) for w, c in tf.items()}
        out.append([w for w, _ in sorted(score.items(), key=lambda kv: (-kv[1], kv[0]))[:top_n]])
    return out


def describe_topics(
    centers_raw: np.ndarray,
    topic_word: np.ndarray,
    word_freq: np.ndarray,
    artists_per_topic: list[list[str | None]],
    lyrics_per_topic: list[list[str]],
) -> list[TopicDescription]:
    """One description per topic."""
    audio = audio_descriptions(centers_raw, topic_word, word_freq)
    artists = common_artists(artists_per_topic)
    lyric_words = distinctive_words(lyrics_per_topic)
    out = []
    for t, a in enumerate(audio):
        label = a["label"]
        if artists[t]:
            label += f"; often {artists[t][0][0]}"
        if lyric_words[t]:
            label += f"; lyrics: {', '.join(lyric_words[t][:3])}"
        out.append(TopicDescription(label=label, audio=a["z"], values=a["values"], top_words=a["top_words"], artists=artists[t], lyric_words=lyric_words[t]))
    return out
