"""Building the Serve application from a run directory, and starting it locally.

`build_app(cfg)` binds the router to the model backend `serve.backend` names (with
`serve.vllm_in_router`, the vLLM engine in the router's own replicas), serving the promoted version of each
model (the registry's promotion record, <workdir>/promotion.json; adapters and, on hf, full models by the backend,
OpenAI fine-tuned ids by `serve.openai_base_url`) and routing with <workdir>/eval/routing.json when
`compare` wrote one; replicas, autoscaling and CPUs come from `serve`, the router's sampling defaults from the
`parallel.inference` policy. Router replicas re-read the promotion record and routing table when they change
(`served`), so promotions and rollbacks need no restart. The bearer token (`serve.auth_token_env`) is never bound
into the app: the router reads it from its replica's environment. `app_builder` is the same for
`serve run serve/config.yaml` and `serve deploy`; `parallel_r1.serve.stage` starts it from `parallel-r1 serve`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from parallel_r1.config import PipelineConfig, load_config
from parallel_r1.data.prompts import served_system_prompt
from parallel_r1.errors import UserFacingError
from parallel_r1.finetune.stage import MONOLITHIC
from parallel_r1.grade import resolved_grade
from parallel_r1.inference.policy import ParallelExecutionPolicy
from parallel_r1.monitor.log import score_log_path
from parallel_r1.paths import RunPaths, resolve_base_model
from parallel_r1.serve.deployment import deployment_options
from parallel_r1.serve.router import ChatRouter
from parallel_r1.serve.served import ServedSet, read_served


@dataclass
class ServePlan:
    """What the app will serve at start: the base model and the served set (promoted versions, routing table)."""

    base_model: str
    served: ServedSet
    routing_path: Path
    score_log: Path


def plan(cfg: PipelineConfig) -> ServePlan:
    paths = RunPaths(cfg.workdir)
    return ServePlan(base_model=resolve_base_model(cfg.base_model, paths),
                     served=read_served(paths.workdir, cfg.serve), routing_path=paths.routing_table,
                     score_log=score_log_path(cfg.serve, paths.workdir))


def build_app(cfg: PipelineConfig, serve_plan: ServePlan | None = None):
    """The Serve application: the router bound to the configured model backend."""
    sc = cfg.serve
    serve_plan = serve_plan or plan(cfg)
    adapters = {v.ref: v.source for v in serve_plan.served.models.values() if v.kind == "adapter"}
    specials: list[str] = []
    router_options = deployment_options(sc, sc.router_replicas, sc.router_num_cpus, router=True)
    kind = sc.backend
    if sc.backend == "vllm":
        from transformers import AutoTokenizer

        from parallel_r1.inference.chat_text import special_strings
        from parallel_r1.serve.vllm_backend import build_llm_backend, llm_config, with_engine

        if sc.vllm_in_router:
            model = llm_config(cfg, serve_plan.base_model, adapters)
            router_options, kind = with_engine(router_options, model), "vllm_in_router"
        else:
            model = build_llm_backend(cfg, serve_plan.base_model, adapters)
        specials = special_strings(AutoTokenizer.from_pretrained(serve_plan.base_model))
    else:
        from parallel_r1.serve.hf_backend import HFSpecialists

        model = HFSpecialists.options(**deployment_options(sc, sc.model_replicas, sc.model_num_cpus,
                                                           sc.model_num_gpus, resources=sc.model_resources)).bind(
            cfg.inference.model_dump(), serve_plan.base_model, adapters, sc.max_loaded_adapters,
            sc.max_loaded_models)
    names = ["", MONOLITHIC, *(b.name for b in cfg.batch.batches), *serve_plan.served.models]
    prompts = {name: served_system_prompt(name, cfg.batch.batches) for name in names}
    policy = ParallelExecutionPolicy.from_config(cfg.parallel.inference)
    return ChatRouter.options(**router_options).bind(
        model, kind, sc.model_dump(), policy.model_dump(), str(Path(cfg.workdir).resolve()), prompts,
        str(serve_plan.score_log), resolved_grade(cfg).model_dump(), cfg.monitor.model_dump(), specials,
        cfg.kb.model_dump() if "serve" in cfg.kb.ground else None)


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
