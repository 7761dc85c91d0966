"""The `vllm` model backend: Ray Serve LLM (vLLM) serving the base model with every adapter as multi-LoRA.

Adapter model ids are `<BASE_MODEL_ID>:<name@vN>` (a registry version). Serve LLM only downloads adapters from
cloud URIs, so the replica gets `LocalLoraLoader`, which maps an id to the version's folder in the registry's store on
local (or shared) disk: a version promoted while the app runs is loaded on its first request. The router
calls the LLM deployment through its handle with `multiplexed_model_id` equal to the request's `model` (else
the base model would answer silently). `ray.serve.llm` imports vLLM, so this module is imported only for it. Full
model versions are not served here: the deployment holds one base model (`served.why_not_served` says so).
With `serve.vllm_in_router` there is no LLM deployment: each router replica runs the same engine and loader itself
(`EngineInProcess`).

`base` requests go through a LoRA too: `ZERO_ADAPTER`, a copy of a specialist with every weight zero, whose
replies are the base model's exactly. vLLM (its CPU build at least) answers a prompt *without* a LoRA through a
stale adapter slot when it shares a batch with LoRA prompts; with every prompt on a LoRA there is none such, at
the cost of one more adapter for vLLM to hold or swap, and no second engine.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import get_args

from ray.llm._internal.serve.core.configs.llm_config import DiskMultiplexConfig
from ray.llm._internal.serve.utils.lora_serve_utils import LoraModelLoader, global_id_manager
from ray.serve.llm import LLMConfig, build_llm_deployment
from ray.serve.llm.openai_api_models import ChatCompletionRequest

from parallel_r1.config import PipelineConfig
from parallel_r1.errors import UserFacingError
from parallel_r1.inference.adapters import ADAPTER_CONFIG
from parallel_r1.inference.chat_text import defuse
from parallel_r1.inference.engine import SamplingParams
from parallel_r1.inference.vllm_cpu_lora import LORA_ENV
from parallel_r1.serve.deployment import deployment_options
from parallel_r1.serve.generation import Delta, Generation, StreamedChoices
from parallel_r1.serve.routing import BASE
from parallel_r1.serve.served import Target

BASE_MODEL_ID = "parallel-r1-base"
ZERO_ADAPTER = "zero-lora"  # the adapter `base` requests are answered with (no specialist may take the name)
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTERS_ENV = "PARALLEL_R1_SERVE_ADAPTERS"  # "id=path;id=path" in the LLM replica's environment
STORE_ENV = "PARALLEL_R1_SERVE_STORE"  # the registry's store: <store>/<name>/v<N> is version name@vN


def _adapter_path(model: str) -> Path | None:
    """The folder of adapter `model`: one given at build time (the zero adapter) or a registry version."""
    given = dict(item.split("=", 1) for item in os.environ.get(ADAPTERS_ENV, "").split(";") if item)
    if model in given:
        return Path(given[model])
    name, _, version = model.partition("@")
    store = os.environ.get(STORE_ENV)
    return Path(store, name, version) if store and version else None


class LocalLoraLoader(LoraModelLoader):
    """Resolves `<base>:<name@vN>` to the version's folder, without copying it."""

    async def load_model_from_config(self, lora_model_id: str, llm_config) -> DiskMultiplexConfig:
        if lora_model_id not in self.disk_cache:
            path = _adapter_path(lora_model_id.split(":", 1)[-1])
            if path is None or not path.is_dir():
                raise ValueError(f"no local adapter folder for {lora_model_id!r} ({path or 'not a registry version'})")
            self.disk_cache[lora_model_id] = DiskMultiplexConfig(
                model_id=lora_model_id, max_total_tokens=None, local_path=str(path),
                lora_assigned_int_id=global_id_manager.next())
        return self.disk_cache[lora_model_id]


def _lora_rank(wanted: int) -> int:
    from vllm.config.lora import MaxLoRARanks

    ranks = [r for r in get_args(MaxLoRARanks) if r >= wanted]
    if not ranks:
        raise UserFacingError(f"inference.max_lora_rank {wanted} is above vLLM's largest LoRA rank "
                              f"{max(get_args(MaxLoRARanks))}")
    return ranks[0]


def write_zero_adapter(like: Path, out: Path) -> Path:
    """Adapter `like` with every weight zero (same modules and rank), in `out`: LoRA adds exactly nothing."""
    import torch
    from safetensors.torch import load_file, save_file

    weights = like / ADAPTER_WEIGHTS
    if not weights.is_file():
        raise UserFacingError(f"{weights} not found: the vllm backend needs adapters saved as safetensors")
    out.mkdir(parents=True, exist_ok=True)
    tmp_weights, tmp_config = out / f".{ADAPTER_WEIGHTS}.tmp", out / f".{ADAPTER_CONFIG}.tmp"  # atomic writes
    save_file({k: torch.zeros_like(v) for k, v in load_file(weights).items()}, tmp_weights)
    shutil.copyfile(like / ADAPTER_CONFIG, tmp_config)
    os.replace(tmp_weights, out / ADAPTER_WEIGHTS)
    os.replace(tmp_config, out / ADAPTER_CONFIG)
    return out


