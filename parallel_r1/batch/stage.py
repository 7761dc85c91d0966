"""The batch stage: cut the six stratified specialist batches from the graded dialogues.

Run it with `parallel-r1 batch [--strict]`; it reads `dialogues.parquet` and writes
`batches/<name>.parquet`, `batches/<name>.jsonl`, `batches/report.md` and `batches/inputs.json` (the batch
config and the dialogues' digest they were cut from, which tells `parallel-r1 run` when to cut them again).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from parallel_r1.batch.batches import BatchSet, BatchShortfallError, build_batches
from parallel_r1.batch.report import summary_rows, write_batches
from parallel_r1.config import PipelineConfig
from parallel_r1.console import console, notice, summary_table
from parallel_r1.data import read_dialogues
from parallel_r1.data.io import atomic_write_json, file_digest
from parallel_r1.data.records import Record, read_record
from parallel_r1.paths import RunPaths
from parallel_r1.recipe import run_recipe

log = logging.getLogger(__name__)


class BatchInputs(Record):
    """`batches/inputs.json`: what the batches on disk were cut from (written only after a complete cut)."""

    batch: dict[str, Any] = Field(description="The batch section they were cut with.")
    dialogues: str = Field(description="The digest of the dialogues.parquet they were cut from.")


def batch_inputs(cfg: PipelineConfig) -> BatchInputs:
    """What a cut of the batches depends on: the batch config and the graded dialogues."""
    paths = RunPaths(cfg.workdir)
    return BatchInputs(batch=cfg.batch.model_dump(mode="json"), dialogues=file_digest(paths.dialogues))


def batches_up_to_date(cfg: PipelineConfig) -> bool:
    """The batches on disk were cut, completely, from the current batch config and dialogues."""
    paths = RunPaths(cfg.workdir)
    if not (paths.batch_report.exists() and paths.batch_inputs.exists() and paths.dialogues.exists()):
        return False
    recorded = read_record(paths.batch_inputs, BatchInputs, "re-run `parallel-r1 batch` to cut the batches again")
    return recorded == batch_inputs(cfg)


@dataclass(frozen=True)
class BatchResult:
    """The cut (None when `reuse` kept the one on disk) and where it went."""

    batch_set: BatchSet | None
    folder: Path
    dialogues: int = 0


class BatchStage:
    """setup() → run() → cleanup() over one PipelineConfig; with `reuse`, batches cut from the same inputs are kept."""

    def __init__(self, cfg: PipelineConfig, *, print_report: bool = True, reuse: bool = False):
        self.cfg = cfg
        self.paths = RunPaths(cfg.workdir)
        self.print_report = print_report
        self.reuse = reuse

    def setup(self) -> None:
        self.current = self.reuse and batches_up_to_date(self.cfg)
        self.dialogues = [] if self.current else read_dialogues(self.paths.require(self.paths.dialogues, "discover"))

    def run(self) -> BatchResult:
        paths, dialogues = self.paths, self.dialogues
        if self.current:
            notice(f"batch: {paths.batch_report} is up to date", log)
            console.print(paths.batch_report.read_text(), markup=False)
            return BatchResult(None, paths.batches)
        try:
            batch_set = build_batches(dialogues, self.cfg.batch)
        except BatchShortfallError as e:
            paths.batch_inputs.unlink(missing_ok=True)  # what is on disk is no complete cut of any inputs
            write_batches(e.batch_set, paths.batches)  # the partial batches and the report are still useful
            raise
        write_batches(batch_set, paths.batches)
        atomic_write_json(paths.batch_inputs, batch_inputs(self.cfg).model_dump(mode="json"))
        if self.print_report:
            console.print(paths.batch_report.read_text(), markup=False)
        columns = ["batch", "size", "target", "mean score", "mean confidence", "stock-phrase density", "status"]
        notice(summary_table(f"batch ({len(dialogues)} dialogues → {paths.batches})", columns,
                             [list(r.values()) for r in summary_rows(batch_set)]), log)
        for warning in [*batch_set.warnings, *mixed_graders(dialogues)]:
            log.warning("%s", warning)
        return BatchResult(batch_set, paths.batches, len(dialogues))

    def cleanup(self) -> None:
        """Nothing to release."""


def run_batch(cfg: PipelineConfig, *, print_report: bool = True, reuse: bool = False) -> BatchResult:
    return run_recipe(BatchStage(cfg, print_report=print_report, reuse=reuse))


def mixed_graders(dialogues) -> list[str]:
    """A warning when the dialogues' grades come from more than one grader (a judge that failed on some of them
    leaves their earlier grades): their scores are on different scales."""
    counts = Counter(d.grader for d in dialogues if d.score is not None)
    if len(counts) < 2:
        return []
    mix = ", ".join(f"{n} by {g}" for g, n in counts.most_common())
    return [f"the dialogues were graded by {len(counts)} graders ({mix}); run `parallel-r1 grade` again (see "
            "grade_failures.jsonl) or `grade --force` so that one grader's scores are compared"]
