"""The discover stage: plan N dialogues, skip those already on disk, run the rest on the actor pool.

Run it with `parallel-r1 discover N [--include-special] [--backend procedural|openai]`, or as a Ray
job (`parallel-r1 submit discover`). Running it again continues to N without duplicates and retries the
dialogues recorded in `discover_failures.jsonl`.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from parallel_r1.config import ConfigError, DiscoverConfig, PipelineConfig, dump_config
from parallel_r1.console import notice, progress_bar, summary_table
from parallel_r1.data import Dialogue, DialogueTask, discovery_plan, read_dialogues, write_dialogues
from parallel_r1.data.card_files import use_card_dir
from parallel_r1.data.io import atomic_write_json, atomic_write_jsonl, atomic_write_text, read_jsonl
from parallel_r1.grade import resolved_grade
from parallel_r1.llm_server import managed_endpoints
from parallel_r1.paths import RunPaths
from parallel_r1.recipe import run_recipe

if TYPE_CHECKING:
    from parallel_r1.kb.grounding import Retriever

log = logging.getLogger(__name__)


@dataclass
class DiscoverResult:
    planned: int
    already_done: int
    completed: int
    failed: int
    actor_restarts: int
    elapsed_s: float
    failures: list[dict] = field(default_factory=list)
    dialogues: list[Dialogue] = field(default_factory=list)  # everything in dialogues.parquet now

    @property
    def total_on_disk(self) -> int:
        return len(self.dialogues)

    @property
    def rate(self) -> float:
        return self.completed / self.elapsed_s if self.elapsed_s > 0 else 0.0


def plan_for(d: DiscoverConfig) -> list[DialogueTask]:
    """The discovery plan of a config: its mix, and the cards of its card folder (made known to `get_card`)."""
    return discovery_plan(d.n, include_special=d.include_special, seed=d.seed, profile_mix=d.profile_mix,
                          extra_cards=use_card_dir(d.card_dir))


class DiscoverStage:
    """setup() → run() → cleanup() over one PipelineConfig."""

    def __init__(self, cfg: PipelineConfig, *, show_progress: bool = True):
        self.cfg = cfg
        self.paths = RunPaths(cfg.workdir)
        self.show_progress = show_progress
        self.pool = None
        self.pending: list[DialogueTask] = []
        self.plan: list[DialogueTask] = []
        self.failures: dict[str, dict] = {}
        self.dialogues: list[Dialogue] = []  # what dialogues.parquet holds, kept so flushes never re-read it
        self._buffer: list[Dialogue] = []
        self._resources = ExitStack()  # a managed LLM server (llm_server.managed) and the kb, while the pool runs

    def setup(self) -> None:
        from parallel_r1.discover.pool import DiscoveryPool
        from parallel_r1.ray_runtime import ensure_ray

        d = self.cfg.discover
        self.paths.workdir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.paths.config_resolved, dump_config(self.cfg))
        self.plan = plan_for(d)
        self._check_same_plan()
        self.dialogues = read_dialogues(self.paths.dialogues) if self.paths.dialogues.exists() else []
        done = {x.dialogue_id for x in self.dialogues}
        self.pending = [t for t in self.plan if t.dialogue_id not in done]
        self.failures = {f["dialogue_id"]: f for f in read_jsonl(self.paths.discover_failures)
                         if f["dialogue_id"] not in done}
        if self.pending:
            retriever = self._retriever()
            needs = ("discover", "judge") if d.grade else ("discover",)
            self.cfg = self._resources.enter_context(managed_endpoints(self.cfg, needs))
            d = self.cfg.discover  # a managed server's endpoint replaces the configured one
            notice(ensure_ray(self.cfg.ray), log)
            actors_cfg = d.model_copy(update={"card_dir": str(Path(d.card_dir).resolve())}) if d.card_dir else d
            self.pool = DiscoveryPool(actors_cfg, resolved_grade(self.cfg) if d.grade else None, retriever)

    def _retriever(self) -> Retriever | None:
        """The actors' retrieval when kb.ground includes discover: the store is checked here and kept up while the
        pool runs. The procedural backend has no prompt to ground (said once)."""
        from parallel_r1.kb import open_kb
        from parallel_r1.kb.grounding import Retriever, check_not_empty

        if "discover" not in self.cfg.kb.ground:
            return None
        if self.cfg.discover.backend == "procedural":
            log.warning("kb.ground includes discover, but the procedural backend writes no prompt to ground: its "
                        "dialogues are not grounded")
            return None
        check_not_empty(self._resources.enter_context(open_kb(self.cfg.kb, self.paths.workdir)), "discover")
        return Retriever(self.cfg.kb, self.paths.workdir.resolve())

    def _check_same_plan(self) -> None:
        """Resuming is only meaningful with the plan the existing dialogues came from."""
        d = self.cfg.discover
        signature = {"seed": d.seed, "include_special": d.include_special, "backend": d.backend,
                     "profile_mix": d.profile_mix, "card_files": [c.id for c in use_card_dir(d.card_dir)] or None,
                     "kb_grounded": ("discover" in self.cfg.kb.ground and d.backend != "procedural") or None}
        path = self.paths.workdir / "discover_plan.json"
        if path.exists() and self.paths.dialogues.exists():
            previous = json.loads(path.read_text())
            changed = {k: (previous.get(k), v) for k, v in signature.items() if previous.get(k) != v}
            if changed:
                named = {"kb_grounded": "grounded in the kb (kb.ground has discover)"}
                detail = ", ".join(f"{named.get(k, f'discover.{k}')}: {a!r} on disk, {b!r} now"
                                   for k, (a, b) in changed.items())
                raise ConfigError(f"{self.paths.dialogues} was discovered with another plan ({detail}); "
                                  "use the same settings to continue, or another workdir")
        atomic_write_json(path, signature)

    def _flush(self) -> None:
        if self._buffer:
            self.dialogues.extend(self._buffer)
            write_dialogues(self.paths.dialogues, self.dialogues)
            self._buffer = []
        atomic_write_jsonl(self.paths.discover_failures, sorted(self.failures.values(),
                                                                 key=lambda f: f["iteration"]))

    def _on_result(self, task: DialogueTask, result: dict) -> None:
        from parallel_r1.discover.pool import dialogue_from_result

        if "error" in result:
            log.info("discover: %s failed after %d attempt(s): %s", task.dialogue_id, result["attempts"],
                     result["error"])
            self.failures[task.dialogue_id] = {
                **task.to_dict(), "error": result["error"], "attempts": result["attempts"],
                "traceback": result.get("traceback", ""),
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        else:
            self.failures.pop(task.dialogue_id, None)
            self._buffer.append(dialogue_from_result(result))
        if len(self._buffer) >= self.cfg.discover.flush_every:
            self._flush()

    def run(self) -> DiscoverResult:
        already = len(self.plan) - len(self.pending)
        if not self.pending:
            notice(f"discover: all {len(self.plan)} dialogues already in {self.paths.dialogues}", log)
            return self._result(already, 0, 0, 0, 0.0)
        log.info("discover: %d of %d dialogues already on disk, %d to run (%d of them failed before)", already,
                 len(self.plan), len(self.pending), len(self.failures))
        stats = None
        try:
            with progress_bar() as progress:
                bar = progress.add_task("discover", total=len(self.pending), status="",
                                        visible=self.show_progress)

                user_hook = self.pool.progress_hook

                def hook(pool) -> None:
                    s = pool.stats
                    progress.update(bar, completed=s.completed + s.failed,
                                    status=f"failed {s.failed} · actor restarts {s.actor_restarts}")
                    if user_hook is not None:
                        user_hook(pool)

                self.pool.progress_hook = hook
                stats = self.pool.run(self.pending, self._on_result)
        finally:
            self._flush()
        return self._result(already, stats.completed, stats.failed, stats.actor_restarts, stats.elapsed_s)

    def _result(self, already, completed, failed, restarts, elapsed) -> DiscoverResult:
        return DiscoverResult(planned=len(self.plan), already_done=already, completed=completed, failed=failed,
                              actor_restarts=restarts, elapsed_s=elapsed, failures=list(self.failures.values()),
                              dialogues=self.dialogues)

    def cleanup(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None
        self._resources.close()


def print_discover_summary(result: DiscoverResult) -> None:
    dialogues = result.dialogues
    rows = [
        ("planned (N)", result.planned), ("already on disk", result.already_done),
        ("completed now", result.completed), ("failed (see discover_failures.jsonl)", result.failed),
        ("actor restarts", result.actor_restarts), ("elapsed s", result.elapsed_s),
        ("dialogues / s", result.rate), ("total in dialogues.parquet", result.total_on_disk),
    ]
    notice(summary_table("discover", ["", "value"], rows), log)
    if not dialogues:
        return
    by = Counter((d.profile_kind, d.length_bucket) for d in dialogues)
    kinds = sorted({k for k, _ in by})
    table_rows = []
    for k in kinds:
        scores = [d.score for d in dialogues if d.profile_kind == k and d.score is not None]
        table_rows.append((k, by[(k, "short")], by[(k, "medium")], by[(k, "long")],
                           sum(scores) / len(scores) if scores else None))
    notice(summary_table("dialogues by profile", ["profile", "short", "medium", "long", "mean score"], table_rows),
           log)


def run_discover(cfg: PipelineConfig, *, show_progress: bool = True) -> DiscoverResult:
    return run_recipe(DiscoverStage(cfg, show_progress=show_progress))
