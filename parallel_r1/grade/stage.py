"""The grade stage: grade the dialogues in dialogues.parquet and write the pattern-density report.

Run it with `parallel-r1 grade [--grader heuristic|llm|combined]`. Dialogues are graded in chunks; after each
chunk dialogues.parquet is rewritten atomically with the grades so far, and each dialogue the grader failed on
is recorded in `grade_failures.jsonl` (dialogue id, grader, error) instead of stopping the stage. A rerun grades
only what the configured grader has not graded yet: new dialogues and the failed ones. A chunk that fails
entirely stops the stage (the endpoint is likely down); a run that grades nothing raises `GradeFailedError`.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from parallel_r1.config import PipelineConfig
from parallel_r1.console import notice, progress_bar, summary_table
from parallel_r1.data import Dialogue, read_dialogues, write_dialogues
from parallel_r1.data.io import atomic_write_jsonl, atomic_write_text, read_jsonl
from parallel_r1.errors import UserFacingError
from parallel_r1.grade.grade import Grade
from parallel_r1.grade.judge import JudgeFailure, gather_grades
from parallel_r1.grade.patterns import PatternReport, pattern_report, stock_phrase_density
from parallel_r1.grade.records import Grader, build_grader, profile_of, scenario_of
from parallel_r1.paths import RunPaths
from parallel_r1.recipe import run_recipe

log = logging.getLogger(__name__)

CHUNK = 64  # dialogues graded between writes of dialogues.parquet


class GradeFailedError(UserFacingError):
    """The grader failed on every dialogue it tried: nothing was graded in this run."""


def grade_failures_path(paths: RunPaths) -> Path:
    """Where the grade stage lists the dialogues its grader failed on."""
    return paths.grade_failures


@dataclass
class GradeResult:
    graded: int  # graded in this run
    grader: str
    elapsed_s: float
    mean_score: float  # over every dialogue that holds a grade
    high_confidence: int
    medium_confidence: int
    low_confidence: int
    mean_stock_phrase_density: float
    patterns: PatternReport
    failed: int = 0  # failed in this run (see grade_failures.jsonl)
    skipped: int = 0  # already graded by this grader, kept
    not_attempted: int = 0  # left for a rerun after a chunk failed entirely
    failures: list[dict] = field(default_factory=list)  # this grader's failures now on disk
    judge_counts: dict[str, int] = field(default_factory=dict)


async def _grade_chunk(grader: Grader, dialogues: list[Dialogue]) -> list[Grade | JudgeFailure]:
    """One grade or failure per dialogue: async graders concurrently, the others one by one."""
    items = [(d.messages(), profile_of(d), scenario_of(d)) for d in dialogues]
    agrade = getattr(grader, "agrade_dialogue", None)
    if agrade is not None:
        return await gather_grades([agrade(*item) for item in items], return_failures=True)
    results: list[Grade | JudgeFailure] = []
    for item in items:
        try:
            results.append(grader.grade_dialogue(*item))
        except Exception as e:  # a grader's failure on one dialogue is recorded, not fatal
            results.append(JudgeFailure.of(e))
    return results


def _set_grade(d: Dialogue, g: Grade) -> None:
    d.score, d.confidence, d.criteria, d.grader = g.score, g.confidence, dict(g.criteria), g.grader
    d.stock_phrase_density = stock_phrase_density([t.content for t in d.turns if t.role == "teacher"])


class GradeRun:
    """The dialogues, this grader's failures, and the per-chunk writes of both: what grades part of the run
    directory's dialogues (the grade stage, an import) and writes every dialogue after each chunk."""

    def __init__(self, paths: RunPaths, dialogues: list[Dialogue], grader: Grader):
        self.paths, self.dialogues, self.grader = paths, dialogues, grader
        self.failures_path = grade_failures_path(paths)
        graded = {(d.dialogue_id, d.grader) for d in dialogues}
        self.failures = {(f["dialogue_id"], f["grader"]): f for f in read_jsonl(self.failures_path)
                         if (f["dialogue_id"], f["grader"]) not in graded}
        self.graded = self.failed = 0

    def record(self, d: Dialogue, result: Grade | JudgeFailure) -> None:
        key = (d.dialogue_id, self.grader.name)
        if isinstance(result, Grade):
            _set_grade(d, result)
            self.failures.pop(key, None)
            self.graded += 1
        else:
            self.failures[key] = {"dialogue_id": d.dialogue_id, "grader": self.grader.name,
                                  "error": result.error, "error_type": result.error_type,
                                  "at": datetime.now(UTC).isoformat(timespec="seconds")}
            self.failed += 1

    def flush(self, wrote_grades: bool) -> None:
        if wrote_grades:
            write_dialogues(self.paths.dialogues, self.dialogues)
        if self.failures or self.failures_path.exists():
            atomic_write_jsonl(self.failures_path, sorted(self.failures.values(),
                                                          key=lambda f: (f["grader"], f["dialogue_id"])))

    async def grade(self, todo: list[Dialogue], show_progress: bool) -> int:
        """Grade `todo` chunk by chunk, writing after each; returns how many were not attempted."""
        try:
            with progress_bar() as progress:
                bar = progress.add_task("grade", total=len(todo), status=self.grader.name, visible=show_progress)
                for start in range(0, len(todo), CHUNK):
                    chunk = todo[start:start + CHUNK]
                    results = await _grade_chunk(self.grader, chunk)
                    for d, result in zip(chunk, results, strict=True):
                        self.record(d, result)
                    ok = sum(isinstance(r, Grade) for r in results)
                    self.flush(wrote_grades=ok > 0)
                    progress.update(bar, advance=len(chunk), status=f"{self.grader.name} · failed {self.failed}")
                    if ok == 0:  # a whole chunk failed: stop rather than spend retries on every dialogue left
                        log.warning("grade: a whole chunk of %d dialogue(s) failed; the %d left are not tried",
                                    len(chunk), len(todo) - start - len(chunk))
                        return len(todo) - start - len(chunk)
            return 0
        finally:
            await self.grader.aclose()


