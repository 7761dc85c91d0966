"""The grade stage: (re)grade every dialogue in dialogues.parquet and write the pattern-density report.

Run it with `parallel-r1 grade [--grader heuristic|llm|combined]`. The Parquet file is rewritten
atomically with the grading columns set; `pattern_report.md` lists the most repeated teacher phrases.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

from parallel_r1.config import PipelineConfig
from parallel_r1.console import console, progress_bar, summary_table
from parallel_r1.data import Dialogue, read_dialogues, write_dialogues
from parallel_r1.data.io import atomic_write_text
from parallel_r1.grading.patterns import PatternReport, pattern_report
from parallel_r1.grading.records import Grader, agrade_dialogues, build_grader
from parallel_r1.paths import RunPaths

CHUNK = 64  # dialogues graded between progress updates


@dataclass
class GradeResult:
    graded: int
    grader: str
    elapsed_s: float
    mean_score: float
    high_confidence: int
    medium_confidence: int
    low_confidence: int
    mean_stock_phrase_density: float
    patterns: PatternReport


async def _grade_all(dialogues: list[Dialogue], grader: Grader, show_progress: bool) -> None:
    try:
        with progress_bar() as progress:
            bar = progress.add_task("grade", total=len(dialogues), status=grader.name, visible=show_progress)
            for start in range(0, len(dialogues), CHUNK):
                chunk = dialogues[start:start + CHUNK]
                await agrade_dialogues(chunk, grader)
                progress.update(bar, advance=len(chunk))
    finally:
        await grader.aclose()


def run_grade(cfg: PipelineConfig, *, show_progress: bool = True, reuse_grades: bool = False) -> GradeResult:
    """Grade the run directory's dialogues in place, write the pattern report, print a summary.

    With `reuse_grades`, dialogues already graded by the configured grader (during discover) are
    not graded again; only the report is written.
    """
    paths = RunPaths(cfg.workdir)
    dialogues = read_dialogues(paths.require(paths.dialogues, "discover"))
    grader = build_grader(cfg.grade)
    started = time.perf_counter()
    todo = [d for d in dialogues if not (reuse_grades and d.score is not None and d.grader == grader.name)]
    if todo:
        asyncio.run(_grade_all(todo, grader, show_progress))
        write_dialogues(paths.dialogues, dialogues)
    else:
        asyncio.run(grader.aclose())
    elapsed = time.perf_counter() - started
    report = pattern_report(dialogues)
    atomic_write_text(paths.pattern_report, report.to_markdown())
    hi, med = cfg.batch.high_confidence, cfg.batch.medium_confidence
    conf = [d.confidence for d in dialogues]
    result = GradeResult(
        graded=len(todo), grader=grader.name, elapsed_s=elapsed,
        mean_score=statistics.fmean(d.score for d in dialogues) if dialogues else 0.0,
        high_confidence=sum(c >= hi for c in conf), medium_confidence=sum(med <= c < hi for c in conf),
        low_confidence=sum(c < med for c in conf),
        mean_stock_phrase_density=report.mean_density, patterns=report,
    )
    print_grade_summary(result, paths)
    return result


def print_grade_summary(result: GradeResult, paths: RunPaths) -> None:
    rows = [
        ("grader", result.grader), ("dialogues graded", result.graded), ("elapsed s", result.elapsed_s),
        ("mean score", result.mean_score), ("confidence high / medium / low",
                                             f"{result.high_confidence} / {result.medium_confidence} / "
                                             f"{result.low_confidence}"),
        ("mean stock-phrase density", result.mean_stock_phrase_density),
        ("opener diversity", result.patterns.opener_diversity), ("pattern report", str(paths.pattern_report)),
    ]
    console.print(summary_table("grade", ["", "value"], rows))
    if result.patterns.top_openers:
        console.print(summary_table("most repeated teacher openers", ["opener", "turns"],
                                    result.patterns.top_openers[:5]))
