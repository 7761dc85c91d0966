"""The batch stage: cut the six stratified specialist batches from the graded dialogues.

Run it with `parallel-r1 batch [--strict]`; it reads `dialogues.parquet` and writes
`batches/<name>.parquet`, `batches/<name>.jsonl` and `batches/report.md`.
"""

from __future__ import annotations

from parallel_r1.config import PipelineConfig
from parallel_r1.console import console, summary_table
from parallel_r1.curate.batches import BatchSet, BatchShortfallError, build_batches
from parallel_r1.curate.report import summary_rows, write_batches
from parallel_r1.data import read_dialogues
from parallel_r1.paths import RunPaths


def run_batch(cfg: PipelineConfig, *, print_report: bool = True) -> BatchSet:
    paths = RunPaths(cfg.workdir)
    dialogues = read_dialogues(paths.require(paths.dialogues, "discover"))
    try:
        batch_set = build_batches(dialogues, cfg.batch)
    except BatchShortfallError as e:
        write_batches(e.batch_set, paths.batches)  # the partial batches and the report are still useful
        raise
    write_batches(batch_set, paths.batches)
    if print_report:
        console.print(paths.batch_report.read_text(), markup=False)
    columns = ["batch", "size", "target", "mean score", "mean confidence", "stock-phrase density", "status"]
    console.print(summary_table(f"batch ({len(dialogues)} dialogues → {paths.batches})", columns,
                                [list(r.values()) for r in summary_rows(batch_set)]))
    for warning in batch_set.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    return batch_set
