"""Online grading: a configurable share of served replies is graded by the heuristic rubric after the response
has been sent, and appended to a JSONL score log in the run directory (what the monitoring stage reads).

Each record is one line written with a single `write` on a file opened for appending, under an exclusive
`flock`, so concurrent replicas never interleave or tear lines.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import time
from pathlib import Path

from parallel_r1.config import ServeConfig
from parallel_r1.data.profiles import StudentProfileConfig
from parallel_r1.grade import HeuristicRubricGrader
from parallel_r1.paths import RunPaths


def score_log_path(cfg: ServeConfig, workdir: Path) -> Path:
    return Path(cfg.score_log) if cfg.score_log else RunPaths(workdir).score_log


def append_line(path: Path, record: dict) -> None:
    """Append one JSON line atomically with respect to other writers of the same file."""
    data = (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, data)
    finally:
        os.close(fd)  # closing releases the lock


class OnlineGrader:
    """Decides which replies to grade (a seeded coin per reply) and grades them into the score log."""

    def __init__(self, fraction: float, log_path: Path, seed: int | None = None, grader=None) -> None:
        self.fraction, self.log_path = fraction, Path(log_path)
        self._rng = random.Random(seed)
        self._grader = grader or HeuristicRubricGrader()  # any grader with grade_turn (`grade.grader`)

    def should_grade(self) -> bool:
        return self.fraction > 0 and self._rng.random() < self.fraction

    def grade(self, *, request_id: str, history: list[dict], reply: str, specialist: str,
              profile: StudentProfileConfig, profile_source: str, route_source: str, latency_s: float) -> dict:
        """Grade one reply (history: the chat before it) and append the record; returns the record."""
        grade = self._grader.grade_turn([m for m in history if m["role"] != "system"], reply, profile)
        record = {"ts": time.time(), "request_id": request_id, "specialist": specialist,
                  "profile_kind": profile.kind, "traits": profile.traits, "profile_source": profile_source,
                  "route_source": route_source, "latency_s": round(latency_s, 6), "score": grade.score,
                  "confidence": grade.confidence, "criteria": grade.criteria, "grader": grade.grader,
                  "reply_chars": len(reply)}
        append_line(self.log_path, record)
        return record
