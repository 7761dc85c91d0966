"""The fitted grader's model: one ridge regression per criterion over standardised features.

Each embedding block is scaled as one unit, so that its 384 columns together weigh like a handful of hand-made
features rather than drowning them. The criterion's own rubric value is the unpenalised starting point (a
calibrated rubric), and the penalty learns corrections on top of it; its strength is chosen from a small fixed
grid by cross-validation over conversations inside the training data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import GroupKFold
from threadpoolctl import threadpool_limits

from parallel_r1.grade.agreement import spearman

ALPHAS = (1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0)
DEFAULT_ALPHA = 100.0  # when the training data holds a single conversation: nothing to cross-validate over
EMBEDDING_WEIGHT = 16.0  # an embedding block, as a whole, weighs like this many standardised features
INNER_FOLDS = 5


def scaler(X: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and scale: unit variance for hand-made features, one common scale per embedding block."""
    mean, scale = X.mean(axis=0), X.std(axis=0)
    blocks: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        if name.startswith("embedding:"):
            blocks.setdefault(name.rsplit(":", 1)[0], []).append(i)
    for idx in blocks.values():
        rms = float(np.sqrt((scale[idx] ** 2).mean()))
        scale[idx] = rms * math.sqrt(len(idx) / EMBEDDING_WEIGHT) if rms > 0 else 1.0
    scale[scale == 0] = 1.0
    return mean, scale


@dataclass
class Linear:
    """One criterion's model on standardised features: clip(Z @ coef + intercept) to [0, 1]."""

    coef: np.ndarray
    intercept: float
    alpha: float

    def predict(self, Z: np.ndarray) -> np.ndarray:
        return np.clip(Z @ self.coef + self.intercept, 0.0, 1.0)


def _ridge(Z: np.ndarray, y: np.ndarray, alphas: tuple[float, ...],
           offset: int | None) -> list[tuple[np.ndarray, float]]:
    """(coef, intercept) per penalty: least squares on the offset column alone, then ridge on what it leaves."""
    z_mean, y_mean = Z.mean(axis=0), float(y.mean())
    Zc, yc = Z - z_mean, y - y_mean
    base = np.zeros(Z.shape[1])
    if offset is not None:
        var = float(Zc[:, offset] @ Zc[:, offset])
        if var > 0:
            base[offset] = float(Zc[:, offset] @ yc) / var
    U, s, Vt = np.linalg.svd(Zc, full_matrices=False)
    projected = U.T @ (yc - Zc @ base)
    out = []
    for alpha in alphas:
        coef = base + Vt.T @ (s / (s ** 2 + alpha) * projected)
        out.append((coef, y_mean - float(z_mean @ coef)))
    return out


def choose_alpha(Z: np.ndarray, y: np.ndarray, groups: np.ndarray, offset: int | None) -> float:
    """The penalty whose out-of-fold predictions (folds by conversation) rank the labels best; the strongest
    penalty among equals."""
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        return DEFAULT_ALPHA
    predictions = np.zeros((len(ALPHAS), len(y)))
    for train, test in GroupKFold(n_splits=min(INNER_FOLDS, n_groups)).split(Z, y, groups):
        for k, (coef, intercept) in enumerate(_ridge(Z[train], y[train], ALPHAS, offset)):
            predictions[k, test] = np.clip(Z[test] @ coef + intercept, 0.0, 1.0)
    scores = [spearman(p, y) for p in predictions]
    scores = [-math.inf if math.isnan(s) else s for s in scores]
    best = max(scores)
    return max(a for a, s in zip(ALPHAS, scores, strict=True) if s == best)


def fit_linear(Z: np.ndarray, y: np.ndarray, groups: np.ndarray, offset: int | None) -> Linear:
    """A criterion's model on standardised features Z, with its penalty chosen by inner group cross-validation.

    The matrices are small: BLAS runs single-threaded, since its threads only fight over busy cores (a shared
    machine, or Ray workers beside it) and can make the fit twenty times slower."""
    with threadpool_limits(limits=1, user_api="blas"):
        alpha = choose_alpha(Z, y, groups, offset)
        coef, intercept = _ridge(Z, y, (alpha,), offset)[0]
    return Linear(coef=coef, intercept=intercept, alpha=alpha)
