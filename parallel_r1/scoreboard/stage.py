"""`parallel-r1 scoreboard`: write the ParallelScoreboard of a run directory as one HTML file (default
<workdir>/scoreboard.html); a running Serve app shows the same page live at /dashboard.

    parallel-r1 scoreboard --workdir RUN [--out FILE]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from parallel_r1.config import PipelineConfig
from parallel_r1.console import notice, summary_table
from parallel_r1.data.io import atomic_write_text
from parallel_r1.paths import RunPaths
from parallel_r1.recipe import run_recipe
from parallel_r1.scoreboard.board import Board, collect
from parallel_r1.scoreboard.page import render


@dataclass
class ScoreboardResult:
    path: Path
    board: Board


class ScoreboardStage:
    """setup() → run() → cleanup() over one PipelineConfig."""

    def __init__(self, cfg: PipelineConfig, out: Path | None = None) -> None:
        self.cfg = cfg
        self.out = Path(out) if out else RunPaths(cfg.workdir).workdir / "scoreboard.html"

    def setup(self) -> None:
        self.board = collect(self.cfg)

    def run(self) -> ScoreboardResult:
        path = atomic_write_text(self.out, render(self.board))
        b = self.board
        rows = [["served versions", len(b.promoted)], ["models with online evaluations", len(b.evaluations)],
                ["online evaluations", sum(len(v) for v in b.evaluations.values())],
                ["triggers fired", len(b.triggers)], ["promotions and rollbacks", len(b.events)]]
        notice(summary_table("scoreboard", ["what", "count"], rows))
        notice(f"scoreboard: wrote {path}")
        return ScoreboardResult(path, b)

    def cleanup(self) -> None:
        """Nothing to release."""


def run_scoreboard(cfg: PipelineConfig, out: Path | None = None) -> ScoreboardResult:
    return run_recipe(ScoreboardStage(cfg, out))
