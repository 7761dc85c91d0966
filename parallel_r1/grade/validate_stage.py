"""The validate-grader command: grade a labelled file with the configured grader and report the agreement.

Run it with `parallel-r1 validate-grader LABELLED.jsonl --grader heuristic`; the table goes to the terminal,
`validation.json` and `validation.png` to `<workdir>/validation/<grader>/` (or `--out`).
"""

from __future__ import annotations

from pathlib import Path

from parallel_r1.config import PipelineConfig
from parallel_r1.console import console, summary_table
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


def run_validate(cfg: PipelineConfig, labelled: Path, out: Path | None = None) -> ValidationReport:
    """Grade every labelled reply, print the agreement table, write its JSON and PNG."""
    replies = read_labelled(labelled)
    grader = build_grader(cfg.grade, RunPaths(cfg.workdir))
    console.print(f"grading {len(replies)} labelled replies with {grader.name} ...")
    grades, elapsed = grade_replies(replies, grader)
    report = validate(replies, grades, grader=grader.name, source=str(labelled), elapsed_s=elapsed)
    json_path, png_path = write_report(report, out or RunPaths(cfg.workdir).validation / cfg.grade.grader)
    print_validation(report)
    console.print(f"wrote {json_path} and {png_path}")
    return report


def print_validation(report: ValidationReport) -> None:
    title = (f"{report.grader} vs human labels: {report.n_replies} replies, {report.n_conversations} conversations"
             f" ({report.method})")
    console.print(summary_table(title, TABLE_COLUMNS, table_rows(report)))
    notes = []
    if report.failed:
        notes.append(f"{report.failed} of {report.n_replies} replies could not be graded and are left out")
    if report.skipped:
        notes.append("skipped (no criterion answers them): " + ", ".join(
            f"{name} ({count} replies)" for name, count in sorted(report.skipped.items())))
    for note in notes:
        console.print(f"[yellow]{note}[/]")
