"""Shared fixtures: one local Ray per test session (never address="auto": other Rays may run here), one tiny
embedded base model, and the real pretrained one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from parallel_r1.config import BaseModelConfig
from parallel_r1.ray_runtime import LOCAL_RAY_ENV_DEFAULTS
from tests.support.serving import client, serve_port, serve_workdir, served  # noqa: F401 - one Serve per session

for _k, _v in LOCAL_RAY_ENV_DEFAULTS.items():
    os.environ.setdefault(_k, _v)
os.environ.pop("RAY_ADDRESS", None)


@pytest.fixture(scope="session")
def ray_session():
    import ray

    if not ray.is_initialized():  # "local": a Ray of its own, even while a `ray start` cluster runs on this machine
        ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": dict(LOCAL_RAY_ENV_DEFAULTS)})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_base_config() -> BaseModelConfig:
    """A far smaller embedded model than the demo's: ~37 k parameters, 60 dialogues, 150 steps (~2 s), so that
    its greedy replies are varied text, not a run of newlines. One attention head of 32 dims: vLLM's CPU
    attention rejects head_dim 16."""
    return BaseModelConfig(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=1, max_seq_len=64,
                           vocab_size=512, corpus_dialogues=60, max_steps=150, batch_size=8, learning_rate=1e-2)


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory, tiny_base_config) -> Path:
    """The folder of a built tiny base model (loadable with AutoModelForCausalLM / AutoTokenizer); do not modify."""
    from parallel_r1.base_model.stage import build_base_model

    out = tmp_path_factory.mktemp("tiny_base") / "models" / "base"
    build_base_model(tiny_base_config, out, progress=False)
    return out


@pytest.fixture(scope="session")
def real_base_model(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct converted from its packaged GGUF into a standard checkpoint (the `real` extra that
    `make install` brings); do not modify."""
    from parallel_r1.base_model.pretrained import convert_packaged

    out = tmp_path_factory.mktemp("real_base") / "models" / "base"
    convert_packaged("smollm2-135m-instruct", out, progress=False)
    return out


@pytest.fixture(scope="session")
def tagged_model(tmp_path_factory, tiny_base_model) -> Path:
    """The tiny base with the Parallel tags; a 512-token context so the tutor system prompt fits (RoPE: no new
    weights)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from parallel_r1.finetune.parallel_tokens import add_parallel_tokens

    out = tmp_path_factory.mktemp("tagged") / "model"
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_base_model)
    add_parallel_tokens(tokenizer, model)
    model.config.max_position_embeddings = 512
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


ENGINE_FIXTURES = {"ray_session", "tiny_base_model", "real_base_model"}


def pytest_collection_modifyitems(config, items):
    for item in items:  # `make test-fast` leaves out what starts Ray or builds a model for an engine
        if ENGINE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.engine)
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
