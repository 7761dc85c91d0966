"""Online grading: a configurable share of served replies is graded by the heuristic rubric after the response
has been sent, and appended to a JSONL score log in the run directory (what the monitoring stage reads). Grading
runs on one thread of its own at the lowest CPU priority, so it takes only CPU time that serving leaves idle.

Each record is one line written with a single `write` on a file opened for appending, under an exclusive
`flock`, so concurrent replicas never interleave or tear lines.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from parallel_r1.data.io import append_line
from parallel_r1.data.profiles import StudentProfileConfig
from parallel_r1.grade import HeuristicRubricGrader
from parallel_r1.monitor.log import evaluation_record
from parallel_r1.profiles import read_profile

log = logging.getLogger(__name__)


class OnlineGrader:
    """Decides which replies to grade (a seeded coin per reply) and grades them into the score log."""

    def __init__(self, fraction: float, log_path: Path, seed: int | None = None, grader=None,
                 log_conversations: bool = True, profile_reader: str = "embedding", backlog: int = 256,
                 on_graded: Callable[[dict], None] | None = None) -> None:
        self.fraction, self.log_path, self.log_conversations = fraction, Path(log_path), log_conversations
        self.profile_reader = "cues" if profile_reader == "cues" else "embedding"  # the llm reader is async
        self._rng = random.Random(seed)
        self._grader = grader or HeuristicRubricGrader()  # any grader with grade_turn (`grade.grader`)
        self._queue: queue.Queue[dict] = queue.Queue(maxsize=backlog)
        self._on_graded = on_graded
        self.skipped = 0
        if fraction > 0:
            threading.Thread(target=self._work, name="online-grading", daemon=True).start()

    def should_grade(self) -> bool:
        return self.fraction > 0 and self._rng.random() < self.fraction

    def submit(self, **fields) -> bool:
        """Queue one reply (the keyword arguments of `grade`) for the grading thread; False, and the reply goes
        ungraded, when `backlog` replies already wait (grading cannot keep up with what serving leaves idle)."""
        try:
            self._queue.put_nowait(fields)
        except queue.Full:
            self.skipped += 1
            if self.skipped in (1, 10) or self.skipped % 1000 == 0:
                log.warning("online grading is %d replies behind: %d replies left ungraded so far",
                            self._queue.maxsize, self.skipped)
            return False
        return True

    def join(self) -> None:
        """Wait until every queued reply is graded."""
        self._queue.join()

    def _work(self) -> None:
        lowest_priority()
        while True:
            fields = self._queue.get()
            try:
                record = self.grade(**fields)
                if self._on_graded is not None:
                    self._on_graded(record)
            except Exception:  # one bad record must not stop grading
                log.exception("online grading of request %s failed", fields.get("request_id"))
            finally:
                self._queue.task_done()

    def grade(self, *, request_id: str, history: list[dict], reply: str, specialist: str,
              profile: StudentProfileConfig | None, profile_source: str, route_source: str, latency_s: float,
              version: str | None = None) -> dict:
        """Grade one reply (history: the chat before it) and append the record, with the compliance flags the
        monitor reads and, unless `serve.log_conversations` is off, the conversation; returns the record. A reply
        to a request that named its model comes without a profile: it is read here, after the response."""
        chat = [m for m in history if m["role"] != "system"]
        if profile is None:
            profile, profile_source = read_profile(chat, self.profile_reader).profile, "inferred"
        grade = self._grader.grade_turn(chat, reply, profile)
        record = evaluation_record(grade, reply=reply, history=chat, specialist=specialist, version=version,
                                   log_conversation=self.log_conversations, request_id=request_id,
                                   profile_kind=profile.kind, traits=profile.traits, profile_source=profile_source,
                                   route_source=route_source, latency_s=round(latency_s, 6))
        append_line(self.log_path, record)
        return record


def lowest_priority() -> None:
    """Give the calling thread the lowest CPU priority (Linux schedules threads, so nice applies per thread)."""
    if sys.platform == "linux":
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except OSError as e:
            log.warning("could not lower the online grading thread's priority: %s", e)
