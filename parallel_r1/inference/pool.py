"""An inference engine spread over Ray actors, each hosting a whole engine (the base model and every adapter).

`generate_each` hands every actor whole requests (one model's prompts each), largest first onto the least-loaded
actor, so a compare over many models keeps each core or GPU busy. The replies are the ones a single engine gives:
a prompt's sampling seed depends only on its index within its request.
"""

from __future__ import annotations

from pathlib import Path

import ray
from ray.exceptions import RayActorError

from parallel_r1.config import InferenceConfig
from parallel_r1.errors import UserFacingError
from parallel_r1.inference.engine import Completion, SamplingParams
from parallel_r1.inference.factory import build_engine, resolve_engine_name


@ray.remote
class EngineActor:
    """One engine in its own process, with a torch thread per CPU it holds (at least one)."""

    def __init__(self, cfg: InferenceConfig, base_model: str, adapters: dict[str, str]) -> None:
        import torch

        torch.set_num_threads(max(1, int(cfg.cpus_per_engine)))
        self.engine = build_engine(cfg, base_model, adapters)

    def add_adapter(self, name: str, path: str) -> None:
        self.engine.add_adapter(name, path)

    def generate_each(self, requests: list[tuple[list[list[dict]], str | None]],
                      sampling: SamplingParams) -> list[list[Completion]]:
        return self.engine.generate_each(requests, sampling)

    def close(self) -> None:
        self.engine.close()


def assign_requests(sizes: list[int], workers: int) -> list[list[int]]:
    """Request indices per worker: the largest request first, each onto the worker with the least work so far."""
    load, groups = [0] * workers, [[] for _ in range(workers)]
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        w = min(range(workers), key=lambda w: (load[w], w))
        groups[w].append(i)
        load[w] += sizes[i]
    return [sorted(g) for g in groups]


def _check_fits(cfg: InferenceConfig) -> None:
    """Engines that the cluster could never hold at once would wait for resources forever: refuse them."""
    total = ray.cluster_resources()
    for resource, each in (("CPU", cfg.cpus_per_engine), ("GPU", cfg.gpus_per_engine)):
        if each and cfg.num_engines * each > total.get(resource, 0) + 1e-9:
            raise UserFacingError(
                f"inference.num_engines={cfg.num_engines} x {each:g} {resource} per engine does not fit the Ray "
                f"cluster's {total.get(resource, 0):g} {resource}: lower inference.num_engines or "
                f"inference.{resource.lower()}s_per_engine")


class EnginePool:
    """`InferenceEngine` over `cfg.num_engines` Ray actors; needs a connected Ray (see `ensure_ray`)."""

    def __init__(self, cfg: InferenceConfig, base_model: Path | str, adapters: dict[str, Path | str] | None = None):
        self.name = resolve_engine_name(cfg)
        self._adapters = {name: str(path) for name, path in (adapters or {}).items()}
        _check_fits(cfg)
        actor = EngineActor.options(num_cpus=cfg.cpus_per_engine, num_gpus=cfg.gpus_per_engine)
        self._actors = [actor.remote(cfg, str(base_model), self._adapters) for _ in range(cfg.num_engines)]

    @property
    def adapters(self) -> list[str]:
        return list(self._adapters)

    def add_adapter(self, name: str, path: Path | str) -> None:
        ray.get([actor.add_adapter.remote(name, str(path)) for actor in self._actors])
        self._adapters[name] = str(path)

    def generate(self, conversations: list[list[dict]], sampling: SamplingParams,
                 adapter: str | None = None) -> list[Completion]:
        return self.generate_each([(conversations, adapter)], sampling)[0]

    def generate_each(self, requests: list[tuple[list[list[dict]], str | None]],
                      sampling: SamplingParams) -> list[list[Completion]]:
        groups = assign_requests([len(conversations) for conversations, _ in requests], len(self._actors))
        busy = [(group, actor) for group, actor in zip(groups, self._actors, strict=True) if group]
        try:
            done = ray.get([actor.generate_each.remote([requests[i] for i in group], sampling)
                            for group, actor in busy])
        except RayActorError as e:
            raise UserFacingError(f"an inference engine actor died while generating ({e}); this call's replies "
                                  "are lost, replies cached before it are kept: run it again") from e
        out: list[list[Completion] | None] = [None] * len(requests)
        for (group, _), completions in zip(busy, done, strict=True):
            for i, c in zip(group, completions, strict=True):
                out[i] = c
        return out

    def close(self) -> None:
        for actor in self._actors:
            try:
                ray.get(actor.close.remote())
            except RayActorError:
                pass
            ray.kill(actor)
        self._actors = []
