"""Helpers of the serving tests: the specialists' names, the test token, random-init adapters, free ports and the
test app's configuration."""

from __future__ import annotations

import socket
from pathlib import Path

from parallel_r1.config import PipelineConfig, load_config

SPECIALISTS = ("neurodivergent", "prior_trauma_recovery", "varied_original_diverse")
TOKEN_ENV = "PARALLEL_R1_TEST_SERVE_TOKEN"
TOKEN = "test-token-7f3a"
POLICY_MAX_TOKENS = 12  # the test app's parallel.inference.max_tokens


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_config(workdir: Path, base_model: Path, port: int, *, extra: dict | None = None,
                 **serve_overrides) -> PipelineConfig:
    """The test app's config: tiny model (64-token context, so no system prompt); the execution policy that
    requests default to is greedy with short replies (POLICY_MAX_TOKENS); `extra`: other sections' overrides."""
    serve = {"port": port, "add_system_prompt": False, "max_tokens_limit": 64, "max_n": 2, "grading_fraction": 1.0,
             "model_num_cpus": 0.2, "router_num_cpus": 0.05, **serve_overrides}
    return load_config(None, {"workdir": str(workdir), "base_model.path": str(base_model), "serve": serve,
                              "parallel.inference": {"temperature": 0.0, "max_tokens": POLICY_MAX_TOKENS},
                              "inference.engine": "hf", "inference.max_batch_size": 4, **(extra or {})})
