"""The fitted grader's model: one ridge regression per criterion over standardised features.

Each embedding block is scaled as one unit, so that its 384 columns together weigh like a handful of hand-made
features rather than drowning them. The criterion's own rubric value is the unpenalised starting point (a
calibrated rubric), and the penalty learns corrections on top of it. The human dimensions agree with each other,
so the criterion may learn from a blend of its own labels and the mean of all pedagogy labels (less noisy, same
direction); the penalty and the blend's weight are chosen from small fixed grids by cross-validation over
conversations inside the training data, scored by squared error against the criterion's own labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import GroupKFold
from threadpoolctl import threadpool_limits

ALPHAS = (1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0)
BORROWED = (0.0, 0.5, 0.75)  # weights of the shared labels in the blend a criterion learns from
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
    borrowed: float  # the weight of the shared labels in the target it was fitted on

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


def choose(Z: np.ndarray, y: np.ndarray, shared: np.ndarray, groups: np.ndarray,
           offset: int | None) -> tuple[float, float]:
    """(penalty, borrowed weight) whose out-of-fold predictions (folds by conversation) of the blended target
    come closest to the criterion's own labels `y`; the strongest penalty and the smallest weight among equals."""
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        return DEFAULT_ALPHA, 0.0
    predictions = np.zeros((len(BORROWED), len(ALPHAS), len(y)))
    for train, test in GroupKFold(n_splits=min(INNER_FOLDS, n_groups)).split(Z, y, groups):
        for j, w in enumerate(BORROWED):
            target = (1 - w) * y[train] + w * shared[train]
            for k, (coef, intercept) in enumerate(_ridge(Z[train], target, ALPHAS, offset)):
                predictions[j, k, test] = np.clip(Z[test] @ coef + intercept, 0.0, 1.0)
    errors = ((predictions - y) ** 2).mean(axis=2)
    best = errors.min()
    return max(((a, w) for j, w in enumerate(BORROWED) for k, a in enumerate(ALPHAS) if errors[j, k] <= best),
               key=lambda aw: (aw[0], -aw[1]))


def fit_linear(Z: np.ndarray, y: np.ndarray, shared: np.ndarray, groups: np.ndarray, offset: int | None) -> Linear:
    """A criterion's model on standardised features Z, its own labels y and the shared labels (the mean of every
    pedagogy dimension a reply has), with penalty and blend chosen by inner group cross-validation.

    The matrices are small: BLAS runs single-threaded, since its threads only fight over busy cores (a shared
    machine, or Ray workers beside it) and can make the fit twenty times slower."""
    with threadpool_limits(limits=1, user_api="blas"):
        alpha, borrowed = choose(Z, y, shared, groups, offset)
        coef, intercept = _ridge(Z, (1 - borrowed) * y + borrowed * shared, (alpha,), offset)[0]
    return Linear(coef=coef, intercept=intercept, alpha=alpha, borrowed=borrowed)
