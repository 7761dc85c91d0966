"""Which models `compare` evaluates: the base, every trained adapter, OpenAI fine-tuned models recorded in
the finetune manifest, and the Parallel-R1 models (`parallel-sft`, `rl`) when they have been built."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from parallel_r1.data.io import atomic_write_json, file_digest
from parallel_r1.errors import UserFacingError
from parallel_r1.finetune.manifest import FinetuneManifest
from parallel_r1.paths import RunPaths
from parallel_r1.registry.versions import weights_digest

BASE = "base"
PARALLEL_SFT, PARALLEL_RL = "parallel_sft", "parallel_rl"
REGISTRY_KIND = {"adapter": "adapter", "parallel": "model", "openai": "openai"}  # the registry's kind of each
MODEL_INDEX = "models.json"  # in <workdir>/eval: the weights each compared model had


@dataclass(frozen=True)
class ModelSpec:
    """One model to evaluate: the base itself, a LoRA adapter on it, or a remote fine-tuned model id."""

    name: str
    kind: str  # "base" | "adapter" | "openai" | "parallel" (a full model prompted for parallel thinking)
    source: str = ""  # adapter folder, fine-tuned model id or model folder
    digest: str = ""  # of the weights compare evaluated (`registry.versions.weights_digest`), from the model index

    def identity(self) -> str:
        """Changes whenever the model's weights do (an adapter retrained under the same name)."""
        if self.kind != "adapter":
            return f"{self.kind}:{self.source}"
        return f"adapter:{file_digest(*sorted(Path(self.source).glob('adapter_model.*')))}"


def available_models(paths: RunPaths) -> dict[str, ModelSpec]:
    """The base, each adapter folder under `adapters/` (not the hidden ones a killed finetune job left), and each
    succeeded OpenAI job's model."""
    models = {BASE: ModelSpec(BASE, "base")}
    if paths.adapters.exists():
        for folder in sorted(p for p in paths.adapters.iterdir()
                             if not p.name.startswith(".") and (p / "adapter_config.json").exists()):
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


def write_model_index(paths: RunPaths, specs: list[ModelSpec]) -> None:
    """Record which weights each compared model had, so that the gate promotes exactly the version compared."""
    atomic_write_json(paths.eval / MODEL_INDEX, {
        s.name: {"kind": s.kind, "source": s.source, "digest": weights_digest(REGISTRY_KIND[s.kind], s.source)}
        for s in specs if s.kind != "base"})


def compared_models(paths: RunPaths) -> dict[str, ModelSpec]:
    """The models of compare's last results with the digests of their weights then; from the folders as they are
    now (no digest) for results written before compare recorded them."""
    index = paths.eval / MODEL_INDEX
    if not index.exists():
        return available_models(paths)
    try:
        return {name: ModelSpec(name, m["kind"], m["source"], m["digest"])
                for name, m in json.loads(index.read_text()).items()}
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
        raise UserFacingError(f"{index} is corrupt ({type(e).__name__}: {e}): re-run `parallel-r1 compare`") from None
