"""The router's own class, not deployed: for tests that call its handlers directly with a stand-in model backend."""

from __future__ import annotations

from types import SimpleNamespace

from parallel_r1.config import PipelineConfig
from parallel_r1.inference.policy import ParallelExecutionPolicy
from parallel_r1.serve.router import ChatRouter


def bare_router(workdir, backend, score_log, serve: dict | None = None, kb: dict | None = None,
                system_prompts: dict[str, str] | None = None):
    """A `ChatRouter` over the run directory `workdir` whose model backend is `backend` (an object with the async
    `models`, `generate` and `stream` the router calls); `serve`: serve section fields beyond the defaults here."""
    router_cls = ChatRouter.func_or_class.__bases__[0]  # without the ingress wrapper
    policy = ParallelExecutionPolicy.from_config(PipelineConfig().parallel.inference).model_dump()
    handle = SimpleNamespace(options=lambda **_: None)  # never called: `backend` replaces the client below
    cfg = {"grpc_handles": False, "profile_reader": "cues", "grading_fraction": 0.0, **(serve or {})}
    router = router_cls(handle, "hf", cfg, policy, str(workdir), system_prompts or {}, str(score_log), kb=kb)
    router.backend = backend
    return router
