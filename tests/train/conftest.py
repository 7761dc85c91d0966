"""Shared training fixtures: one tiny embedded base model per test session, built in a few seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from parallel_r1.config import BaseModelConfig


@pytest.fixture(scope="session")
def tiny_base_config() -> BaseModelConfig:
    """A far smaller embedded model than the demo's: ~37 k parameters, 60 dialogues, 30 steps."""
    return BaseModelConfig(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2, max_seq_len=64,
                           vocab_size=512, corpus_dialogues=60, max_steps=30, batch_size=8, learning_rate=1e-2)


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory, tiny_base_config) -> Path:
    """The folder of a built tiny base model (loadable with AutoModelForCausalLM / AutoTokenizer); do not modify."""
    from parallel_r1.train.base_model import build_base_model

    out = tmp_path_factory.mktemp("tiny_base") / "models" / "base"
    build_base_model(tiny_base_config, out, progress=False)
    return out
