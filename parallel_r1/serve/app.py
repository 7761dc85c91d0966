"""Building the Serve application from a run directory, and starting it locally.

`build_app(cfg)` binds the router to the model backend `serve.backend` names, with the adapters in
<workdir>/adapters, the routing table in <workdir>/eval/routing.json (when `compare` wrote one), replicas,
autoscaling and CPUs from `serve`, and the router's sampling defaults from the `parallel.inference` policy.
The bearer token (`serve.auth_token_env`) is never bound into the app: the router reads it from its replica's
environment. `app_builder` is the same for `serve run serve/config.yaml` and
`serve deploy`; `parallel_r1.serve.stage` starts it from `parallel-r1 serve`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from parallel_r1.config import PipelineConfig, load_config
from parallel_r1.data.prompts import served_system_prompt
from parallel_r1.errors import UserFacingError
from parallel_r1.grade import resolved_grade
from parallel_r1.inference.adapters import ADAPTER_CONFIG
from parallel_r1.inference.policy import ParallelExecutionPolicy
from parallel_r1.paths import RunPaths, resolve_base_model
from parallel_r1.serve.deployment import deployment_options
from parallel_r1.serve.online_grading import score_log_path
from parallel_r1.serve.router import ChatRouter
from parallel_r1.serve.routing import read_routing_table


@dataclass
class ServePlan:
    """What the app will serve: the base model, the adapters found, the routing table (None: static routes)."""

    base_model: str
    adapters: dict[str, str]
    routing_table: dict | None
    routing_path: Path
    score_log: Path


def find_adapters(adapters_dir: Path) -> dict[str, str]:
    """Every PEFT adapter folder under <workdir>/adapters, by folder name (the specialist's name)."""
    RunPaths(adapters_dir.parent).require(adapters_dir, "finetune")
    found = {p.name: str(p) for p in sorted(adapters_dir.iterdir()) if (p / ADAPTER_CONFIG).is_file()}
    if not found:
        raise FileNotFoundError(f"no adapter folder (with {ADAPTER_CONFIG}) in {adapters_dir}: "
                                "run `parallel-r1 finetune` first")
    return found


def plan(cfg: PipelineConfig) -> ServePlan:
    paths = RunPaths(cfg.workdir)
    routing_path = paths.routing_table
    return ServePlan(base_model=resolve_base_model(cfg.base_model, paths), adapters=find_adapters(paths.adapters),
                     routing_table=read_routing_table(routing_path), routing_path=routing_path,
                     score_log=score_log_path(cfg.serve, paths.workdir))


def build_app(cfg: PipelineConfig, serve_plan: ServePlan | None = None):
    """The Serve application: the router bound to the configured model backend."""
    sc = cfg.serve
    serve_plan = serve_plan or plan(cfg)
    if sc.backend == "vllm":
        from parallel_r1.serve.vllm_backend import build_llm_backend

        model = build_llm_backend(cfg, serve_plan.base_model, serve_plan.adapters)
    else:
        from parallel_r1.serve.hf_backend import HFSpecialists

        model = HFSpecialists.options(**deployment_options(sc, sc.model_replicas, sc.model_num_cpus,
                                                           sc.model_num_gpus)).bind(
            cfg.inference.model_dump(), serve_plan.base_model, serve_plan.adapters)
    prompts = {name: served_system_prompt(name, cfg.batch.batches) for name in ["", *serve_plan.adapters]}
    policy = ParallelExecutionPolicy.from_config(cfg.parallel.inference)
    router = ChatRouter.options(**deployment_options(sc, sc.router_replicas, sc.router_num_cpus))
    return router.bind(model, sc.backend, sc.model_dump(), policy.model_dump(), serve_plan.routing_table, prompts,
                       str(serve_plan.score_log), list(serve_plan.adapters), resolved_grade(cfg).model_dump())


def app_builder(args: dict):
    """For `serve run` / `serve deploy`: args `config` (YAML path; none: the embedded defaults), `workdir` (else
    $PARALLEL_R1_WORKDIR, else the config's) and `set` (a list of section.field=value overrides)."""
    unknown = sorted(set(args) - {"config", "workdir", "set"})
    if unknown:
        raise UserFacingError(f"serve config args: unknown key(s) {unknown}; expected config, workdir, set")
    overrides = list(args.get("set") or [])
    workdir = args.get("workdir") or os.environ.get("PARALLEL_R1_WORKDIR")
    if workdir:
        overrides.append(f"workdir={workdir}")
    return build_app(load_config(args.get("config"), overrides))
