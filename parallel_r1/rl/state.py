"""What a GRPO run records beside its checkpoints, as pydantic models: `state.json` (step, curriculum, stop) and
`fingerprint.json` (the start model's digest and the settings that shape training). A run resumes only when its
fingerprint matches; `parallel-r1 rl --restart` discards a run that does not, with one rename of its folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from pydantic import Field

from parallel_r1.config import PipelineConfig
from parallel_r1.config.groups import is_uri
from parallel_r1.data.io import file_digest, remove_stale_partials
from parallel_r1.data.records import Record, read_record

MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
               "chat_template.jinja", "special_tokens_map.json", "added_tokens.json")
# rl fields that say how far, where or how fast to train, not what: a resumed run may change them
NOT_FINGERPRINTED = frozenset({
    "model", "max_steps", "stop", "save_steps", "rollout_backend", "vllm_mode", "vllm_server_url", "vllm_dtype",
    "vllm_gpu_memory_utilization", "vllm_kv_cache_gb", "num_workers", "cpus_per_worker", "use_gpu", "gpus_per_worker",
    "storage_path", "max_failures"})
REMEDY = "re-run `parallel-r1 rl --restart` to start the run over"


class StopRecord(Record):
    """Why a run stopped before rl.max_steps."""

    code: str = Field(description="The stop criterion: plateau or low_variance.")
    message: str = Field(description="The criterion's explanation, in a sentence.")
    step: int = Field(description="The step it stopped at.")


class RLState(Record):
    """`state.json`: where the run is, rewritten after every step by the rank-0 worker."""

    step: int = Field(0, ge=0, description="The last step trained.")
    max_steps: int | None = Field(None, description="rl.max_steps of the run that wrote it.")
    tier: str | None = Field(None, description="The curriculum tier trained on.")
    phase: str | None = Field(None, description="explore or verify.")
    promotions: list[dict[str, Any]] = Field(default_factory=list, description="Tier promotions so far.")
    stopped: StopRecord | None = Field(None, description="Set once a stop criterion ended the run.")
    curriculum: dict[str, Any] = Field(default_factory=dict, description="The curriculum's full state.")


class RLFingerprint(Record):
    """`fingerprint.json`: what the run's checkpoints were trained from; a resume with anything else is refused."""

    model: str = Field(description="The start model's folder (shown in messages; its identity is model_digest).")
    model_digest: str = Field(description="Digest of the start model's weight, config and tokenizer files.")
    training: dict[str, Any] = Field(description="The settings that shape training, by dotted name: the rl "
                                                 "section without its progress, rollout-engine and scale fields, "
                                                 "and parallel.max_blocks.")

    def changes(self, new: RLFingerprint) -> list[str]:
        """What differs from `new`, one phrase per difference."""
        found = []
        if self.model_digest != new.model_digest:
            found.append(f"the start model ({self.model} -> {new.model}, weights {self.model_digest} -> "
                         f"{new.model_digest})")
        for key in sorted(self.training.keys() | new.training.keys()):
            if self.training.get(key) != new.training.get(key):
                found.append(f"{key} {self.training.get(key)!r} -> {new.training.get(key)!r}")
        return found


def model_digest(folder: Path) -> str:
    """The start model's identity: its weights, config and tokenizer files, wherever the folder is."""
    files = sorted(p for p in Path(folder).iterdir() if p.name in MODEL_FILES or p.suffix == ".safetensors")
    return file_digest(*files)


def _flat(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flat(f"{prefix}.{key}", item).items()}
    return {prefix: value}


def fingerprint(cfg: PipelineConfig, model: Path) -> RLFingerprint:
    """The fingerprint of a run of `cfg` from `model`."""
    training = _flat("rl", cfg.rl.model_dump(mode="json", exclude=set(NOT_FINGERPRINTED)))
    training["parallel.max_blocks"] = cfg.parallel.max_blocks
    return RLFingerprint(model=str(model), model_digest=model_digest(model), training=training)


def read_state(path: Path) -> RLState:
    """The run's state (an empty one before its first step)."""
    return read_record(path, RLState, REMEDY) if path.exists() else RLState()


def read_fingerprint(path: Path) -> RLFingerprint | None:
    return read_record(path, RLFingerprint, REMEDY) if path.exists() else None


def _set_aside(path: Path) -> Path:
    """`path` renamed (atomically) to a hidden sibling that `remove_stale_partials` removes if we die."""
    trash = path.with_name(f".{path.name}.discarded-{os.getpid()}")
    shutil.rmtree(trash, ignore_errors=True)
    path.rename(trash)
    return trash


def discard_run(run_dir: Path, checkpoints: str) -> None:
    """Remove a run: its Ray Train checkpoints (`checkpoints`: the run's folder in the storage, a path or URI) and
    its folder (state, fingerprint, metrics, model). Each goes by one rename before it is deleted, the checkpoints
    first: a kill midway leaves no checkpoint that a later run could resume under the old fingerprint."""
    if is_uri(checkpoints):
        from pyarrow import fs

        storage, where = fs.FileSystem.from_uri(checkpoints)
        if storage.get_file_info(where).type != fs.FileType.NotFound:
            storage.delete_dir(where)
    elif Path(checkpoints).exists():
        shutil.rmtree(_set_aside(Path(checkpoints)))
    if run_dir.exists():
        shutil.rmtree(_set_aside(run_dir))


def remove_discarded(run_dir: Path, checkpoints: str) -> None:
    """What a killed `discard_run` left set aside."""
    for path in (str(run_dir), checkpoints):
        if not is_uri(path) and Path(path).parent.exists():
            remove_stale_partials(Path(path))
