"""PNG plots of an emotion's active topic model: topic-word heat map and songs per topic."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from catalog.db import session_scope
from catalog.settings import get_settings
from catalog.store import FileStore
from topics import artifact as artifacts
from topics.infer import active_topic_model
from topics.lda import topic_word


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def heatmap(matrix: np.ndarray, words: list[int], labels: list[str], title: str, out: Path) -> Path:
    """Rows = topics, columns = audio words, colour = P(word | topic)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(words) + 3), 1.0 + 0.6 * len(labels)))
    im = ax.imshow(matrix, aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(words)), [f"w{w}" for w in words], rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("audio word (codeword)")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="P(word | topic)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def sizes_bar(sizes: list[int], labels: list[str], title: str, out: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 1.0 + 0.5 * len(sizes)))
    ax.barh(range(len(sizes)), sizes, color="tab:blue")
    ax.set_yticks(range(len(sizes)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("songs (dominant topic)")
    ax.set_title(title)
    for i, n in enumerate(sizes):
        ax.text(n, i, f" {n}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def write_plots(emotion: str, out_dir: Path | None = None, url: str | None = None, store: FileStore | None = None, top_n: int = 8) -> list[Path]:
    """Write `<emotion>-v<version>-topic-words.png` and `-songs-per-topic.png`; return their paths."""
    out_dir = Path(out_dir) if out_dir else get_settings().var_dir / "plots" / "topics"
    out_dir.mkdir(parents=True, exist_ok=True)
    with session_scope(url) as session:
        tm = active_topic_model(session, emotion)
        version, path = tm.version, tm.artifact_path
        sizes = [t.size for t in tm.topics]
        labels = [f"T{t.index}: {str(t.description.get('label', ''))[:40]}" for t in tm.topics]
    tw = topic_word(artifacts.load(path, store).lda)
    words = sorted({int(w) for row in tw for w in np.argsort(-row)[:top_n]})
    stem = f"{emotion}-v{version}"
    return [
        heatmap(tw[:, words], words, labels, f"{emotion} v{version}: top audio words per topic", out_dir / f"{stem}-topic-words.png"),
        sizes_bar(sizes, labels, f"{emotion} v{version}: songs per topic", out_dir / f"{stem}-songs-per-topic.png"),
    ]
