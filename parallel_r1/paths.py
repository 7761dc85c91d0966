"""Where each artifact lives in the run directory; stages talk only through these files."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from parallel_r1.config import BaseModelConfig

BASE_MODEL_INFO = "base_model.json"  # in a base model folder built or converted by `init-model`
ROUND_SUFFIX = re.compile(r"-round(\d+)$")  # `parallel-r1 next` runs round k in `<first run directory>-round<k>`


def round_of(workdir: str | Path) -> int:
    """The round a run directory holds: k for `<dir>-round<k>`, else 0 (the first run)."""
    found = ROUND_SUFFIX.search(str(workdir))
    return int(found.group(1)) if found else 0


def round_dir(workdir: str | Path, round_no: int) -> str:
    """The run directory of round `round_no` of the rounds `workdir` belongs to (round 0: the first run's)."""
    first = ROUND_SUFFIX.sub("", str(workdir))
    return f"{first}-round{round_no}" if round_no else first


@dataclass(frozen=True)
class RunPaths:
    workdir: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "workdir", Path(self.workdir).resolve())

    @property
    def config_resolved(self) -> Path:
        return self.workdir / "config.resolved.yaml"

    @property
    def dialogues(self) -> Path:
        return self.workdir / "dialogues.parquet"

    @property
    def discover_failures(self) -> Path:
        return self.workdir / "discover_failures.jsonl"

    @property
    def grade_failures(self) -> Path:
        return self.workdir / "grade_failures.jsonl"

    @property
    def validation(self) -> Path:
        return self.workdir / "validation"

    @property
    def fitted_grader(self) -> Path:
        return self.workdir / "grader" / "fitted"

    @property
    def batches(self) -> Path:
        return self.workdir / "batches"

    @property
    def batch_report(self) -> Path:
        return self.batches / "report.md"

    @property
    def batch_inputs(self) -> Path:
        return self.batches / "inputs.json"

    @property
    def pattern_report(self) -> Path:
        return self.workdir / "pattern_report.md"

    @property
    def base_model(self) -> Path:
        return self.workdir / "models" / "base"

    @property
    def adapters(self) -> Path:
        return self.workdir / "adapters"

    @property
    def finetune_manifest(self) -> Path:
        return self.workdir / "finetune_manifest.json"

    @property
    def ray_results(self) -> Path:
        return self.workdir / "ray_results"

    @property
    def eval(self) -> Path:
        return self.workdir / "eval"

    @property
    def routing_table(self) -> Path:
        return self.eval / "routing.json"

    @property
    def score_log(self) -> Path:
        return self.workdir / "serve" / "scores.jsonl"

    @property
    def guardrail(self) -> Path:
        """guardrail/<specialist>.jsonl: corrected replies to served conversations that failed compliance."""
        return self.workdir / "guardrail"

    @property
    def promotion(self) -> Path:
        return self.workdir / "promotion.json"

    @property
    def tune(self) -> Path:
        return self.workdir / "tune"

    @property
    def parallel(self) -> Path:
        return self.workdir / "parallel"

    @property
    def parallel_sft_model(self) -> Path:
        return self.workdir / "parallel" / "sft" / "model"

    @property
    def rl(self) -> Path:
        return self.parallel / "rl"

    @property
    def rl_metrics(self) -> Path:
        return self.rl / "metrics.jsonl"

    @property
    def rl_plot(self) -> Path:
        return self.rl / "metrics.png"

    @property
    def rl_state(self) -> Path:
        return self.rl / "state.json"

    @property
    def rl_checkpoints(self) -> Path:
        return self.rl / "checkpoints"

    @property
    def rl_model(self) -> Path:
        return self.rl / "model"

    @property
    def parallel_sft_data(self) -> Path:
        return self.parallel / "sft_data.jsonl"

    @property
    def parallel_sft(self) -> Path:
        return self.parallel / "sft"

    @property
    def parallel_sft_eval(self) -> Path:
        return self.parallel_sft / "eval.json"

    def require(self, path: Path, produced_by: str) -> Path:
        """The path, or a clear error naming the stage that produces it."""
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: run `parallel-r1 {produced_by}` first")
        return path


def resolve_base_model(cfg: BaseModelConfig, paths: RunPaths) -> str:
    """What to load as the base model: cfg.path when set (any HF path or hub id), else the embedded model."""
    if cfg.path:
        return cfg.path
    path = paths.base_model
    if not (path / BASE_MODEL_INFO).exists():
        raise FileNotFoundError(f"no base model in {path}: run `parallel-r1 init-model` first "
                                "(or set base_model.path to a Hugging Face model path or hub id)")
    return str(path)
