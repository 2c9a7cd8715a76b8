"""Linear probes on frozen-encoder vectors (standardise + logistic regression, scikit-learn), shared by the song
ensemble (`emotion.models.ensemble`) and the speech Whisper probe (`emotion.speech.train.fit_probe`)."""

from __future__ import annotations

from typing import Any

import numpy as np


def fit_linear_probe(x: np.ndarray, y: np.ndarray, c: float, max_iter: int = 3000) -> tuple[Any, Any]:
    """A fitted (StandardScaler, LogisticRegression(C=c)) pair on the rows `x` [n, d] with labels `y` [n]."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    return scaler, LogisticRegression(C=c, max_iter=max_iter).fit(scaler.transform(x), y)


def full_class_coefficients(lr: Any, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients [C, d] and intercepts [C] over every class (a class absent from training is never predicted)."""
    coef = np.zeros((n_classes, lr.coef_.shape[1]))
    bias = np.full(n_classes, -1e4)
    two = len(lr.classes_) == 2
    coef[lr.classes_] = np.vstack([-lr.coef_, lr.coef_]) if two else lr.coef_
    bias[lr.classes_] = np.r_[-lr.intercept_, lr.intercept_] if two else lr.intercept_
    return coef, bias
