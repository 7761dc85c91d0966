"""Connecting to Ray: an existing cluster (config or RAY_ADDRESS, e.g. inside `ray job submit`) or a
local one started on demand, with the environment settings the stack needs (see STACK.md)."""

from __future__ import annotations

import os

from parallel_r1.config import RayConfig

# Ray Train's print patch floods logs with TRL's dataset hashing and slows SFT ~10x; the default health
# check interval (2 s) makes every `ray.train.report` block up to 2 s, while each controller polls its workers at
# this rate: measured with three trainers, 0.1 s costs 0.18 CPU over 2 s, 0.5 s costs 0.04; token auth would write
# ~/.ray/auth_token.
RAY_ENV_DEFAULTS = {
    "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5",
    "RAY_AUTH_MODE": "disabled",
}
# Only for a Ray this process starts itself (one machine): each TorchTrainer would otherwise start a
# spot-preemption watcher actor, a placement-group cleaner actor (see base_model/torch_trainer.py) and metrics
# callbacks, a fixed cost per concurrent job; on a loaded machine the dashboard agent can take longer than the raylet's
# default 30 s to register, which fails the start.
LOCAL_RAY_ENV_DEFAULTS = {
    **RAY_ENV_DEFAULTS,
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
    "RAY_TRAIN_METRICS_ENABLED": "0",
    "PARALLEL_R1_PG_CLEANER": "0",
    "RAY_agent_register_timeout_ms": "180000",
    # The Serve proxy forwards HTTP requests to the ingress replica over gRPC (Ray Serve's throughput-optimised mode;
    # measured in benchmarks/bench_serve.py). A cluster sets it on its nodes before `ray start`.
    "RAY_SERVE_PROXY_USE_GRPC": "1",
}


def ensure_ray(cfg: RayConfig | None = None) -> str:
    """Initialise Ray once per process and return a short description of where it runs."""
    import ray

    cfg = cfg or RayConfig()
    if not ray.is_initialized():
        address = cfg.address or os.environ.get("RAY_ADDRESS")
        defaults = RAY_ENV_DEFAULTS if address else LOCAL_RAY_ENV_DEFAULTS
        for key, value in defaults.items():
            os.environ.setdefault(key, value)
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=cfg.num_cpus, include_dashboard=cfg.include_dashboard, log_to_driver=False,
                     runtime_env={"env_vars": {k: os.environ[k] for k in defaults}})
    ctx = ray.get_runtime_context()
    return f"Ray {ray.__version__} at {ctx.gcs_address} ({int(ray.cluster_resources().get('CPU', 0))} CPUs)"
