"""Everything the scoreboard shows, read from the run directory: the online evaluations and their signals per
version, the trigger thresholds, the promoted versions and their history, the routes in force, compare's
scores and parallel KPIs, and the triggers fired with their jobs. Missing files mean empty sections."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from parallel_r1.compare.report import read_results, read_routing_table
from parallel_r1.compare.stats import ModelSummary, summarise
from parallel_r1.config import PipelineConfig
from parallel_r1.monitor.log import Evaluation, read_score_log, score_log_path
from parallel_r1.monitor.queue import Entry, TriggerLog, latest_jobs
from parallel_r1.monitor.signals import Signals, compute_signals
from parallel_r1.paths import RunPaths
from parallel_r1.registry.promotion import PromotionRecord


@dataclass(frozen=True)
class Thresholds:
    """The monitor's trigger thresholds, drawn on the charts and used to flag cells."""

    score_floor: float
    consecutive_low: int
    failure_below: float
    max_std: float
    max_failure_rate: float
    max_drop: float
    max_compliance_failures: int
    window: int


@dataclass
class Board:
    """The scoreboard's content."""

    workdir: Path
    generated_at: float
    thresholds: Thresholds
    evaluations: dict[str, list[Evaluation]] = field(default_factory=dict)  # model -> its evaluations in time order
    signals: list[Signals] = field(default_factory=list)
    promoted: dict[str, dict] = field(default_factory=dict)  # model -> the promotion record's entry
    events: list[dict] = field(default_factory=list)  # promotions and rollbacks
    routing: dict | None = None
    summaries: dict[str, ModelSummary] = field(default_factory=dict)  # compare's last results per model
    triggers: list[Entry] = field(default_factory=list)  # one per job, its latest status
    skipped_lines: int = 0


def _triggers(workdir: Path) -> list[Entry]:
    """Each submission with its job's latest status (failed submissions too)."""
    entries = TriggerLog(workdir).entries()
    latest = latest_jobs(entries)
    out = []
    for e in entries:
        if e.signals is None:
            continue
        status = latest[e.job_id].status if e.job_id else e.status
        out.append(Entry(e.ts, e.model, e.version, e.action, status, e.job_id, e.reason, e.signals, e.error))
    return out


def _summaries(paths: RunPaths) -> dict[str, ModelSummary]:
    results = paths.eval / "results.parquet"
    if not results.exists():
        return {}
    rows = read_results(results)
    return summarise(rows, list(dict.fromkeys(r.model for r in rows)))


def collect(cfg: PipelineConfig) -> Board:
    """The board of `cfg.workdir` now (a corrupt promotion record or routing table is a one-line error)."""
    paths = RunPaths(cfg.workdir)
    m = cfg.monitor
    log = read_score_log(score_log_path(cfg.serve, paths.workdir))
    by_model: dict[str, list[Evaluation]] = {}
    for e in sorted(log.evaluations, key=lambda e: e.ts):
        by_model.setdefault(e.model, []).append(e)
    record = PromotionRecord(paths.workdir).read()
    return Board(
        workdir=paths.workdir, generated_at=time.time(),
        thresholds=Thresholds(m.score_floor, m.consecutive_low, m.failure_below, m.max_std, m.max_failure_rate,
                              m.max_drop, m.max_compliance_failures, m.window),
        evaluations=by_model, signals=compute_signals(log.evaluations, m), promoted=dict(record["promoted"]),
        events=list(record["events"]), routing=read_routing_table(paths.routing_table),
        summaries=_summaries(paths), triggers=_triggers(paths.workdir),
        skipped_lines=len(log.bad_lines))


def baseline_of(board: Board, model: str) -> float | None:
    """The served version's baseline-window mean, where it has one."""
    ref = board.promoted.get(model, {}).get("ref")
    return next((s.baseline_mean for s in board.signals if s.model == model and s.version == ref), None)

