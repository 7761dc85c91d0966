"""Ray Serve options of one deployment (the router's or the model backend's): resources, replicas or
autoscaling, queue size, and the environment replicas run with."""

from __future__ import annotations

from parallel_r1.config import ServeConfig

# Replicas run user code, and the router of their outgoing handle calls, on their own event loop: two cross-thread
# hops less per request (part of Ray Serve's throughput-optimised mode).
REPLICA_ENV = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0", "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0"}


def deployment_options(cfg: ServeConfig, replicas: int, num_cpus: float, num_gpus: float = 0.0,
                       router: bool = False, resources: dict[str, float] | None = None) -> dict:
    """Serve options of one deployment (`router`: the router's, else a model deployment's): CPUs / GPUs per replica,
    replicas or autoscaling, ongoing and queued requests (the router's queue is the proxy's, unbounded). Nothing
    secret goes in here: `serve status` and the dashboard show these options, runtime_env included."""
    actor = {"num_cpus": num_cpus, "num_gpus": num_gpus, "runtime_env": {"env_vars": dict(REPLICA_ENV)},
             **({"resources": dict(resources)} if resources else {})}
    scaling = ({"autoscaling_config": {"min_replicas": cfg.min_replicas, "max_replicas": cfg.max_replicas,
                                       "target_ongoing_requests": cfg.target_ongoing_requests}}
               if cfg.autoscaling else {"num_replicas": replicas})
    return {"ray_actor_options": actor,
            "max_ongoing_requests": cfg.router_max_ongoing_requests if router else cfg.max_ongoing_requests,
            "max_queued_requests": -1 if router else cfg.max_queued_requests,
            "logging_config": {"enable_access_log": cfg.access_log}, **scaling}
