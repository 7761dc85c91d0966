"""Score logs the monitor tests write: the online grading records of a served version."""

from __future__ import annotations

from pathlib import Path

from parallel_r1.data.io import append_line


def write_scores(log: Path, model: str, version: str, scores: list[float], *, start: float = 1000.0,
                 **flags) -> None:
    """One record per score, a second apart, in the router's online grading format."""
    for i, score in enumerate(scores):
        append_line(log, {"ts": start + i, "request_id": f"r{i}", "specialist": model, "version": version,
                          "score": score, "criteria": {"guidance": score}, **flags})
