"""PNG plots of an emotion's active topic model: topic-word heat map (words named by how they sound), songs per
topic, and the 2-D map of the emotion's songs by topic mixture."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np

from catalog.db import session_scope
from catalog.settings import get_settings
from catalog.store import FileStore
from topics import view
from topics.infer import active_topic_model


def _plt() -> ModuleType:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def heatmap(matrix: np.ndarray, sounds: list[str], labels: list[str], title: str, out: Path) -> Path:
    """Rows = topics, columns = audio words named by how they sound, colour = P(word | topic)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(sounds) + 3), 2.2 + 0.6 * len(labels)))
    im = ax.imshow(matrix, aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(sounds)), sounds, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("audio word: how it sounds against the emotion's average frame")
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


def song_map(points: list[dict], corners: list[list[float]], labels: list[str], title: str, out: Path) -> Path:
    """Songs placed by their topic mixtures (topics at the corners), coloured by dominant topic."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 6.0))
    cmap = plt.get_cmap("tab10")
    for t, label in enumerate(labels):
        pts = [p for p in points if p["topic"] == t]
        ax.scatter([p["x"] for p in pts], [p["y"] for p in pts], s=28, color=cmap(t % 10), label=label, alpha=0.8)
    if len(corners) > 2:
        ax.fill([c[0] for c in corners], [c[1] for c in corners], facecolor="#f3f5f8", edgecolor="#c9d0d8", zorder=0)
    for t, (x, y) in enumerate(corners):
        ax.text(1.13 * x, 1.13 * y, f"T{t}", fontsize=11, fontweight="bold", ha="center", va="center", color=cmap(t % 10))
    ax.set_xlim(-1.3, 1.3)
    ax.set_ylim(-1.3, 1.3)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.02), fontsize=8, ncol=min(len(labels), 5), frameon=False)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def write_plots(emotion: str, out_dir: Path | None = None, url: str | None = None, store: FileStore | None = None, top_n: int = 8) -> list[Path]:
    """Write `<emotion>-v<version>-topic-words.png`, `-songs-per-topic.png` and `-song-map.png`; return their paths."""
    out_dir = Path(out_dir) if out_dir else get_settings().var_dir / "plots" / "topics"
    out_dir.mkdir(parents=True, exist_ok=True)
    with session_scope(url) as session:
        tm = active_topic_model(session, emotion)
        version, path = tm.version, tm.artifact_path
        sizes = [t.size for t in tm.topics]
        labels = [f"T{t.index}: {str(t.description.get('label', ''))[:40]}" for t in tm.topics]
        v = view.build_view(session, emotion, store)
    hm = view.heatmap(path, store, top_n)
    stem = f"{emotion}-v{version}"
    return [
        heatmap(hm.matrix, hm.sounds, labels, f"{emotion} v{version}: top audio words per topic", out_dir / f"{stem}-topic-words.png"),
        sizes_bar(sizes, labels, f"{emotion} v{version}: songs per topic", out_dir / f"{stem}-songs-per-topic.png"),
        song_map(
            v.points,
            v.corners,
            [f"T{t['index']} ({t['size']} songs)" for t in v.topics],
            f"{emotion} v{version}: songs by topic mixture",
            out_dir / f"{stem}-song-map.png",
        ),
    ]
