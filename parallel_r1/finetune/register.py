"""Every model `finetune` trains becomes a registry version: a Ray job's adapter folder, an OpenAI job's fine-tuned
model id (under `openai:<name>`, the name compare gives it), with its training config, data digest and metrics; a
specialist trained from the monolithic adapter names that version as its parent."""

from __future__ import annotations

from pathlib import Path

from parallel_r1.config import FinetuneConfig
from parallel_r1.finetune.manifest import FinetuneJob
from parallel_r1.inference.adapters import ADAPTER_CONFIG
from parallel_r1.paths import RunPaths
from parallel_r1.registry.versions import ModelRegistry, ModelVersion, weights_digest


def register_trained(paths: RunPaths, jobs: dict[str, FinetuneJob], ft: FinetuneConfig) -> list[ModelVersion]:
    """Register each succeeded job's model (idempotent: weights already registered keep their version)."""
    registry = ModelRegistry(paths.workdir)
    training = ft.model_dump(mode="json", exclude={"openai"} if ft.backend == "ray" else None)
    done = sorted((j for j in jobs.values() if j.status == "succeeded"), key=lambda j: j.init_adapter is not None)
    versions = []
    for job in done:
        if job.backend == "ray":
            folder = paths.adapters / job.name
            if not (folder / ADAPTER_CONFIG).exists():
                continue
            name, kind, source = job.name, "adapter", str(folder)
        elif job.result:
            name, kind, source = f"openai:{job.name}", "openai", job.result
        else:
            continue
        versions.append(registry.register(name, kind, source, training={**training, "batches": job.batches},
                                          data_digest=job.training_digest, parent=_parent(registry, job),
                                          metrics=job.metrics or {}))
    return versions


def _parent(registry: ModelRegistry, job: FinetuneJob) -> str | None:
    """The registered version of the adapter the job continued from."""
    if not job.init_adapter:
        return None
    folder = Path(job.init_adapter)
    if not (folder / ADAPTER_CONFIG).exists():
        return None
    found = registry.find(folder.name, weights_digest("adapter", folder))
    return found.ref if found else None
