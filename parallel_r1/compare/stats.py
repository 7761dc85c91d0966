"""Per model and slice: mean rubric score, its delta against the base with a paired bootstrap CI
(resampling held-out prefixes; each prefix's samples are averaged first), and output-pattern density."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from parallel_r1.compare.models import BASE
from parallel_r1.compare.scoring import ScoredReply
from parallel_r1.data.hashing import stable_hash
from parallel_r1.inference.policy import ParallelKPIs, parallel_kpis


@dataclass
class Cell:
    """One model on one slice."""

    model: str
    slice: str
    mean: float
    n: int  # held-out prefixes
    delta: float  # mean - base mean, on the same prefixes
    ci_low: float
    ci_high: float

    @property
    def significant(self) -> bool:
        return self.ci_low > 0 or self.ci_high < 0


def item_means(rows: list[ScoredReply], model: str, slice_name: str | None = None) -> dict[str, float]:
    """Mean score over samples per held-out prefix, for one model (and one slice)."""
    acc: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r.model == model and (slice_name is None or slice_name in r.slices):
            acc[r.item_id].append(r.score)
    return {k: float(np.mean(v)) for k, v in acc.items()}


def paired_bootstrap_ci(diffs: np.ndarray, samples: int, level: float, seed: int = 0) -> tuple[float, float]:
    """Percentile CI of the mean of paired differences."""
    if len(diffs) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, len(diffs), size=(samples, len(diffs)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def compare_cells(rows: list[ScoredReply], models: list[str], slices: list[str], *, samples: int = 2000,
                  level: float = 0.95) -> list[Cell]:
    """A Cell per (model, slice); the base's own delta is 0 with an empty interval."""
    cells = []
    for s in slices:
        base = item_means(rows, BASE, s)
        seed = stable_hash(0, s)
        for m in models:
            mine = item_means(rows, m, s)
            shared = sorted(set(mine) & set(base))
            diffs = np.array([mine[i] - base[i] for i in shared])
            lo, hi = (0.0, 0.0) if m == BASE else paired_bootstrap_ci(diffs, samples, level, seed=seed)
            cells.append(Cell(m, s, float(np.mean(list(mine.values()))) if mine else float("nan"), len(mine),
                              float(diffs.mean()) if len(diffs) else float("nan"), lo, hi))
    return cells


def cell_map(cells: list[Cell]) -> dict[tuple[str, str], Cell]:
    return {(c.model, c.slice): c for c in cells}


def niche_delta(rows: list[ScoredReply], model: str, niche: list[str], samples: int, level: float
                ) -> tuple[float, float, float, int]:
    """Delta against the base over the union of a specialist's niche slices: (delta, ci_low, ci_high, n)."""
    mine = {k: v for s in niche for k, v in item_means(rows, model, s).items()}
    base = {k: v for s in niche for k, v in item_means(rows, BASE, s).items()}
    shared = sorted(set(mine) & set(base))
    diffs = np.array([mine[i] - base[i] for i in shared])
    if not len(diffs):
        return float("nan"), float("nan"), float("nan"), 0
    lo, hi = paired_bootstrap_ci(diffs, samples, level)
    return float(diffs.mean()), lo, hi, len(diffs)


@dataclass
class ModelSummary:
    """What the gate and the report need about one model over the whole held-out set."""

    model: str
    mean: float
    replies: int
    pattern_density: float  # stock phrases per reply
    dismissive_rate: float
    answer_dump_rate: float  # among replies to direct questions
    mean_tokens: float
    parallel: ParallelKPIs  # of the raw replies: 0 for a model that never uses the format


def summarise(rows: list[ScoredReply], models: list[str]) -> dict[str, ModelSummary]:
    out = {}
    for m in models:
        mine = [r for r in rows if r.model == m]
        if not mine:
            continue
        direct = [r for r in mine if r.question_type == "original"]
        out[m] = ModelSummary(
            model=m, mean=float(np.mean(list(item_means(rows, m).values()))), replies=len(mine),
            pattern_density=float(np.mean([r.stock_phrases for r in mine])),
            dismissive_rate=float(np.mean([r.dismissive for r in mine])),
            answer_dump_rate=float(np.mean([r.answer_dump for r in direct])) if direct else 0.0,
            mean_tokens=float(np.mean([r.completion_tokens for r in mine])),
            parallel=parallel_kpis([r.reply for r in mine]),
        )
    return out
