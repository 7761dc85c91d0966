"""run_pipeline(config): the stages in order, each skipped when its artifact is already complete."""

from __future__ import annotations

from parallel_r1.config import PipelineConfig
from parallel_r1.console import console
from parallel_r1.paths import RunPaths


def run_pipeline(cfg: PipelineConfig, *, force: bool = False) -> None:
    from parallel_r1.curate.stage import run_batch
    from parallel_r1.data import read_dialogues
    from parallel_r1.discover.stage import print_discover_summary, run_discover
    from parallel_r1.grading.stage import run_grade

    paths = RunPaths(cfg.workdir)
    console.rule("discover")
    result = run_discover(cfg)
    print_discover_summary(result, read_dialogues(paths.dialogues))
    console.rule("grade")
    run_grade(cfg, reuse_grades=not force)
    console.rule("batch")
    if force or result.completed or not paths.batch_report.exists():
        run_batch(cfg)
    else:
        console.print(f"batch: {paths.batch_report} is up to date")
        console.print(paths.batch_report.read_text(), markup=False)