def _judge_counts(grader: Grader) -> dict[str, int]:
    judge = getattr(grader, "judge", grader)
    return dict(getattr(judge, "counts", None) or {})


class GradeStage:
    """setup() → run() → cleanup() over one PipelineConfig."""

    def __init__(self, cfg: PipelineConfig, *, show_progress: bool = True, reuse_grades: bool = True):
        self.cfg = cfg
        self.paths = RunPaths(cfg.workdir)
        self.show_progress = show_progress
        self.reuse_grades = reuse_grades

    def setup(self) -> None:
        self.dialogues = read_dialogues(self.paths.require(self.paths.dialogues, "discover"))
        self.grader = build_grader(self.cfg.grade, self.paths)

    def run(self) -> GradeResult:
        cfg, paths, dialogues, grader = self.cfg, self.paths, self.dialogues, self.grader
        started = time.perf_counter()
        todo = [d for d in dialogues if not (self.reuse_grades and d.score is not None and d.grader == grader.name)]
        run = GradeRun(paths, dialogues, grader)
        log.info("grade: %d of %d dialogue(s) to grade with %s (%s)", len(todo), len(dialogues), grader.name,
                 "keeping its earlier grades" if self.reuse_grades else "regrading all")
        if todo:
            not_attempted = asyncio.run(run.grade(todo, self.show_progress))
        else:
            run.flush(wrote_grades=False)
            not_attempted = 0
            asyncio.run(grader.aclose())
        elapsed = time.perf_counter() - started
        report = pattern_report(dialogues)
        atomic_write_text(paths.pattern_report, report.to_markdown())
        hi, med = cfg.batch.high_confidence, cfg.batch.medium_confidence
        scored = [d for d in dialogues if d.score is not None]
        conf = [d.confidence for d in scored]
        result = GradeResult(
            graded=run.graded, failed=run.failed, skipped=len(dialogues) - len(todo), not_attempted=not_attempted,
            grader=grader.name, elapsed_s=elapsed,
            mean_score=statistics.fmean(d.score for d in scored) if scored else 0.0,
            high_confidence=sum(c >= hi for c in conf), medium_confidence=sum(med <= c < hi for c in conf),
            low_confidence=sum(c < med for c in conf), mean_stock_phrase_density=report.mean_density,
            patterns=report, failures=[f for f in run.failures.values() if f["grader"] == grader.name],
            judge_counts=_judge_counts(grader),
        )
        print_grade_summary(result, paths)
        if run.failed and not run.graded:
            common, n = Counter(f["error"] for f in result.failures).most_common(1)[0]
            raise GradeFailedError(f"grade: {grader.name} failed on all {run.failed} dialogue(s) it tried"
                                   f"{f' ({not_attempted} left untried)' if not_attempted else ''}; most common "
                                   f"error ({n}x): {common}; see {run.failures_path}")
        return result

    def cleanup(self) -> None:
        """Nothing to release: run() closes the grader."""


def run_grade(cfg: PipelineConfig, *, show_progress: bool = True, reuse_grades: bool = True) -> GradeResult:
    """Grade the run directory's dialogues in place, write the pattern report, print a summary.

    With `reuse_grades` (the default), dialogues already graded by the configured grader keep their grade,
    so a rerun grades only new and failed dialogues; without it every dialogue is graded again. Raises
    `GradeFailedError` when dialogues were tried and none was graded.
    """
    return run_recipe(GradeStage(cfg, show_progress=show_progress, reuse_grades=reuse_grades))


def print_grade_summary(result: GradeResult, paths: RunPaths) -> None:
    rows = [
        ("grader", result.grader),
        ("graded / failed / skipped", f"{result.graded} / {result.failed} / {result.skipped}"),
        *([("not attempted (a whole chunk failed)", result.not_attempted)] if result.not_attempted else []),
        *([("failures", str(grade_failures_path(paths)))] if result.failures else []),
        ("elapsed s", result.elapsed_s),
        ("mean score", result.mean_score), ("confidence high / medium / low",
                                             f"{result.high_confidence} / {result.medium_confidence} / "
                                             f"{result.low_confidence}"),
        ("mean stock-phrase density", result.mean_stock_phrase_density),
        ("opener diversity", result.patterns.opener_diversity), ("pattern report", str(paths.pattern_report)),
    ]
    counts = result.judge_counts
    if counts:
        rows.insert(2, ("judge replies structured / tolerant / trimmed / shrunk",
                        f"{counts.get('structured', 0)} / {counts.get('tolerant', 0)} / "
                        f"{counts.get('trimmed', 0)} / {counts.get('shrunk', 0)}"))
    notice(summary_table("grade", ["", "value"], rows), log)
    if result.patterns.top_openers:
        notice(summary_table("most repeated teacher openers", ["opener", "turns"], result.patterns.top_openers[:5]),
               log)