def llm_config(cfg: PipelineConfig, base_model: str, adapters: dict[str, str]) -> LLMConfig:
    """The Serve LLM config for the base model and the served `adapters` (version ref -> folder), plus the zero
    adapter for `base` (written to <workdir>/serve/zero-lora)."""
    if not adapters:
        raise UserFacingError("the vllm backend needs a promoted adapter version (its zero adapter answers for the "
                              "base model): run `parallel-r1 gate`, or serve with serve.backend=hf")
    zero = write_zero_adapter(Path(next(iter(adapters.values()))),
                              Path(cfg.workdir).resolve() / "serve" / ZERO_ADAPTER)
    store = Path(cfg.workdir).resolve() / "registry" / "store"
    adapters = {**adapters, ZERO_ADAPTER: str(zero)}
    inf, sc = cfg.inference, cfg.serve
    # On CPU: the KV cache in bytes, and no chunked prefill (vLLM rewinds a seeded request's generator after a
    # partial prefill, which CPU generators cannot do; see parallel_r1/inference/vllm_engine.py).
    memory = ({"gpu_memory_utilization": inf.gpu_memory_utilization} if sc.use_gpu
              else {"kv_cache_memory_bytes": inf.kv_cache_memory_bytes, "enable_chunked_prefill": False})
    engine_kwargs = {"dtype": inf.dtype, "enable_lora": True, "max_lora_rank": _lora_rank(inf.max_lora_rank),
                     "max_loras": min(inf.max_loras, len(adapters)), "max_model_len": inf.max_model_len, **memory}
    options = deployment_options(sc, sc.model_replicas, 0)
    deployment = {k: v for k, v in options.items() if k in ("num_replicas", "autoscaling_config",
                                                            "max_ongoing_requests", "max_queued_requests",
                                                            "logging_config")}
    return LLMConfig(
        model_loading_config={"model_id": BASE_MODEL_ID, "model_source": base_model},
        accelerator_config=None if sc.use_gpu else {"kind": "cpu"},
        engine_kwargs={k: v for k, v in engine_kwargs.items() if v is not None},
        lora_config={"max_num_adapters_per_replica": len(adapters) + 1},  # a newly promoted version beside the rest
        deployment_config=deployment,
        log_engine_metrics=sc.engine_metrics,
        runtime_env={"env_vars": {ADAPTERS_ENV: f"{ZERO_ADAPTER}={zero}", STORE_ENV: str(store),
                                  **({} if sc.use_gpu else {LORA_ENV: inf.vllm_cpu_lora})}},
    )


def build_llm_backend(cfg: PipelineConfig, base_model: str, adapters: dict[str, str]):
    """The Serve LLM deployment (an Application to bind into the router) of `llm_config`."""
    return build_llm_deployment(llm_config(cfg, base_model, adapters), name_prefix=f"{cfg.serve.app_name}:",
                                bind_kwargs={"model_downloader": LocalLoraLoader})


def with_engine(options: dict, config: LLMConfig) -> dict:
    """The Serve `options` of a deployment (the router's) whose replicas run the engine of `config` themselves:
    the Serve LLM replica's placement group (the engine's CPUs or GPUs) and environment (what `LocalLoraLoader`
    reads) added."""
    from ray.serve.llm import LLMServer

    llm = LLMServer.get_deployment_options(config)
    actor = options["ray_actor_options"]
    runtime_env = {**llm["ray_actor_options"]["runtime_env"],
                   "env_vars": {**llm["ray_actor_options"]["runtime_env"].get("env_vars", {}),
                                **actor["runtime_env"]["env_vars"]}}
    placement = {k: llm[k] for k in ("placement_group_bundles", "placement_group_strategy") if k in llm}
    return {**options, **placement, "ray_actor_options": {**actor, "runtime_env": runtime_env}}


