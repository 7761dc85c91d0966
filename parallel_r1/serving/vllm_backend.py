"""The `vllm` model backend: Ray Serve LLM (vLLM) serving the base model with every adapter as multi-LoRA.

Adapter model ids are `<BASE_MODEL_ID>:<name>`. Serve LLM only downloads adapters from cloud URIs, so the
replica gets `LocalLoraLoader`, which maps an id to <adapters dir>/<name> on local (or shared) disk. The router
calls the LLM deployment through its handle with `multiplexed_model_id` equal to the request's `model` (else
the base model would answer silently). `ray.serve.llm` imports vLLM, so this module is imported only for it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import get_args

from ray.llm._internal.serve.core.configs.llm_config import DiskMultiplexConfig
from ray.llm._internal.serve.utils.lora_serve_utils import LoraModelLoader, global_id_manager
from ray.serve.llm import LLMConfig, build_llm_deployment
from ray.serve.llm.openai_api_models import ChatCompletionRequest

from parallel_r1.config import PipelineConfig
from parallel_r1.errors import UserFacingError
from parallel_r1.inference.engine import SamplingParams
from parallel_r1.serving.hf_backend import Generation
from parallel_r1.serving.routing import BASE

BASE_MODEL_ID = "parallel-r1-base"
ADAPTERS_ENV = "PARALLEL_R1_SERVE_ADAPTERS"  # "name=path;name=path" in the LLM replica's environment


def _adapter_paths() -> dict[str, str]:
    pairs = (item.split("=", 1) for item in os.environ.get(ADAPTERS_ENV, "").split(";") if item)
    return dict(pairs)


class LocalLoraLoader(LoraModelLoader):
    """Resolves `<base>:<name>` to the adapter folder registered for `name`, without copying it."""

    async def load_model_from_config(self, lora_model_id: str, llm_config) -> DiskMultiplexConfig:
        if lora_model_id not in self.disk_cache:
            name = lora_model_id.split(":", 1)[-1]
            path = _adapter_paths().get(name)
            if path is None or not Path(path).is_dir():
                raise ValueError(f"no local adapter folder for {lora_model_id!r} (known: {sorted(_adapter_paths())})")
            self.disk_cache[lora_model_id] = DiskMultiplexConfig(
                model_id=lora_model_id, max_total_tokens=None, local_path=path,
                lora_assigned_int_id=global_id_manager.next())
        return self.disk_cache[lora_model_id]


def _lora_rank(wanted: int) -> int:
    from vllm.config.lora import MaxLoRARanks

    ranks = [r for r in get_args(MaxLoRARanks) if r >= wanted]
    if not ranks:
        raise UserFacingError(f"inference.max_lora_rank {wanted} is above vLLM's largest LoRA rank "
                              f"{max(get_args(MaxLoRARanks))}")
    return ranks[0]


def build_llm_backend(cfg: PipelineConfig, base_model: str, adapters: dict[str, str]):
    """The Serve LLM deployment (an Application to bind into the router) for the base model and `adapters`."""
    from parallel_r1.serving.app import deployment_options

    inf, sc = cfg.inference, cfg.serve
    # On CPU: the KV cache in bytes, and no chunked prefill (vLLM rewinds a seeded request's generator after a
    # partial prefill, which CPU generators cannot do; see parallel_r1/inference/vllm_engine.py).
    memory = ({"gpu_memory_utilization": inf.gpu_memory_utilization} if sc.use_gpu
              else {"kv_cache_memory_bytes": inf.kv_cache_memory_bytes, "enable_chunked_prefill": False})
    engine_kwargs = {"dtype": inf.dtype, "enable_lora": True, "max_lora_rank": _lora_rank(inf.max_lora_rank),
                     "max_loras": min(inf.max_loras, len(adapters)), "max_model_len": inf.max_model_len, **memory}
    options = deployment_options(sc, sc.model_replicas, 0)
    deployment = {k: v for k, v in options.items() if k in ("num_replicas", "autoscaling_config",
                                                            "max_ongoing_requests", "logging_config")}
    llm_config = LLMConfig(
        model_loading_config={"model_id": BASE_MODEL_ID, "model_source": base_model},
        accelerator_config=None if sc.use_gpu else {"kind": "cpu"},
        engine_kwargs={k: v for k, v in engine_kwargs.items() if v is not None},
        lora_config={"max_num_adapters_per_replica": len(adapters)},
        deployment_config=deployment,
        runtime_env={"env_vars": {ADAPTERS_ENV: ";".join(f"{n}={p}" for n, p in adapters.items())}},
    )
    return build_llm_deployment(llm_config, name_prefix=f"{sc.app_name}:",
                                bind_kwargs={"model_downloader": LocalLoraLoader})


class LLMClient:
    """The router's view of the Serve LLM deployment: OpenAI chat requests through its handle."""

    def __init__(self, handle, adapters: list[str]) -> None:
        self._handle, self._adapters = handle, list(adapters)

    async def models(self) -> list[str]:
        return [BASE, *self._adapters]

    async def generate(self, conversation: list[dict], sampling: SamplingParams, model: str) -> Generation:
        model_id = BASE_MODEL_ID if model == BASE else f"{BASE_MODEL_ID}:{model}"
        request = ChatCompletionRequest(model=model_id, messages=conversation, n=sampling.n, stream=False,
                                        temperature=sampling.temperature, max_tokens=sampling.max_tokens,
                                        top_p=1.0 if sampling.temperature == 0 else sampling.top_p,
                                        seed=sampling.seed)
        handle = self._handle.options(stream=True, multiplexed_model_id="" if model == BASE else model_id)
        seen = []
        async for item in handle.chat.remote(request, None):
            for part in item if isinstance(item, list) else [item]:
                # Duck-typed: the engine yields Ray's internal response classes, not the public subclasses.
                if (error := getattr(part, "error", None)) is not None:
                    if 400 <= int(error.code or 500) < 500:
                        return Generation.refused(error.message)
                    raise RuntimeError(f"the LLM deployment failed: {error.message}")
                if (choices := getattr(part, "choices", None)) is not None:
                    return Generation(texts=[(c.message.content or "").strip() for c in choices],
                                      finish_reasons=[c.finish_reason or "stop" for c in choices],
                                      prompt_tokens=part.usage.prompt_tokens,
                                      completion_tokens=[part.usage.completion_tokens])
                seen.append(type(part).__name__)
        raise RuntimeError(f"the LLM deployment returned no chat completion (got {seen or 'nothing'})")

