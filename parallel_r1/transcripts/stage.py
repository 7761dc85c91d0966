"""The import stage: real tutoring transcripts checked, profiled, appended to dialogues.parquet and graded.

Run it with `parallel-r1 import TRANSCRIPTS [--skip-bad]`. Every row is checked first (see
`parallel_r1.transcripts.reader`); a bad row stops the import before anything is written, unless `--skip-bad`
lists it in `import_rejects.jsonl` and imports the rest. A row without profile flags gets the profile the
`serve.profile_reader` reader reads from the student's messages, recorded as inferred. Dialogue ids are digests of
the turns, so importing a file again adds nothing twice; its dialogues still ungraded (a killed or failed run) are
graded by the grade stage's machinery, which rewrites dialogues.parquet after every chunk.
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
from parallel_r1.data import Dialogue, StudentProfileConfig, get_card, read_dialogues, write_dialogues
from parallel_r1.data.io import atomic_write_jsonl, read_jsonl
from parallel_r1.grade import build_grader
from parallel_r1.grade.stage import GradeFailedError, GradeRun
from parallel_r1.paths import RunPaths
from parallel_r1.profiles import read_profiles
from parallel_r1.recipe import run_recipe
from parallel_r1.transcripts.reader import Rejected, Transcript, TranscriptError, count_rows, read_transcripts

log = logging.getLogger(__name__)

BACKEND = "import"
GIVEN = "given"
PROFILE_CHUNK = 64  # conversations read per call of the profile reader (and per progress update)


def rejects_path(paths: RunPaths) -> Path:
    """Where `--skip-bad` lists the rows it did not import, per source file."""
    return paths.workdir / "import_rejects.jsonl"


@dataclass
class ImportResult:
    source: Path
    rows: int = 0  # rows read (valid or not)
    imported: int = 0  # new dialogues appended to dialogues.parquet
    already_present: int = 0  # valid rows whose dialogue was already there (or earlier in the file)
    rejected: int = 0
    given: int = 0  # new dialogues whose profile the row gave
    inferred: int = 0  # new dialogues whose profile was read from the student's messages
    reader: str = ""  # the profile reader that inferred them
    merged: int = 0
    dropped_system: int = 0
    truncated: int = 0
    grader: str = ""
    graded: int = 0
    grade_failed: int = 0
    not_attempted: int = 0
    total_on_disk: int = 0
    elapsed_s: float = 0.0
    rejects_file: Path | None = None
    dialogues: list[Dialogue] = field(default_factory=list)  # this file's dialogues, as in dialogues.parquet

    @property
    def mean_score(self) -> float | None:
        scores = [d.score for d in self.dialogues if d.score is not None]
        return statistics.fmean(scores) if scores else None


def _check_all(source: Path, cfg: PipelineConfig, show_progress: bool) -> tuple[list[Transcript], list[Rejected]]:
    good: list[Transcript] = []
    bad: list[Rejected] = []
    with progress_bar() as progress:
        bar = progress.add_task("read", total=count_rows(source), status=source.name, visible=show_progress)
        for item in read_transcripts(source, cfg.transcripts.max_chars, cfg.transcripts.too_long):
            (bad if isinstance(item, Rejected) else good).append(item)
            progress.update(bar, completed=item.row, status=f"{source.name} · bad {len(bad)}")
    return good, bad


def _bad_rows_error(source: Path, bad: list[Rejected], paths: RunPaths) -> TranscriptError:
    more = f" (and {len(bad) - 1} more bad row(s))" if len(bad) > 1 else ""
    return TranscriptError(f"{bad[0].message(source)}{more}; nothing was imported: fix the file, or pass --skip-bad "
                           f"to import the valid rows and list the bad ones in {rejects_path(paths)}")


def _read_chunk(conversations: list[list[dict]], method: str, cfg: PipelineConfig) -> tuple[list, str]:
    """The readings of one chunk and the reader that gave them; a failing LLM reader falls back to embedding."""
    if method == "llm":
        try:
            return read_profiles(conversations, "llm", cfg.grade.judge), "llm"
        except Exception as e:  # the endpoint or its replies failed: still give every dialogue a profile
            log.warning("the LLM profile reader failed (%s: %s); inferring profiles with the embedding reader",
                        type(e).__name__, e)
            method = "embedding"
    return read_profiles(conversations, method), method


def _infer_profiles(todo: list[Transcript], cfg: PipelineConfig, show_progress: bool) -> tuple[list[tuple], str]:
    """(traits, reader) per transcript, read from its conversation (teacher turns included, so that a short reply
    is read against the explanation before it)."""
    method = cfg.serve.profile_reader
    out: list[tuple] = []
    if not todo:
        return out, method
    with progress_bar() as progress:
        bar = progress.add_task("profiles", total=len(todo), status=method, visible=show_progress)
        for start in range(0, len(todo), PROFILE_CHUNK):
            chunk = todo[start:start + PROFILE_CHUNK]
            readings, method = _read_chunk([t.messages() for t in chunk], method, cfg)
            out.extend((tuple(r.traits), method) for r in readings)
            progress.update(bar, advance=len(chunk), status=method)
    return out, method


def _dialogue(t: Transcript, traits: tuple[str, ...], profile_source: str, source: Path, now: str) -> Dialogue:
    """The dialogue record of a transcript; metadata a known scenario card holds fills what the row left out."""
    meta = dict(t.metadata)
    try:
        card = get_card(meta.get("scenario_id", ""))
    except KeyError:
        card = None
    if card is not None:
        for key in ("topic", "domain", "question_type", "difficulty"):
            meta.setdefault(key, getattr(card, key))
    profile = StudentProfileConfig(**dict.fromkeys(traits, True))
    persona = {"name": "", "age": None, "level": "", "background": "", "voice": "", "struggles": "",
               "kind": profile.kind, "traits": profile.traits}
    return Dialogue(
        dialogue_id=t.dialogue_id, iteration=t.row, scenario_id=meta.get("scenario_id") or meta.get("topic", ""),
        topic=meta.get("topic", ""), domain=meta.get("domain", ""),
        question_type=meta.get("question_type", "original"), difficulty=meta.get("difficulty", ""),
        is_special=card is not None and card.special is not None, profile_kind=profile.kind, persona=persona,
        turns=list(t.turns), backend=BACKEND, model=meta.get("model", ""), seed=0, created_at=now,
        source=str(source), profile_source=profile_source,
    )


def _write_rejects(paths: RunPaths, source: Path, bad: list[Rejected]) -> Path | None:
    """This source's rejects replace those an earlier import of it listed; other sources' stay."""
    path = rejects_path(paths)
    kept = [r for r in read_jsonl(path) if r.get("source") != str(source)]
    if not bad and not path.exists():
        return None
    atomic_write_jsonl(path, [*kept, *(r.to_record(source) for r in bad)])
    return path if bad else None


def _grade(paths: RunPaths, cfg: PipelineConfig, dialogues: list[Dialogue], todo: list[Dialogue],
           result: ImportResult, show_progress: bool) -> list[dict]:
    """Grade `todo` with the configured grader (dialogues.parquet rewritten after each chunk); this grader's
    failures on them."""
    grader = build_grader(cfg.grade, paths)
    result.grader = grader.name
    if not todo:
        asyncio.run(grader.aclose())
        return []
    run = GradeRun(paths, dialogues, grader)
    result.not_attempted = asyncio.run(run.grade(todo, show_progress))
    result.graded, result.grade_failed = run.graded, run.failed
    ids = {d.dialogue_id for d in todo}
    return [f for f in run.failures.values() if f["grader"] == grader.name and f["dialogue_id"] in ids]


class ImportStage:
    """setup() → run() → cleanup(): check every row of one transcripts file, then import and grade the good ones.

    setup raises `TranscriptError` for an unreadable file or, without `skip_bad`, for its first bad row (nothing is
    written then); run raises `GradeFailedError` when the grader failed on every dialogue it tried.
    """

    def __init__(self, cfg: PipelineConfig, source: Path, *, skip_bad: bool = False, show_progress: bool = True,
                 print_summary: bool = True):
        self.cfg, self.paths, self.source = cfg, RunPaths(cfg.workdir), Path(source).resolve()
        self.skip_bad, self.show_progress, self.print_summary = skip_bad, show_progress, print_summary

    def setup(self) -> None:
        self.started = time.perf_counter()
        self.good, self.bad = _check_all(self.source, self.cfg, self.show_progress)
        if self.bad and not self.skip_bad:
            raise _bad_rows_error(self.source, self.bad, self.paths)
        if not self.good and not self.bad:
            raise TranscriptError(f"{self.source}: no conversations in the file")

    def run(self) -> ImportResult:
        cfg, paths, source, good, bad = self.cfg, self.paths, self.source, self.good, self.bad
        result = ImportResult(source=source, rows=len(good) + len(bad), rejected=len(bad))
        dialogues = read_dialogues(paths.dialogues) if paths.dialogues.exists() else []
        seen = {d.dialogue_id for d in dialogues}
        new: list[Transcript] = []
        for t in good:
            if t.dialogue_id in seen:
                result.already_present += 1
                continue
            seen.add(t.dialogue_id)
            new.append(t)
            result.merged, result.dropped_system = result.merged + t.merged, result.dropped_system + t.dropped_system
            result.truncated += t.truncated
        inferred, result.reader = _infer_profiles([t for t in new if t.traits is None], cfg, self.show_progress)
        readings = iter(inferred)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        for t in new:
            traits, how = (t.traits, GIVEN) if t.traits is not None else next(readings)
            dialogues.append(_dialogue(t, traits, how if how == GIVEN else f"inferred:{how}", source, now))
        result.imported, result.inferred = len(new), len(inferred)
        result.given = result.imported - result.inferred
        paths.workdir.mkdir(parents=True, exist_ok=True)
        result.rejects_file = _write_rejects(paths, source, bad)
        if new:
            write_dialogues(paths.dialogues, dialogues)
        ids = {t.dialogue_id for t in good}
        result.dialogues = [d for d in dialogues if d.dialogue_id in ids]
        failures = _grade(paths, cfg, dialogues, [d for d in result.dialogues if d.score is None], result,
                          self.show_progress)
        result.total_on_disk = len(dialogues)
        result.elapsed_s = time.perf_counter() - self.started
        if self.print_summary:
            print_import_summary(result)
        if result.grade_failed and not result.graded:
            common, n = Counter(f["error"] for f in failures).most_common(1)[0]
            raise GradeFailedError(f"import: {result.imported} dialogue(s) imported, but {result.grader} failed on "
                                   f"all {result.grade_failed} it tried; most common error ({n}x): {common}; see "
                                   f"{paths.grade_failures}; `parallel-r1 grade` (or this import again) grades them")
        return result

    def cleanup(self) -> None:
        """Nothing to release: the grading closes its grader."""


def run_import(cfg: PipelineConfig, source: Path, *, skip_bad: bool = False, show_progress: bool = True,
               print_summary: bool = True) -> ImportResult:
    """Import one transcripts file into the run directory and grade what it added; prints the summary."""
    return run_recipe(ImportStage(cfg, source, skip_bad=skip_bad, show_progress=show_progress,
                                  print_summary=print_summary))


def print_import_summary(result: ImportResult) -> None:
    rows = [
        ("source", str(result.source)), ("rows read", result.rows), ("imported", result.imported),
        ("already present", result.already_present),
        ("rejected", f"{result.rejected} (see {result.rejects_file})" if result.rejects_file else result.rejected),
        ("profile given / inferred", f"{result.given} / {result.inferred}"
                                     + (f" ({result.reader} reader)" if result.inferred else "")),
        ("messages merged / system dropped / truncated",
         f"{result.merged} / {result.dropped_system} / {result.truncated}"),
        ("grader", result.grader), ("graded / failed", f"{result.graded} / {result.grade_failed}"),
        *([("not attempted (a whole chunk failed)", result.not_attempted)] if result.not_attempted else []),
        ("mean score", result.mean_score), ("total in dialogues.parquet", result.total_on_disk),
        ("elapsed s", result.elapsed_s),
    ]
    notice(summary_table("import", ["", "value"], rows), log)
    if not result.dialogues:
        return
    kinds = Counter(d.profile_kind for d in result.dialogues)
    table = []
    for kind in sorted(kinds):
        ds = [d for d in result.dialogues if d.profile_kind == kind]
        scores = [d.score for d in ds if d.score is not None]
        table.append((kind, len(ds), sum(d.profile_source == GIVEN for d in ds),
                      sum((d.profile_source or "").startswith("inferred") for d in ds),
                      statistics.fmean(scores) if scores else None))
    notice(summary_table(f"dialogues of {result.source.name} by profile",
                         ["profile", "dialogues", "given", "inferred", "mean score"], table), log)
