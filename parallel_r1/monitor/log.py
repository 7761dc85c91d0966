"""The online grading log as evaluations: one graded served reply per line (`serve/scores.jsonl`), read
tolerantly, since replicas append to it while the monitor reads: a line that is not a valid record is counted
and skipped, never fatal and never rewritten."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from parallel_r1.config import ServeConfig
from parallel_r1.grade.cues import extract
from parallel_r1.grade.grade import ANSWER_DUMP_BELOW
from parallel_r1.paths import RunPaths

UNVERSIONED = "unversioned"  # records written before the router logged the served version


def evaluation_record(grade, *, reply: str, history: list[dict], specialist: str, version: str | None,
                      log_conversation: bool = True, **fields) -> dict:
    """One line of the online log: the grade of `reply` with the compliance flags the monitor reads, the request's
    `fields`, and (unless `log_conversation` is off) the conversation and reply."""
    record = {"ts": time.time(), "specialist": specialist, "version": version, "score": grade.score,
              "confidence": grade.confidence, "criteria": grade.criteria, "grader": grade.grader,
              "reply_chars": len(reply), "dismissive": extract(reply).dismissive > 0,
              "answer_dump": grade.criteria.get("no_answer_reveal", 1.0) < ANSWER_DUMP_BELOW, **fields}
    if log_conversation:
        record.update(history=history, reply=reply)
    return record


def score_log_path(cfg: ServeConfig, workdir: Path | str) -> Path:
    """`serve.score_log`, else the run directory's serve/scores.jsonl."""
    return Path(cfg.score_log) if cfg.score_log else RunPaths(Path(workdir)).score_log


@dataclass(frozen=True)
class Evaluation:
    """One graded served reply: when, which model and version answered, its score, and what went wrong."""

    ts: float
    model: str
    version: str
    score: float
    error: bool = False
    dismissive: bool = False
    answer_dump: bool = False
    criteria: dict[str, float] = field(default_factory=dict)
    history: list[dict] | None = None  # the conversation before the reply, where the router logged it
    reply: str | None = None

    @property
    def compliance_failure(self) -> bool:
        return self.dismissive or self.answer_dump


@dataclass(frozen=True)
class ScoreLog:
    """The evaluations of a log in file order, and the line numbers that could not be read."""

    evaluations: list[Evaluation]
    bad_lines: list[int]
    path: Path

    def warning(self) -> str | None:
        if not self.bad_lines:
            return None
        shown = ", ".join(map(str, self.bad_lines[:5])) + (" ..." if len(self.bad_lines) > 5 else "")
        return f"{self.path}: skipped {len(self.bad_lines)} unreadable line(s) (line {shown})"


def _evaluation(obj: dict) -> Evaluation:
    score = float(obj["score"]) if obj.get("score") is not None else math.nan
    error = bool(obj.get("error")) or math.isnan(score)
    if not error and not 0.0 <= score <= 1.0:
        raise ValueError(f"score {score} outside [0, 1]")
    criteria = obj.get("criteria") or {}
    if not isinstance(criteria, dict):
        raise ValueError("criteria is not an object")
    reply = obj.get("reply")
    return Evaluation(ts=float(obj["ts"]), model=str(obj["specialist"]), version=str(obj.get("version") or UNVERSIONED),
                      score=0.0 if error else score, error=error, dismissive=bool(obj.get("dismissive")),
                      answer_dump=bool(obj.get("answer_dump")),
                      criteria={str(k): float(v) for k, v in criteria.items()},
                      history=_history(obj.get("history")), reply=reply if isinstance(reply, str) else None)


def _history(value) -> list[dict] | None:
    if not isinstance(value, list) or not all(isinstance(m, dict) and isinstance(m.get("content"), str)
                                              and m.get("role") in ("user", "assistant") for m in value):
        return None
    return [{"role": m["role"], "content": m["content"]} for m in value]


def read_score_log(path: Path) -> ScoreLog:
    """Every readable evaluation in `path` (none when the file does not exist yet)."""
    evaluations, bad = [], []
    if not path.exists():
        return ScoreLog([], [], path)
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
                if not isinstance(obj, dict):
                    raise ValueError("not an object")
                evaluations.append(_evaluation(obj))
            except (ValueError, KeyError, TypeError):
                bad.append(number)
    return ScoreLog(evaluations, bad, path)
