"""Discovery against a faulty OpenAI-compatible endpoint while its Ray actors are SIGKILLed and the driver is
interrupted: the run reaches N dialogues, none lost, none duplicated, each the same as an undisturbed run's."""

from __future__ import annotations

import os
import signal
import time

import pytest
import ray

from parallel_r1.config import load_config
from parallel_r1.data import discovery_plan, read_dialogues
from parallel_r1.data.io import read_jsonl
from tests.fakes.openai_server import FakeOpenAIServer
from tests.support.discovery import discover_with_hook

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

N = 150
FAULT_RATE = 0.2  # of chat requests: a 500/502/503/429 or a hang past the client's timeout, drawn per request
ACTORS, IN_FLIGHT = 3, 8
# Per run: SIGKILL an actor when this many dialogues of the run are done; interrupt the driver (first run only).
KILL_AT = ((8, 25, 45), (10, 30, 50))
INTERRUPT_AT = 60
MAX_RUNS = 4  # the interrupted run, its resume, and retries of dialogues whose every attempt failed


class DriverInterrupted(Exception):
    pass


def _cfg(workdir, base_url):
    return load_config(overrides={
        "workdir": str(workdir), "discover.n": N, "discover.backend": "openai", "discover.num_actors": ACTORS,
        "discover.max_in_flight": IN_FLIGHT, "discover.chunk_size": 2, "discover.flush_every": 5,
        "discover.dialogue_attempts": 2, "discover.max_actor_restarts": 10, "discover.openai.base_url": base_url,
        "discover.openai.timeout_s": 0.5, "discover.openai.max_retries": 3, "discover.openai.backoff_s": 0.01,
        "discover.openai.max_backoff_s": 0.05})


def _turns(workdir) -> dict[str, list[tuple[str, str]]]:
    dialogues = read_dialogues(workdir / "dialogues.parquet")
    return {d.dialogue_id: [(t.role, t.content) for t in d.turns] for d in dialogues}


def test_discovery_reaches_n_through_actor_kills_a_driver_interrupt_and_a_faulty_endpoint(ray_session, tmp_path,
                                                                                        reliability):
    planned = {t.dialogue_id for t in discovery_plan(N, include_special=True)}
    with FakeOpenAIServer(seed=3) as healthy:
        reference = tmp_path / "reference"
        started = time.perf_counter()
        discover_with_hook(_cfg(reference, healthy.base_url))
        reference_s = time.perf_counter() - started
    assert set(_turns(reference)) == planned

    workdir = tmp_path / "faulty"
    kills: list[int] = []  # pids SIGKILLed
    restarts = runs = interrupts = 0
    with FakeOpenAIServer(failure_rate=FAULT_RATE, seed=11) as server:
        started = time.perf_counter()
        for run in range(MAX_RUNS):
            thresholds = list(KILL_AT[run]) if run < len(KILL_AT) else []

            def faults(pool, thresholds=thresholds, run=run):
                done = pool.stats.completed + pool.stats.failed
                if thresholds and done >= thresholds[0]:
                    thresholds.pop(0)
                    actor = pool.actors[len(kills) % len(pool.actors)]
                    pid = ray.get(actor.pid.remote(), timeout=30)
                    os.kill(pid, signal.SIGKILL)
                    kills.append(pid)
                if run == 0 and done >= INTERRUPT_AT:
                    raise DriverInterrupted

            runs += 1
            try:
                result = discover_with_hook(_cfg(workdir, server.base_url), hook=faults)
            except DriverInterrupted:
                interrupts += 1
                continue
            restarts += result.actor_restarts
            if not result.failures:
                break
        faulty_s = time.perf_counter() - started

    rows = read_dialogues(workdir / "dialogues.parquet")
    ids = [d.dialogue_id for d in rows]
    lost, duplicated = len(planned - set(ids)), len(ids) - len(set(ids))
    injected = sum(server.injected.values())
    reliability.record(
        name="discover: actor kills + faulty endpoint",
        load=f"{N} dialogues, {ACTORS} actors x {IN_FLIGHT} in flight",
        faults=(f"{injected} of {server.n_requests} requests faulty ({dict(sorted(server.injected.items()))}), "
                f"{len(kills)} actors SIGKILLed, driver interrupted {interrupts}x; {runs} runs"),
        items=len(set(ids)), unit="dialogues", lost=lost, duplicated=duplicated,
        wall_s=round(faulty_s, 1), undisturbed_s=round(reference_s, 1),
        requests_per_s=round(server.n_requests / faulty_s, 1))

    assert interrupts == 1 and len(kills) == sum(len(k) for k in KILL_AT)
    assert 0.1 < injected / server.n_requests < 0.3 and server.injected["hang"] > 0  # the faults happened
    # Every SIGKILLed actor found dead and replaced (those of the interrupted run were replaced before it ended).
    assert restarts >= len(KILL_AT[1])
    assert lost == 0 and duplicated == 0 and len(ids) == N
    assert read_jsonl(workdir / "discover_failures.jsonl") == []
    # Nothing damaged: each dialogue is turn for turn what the undisturbed run wrote.
    assert _turns(workdir) == _turns(reference)
