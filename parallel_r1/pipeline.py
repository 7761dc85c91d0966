"""run_pipeline(config): discover → grade → batch → init-model → finetune (six specialists and the
monolithic baseline at once) → compare → gate, each skipped (or resumed) when its artifact is already complete."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from rich.table import Table

from parallel_r1.config import PipelineConfig
from parallel_r1.console import console, summary_table
from parallel_r1.errors import UserFacingError
from parallel_r1.paths import RunPaths


class StageClock:
    """Wall time per stage of one run, for the run summary."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        console.rule(name)
        start = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = time.monotonic() - start

    def table(self) -> Table:
        rows = [[name, f"{s:.1f}"] for name, s in self.seconds.items()]
        total = ["total", f"{sum(self.seconds.values()):.1f}"]
        return summary_table("stage wall times", ["stage", "s"], [*rows, total])


def run_pipeline(cfg: PipelineConfig, *, force: bool = False) -> None:
    with ExitStack() as llm_server:  # a managed LLM server is stopped however the run ends
        _run_stages(cfg, force, llm_server)


def _run_stages(cfg: PipelineConfig, force: bool, llm_server: ExitStack) -> None:
    from parallel_r1.base_model.stage import init_base_model
    from parallel_r1.batch.stage import batches_up_to_date, run_batch
    from parallel_r1.compare.stage import run_compare
    from parallel_r1.discover.stage import print_discover_summary, run_discover
    from parallel_r1.finetune.stage import run_finetune
    from parallel_r1.gate.stage import run_gate
    from parallel_r1.grade.stage import run_grade
    from parallel_r1.llm_server import endpoint_users, managed_endpoints

    paths = RunPaths(cfg.workdir)
    clock = StageClock()
    if cfg.base_model.path is None:  # first: discovery may run on this model through a local LLM server
        with clock.stage("init-model"):
            init_base_model(cfg.base_model, paths.base_model, force=force)
    served = endpoint_users(cfg)
    if served:
        with clock.stage("llm-server"):
            cfg = llm_server.enter_context(managed_endpoints(cfg, served))
    with clock.stage("discover"):
        result = run_discover(cfg)
        print_discover_summary(result)
    with clock.stage("grade"):
        run_grade(cfg, reuse_grades=not force)
    if "judge" not in served:
        llm_server.close()  # discovery alone used it: its memory goes back to fine-tuning
    with clock.stage("batch"):
        if force or not batches_up_to_date(cfg):
            run_batch(cfg)
        else:
            console.print(f"batch: {paths.batch_report} is up to date")
            console.print(paths.batch_report.read_text(), markup=False)
    with clock.stage("finetune"):
        jobs = run_finetune(cfg, with_baseline=cfg.finetune.monolithic_baseline, force=force)
    if cfg.finetune.backend != "ray":
        console.print("finetune: OpenAI jobs submitted; follow them with `parallel-r1 watch`, then run compare")
        return
    if any(j.status != "succeeded" for j in jobs.values()):
        failed = ", ".join(f"{n} ({j.error})" for n, j in jobs.items() if j.status != "succeeded")
        raise UserFacingError(f"finetune: job(s) did not succeed: {failed}; run `parallel-r1 finetune` to resume")
    with clock.stage("compare"):
        if force:
            shutil.rmtree(paths.eval / "replies", ignore_errors=True)
        compared = run_compare(cfg)
    with clock.stage("gate"):
        gated = run_gate(cfg)
    console.rule("run summary")
    console.print(clock.table())
    console.print(summary_table("the seed's success criteria", ["criterion", "verdict"],
                                [[c.name, c.verdict] for c in compared["criteria"]]))
    verdict, next_step = compared["decision"]
    console.print(f"[bold]decision: {verdict}[/] — {next_step}")
    console.print(f"gate: {gated.candidate} {'promoted' if gated.promoted else 'not promoted'} "
                  f"({'; '.join(gated.reasons)})")
    console.print(f"report: {compared['report']}")
