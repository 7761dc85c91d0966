"""`parallel-r1 monitor`: compute each served version's signals from the online grading log, decide the triggers,
and queue their actions as Ray jobs (`--dry-run`: say what would be queued; `--watch`: repeat every
`monitor.interval_s`); with `monitor.probe_url`, each pass first sends held-out prefixes to the running app
(`probe`). Only the promoted version of a model can trigger: older versions' evaluations are history.

    parallel-r1 monitor --workdir RUN [--dry-run] [--watch]
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from parallel_r1.config import PipelineConfig, dump_config
from parallel_r1.console import notice, summary_table
from parallel_r1.data.io import atomic_write_text
from parallel_r1.errors import UserFacingError
from parallel_r1.monitor.log import read_score_log, score_log_path
from parallel_r1.monitor.probe import probe
from parallel_r1.monitor.queue import Entry, JobQueue, connect, job_address
from parallel_r1.monitor.signals import Signals, compute_signals
from parallel_r1.monitor.triggers import Trigger, decide
from parallel_r1.paths import RunPaths
from parallel_r1.recipe import run_recipe
from parallel_r1.registry.promotion import PromotionRecord

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What became of one trigger: queued (its log entry), or why not."""

    trigger: Trigger
    entry: Entry | None = None
    skipped: str | None = None


@dataclass
class MonitorResult:
    signals: list[Signals] = field(default_factory=list)
    served: dict[str, str] = field(default_factory=dict)  # model -> promoted version ref
    outcomes: list[Outcome] = field(default_factory=list)
    bad_lines: int = 0

    @property
    def queued(self) -> list[Entry]:
        return [o.entry for o in self.outcomes if o.entry is not None and o.entry.job_id]


class MonitorStage:
    """setup() → run() → cleanup() over one PipelineConfig: one evaluation pass."""

    def __init__(self, cfg: PipelineConfig, dry_run: bool = False) -> None:
        self.cfg, self.dry_run = cfg, dry_run
        self.paths = RunPaths(cfg.workdir)
        self.queue: JobQueue | None = None

    def setup(self) -> None:
        self.promoted = {name: p["ref"] for name, p in PromotionRecord(self.paths.workdir).read()["promoted"].items()}
        if not self.dry_run:
            self.queue = JobQueue(self.cfg, connect(job_address(self.cfg)), self._config_file())

    def _config_file(self) -> Path:
        """The config the queued stages run with: `monitor.job_config`, else this one, written to
        monitor/job_config.yaml (the run's config.resolved.yaml stays discover's record)."""
        if self.cfg.monitor.job_config:
            path = Path(self.cfg.monitor.job_config).resolve()
            if not path.is_file():
                raise UserFacingError(f"monitor.job_config {path} not found")
            return path
        return atomic_write_text(self.paths.workdir / "monitor" / "job_config.yaml", dump_config(self.cfg))

    def run(self) -> MonitorResult:
        if self.cfg.monitor.probe_url and self.promoted:
            n = probe(self.cfg, self.promoted)
            notice(f"monitor: probed {self.cfg.monitor.probe_url} with {n} held-out prefixes", log)
        scores = read_score_log(score_log_path(self.cfg.serve, self.paths.workdir))
        if warning := scores.warning():
            log.warning("monitor: %s", warning)
        result = MonitorResult(compute_signals(scores.evaluations, self.cfg.monitor), dict(self.promoted),
                               bad_lines=len(scores.bad_lines))
        if self.queue:
            self.queue.refresh()
        now = time.time()
        for s in result.signals:
            if self.promoted.get(s.model) != s.version:
                continue
            for trigger in decide(s, self.cfg.monitor):
                result.outcomes.append(self._act(trigger, now))
        _print(result, self.dry_run)
        return result

    def _act(self, trigger: Trigger, now: float) -> Outcome:
        if self.queue is None:
            return Outcome(trigger, skipped="dry run")
        if why := self.queue.blocked(trigger, now):
            return Outcome(trigger, skipped=why)
        return Outcome(trigger, entry=self.queue.submit(trigger))

    def cleanup(self) -> None:
        """Nothing to release."""


def run_monitor(cfg: PipelineConfig, dry_run: bool = False) -> MonitorResult:
    return run_recipe(MonitorStage(cfg, dry_run))


def watch(cfg: PipelineConfig, dry_run: bool = False, passes: int | None = None) -> list[MonitorResult]:
    """Evaluate every `monitor.interval_s` seconds, `passes` times (None: until interrupted)."""
    results = []
    while passes is None or len(results) < passes:
        results.append(run_monitor(cfg, dry_run))
        if passes is None or len(results) < passes:
            time.sleep(cfg.monitor.interval_s)
    return results


def _print(result: MonitorResult, dry_run: bool) -> None:
    rows = [[f"{s.model} {s.version}" + (" (served)" if result.served.get(s.model) == s.version else ""), s.n,
             s.mean, s.std, s.failure_rate, s.drop, s.consecutive_low, s.compliance_failures]
            for s in result.signals]
    notice(summary_table("monitor: signals over the latest window", ["version", "evaluations", "mean", "std",
                         "failure rate", "drop", "low in a row", "compliance"], rows), log)
    if not result.signals:
        notice("monitor: no online evaluations yet (serve with serve.grading_fraction > 0)", log)
    for o in result.outcomes:
        t = o.trigger
        if o.entry is not None and o.entry.job_id:
            what = f"[green]queued[/] job {o.entry.job_id}"
        elif o.entry is not None:
            what = f"[red]submission failed[/]: {o.entry.error}"
        else:
            what = f"would queue ({o.skipped})" if dry_run else f"not queued: {o.skipped}"
        notice(f"monitor: {t.model} {t.version} → {t.action}: {t.reason}; {what}", log)
    if result.signals and not result.outcomes:
        notice("monitor: no trigger fired", log)
