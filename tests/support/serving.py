"""Serving fixtures (registered once, by tests/conftest.py, for tests/serve and the router tests of
tests/reliability): a run directory with three random-init specialists of the shared tiny base model, Ray Serve on a
free local port, and the `hf`-backend app deployed there once per session (with bearer-token auth)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.serve.support import SPECIALISTS, TOKEN, TOKEN_ENV, free_port, serve_config
from tests.support.adapters import promote, random_adapter

# The router reads its bearer token from its replica's environment, which the session's Ray workers inherit from
# this process: the variable must be set before Ray starts (collection comes before any test's fixtures).
os.environ[TOKEN_ENV] = TOKEN


@pytest.fixture(scope="session")
def serve_workdir(tmp_path_factory, tiny_base_model) -> Path:
    """A run directory with three specialists trained (adapters/<specialist>/), registered and promoted (no
    routing.json); do not modify."""
    workdir = tmp_path_factory.mktemp("serve_run")
    for seed, name in enumerate(SPECIALISTS, start=3):
        promote(workdir, name, random_adapter(tiny_base_model, workdir / "adapters" / name, seed))
    return workdir


@pytest.fixture(scope="session")
def serve_port(ray_session) -> int:
    """Ray Serve's HTTP proxy on a free port of 127.0.0.1 (one per test session: Serve has one proxy)."""
    from ray import serve

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    yield port
    serve.shutdown()


@pytest.fixture(scope="session")
def served(serve_port, serve_workdir, tiny_base_model):
    """The hf-backend app, deployed with auth from TOKEN_ENV; yields (config, base URL)."""
    from parallel_r1.serve.stage import start_local

    cfg = serve_config(serve_workdir, tiny_base_model, serve_port, auth_token_env=TOKEN_ENV)
    url = start_local(cfg)
    yield cfg, url


@pytest.fixture()
def client(served):
    from openai import OpenAI

    return OpenAI(base_url=f"{served[1]}/v1", api_key=TOKEN, max_retries=0, timeout=60)
