"""Signals per served model version over windows of its online evaluations: the latest window's mean score,
spread and failure rate, the drop against its baseline window (its first), the low evaluations in a row at the
end, and compliance failures (a dismissive tone, an answer dumped)."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass

from parallel_r1.config.monitor import MonitorConfig
from parallel_r1.monitor.log import Evaluation


@dataclass(frozen=True)
class Signals:
    """What the triggers read for one model version; `ready` when its latest window holds enough evaluations."""

    model: str
    version: str
    n: int
    window_n: int
    mean: float
    std: float
    failure_rate: float
    baseline_mean: float
    drop: float
    consecutive_low: int
    compliance_failures: int
    last_ts: float
    ready: bool

    def to_dict(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def _consecutive_low(scores: list[float], floor: float) -> int:
    run = 0
    for s in reversed(scores):
        if s >= floor:
            break
        run += 1
    return run


def version_signals(evaluations: list[Evaluation], cfg: MonitorConfig) -> Signals:
    """The signals of one version's evaluations (in time order, at least one)."""
    first = evaluations[0]
    latest, baseline = evaluations[-cfg.window:], evaluations[:cfg.window]
    scores = [e.score for e in latest]
    mean = statistics.fmean(scores)
    baseline_mean = statistics.fmean(e.score for e in baseline)
    # the baseline is the first window; while the version has served no more than one window there is no drift
    drop = (baseline_mean - mean) / baseline_mean if baseline_mean > 0 and len(evaluations) > cfg.window else 0.0
    return Signals(
        model=first.model, version=first.version, n=len(evaluations), window_n=len(latest), mean=mean,
        std=statistics.pstdev(scores) if len(scores) > 1 else 0.0,
        failure_rate=sum(e.error or e.score < cfg.failure_below for e in latest) / len(latest),
        baseline_mean=baseline_mean, drop=drop,
        consecutive_low=_consecutive_low([e.score for e in evaluations], cfg.score_floor),
        compliance_failures=sum(e.compliance_failure for e in latest), last_ts=evaluations[-1].ts,
        ready=len(latest) >= cfg.min_evaluations)


def compute_signals(evaluations: list[Evaluation], cfg: MonitorConfig) -> list[Signals]:
    """One `Signals` per (model, version) present, ordered by model and version."""
    groups: dict[tuple[str, str], list[Evaluation]] = {}
    for e in sorted(evaluations, key=lambda e: e.ts):
        groups.setdefault((e.model, e.version), []).append(e)
    return [version_signals(groups[key], cfg) for key in sorted(groups)]
