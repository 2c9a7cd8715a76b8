"""Scoring: accuracy, macro precision/recall/F1, per-class F1, confusion matrix, one-vs-rest AUC; confusion PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score

from emotion.data import LABELS


def scores(y_true: np.ndarray, probs: np.ndarray, labels: tuple[str, ...] = LABELS) -> dict[str, Any]:
    """All metrics of predictions `probs` [n, C] against label indices `y_true` [n]."""
    y_true = np.asarray(y_true, dtype=int)
    probs = np.asarray(probs, dtype=np.float64)
    y_pred = probs.argmax(1) if len(probs) else np.zeros(0, dtype=int)
    idx = list(range(len(labels)))
    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, labels=idx, zero_division=0)
    present = support > 0
    auc: dict[str, float | None] = {}
    for i, name in enumerate(labels):
        pos = y_true == i
        auc[name] = float(roc_auc_score(pos, probs[:, i])) if 0 < pos.sum() < len(y_true) else None
    known = [v for v in auc.values() if v is not None]
    return {
        "n": int(len(y_true)),
        "labels": list(labels),
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else 0.0,
        "macro_precision": float(p[present].mean()) if present.any() else 0.0,
        "macro_recall": float(r[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f[present].mean()) if present.any() else 0.0,
        "per_class_f1": {name: float(f[i]) for i, name in enumerate(labels)},
        "support": {name: int(support[i]) for i, name in enumerate(labels)},
        "confusion": confusion_matrix(y_true, y_pred, labels=idx).tolist(),
        "auc_ovr": auc,
        "macro_auc": float(np.mean(known)) if known else None,
    }


def plot_confusion(confusion: list[list[int]], labels: list[str], path: Path, title: str = "") -> Path:
    """Write the confusion matrix (rows true, columns predicted) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(confusion)
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=30)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def summary_line(m: dict[str, Any]) -> str:
    if not m:
        return "no validation rows: nothing scored"
    per = " ".join(f"{k}={v:.3f}" for k, v in m["per_class_f1"].items())
    return f"n={m['n']} accuracy={m['accuracy']:.3f} macro_f1={m['macro_f1']:.3f} ({per})"
