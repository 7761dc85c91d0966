"""run_pipeline(config): init-model → discover → grade → batch → finetune (six specialists and the monolithic
baseline at once) → compare → gate, each a stage run through `run_recipe` and skipped (or resumed) when its artifact
is already complete."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from parallel_r1.config import PipelineConfig
from parallel_r1.console import console, notice, summary_table
from parallel_r1.data.run_lock import run_lock
from parallel_r1.errors import UserFacingError
from parallel_r1.paths import RunPaths
from parallel_r1.recipe import Recipe, run_recipe

log = logging.getLogger(__name__)


class StageClock:
    """Wall time per stage of one run, for the run summary."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        console.rule(name)
        log.info("run: stage %s started", name)
        start = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = time.monotonic() - start
            log.info("run: stage %s ended after %.1f s", name, self.seconds[name])

    def table(self) -> Table:
        rows = [[name, f"{s:.1f}"] for name, s in self.seconds.items()]
        total = ["total", f"{sum(self.seconds.values()):.1f}"]
        return summary_table("stage wall times", ["stage", "s"], [*rows, total])


@dataclass
class Run:
    """One `parallel-r1 run`: its config (pointed at a managed LLM server while one runs), the stages' results."""

    cfg: PipelineConfig
    force: bool
    servers: ExitStack
    served: set[str] = field(default_factory=set)  # the endpoints a managed LLM server stands in for
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def paths(self) -> RunPaths:
        return RunPaths(self.cfg.workdir)


@dataclass(frozen=True)
class Step:
    """A stage of `run`: whether this run needs it, its stage object, then what follows from its result (False:
    the run ends there)."""

    name: str
    stage: Callable[[Run], Recipe]
    when: Callable[[Run], bool] = lambda run: True
    then: Callable[[Run, Any], bool | None] = lambda run, result: None


class ManagedServerStage:
    """Start the managed LLM server on the run's exit stack (it outlives this step); run() returns the config
    pointed at it."""

    def __init__(self, run: Run):
        self.pipeline = run

    def setup(self) -> None:
        """Nothing to prepare."""

    def run(self) -> PipelineConfig:
        from parallel_r1.llm_server import managed_endpoints

        return self.pipeline.servers.enter_context(managed_endpoints(self.pipeline.cfg, self.pipeline.served))

    def cleanup(self) -> None:
        """Nothing here: the run's exit stack stops the server."""


def _steps() -> list[Step]:
    from parallel_r1.base_model.stage import InitModelStage
    from parallel_r1.batch.stage import BatchStage
    from parallel_r1.compare.stage import CompareStage
    from parallel_r1.discover.stage import DiscoverStage, print_discover_summary
    from parallel_r1.finetune.stage import FinetuneStage
    from parallel_r1.gate.stage import GateStage
    from parallel_r1.grade.stage import GradeStage

    def pointed(run: Run, cfg: PipelineConfig) -> None:
        run.cfg = cfg

    def release_server(run: Run, _) -> None:
        if "judge" not in run.served:
            run.servers.close()  # discovery alone used it: its memory goes back to fine-tuning

    return [  # first init-model: discovery may run on this model through a local LLM server
        Step("init-model", lambda r: InitModelStage(r.cfg.base_model, r.paths.base_model, force=r.force),
             when=lambda r: r.cfg.base_model.path is None),
        Step("llm-server", ManagedServerStage, when=lambda r: bool(r.served), then=pointed),
        Step("discover", lambda r: DiscoverStage(r.cfg), then=lambda r, result: print_discover_summary(result)),
        Step("grade", lambda r: GradeStage(r.cfg, reuse_grades=not r.force), then=release_server),
        Step("batch", lambda r: BatchStage(r.cfg, reuse=not r.force)),
        Step("finetune", lambda r: FinetuneStage(r.cfg, with_baseline=r.cfg.finetune.monolithic_baseline,
                                                 force=r.force), then=_finetuned),
        Step("compare", lambda r: CompareStage(r.cfg, fresh=r.force)),
        Step("gate", lambda r: GateStage(r.cfg)),
    ]


def _finetuned(run: Run, jobs) -> bool:
    """Go on to compare only when every Ray job succeeded; OpenAI jobs are followed with `watch`."""
    if run.cfg.finetune.backend != "ray":
        notice("finetune: OpenAI jobs submitted; follow them with `parallel-r1 watch`, then run compare", log)
        return False
    if jobs.failed:
        failed = ", ".join(f"{n} ({j.error})" for n, j in jobs.failed.items())
        raise UserFacingError(f"finetune: job(s) did not succeed: {failed}; run `parallel-r1 finetune` to resume")
    return True


def run_pipeline(cfg: PipelineConfig, *, force: bool = False) -> None:
    from parallel_r1.llm_server import endpoint_users

    clock = StageClock()
    with ExitStack() as servers:  # a managed LLM server is stopped however the run ends
        servers.enter_context(run_lock(cfg.workdir, "run"))
        run = Run(cfg, force, servers, endpoint_users(cfg))
        for step in _steps():
            if not step.when(run):
                log.info("run: stage %s not needed", step.name)
                continue
            with clock.stage(step.name):
                run.results[step.name] = run_recipe(step.stage(run))
            if step.then(run, run.results[step.name]) is False:
                return
        _summary(clock, run.results["compare"], run.results["gate"])


def _summary(clock: StageClock, compared, gated) -> None:
    console.rule("run summary")
    notice(clock.table(), log)
    notice(summary_table("the seed's success criteria", ["criterion", "verdict"],
                         [[c.name, c.verdict] for c in compared.criteria]), log)
    verdict, next_step = compared.decision
    notice(f"[bold]decision: {verdict}[/] — {next_step}", log)
    for d in gated.decisions:
        notice(f"gate: {d.candidate} {'promoted' if d.promoted else 'not promoted'} ({'; '.join(d.reasons)})", log)
    notice(f"report: {compared.report}", log)
