"""Which models `compare` evaluates: the base, every trained adapter, OpenAI fine-tuned models recorded in
the finetune manifest, and the Parallel-R1 models (`parallel-sft`, `rl`) when they have been built."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from parallel_r1.data.io import file_digest
from parallel_r1.errors import UserFacingError
from parallel_r1.finetune.manifest import FinetuneManifest
from parallel_r1.paths import RunPaths

BASE = "base"
PARALLEL_SFT, PARALLEL_RL = "parallel_sft", "parallel_rl"


@dataclass(frozen=True)
class ModelSpec:
    """One model to evaluate: the base itself, a LoRA adapter on it, or a remote fine-tuned model id."""

    name: str
    kind: str  # "base" | "adapter" | "openai" | "parallel" (a full model prompted for parallel thinking)
    source: str = ""  # adapter folder, fine-tuned model id or model folder

    def identity(self) -> str:
        """Changes whenever the model's weights do (an adapter retrained under the same name)."""
        if self.kind != "adapter":
            return f"{self.kind}:{self.source}"
        return f"adapter:{file_digest(*sorted(Path(self.source).glob('adapter_model.*')))}"


def available_models(paths: RunPaths) -> dict[str, ModelSpec]:
    """The base, each adapter folder under `adapters/`, and each succeeded OpenAI job's model."""
    models = {BASE: ModelSpec(BASE, "base")}
    if paths.adapters.exists():
        for folder in sorted(p for p in paths.adapters.iterdir() if (p / "adapter_config.json").exists()):
            models[folder.name] = ModelSpec(folder.name, "adapter", str(folder))
    if paths.finetune_manifest.exists():
        for job in FinetuneManifest(paths.finetune_manifest).read().values():
            if job.backend == "openai" and job.status == "succeeded" and job.result:
                models[f"openai:{job.name}"] = ModelSpec(f"openai:{job.name}", "openai", job.result)
    for name, folder in ((PARALLEL_SFT, paths.parallel_sft_model), (PARALLEL_RL, paths.rl_model)):
        if (folder / "config.json").exists():
            models[name] = ModelSpec(name, "parallel", str(folder))
    return models


def select_models(paths: RunPaths, names: list[str] | None) -> list[ModelSpec]:
    """The named models (the base is always included, first), or every available one."""
    found = available_models(paths)
    if not names:
        return list(found.values())
    unknown = [n for n in names if n not in found]
    if unknown:
        raise UserFacingError(f"compare: unknown model(s) {unknown}; available: {', '.join(found)} "
                              f"(adapters come from `parallel-r1 finetune`)")
    return [found[BASE], *(found[n] for n in dict.fromkeys(names) if n != BASE)]
