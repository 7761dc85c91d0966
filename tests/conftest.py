"""Shared fixtures: one local Ray per test session (never address="auto": other Rays may run here)."""

from __future__ import annotations

import os

import pytest

from parallel_r1.ray_runtime import LOCAL_RAY_ENV_DEFAULTS

for _k, _v in LOCAL_RAY_ENV_DEFAULTS.items():
    os.environ.setdefault(_k, _v)
os.environ.pop("RAY_ADDRESS", None)


@pytest.fixture(scope="session")
def ray_session():
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": dict(LOCAL_RAY_ENV_DEFAULTS)})
    yield ray
    ray.shutdown()


def pytest_collection_modifyitems(config, items):
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
