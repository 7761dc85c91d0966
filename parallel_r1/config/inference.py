"""The `inference` section: the engine that generates the models' replies (HF or vLLM), and how many."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from parallel_r1.config.groups import VLLMMemoryConfig


class InferenceConfig(VLLMMemoryConfig):
    engine: Literal["auto", "hf", "vllm"] = Field("auto", description="auto: vLLM where it imports, else HF.")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="Weights dtype. bfloat16 pays on a CPU with AMX or AVX512-BF16 (vLLM most: "
                               "benchmarks/README.md, bench_inference) and on GPUs; float32 elsewhere on CPU.")
    max_batch_size: int = Field(32, ge=1, description="HF engine: conversations per generate() call.")
    hf_cache: Literal["static", "dynamic"] = Field(
        "static", description="HF engine KV cache. static: preallocated for a batch's prompt + max_tokens and written "
                              "in place (faster, the same replies); dynamic: grown by concatenation each step, for a "
                              "model without static-cache support.")
    num_engines: int = Field(1, ge=1, description="Engines `compare` spreads its models over, one Ray actor each "
                                                  "holding the base model and every adapter; 1: one engine in "
                                                  "the calling process, no Ray.")
    cpus_per_engine: float = Field(1.0, gt=0, description="CPUs per engine actor (its torch threads on CPU).")
    gpus_per_engine: float = Field(0.0, ge=0, description="GPUs per engine actor (cluster; fractions share one).")
    max_loras: int = Field(8, ge=1, description="vLLM: adapters held in the engine at once.")
    max_lora_rank: int = Field(16, ge=1, description="vLLM: the largest LoRA rank it accepts.")
    vllm_cpu_reserved_cores: int | None = Field(
        None, ge=0, description="vLLM on CPU: cores its worker leaves to the engine's scheduler process "
                                "(VLLM_CPU_NUM_OF_RESERVED_CPU). None: none on a machine of 2 cores or fewer, where "
                                "vLLM's one would be half of it, else vLLM's rule (one per worker). Serving keeps "
                                "vLLM's rule (its requests are small batches).")
    vllm_cpu_lora: Literal["grouped", "vllm"] = Field(
        "grouped", description="vLLM on CPU: the LoRA products. grouped: one matrix product per adapter in a batch, "
                               "and no LoRA term for a request without an adapter (a vLLM plugin of this package, "
                               "parallel_r1/inference/vllm_cpu_lora.py); vllm: vLLM's own ops, which copy an "
                               "adapter's weights for every token and give a request without an adapter the last "
                               "adapter slot's term.")
