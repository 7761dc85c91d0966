"""Concurrent discovery on a pool of Ray actors, each with many dialogues in flight (async).

The driver keeps every actor filled up to `max_in_flight`, appends finished dialogues to
`dialogues.parquet` in atomic flushes, records dialogues that keep failing in
`discover_failures.jsonl`, and replaces a crashed actor, re-running the dialogues it held.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import ray
from ray.exceptions import RayActorError

from parallel_r1.config import DiscoverConfig, GradeConfig
from parallel_r1.data import Dialogue, DialogueTask
from parallel_r1.data.card_files import use_card_dir
from parallel_r1.discover.backend import ChatBackend
from parallel_r1.discover.openai_backend import OpenAIBackend
from parallel_r1.discover.procedural import ProceduralBackend
from parallel_r1.discover.simulator import simulate_dialogue
from parallel_r1.grade import agrade_dialogues, build_grader
from parallel_r1.kb.grounding import Retriever

log = logging.getLogger(__name__)


def build_backend(cfg: DiscoverConfig, retriever: Retriever | None = None) -> ChatBackend:
    """The chat backend named in the discovery config; `retriever` grounds the openai backend's tutor."""
    if cfg.backend == "procedural":
        return ProceduralBackend(seed=cfg.seed)
    return OpenAIBackend(cfg.openai, seed=cfg.seed, roleplay=cfg.roleplay,
                         retrieve=retriever.retrieve if retriever is not None else None)


@ray.remote
class DiscoveryWorker:
    """Simulates (and grades) dialogues; async methods let one actor hold many in flight."""

    def __init__(self, discover_cfg: DiscoverConfig, grade_cfg: GradeConfig | None, retriever: Retriever | None):
        use_card_dir(discover_cfg.card_dir)  # the driver passes it as an absolute path
        self.backend = build_backend(discover_cfg, retriever)
        self.attempts = discover_cfg.dialogue_attempts
        self.grader = build_grader(grade_cfg) if grade_cfg is not None else None

    async def run(self, task: DialogueTask) -> dict:
        """{"dialogue": row} on success, {"error": text, "attempts": n} once every attempt failed."""
        error = last_tb = ""
        for _ in range(self.attempts):
            try:
                dialogue = await simulate_dialogue(self.backend, task)
                if self.grader is not None:
                    [dialogue] = await agrade_dialogues([dialogue], self.grader)
                return {"dialogue": dialogue.to_row()}
            except Exception as e:  # noqa: BLE001 - any failure of one dialogue is recorded, not fatal
                error = f"{type(e).__name__}: {e}"
                last_tb = traceback.format_exc(limit=3)
        log.warning("dialogue %s failed %d attempt(s): %s", task.dialogue_id, self.attempts, error)  # Ray's worker log
        return {"error": error, "attempts": self.attempts, "traceback": last_tb}

    async def run_many(self, tasks: list[DialogueTask]) -> list[dict]:
        """A chunk of dialogues, concurrently; amortises the per-call cost of Ray for fast backends."""
        return list(await asyncio.gather(*(self.run(t) for t in tasks)))

    def pid(self) -> int:
        return os.getpid()


@dataclass
class PoolStats:
    completed: int = 0
    failed: int = 0
    actor_restarts: int = 0
    requeued: int = 0
    elapsed_s: float = 0.0


class DiscoveryPool:
    """Runs tasks on `num_actors` actors; `on_result(task, result)` gets each finished task; `retriever`: the
    knowledge base each actor opens for itself to ground the tutor (kb.ground: [discover])."""

    def __init__(self, discover_cfg: DiscoverConfig, grade_cfg: GradeConfig | None,
                 retriever: Retriever | None = None):
        self.cfg = discover_cfg
        self.grade_cfg = grade_cfg
        self.retriever = retriever
        self.actors: list = []
        self.stats = PoolStats()
        self.progress_hook: Callable[[DiscoveryPool], None] | None = None

    def _new_actor(self):
        calls = max(1, -(-self.cfg.max_in_flight // self.cfg.chunk_size))
        return DiscoveryWorker.options(
            max_concurrency=calls, num_cpus=self.cfg.actor_num_cpus, max_restarts=0,
        ).remote(self.cfg, self.grade_cfg, self.retriever)

    def start(self) -> None:
        self.actors = [self._new_actor() for _ in range(self.cfg.num_actors)]

    def _replace(self, idx: int, reason: str) -> None:
        if self.stats.actor_restarts >= self.cfg.max_actor_restarts:
            raise RuntimeError(
                f"discovery actor {idx} crashed ({reason}) and the restart budget "
                f"(discover.max_actor_restarts={self.cfg.max_actor_restarts}) is spent"
            )
        ray.kill(self.actors[idx], no_restart=True)
        self.actors[idx] = self._new_actor()
        self.stats.actor_restarts += 1

    def run(self, tasks: list[DialogueTask], on_result: Callable[[DialogueTask, dict], None]) -> PoolStats:
        """Run every task to a result (dialogue or recorded failure); crashed actors are replaced."""
        if not self.actors:
            self.start()
        started = time.perf_counter()
        queue = deque(tasks)
        in_flight: dict = {}  # ObjectRef -> (chunk of tasks, actor index)
        load = [0] * len(self.actors)  # dialogues in flight per actor
        chunk_size = min(self.cfg.chunk_size, self.cfg.max_in_flight)
        while queue or in_flight:
            while queue and min(load) + min(chunk_size, len(queue)) <= self.cfg.max_in_flight:
                idx = load.index(min(load))
                chunk = [queue.popleft() for _ in range(min(chunk_size, len(queue)))]
                in_flight[self.actors[idx].run_many.remote(chunk)] = (chunk, idx)
                load[idx] += len(chunk)
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
            for ref in ready:
                if ref not in in_flight:
                    continue
                chunk, idx = in_flight.pop(ref)
                load[idx] -= len(chunk)
                try:
                    results = ray.get(ref)
                except RayActorError as e:
                    lost = [r for r, (_, i) in in_flight.items() if i == idx]
                    requeue = chunk + [t for r in lost for t in in_flight.pop(r)[0]]
                    queue.extendleft(reversed(requeue))
                    self.stats.requeued += len(requeue)
                    load[idx] = 0
                    self._replace(idx, type(e).__name__)
                    log.warning("discovery actor %d crashed (%s): replaced, %d dialogue(s) queued again", idx,
                                type(e).__name__, len(requeue))
                    continue
                for task, result in zip(chunk, results, strict=True):
                    if "error" in result:
                        self.stats.failed += 1
                    else:
                        self.stats.completed += 1
                    on_result(task, result)
                if self.progress_hook is not None:
                    self.progress_hook(self)
        self.stats.elapsed_s = time.perf_counter() - started
        return self.stats

    def shutdown(self) -> None:
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []


def dialogue_from_result(result: dict) -> Dialogue:
    return Dialogue.from_row(result["dialogue"])