class EngineInProcess:
    """The vLLM engine in the router's own process (`serve.vllm_in_router`): Serve LLM's engine without its
    deployment, so a request crosses no process but the engine's. Started on the first call (a call while it starts
    waits for it); adapters are resolved by `LocalLoraLoader` as in the deployment."""

    def __init__(self, config: LLMConfig) -> None:
        self._config, self._starting = config, None
        self._loader = LocalLoraLoader(download_timeout_s=None, max_tries=1)

    async def started(self):
        if self._starting is None or (self._starting.done() and self._starting.exception() is not None):
            self._starting = asyncio.ensure_future(self._start())
        return await asyncio.shield(self._starting)

    async def _start(self):
        from ray.llm._internal.serve.engines.vllm.vllm_engine import VLLMEngine

        engine = VLLMEngine(self._config)
        await engine.start()
        return engine

    async def chat(self, request: ChatCompletionRequest, model_id: str) -> AsyncIterator:
        engine = await self.started()
        await engine.resolve_lora(await self._loader.load_model_from_config(model_id, self._config))
        async for part in engine.chat(request, None):
            yield part


class LLMClient:
    """The router's view of the Serve LLM deployment: OpenAI chat requests through its handle (`handle`), or to the
    engine in the router's own process (an `EngineInProcess`). Streamed replies
    come from the engine as OpenAI SSE strings (in lists, batched by Serve LLM every few ms); `stream` turns
    them back into `Delta`s. vLLM tokenises a rendered prompt with its special tokens parsed, so the base model's
    special-token strings (`specials`) in message contents are defused first (`chat_text.defuse`)."""

    def __init__(self, handle, specials: list[str]) -> None:
        self._handle, self._specials = handle, specials

    async def models(self) -> list[str]:
        if isinstance(self._handle, EngineInProcess):
            await self._handle.started()
        return [BASE]

    def _call(self, conversation: list[dict], sampling: SamplingParams, model: str, stream: bool):
        model_id = f"{BASE_MODEL_ID}:{ZERO_ADAPTER if model == BASE else model}"
        messages = [{**m, "content": defuse(m["content"], self._specials)} for m in conversation]
        request = ChatCompletionRequest(model=model_id, messages=messages, n=sampling.n, stream=stream,
                                        stream_options={"include_usage": True} if stream else None,
                                        temperature=sampling.temperature, max_tokens=sampling.max_tokens,
                                        top_p=1.0 if sampling.temperature == 0 else sampling.top_p,
                                        seed=sampling.seed, stop=list(sampling.stop))
        if isinstance(self._handle, EngineInProcess):
            return self._handle.chat(request, model_id)
        handle = self._handle.options(stream=True, multiplexed_model_id=model_id)
        return handle.chat.remote(request, None)

    async def generate(self, conversation: list[dict], sampling: SamplingParams, target: Target) -> Generation:
        """`target`: a served adapter version or `base` (its folder is resolved by the replica's loader)."""
        seen = []
        async for part in _parts(self._call(conversation, sampling, target.ref, stream=False)):
            if (refusal := _refusal(part)) is not None:
                return refusal
            if (choices := getattr(part, "choices", None)) is not None:
                return Generation(texts=[(c.message.content or "").strip() for c in choices],
                                  finish_reasons=[c.finish_reason or "stop" for c in choices],
                                  prompt_tokens=part.usage.prompt_tokens,
                                  completion_tokens=[part.usage.completion_tokens])
            seen.append(type(part).__name__)
        raise RuntimeError(f"the LLM deployment returned no chat completion (got {seen or 'nothing'})")

    async def stream(self, conversation: list[dict], sampling: SamplingParams,
                     target: Target) -> AsyncIterator[Delta | Generation]:
        choices = StreamedChoices(sampling.n)
        async for part in _parts(self._call(conversation, sampling, target.ref, stream=True)):
            if (refusal := _refusal(part)) is not None:
                yield refusal
                return
            for event in _sse_events(part):
                for delta in choices.add(event):
                    yield delta
        rest, done = choices.finish()
        for delta in rest:
            yield delta
        yield done


async def _parts(response) -> AsyncIterator:
    """The items of an LLM deployment response, lists flattened."""
    async for item in response:
        for part in item if isinstance(item, list) else [item]:
            yield part


def _refusal(part) -> Generation | None:
    """A refusal for a 4xx error response (duck-typed: the engine yields Ray's internal response classes, not
    the public subclasses); raises for a server-side error; None for anything else."""
    if (error := getattr(part, "error", None)) is None:
        return None
    if 400 <= int(error.code or 500) < 500:
        return Generation.refused(error.message)
    raise RuntimeError(f"the LLM deployment failed: {error.message}")


def _sse_events(part) -> list[dict]:
    """The JSON events of one chunk of a streamed reply: SSE text (`data: {...}` lines), `[DONE]` left out."""
    if not isinstance(part, str):
        return [part.model_dump()]
    events = []
    for line in part.splitlines():
        payload = line.removeprefix("data:").strip()
        if line.startswith("data:") and payload != "[DONE]":
            event = json.loads(payload)
            if "error" in event:
                raise RuntimeError(f"the LLM deployment failed mid-stream: {event['error']}")
            events.append(event)
    return events
