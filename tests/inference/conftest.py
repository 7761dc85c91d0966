"""Inference fixtures: two random-init LoRA adapters of the shared tiny base model, per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from parallel_r1.config import InferenceConfig
from tests.support.adapters import random_adapter


@pytest.fixture(scope="session")
def tiny_adapters(tmp_path_factory, tiny_base_model) -> dict[str, Path]:
    """Two adapters of the tiny base model, named as an engine would register them; do not modify."""
    root = tmp_path_factory.mktemp("adapters")
    return {name: random_adapter(tiny_base_model, root / name, seed) for seed, name in enumerate(["style", "other"])}


@pytest.fixture(scope="session")
def tiny_inference_config() -> InferenceConfig:
    """Small enough for the tiny model on 2 CPU cores (vLLM: a 64 MiB KV cache)."""
    return InferenceConfig(max_batch_size=4, max_loras=2, max_lora_rank=8, kv_cache_memory_bytes=64 * 1024**2)
