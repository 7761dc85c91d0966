"""Pipeline configuration: one pydantic model per YAML section (one module each), loaded from YAML and
overridable from the CLI. Unknown or ill-typed fields are errors that name the field (`ConfigError`).
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import Field, ValidationError

from parallel_r1.config.base import ConfigError, _Section
from parallel_r1.config.base_model import BaseModelConfig
from parallel_r1.config.batch import BatchConfig, BatchSpec
from parallel_r1.config.discover import DiscoverConfig, RolePlayConfig
from parallel_r1.config.eval import EvalConfig, EvalSliceSpec
from parallel_r1.config.explain import explain
from parallel_r1.config.finetune import FinetuneConfig, LoraSection, OpenAIFinetuneConfig
from parallel_r1.config.gate import GateConfig
from parallel_r1.config.grade import GradeConfig
from parallel_r1.config.groups import OpenAIEndpointConfig
from parallel_r1.config.inference import InferenceConfig
from parallel_r1.config.kb import KBConfig
from parallel_r1.config.llm_server import LLMServerConfig
from parallel_r1.config.monitor import MonitorConfig
from parallel_r1.config.parallel import (
    ParallelConfig,
    ParallelInferenceConfig,
    ParallelSFTConfig,
    PathGenerationConfig,
)
from parallel_r1.config.ray import RayConfig
from parallel_r1.config.rl import (
    CurriculumConfig,
    RewardScheduleConfig,
    RewardWeightsConfig,
    RLConfig,
    RLExploreConfig,
    RLStopConfig,
    RLVerifyConfig,
)
from parallel_r1.config.serve import ServeConfig
from parallel_r1.config.transcripts import TranscriptsConfig
from parallel_r1.config.tune import TuneConfig

__all__ = ["BaseModelConfig", "BatchConfig", "BatchSpec", "ConfigError", "CurriculumConfig", "DiscoverConfig",
           "EvalConfig", "EvalSliceSpec", "FinetuneConfig", "GateConfig", "GradeConfig", "InferenceConfig", "KBConfig",
           "LLMServerConfig", "LoraSection", "MonitorConfig", "OpenAIEndpointConfig", "OpenAIFinetuneConfig",
           "ParallelConfig", "ParallelInferenceConfig", "ParallelSFTConfig", "PathGenerationConfig", "PipelineConfig",
           "RLConfig", "RLExploreConfig", "RolePlayConfig",
           "RLStopConfig", "RLVerifyConfig", "RayConfig", "RewardScheduleConfig", "RewardWeightsConfig", "ServeConfig",
           "TranscriptsConfig", "TuneConfig", "dump_config", "explain_config", "load_config", "parse_override"]


class PipelineConfig(_Section):
    workdir: Path = Field(Path("data"), description="Run directory every stage reads and writes.")
    ray: RayConfig = Field(default_factory=RayConfig, description="The Ray cluster the stages run on.")
    discover: DiscoverConfig = Field(default_factory=DiscoverConfig,
                                     description="Simulated tutoring dialogues (`parallel-r1 discover`).")
    transcripts: TranscriptsConfig = Field(default_factory=TranscriptsConfig,
                                           description="How `parallel-r1 import` checks real transcripts.")
    grade: GradeConfig = Field(default_factory=GradeConfig, description="The grader of dialogues and replies.")
    batch: BatchConfig = Field(default_factory=BatchConfig, description="Curation of the training batches.")
    base_model: BaseModelConfig = Field(default_factory=BaseModelConfig,
                                        description="The model every specialist starts from.")
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig,
                                     description="Training of the specialists and the monolithic baseline.")
    inference: InferenceConfig = Field(default_factory=InferenceConfig,
                                       description="The engine that generates the models' replies.")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="The held-out comparison (`parallel-r1 "
                                                                     "compare`) and its success criteria.")
    gate: GateConfig = Field(default_factory=GateConfig, description="When a candidate model is promoted.")
    tune: TuneConfig = Field(default_factory=TuneConfig, description="The hyperparameter sweep of one specialist.")
    serve: ServeConfig = Field(default_factory=ServeConfig, description="The Ray Serve application that routes "
                                                                        "requests to the specialists.")
    monitor: MonitorConfig = Field(default_factory=MonitorConfig, description="Signals from served traffic and the "
                                                                            "retraining they queue as Ray jobs.")
    parallel: ParallelConfig = Field(default_factory=ParallelConfig,
                                     description="The Parallel-R1 format, its cold-start dataset and SFT.")
    rl: RLConfig = Field(default_factory=RLConfig, description="GRPO on the parallel-thinking model.")
    llm_server: LLMServerConfig = Field(default_factory=LLMServerConfig,
                                        description="vLLM's OpenAI-compatible server on a model of the run directory.")
    kb: KBConfig = Field(default_factory=KBConfig, description="The knowledge base (vector store, embeddings, cache) "
                                                               "and the stages grounded in it.")


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid configuration ({source}):"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = "unknown field" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def _set_dotted(data: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {k!r} is not a section")
    node[keys[-1]] = value


def parse_override(text: str) -> tuple[str, object]:
    """`discover.num_actors=4` -> ("discover.num_actors", 4); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.field=value")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw)


def read_yaml_mapping(path: Path, what: str, error: type[Exception] = ConfigError) -> dict:
    """The mapping at the top of the YAML file `path` ("{what} {path}" names it in a one-line `error`)."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise error(f"{what} {path} is not valid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(data, dict):
        raise error(f"{what} {path} must hold a mapping at the top level")
    return data


def load_config(path: Path | str | None = None, overrides: dict | list[str] | None = None,
                flags: dict | None = None) -> PipelineConfig:
    """Load YAML (or the embedded defaults when path is None), apply dotted overrides (`section.field=value` strings
    parsed as YAML, where `null` sets None, or a dict of values), then `flags`: typed values by dotted key, a None
    meaning the flag was not given."""
    data: dict = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file {path} not found")
        data = read_yaml_mapping(path, "config file")
        source = str(path)
    items = overrides.items() if isinstance(overrides, dict) else (parse_override(o) for o in overrides or [])
    for key, value in items:
        _set_dotted(data, key, value)
    for key, value in (flags or {}).items():
        if value is not None:
            _set_dotted(data, key, value)
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e, source)) from None


def dump_config(cfg: PipelineConfig) -> str:
    """The configuration as YAML that `load_config` reads back to an equal config."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def explain_config(section: str | None = None) -> str:
    """Every field of the configuration, or of one section (a dotted path such as `parallel.sft`), as a table of
    dotted path, type, default and description; an unknown section is a ConfigError that lists the sections."""
    return explain(PipelineConfig(), section)
