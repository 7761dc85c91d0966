"""The compare stage: every model answers the same held-out prefixes, the rubric grades each reply, and
the results table, success criteria, decision, routing table and report (with plots) are written to
`eval/`.

Run it with `parallel-r1 compare [MODELS…] [--test-on SLICE…]`; replies are cached per model, so a rerun
only generates for models whose weights, the held-out set or the sampling settings changed.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from parallel_r1.compare.criteria import Criterion, decision, routing_table, success_criteria
from parallel_r1.compare.heldout import EvalItem, build_heldout, fingerprint, training_prefixes, write_heldout
from parallel_r1.compare.models import ModelSpec, select_models, write_model_index
from parallel_r1.compare.parallel_replies import ParallelEvaluation
from parallel_r1.compare.questions import Answer, PreviousRound, open_questions
from parallel_r1.compare.replies import (
    Reply,
    ReplyCache,
    eval_system_prompt,
    generate_local,
    generate_remote,
    prompts_for,
    sampling_of,
)
from parallel_r1.compare.report import (
    plot_deltas,
    plot_heatmap,
    read_results,
    render_report,
    write_report,
    write_results,
)
from parallel_r1.compare.scoring import ScoredReply, score_replies
from parallel_r1.compare.stats import Cell, ModelSummary, cell_map, compare_cells, summarise
from parallel_r1.config import ConfigError, OpenAIEndpointConfig, PipelineConfig, load_config
from parallel_r1.console import console, notice, progress_bar, summary_table
from parallel_r1.data.io import cached_json
from parallel_r1.errors import UserFacingError
from parallel_r1.grade import build_grader
from parallel_r1.inference.factory import resolve_engine_name
from parallel_r1.paths import RunPaths, resolve_base_model, round_dir, round_of
from parallel_r1.recipe import run_recipe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompareResult:
    """The cells, per-model summaries, success criteria, decision (verdict, next step), routing table and report."""

    cells: list[Cell]
    summaries: dict[str, ModelSummary]
    criteria: list[Criterion]
    decision: tuple[str, str]
    routing: dict
    report: Path


class CompareStage:
    """setup() → run() → cleanup() over one PipelineConfig; `fresh` drops every cached reply first."""

    def __init__(self, cfg: PipelineConfig, models: list[str] | None = None, slices: list[str] | None = None,
                 *, fresh: bool = False):
        self.cfg = cfg
        self.fresh = fresh
        self.paths = RunPaths(cfg.workdir)
        self.model_names = models if models is not None else cfg.eval.models
        known = [s.name for s in cfg.eval.slices]
        unknown = [s for s in slices or () if s not in known]
        if unknown:
            raise UserFacingError(f"compare: unknown slice(s) {unknown}; known: {', '.join(known)}")
        self.slices = list(dict.fromkeys(slices)) if slices else known
        self.engine = None
        self.items: list[EvalItem] = []
        self.dropped = 0
        self.models: list[ModelSpec] = []

    def setup(self) -> None:
        if self.fresh:
            shutil.rmtree(self.paths.eval / "replies", ignore_errors=True)
        self.base = resolve_base_model(self.cfg.base_model, self.paths)
        self.paths.require(self.paths.batches, "batch")
        self.models = select_models(self.paths, self.model_names)
        items, self.dropped = build_heldout(self.cfg.eval, training_prefixes(self.paths.batches))
        write_heldout(self.paths.eval / "heldout.json", items, self.dropped)
        self.items = [i for i in items if set(i.slices) & set(self.slices)]

    def _engine(self):
        if self.engine is None:
            adapters = {m.name: Path(m.source) for m in self.models if m.kind == "adapter"}
            if self.cfg.inference.num_engines > 1:
                from parallel_r1.inference.pool import EnginePool
                from parallel_r1.ray_runtime import ensure_ray

                console.print(ensure_ray(self.cfg.ray))
                self.engine = EnginePool(self.cfg.inference, self.base, adapters)
            else:
                from parallel_r1.inference import build_engine

                self.engine = build_engine(self.cfg.inference, self.base, adapters)
        return self.engine

    def _endpoint(self) -> OpenAIEndpointConfig:
        """Where OpenAI fine-tuned models answer: the fine-tuning API's endpoint and key."""
        ft = self.cfg.finetune.openai
        return OpenAIEndpointConfig(base_url=ft.base_url, api_key_env=ft.api_key_env, timeout_s=ft.timeout_s,
                                    max_retries=ft.max_retries)

    def _system_prompt(self, spec: ModelSpec) -> str:
        return eval_system_prompt(spec.name, self.cfg.eval, self.cfg.batch.batches)

    def _prompts(self, specs: list[ModelSpec]) -> dict[str, list[list[dict]]]:
        from transformers import AutoConfig, AutoTokenizer

        max_len = self.cfg.inference.max_model_len or AutoConfig.from_pretrained(self.base).max_position_embeddings
        tokenizer = AutoTokenizer.from_pretrained(self.base)
        return {s.name: prompts_for(self.items, tokenizer, max_len, self.cfg.eval.max_tokens, self._system_prompt(s))
                for s in specs}

    def _parallel_replies(self, spec: ModelSpec) -> list[Reply]:
        """The backtest of parallel inference: a Parallel-R1 model answers the same prefixes under the execution
        policy (its instruction, sampling and token budget; cached by its weights) and is scored like the rest."""
        evaluation = ParallelEvaluation(self.cfg, self.items, self.paths.eval / "replies")
        try:
            return evaluation.replies(spec.name, Path(spec.source))
        finally:
            evaluation.close()

    def _replies(self) -> list[Reply]:
        """Cached replies where the key still matches; the rest generated, every local model in one engine call
        (vLLM batches all adapters together), and cached per model."""
        cache = ReplyCache(self.paths.eval / "replies")
        sampling = sampling_of(self.cfg.eval)
        engine_name = resolve_engine_name(self.cfg.inference)
        base_key = {"heldout": fingerprint(self.items), "sampling": repr(sampling), "engine": engine_name,
                    "base": str(self.base)}
        keys = {spec.name: {**base_key, "model": spec.identity(), "system_prompt": self._system_prompt(spec)}
                for spec in self.models}
        replies: list[Reply] = []
        local: list[ModelSpec] = []
        per_model = len(self.items) * sampling.n
        with progress_bar() as bar:
            task = bar.add_task("compare", total=len(self.models), status="")
            for spec in self.models:
                got = cache.get(spec.name, keys[spec.name])
                if spec.kind == "parallel":
                    bar.update(task, status=f"{spec.name}: parallel replies")
                    got = self._parallel_replies(spec)
                elif got is None and spec.kind != "openai":
                    local.append(spec)
                    continue
                if got is None:
                    bar.update(task, status=f"{spec.name}: generating {per_model} replies")
                    started = time.perf_counter()
                    got = generate_remote(self._endpoint(), spec, self.items, sampling, self._system_prompt(spec))
                    cache.put(spec.name, keys[spec.name], got)
                    console.print(f"compare: {spec.name}: {len(got)} replies in {time.perf_counter() - started:.1f} s")
                replies.extend(got)
                bar.update(task, advance=1, status=spec.name)
            if local:
                names = ", ".join(s.name for s in local)
                bar.update(task, status=f"generating {per_model * len(local)} replies ({names})")
                started = time.perf_counter()
                generated = generate_local(self._engine(), local, self.items, self._prompts(local), sampling)
                for name, got in generated.items():
                    cache.put(name, keys[name], got)
                    replies.extend(got)
                console.print(f"compare: {per_model * len(local)} replies of {len(local)} model(s) ({names}) in "
                              f"{time.perf_counter() - started:.1f} s")
                bar.update(task, advance=len(local), status="done")
        return replies

    def run(self) -> CompareResult:
        ecfg = self.cfg.eval
        grader = build_grader(self.cfg.grade, self.paths)
        rows: list[ScoredReply] = score_replies(self.items, self._replies(), grader)
        for r in rows:
            r.slices = [s for s in r.slices if s in self.slices]
        names = [m.name for m in self.models]
        cells = compare_cells(rows, names, self.slices, samples=ecfg.bootstrap_samples, level=ecfg.ci_level)
        summaries = summarise(rows, names)
        criteria = success_criteria(rows, cells, names, ecfg)
        verdict = decision(criteria)
        # the router serves the base and its adapters: a parallel model is compared, never routed to
        routing = routing_table(rows, [m.name for m in self.models if m.kind != "parallel"], ecfg)
        out = self.paths.eval
        write_results(out / "results.parquet", rows)
        write_model_index(self.paths, self.models)
        plot_heatmap(cells, names, self.slices, out / "heatmap.png")
        plot_deltas(cells, names, self.slices, out / "deltas.png")
        meta = {"items": len(self.items), "dropped": self.dropped, "samples": ecfg.samples_per_prompt,
                "temperature": ecfg.temperature, "engine": self.engine.name if self.engine else "cached",
                "grader": grader.name}
        text = render_report(cells, names, self.slices, summaries, criteria, verdict, meta,
                             self._questions(rows, cells, names), ecfg.ci_level)
        report, routing_path = write_report(self.paths, text, routing)
        self._print(cells, names, summaries, criteria, verdict, report, routing_path)
        return CompareResult(cells, summaries, criteria, verdict, routing, report)

    def _questions(self, rows: list[ScoredReply], cells: list[Cell], names: list[str]) -> list[Answer]:
        """The open questions, from these results, `tune`'s sweep and the round this run directory came from,
        where they exist (an unreadable one is left out with a notice, never fatal)."""
        tune, previous = None, None
        try:
            tune = cached_json(self.paths.tune / "results.json")
            k = round_of(self.paths.workdir)
            if k:
                before = RunPaths(round_dir(self.paths.workdir, k - 1))
                if (before.eval / "results.parquet").exists() and before.config_resolved.exists():
                    previous = PreviousRound(str(before.workdir), read_results(before.eval / "results.parquet"),
                                             load_config(before.config_resolved).batch.batches)
        except (OSError, ValueError, UserFacingError, ConfigError) as e:
            notice(f"compare: the open questions leave out an unreadable earlier result ({e})", log)
        return open_questions(rows, cells, names, self.cfg.eval, self.cfg.batch.batches, tune, previous)

    def _print(self, cells, names, summaries, criteria, verdict, report, routing_path) -> None:
        cm = cell_map(cells)
        rows = [[m, *(f"{cm[m, s].mean:.3f}" if m == "base" else f"{cm[m, s].mean:.3f} ({cm[m, s].delta:+.3f}"
                      f"{'*' if cm[m, s].significant else ''})" for s in self.slices),
                 f"{summaries[m].pattern_density:.2f}"] for m in names]
        console.print(summary_table("compare: mean score (delta vs base, * = 95% CI excludes 0)",
                                    ["model", *self.slices, "stock/reply"], rows))
        console.print(summary_table("success criteria", ["criterion", "verdict", "numbers"],
                                    [[c.name, c.verdict, c.detail] for c in criteria]))
        console.print(f"[bold]decision: {verdict[0]}[/] — {verdict[1]}")
        console.print(f"report: {report}\nrouting table: {routing_path}")

    def cleanup(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None


def run_compare(cfg: PipelineConfig, models: list[str] | None = None, slices: list[str] | None = None,
                *, fresh: bool = False) -> CompareResult:
    return run_recipe(CompareStage(cfg, models, slices, fresh=fresh))
