"""Inference fixtures: two random-init LoRA adapters of the shared tiny base model, per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from parallel_r1.config import InferenceConfig


def _random_adapter(base: Path, out: Path, seed: int) -> Path:
    """A LoRA adapter with random (non-identity) weights: it changes the model's outputs without training."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear",
                                     init_lora_weights=False)).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_adapters(tmp_path_factory, tiny_base_model) -> dict[str, Path]:
    """Two adapters of the tiny base model, named as an engine would register them; do not modify."""
    root = tmp_path_factory.mktemp("adapters")
    return {name: _random_adapter(tiny_base_model, root / name, seed) for seed, name in enumerate(["style", "other"])}


@pytest.fixture(scope="session")
def tiny_inference_config() -> InferenceConfig:
    """Small enough for the tiny model on 2 CPU cores (vLLM: a 64 MiB KV cache)."""
    return InferenceConfig(max_batch_size=4, max_loras=2, max_lora_rank=8, kv_cache_memory_bytes=64 * 1024**2)
