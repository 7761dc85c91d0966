"""How well a grader's numbers agree with people's labels: Spearman's rho with a bootstrap interval over
conversations (replies to one dialogue are not independent), and macro-F1 of the criterion cut into the
label's classes at fixed, evenly spaced thresholds (never fitted to the labels)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho (average ranks for ties); nan when either side is constant."""
    if len(x) < 3:
        return math.nan
    rx, ry = rankdata(x), rankdata(y)
    sx, sy = rx.std(), ry.std()
    if sx == 0 or sy == 0:
        return math.nan
    return float(((rx - rx.mean()) * (ry - ry.mean())).mean() / (sx * sy))


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def to_dict(self) -> dict:
        return {"value": _finite(self.value), "low": _finite(self.low), "high": _finite(self.high)}


def _finite(v: float) -> float | None:
    return None if math.isnan(v) else round(v, 4)


def cluster_bootstrap(x: np.ndarray, y: np.ndarray, groups: np.ndarray, *, n_boot: int = 1000,
                      seed: int = 0) -> Interval:
    """Spearman's rho and its 95 % percentile interval, resampling whole groups (conversations)."""
    value = spearman(x, y)
    ids, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(ids))]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        idx = np.concatenate([members[g] for g in rng.integers(0, len(ids), len(ids))])
        rho = spearman(x[idx], y[idx])
        if not math.isnan(rho):
            draws.append(rho)
    if len(draws) < n_boot // 2:
        return Interval(value, math.nan, math.nan)
    low, high = np.percentile(draws, [2.5, 97.5])
    return Interval(value, float(low), float(high))


def cut(x: np.ndarray, classes: list[float]) -> np.ndarray:
    """A value in [0, 1] mapped to the nearest of the label's classes (equal-width bins over [0, 1])."""
    edges = np.linspace(0, 1, len(classes) + 1)[1:-1]
    return np.asarray(classes)[np.digitize(x, edges)]


def macro_f1(predicted: np.ndarray, truth: np.ndarray, classes: list[float]) -> float:
    """The mean F1 over the classes that occur in the labels."""
    scores = []
    for c in classes:
        if not (truth == c).any():
            continue
        tp = float(((predicted == c) & (truth == c)).sum())
        fp = float(((predicted == c) & (truth != c)).sum())
        fn = float(((predicted != c) & (truth == c)).sum())
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(scores)) if scores else math.nan
