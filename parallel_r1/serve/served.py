"""What the app serves, read from the run directory: the promoted version of each model (the registry's promotion
record) and the routing table. Router replicas re-read it when those files change, so a promotion, a rollback or new
routes are served without a restart; a record that cannot be read keeps the previous set in service.

Every kind of registry version is served: a LoRA adapter by the model backend on its base model (hf or vllm), a full
model (`parallel_sft`, `parallel_rl`) by the hf backend as an engine of its own, an OpenAI fine-tuned id by the
OpenAI-compatible endpoint `serve.openai_base_url`. A version that cannot be served is listed with the reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from parallel_r1.compare.models import PARALLEL_RL, PARALLEL_SFT
from parallel_r1.compare.report import read_routing_table
from parallel_r1.config import ServeConfig
from parallel_r1.paths import RunPaths
from parallel_r1.registry.promotion import PromotionRecord
from parallel_r1.registry.versions import ModelVersion
from parallel_r1.serve.routing import BASE

PARALLEL_MODELS = (PARALLEL_SFT, PARALLEL_RL)  # full models trained to answer in the Parallel-R1 format


@dataclass(frozen=True)
class Target:
    """What answers for one served name: the version's ref (or `base`), its kind ("base", "adapter", "model",
    "openai"), its stored folder or OpenAI model id, and whether it answers in the Parallel-R1 format."""

    ref: str
    kind: str = BASE
    source: str | None = None
    parallel: bool = False

    @classmethod
    def of(cls, version: ModelVersion) -> Target:
        parallel = version.kind == "model" and version.name in PARALLEL_MODELS
        return cls(version.ref, version.kind, version.source, parallel)


@dataclass(frozen=True)
class ServedSet:
    """The promoted versions that are served, by model name; the promoted versions that cannot be served (name ->
    why); the routing table (None: static routes) and the files' stamp it was read at."""

    models: dict[str, ModelVersion]
    unservable: dict[str, str] = field(default_factory=dict)
    routing_table: dict | None = None
    stamp: tuple = ()

    def target(self, name: str) -> Target:
        """What answers for a served name: its promoted version, or the base model."""
        version = self.models.get(name)
        return Target.of(version) if version else Target(name)


def files_stamp(workdir: Path | str) -> tuple:
    """Changes whenever the promotion record, the registry or the routing table is rewritten."""
    paths = RunPaths(Path(workdir))
    files = (paths.promotion, paths.workdir / "registry" / "versions.json", paths.routing_table)
    return tuple((st.st_mtime_ns, st.st_size) if (st := _stat(f)) else None for f in files)


def _stat(path: Path):
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def why_not_served(version: ModelVersion, cfg: ServeConfig) -> str | None:
    """Why this app cannot serve `version` (None: it can): a missing endpoint or key, a backend that cannot hold it,
    or a stored folder deleted by hand."""
    if version.kind == "openai":
        if not cfg.openai_base_url:
            return (f"{version.ref} is an OpenAI fine-tuned model ({version.source}): set serve.openai_base_url to "
                    "the OpenAI-compatible endpoint that serves it")
        if cfg.openai_api_key_env and not os.environ.get(cfg.openai_api_key_env):
            return (f"{version.ref}: serve.openai_api_key_env names ${cfg.openai_api_key_env}, which is not set (or "
                    "empty) in the router's environment")
        return None
    if version.kind == "model" and cfg.backend == "vllm":
        return (f"{version.ref} is a full model: the vllm backend's Ray Serve LLM deployment holds one base model "
                "and serves LoRA adapters on it; serve it with serve.backend=hf")
    if not Path(version.source).is_dir():
        return f"{version.ref}: its stored folder {version.source} is missing"
    return None


def how_served(target: Target, cfg: ServeConfig) -> str:
    """One line on what answers for a served target (for `parallel-r1 serve`)."""
    if target.kind == "openai":
        return f"{target.source} at {cfg.openai_base_url}"
    what = "LoRA on the base model" if target.kind == "adapter" else "full model, its own engine"
    parallel = "; Parallel-R1 format, student view" if target.parallel or cfg.parallel_format else ""
    return f"{cfg.backend} backend, {what}{parallel}"


def read_served(workdir: Path | str, cfg: ServeConfig) -> ServedSet:
    """The served set of a run directory for the app `cfg` configures (a corrupt record or a missing registry
    version is a one-line error)."""
    stamp = files_stamp(workdir)
    models, unservable = {}, {}
    for name, version in PromotionRecord(workdir).served().items():
        if (why := why_not_served(version, cfg)) is None:
            models[name] = version
        else:
            unservable[name] = why
    return ServedSet(models, unservable, read_routing_table(RunPaths(Path(workdir)).routing_table), stamp)
