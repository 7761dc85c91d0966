"""The grader-fit command: fit the fitted grader on a team's labelled replies and save it in the run directory.

Run it with `parallel-r1 grader fit LABELLED.jsonl [--out FOLDER]`: it prints the cross-validated agreement
(folds by conversation), fits on every reply, and writes `model.npz`, `model.json`, `validation.json` and
`validation.png` to `--out`, else `grade.fitted_path`, else `<workdir>/grader/fitted`. Then `grade.grader: fitted`
grades with it everywhere a grader is used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from parallel_r1.config import PipelineConfig
from parallel_r1.console import notice
from parallel_r1.grade.fitted import cross_validate, fit, prepare
from parallel_r1.grade.labels import read_labelled
from parallel_r1.grade.validate import ValidationReport
from parallel_r1.grade.validate_stage import print_validation
from parallel_r1.paths import RunPaths
from parallel_r1.recipe import run_recipe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitResult:
    """Where the fitted grader went, its name, and how it did under cross-validation."""

    folder: Path
    grader: str
    report: ValidationReport


def fitted_folder(cfg: PipelineConfig, out: Path | None = None) -> Path:
    """The folder the fitted grader is written to (and `grade.grader: fitted` reads from, without --out)."""
    return Path(out or cfg.grade.fitted_path or RunPaths(cfg.workdir).fitted_grader)


class GraderFitStage:
    """setup() → run() → cleanup(): embed the labelled replies, cross-validate, fit on all of them and save."""

    def __init__(self, cfg: PipelineConfig, labelled: Path, out: Path | None = None):
        self.cfg, self.labelled, self.out = cfg, labelled, out

    def setup(self) -> None:
        self.replies = read_labelled(self.labelled)

    def run(self) -> FitResult:
        notice(f"embedding {len(self.replies)} labelled replies, their students' last messages, their problems and "
               "their dialogues ...",
               log)
        data = prepare(self.replies)
        report = cross_validate(data, source=str(self.labelled))
        print_validation(report)
        grader = fit(data, source=Path(self.labelled))
        folder = grader.save(fitted_folder(self.cfg, self.out), report)
        fitted = ", ".join(f"{t.criterion} ({' + '.join(t.dimensions)}, n={t.n})" for t in grader.targets)
        notice(f"wrote {grader.name} to {folder} (model.npz, model.json, validation.json, validation.png); "
               f"it predicts {fitted}; grade with it: grade.grader=fitted"
               + (f" grade.fitted_path={folder}" if self.out else ""), log)
        return FitResult(folder=folder, grader=grader.name, report=report)

    def cleanup(self) -> None:
        """Nothing to release."""


def run_grader_fit(cfg: PipelineConfig, labelled: Path, out: Path | None = None) -> FitResult:
    """Cross-validate, print the table, fit on everything, save the model with its report beside it."""
    return run_recipe(GraderFitStage(cfg, labelled, out))
