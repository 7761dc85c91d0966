"""The validate-grader command: grade a labelled file with the configured grader and report the agreement.

Run it with `parallel-r1 validate-grader LABELLED.jsonl --grader heuristic`; the table goes to the terminal,
`validation.json` and `validation.png` to `<workdir>/validation/<grader>/` (or `--out`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from parallel_r1.config import PipelineConfig
from parallel_r1.console import notice, summary_table
from parallel_r1.grade.labels import read_labelled
from parallel_r1.grade.records import build_grader
from parallel_r1.grade.validate import (
    TABLE_COLUMNS,
    ValidationReport,
    grade_replies,
    table_rows,
    validate,
    write_report,
)
from parallel_r1.paths import RunPaths
from parallel_r1.recipe import run_recipe

log = logging.getLogger(__name__)


class ValidateStage:
    """setup() → run() → cleanup(): grade every labelled reply with the configured grader and report the agreement."""

    def __init__(self, cfg: PipelineConfig, labelled: Path, out: Path | None = None):
        self.cfg, self.labelled, self.out = cfg, labelled, out

    def setup(self) -> None:
        self.replies = read_labelled(self.labelled)
        self.grader = build_grader(self.cfg.grade, RunPaths(self.cfg.workdir))

    def run(self) -> ValidationReport:
        replies, grader = self.replies, self.grader
        notice(f"grading {len(replies)} labelled replies with {grader.name} ...", log)
        grades, elapsed = grade_replies(replies, grader)
        report = validate(replies, grades, grader=grader.name, source=str(self.labelled), elapsed_s=elapsed)
        json_path, png_path = write_report(report, self.out or RunPaths(self.cfg.workdir).validation
                                           / self.cfg.grade.grader)
        print_validation(report)
        notice(f"wrote {json_path} and {png_path}", log)
        return report

    def cleanup(self) -> None:
        """Nothing to release."""


def run_validate(cfg: PipelineConfig, labelled: Path, out: Path | None = None) -> ValidationReport:
    """Grade every labelled reply, print the agreement table, write its JSON and PNG."""
    return run_recipe(ValidateStage(cfg, labelled, out))


def print_validation(report: ValidationReport) -> None:
    title = (f"{report.grader} vs human labels: {report.n_replies} replies, {report.n_conversations} conversations"
             f" ({report.method})")
    notice(summary_table(title, TABLE_COLUMNS, table_rows(report)), log)
    notes = []
    if report.failed:
        notes.append(f"{report.failed} of {report.n_replies} replies could not be graded and are left out")
    if report.skipped:
        notes.append("skipped (no criterion answers them): " + ", ".join(
            f"{name} ({count} replies)" for name, count in sorted(report.skipped.items())))
    for note in notes:
        log.warning("%s", note)
