"""A bounded load on the router (16 clients, a fixed number of requests) during which one of the two model replicas
is killed: every attempt ends 200 or 503 with `Retry-After`, every request succeeds on the client's retry, the
online-grading log holds only whole lines (one per answered request), and p50/p99 latency are reported."""

from __future__ import annotations

import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.serve.support import serve_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # in `make test` too: about a minute

CLIENTS = 16
REQUESTS = 160
RETRIES = 8
QUESTIONS = ["Why does my loop skip the first item?", "What is a variable?", "I don't get fractions.",
             "No analogies please, what literally happens?"]


def _ask(url: str, i: int) -> tuple[list[tuple[int, str | None]], float]:
    """One request with the client's retries: every attempt's (status, Retry-After), and the total latency."""
    body = {"model": "parallel-r1", "messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}],
            "max_tokens": 16, "seed": i}
    attempts, start = [], time.perf_counter()
    for _ in range(RETRIES):
        response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120)
        attempts.append((response.status_code, response.headers.get("retry-after")))
        if response.status_code != 503:
            break
        time.sleep(float(response.headers.get("retry-after") or 1))
    return attempts, time.perf_counter() - start


def _kill_one_model_replica() -> str:
    """SIGKILL one of the app's two model replicas (Serve starts a new one); returns its actor name."""
    import ray

    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
             if a["namespace"] == "serve" and "load#HFSpecialists#" in a["name"]]
    assert len(names) == 2, names
    ray.kill(ray.get_actor(names[0], namespace="serve"), no_restart=False)
    return names[0]


def test_a_model_replica_killed_under_load_loses_no_request(serve_port, serve_workdir, tiny_base_model, tmp_path,
                                                            reliability):
    from ray import serve

    from parallel_r1.serve.stage import start_local

    scores = tmp_path / "scores.jsonl"
    cfg = serve_config(serve_workdir, tiny_base_model, serve_port, app_name="load", route_prefix="/load",
                       model_replicas=2, grading_fraction=1.0, score_log=str(scores))
    url = start_local(cfg)
    try:
        started, killed, failed = threading.Event(), threading.Event(), []

        def killer() -> None:
            started.wait(60)
            time.sleep(1.0)
            try:
                _kill_one_model_replica()
            except Exception as e:  # noqa: BLE001 - reported by the assertion below
                failed.append(e)
            killed.set()

        def ask(i: int):
            started.set()
            return _ask(url, i)

        threading.Thread(target=killer, daemon=True).start()
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            results = list(pool.map(ask, range(REQUESTS)))
        deadline = time.monotonic() + 60
        while len(_lines(scores)) < REQUESTS and time.monotonic() < deadline:  # graded after each response
            time.sleep(0.5)
    finally:
        serve.delete("load")
    attempts = [a for r, _ in results for a in r]
    records = [json.loads(line) for line in _lines(scores)]  # a torn line fails here
    answered = sum(r[-1][0] == 200 for r, _ in results)
    latencies = sorted(t for _, t in results)
    reliability.record(load=f"{CLIENTS} clients, {REQUESTS} requests", unit="requests", items=REQUESTS,
                       faults="1 of 2 model replicas killed mid-run", lost=REQUESTS - answered,
                       duplicated=len(records) - len({r["request_id"] for r in records}),
                       retried=sum(len(r) > 1 for r, _ in results), answered_503=sum(s == 503 for s, _ in attempts),
                       graded=len(records), p50_ms=round(statistics.median(latencies) * 1000),
                       p99_ms=round(latencies[int(0.99 * (len(latencies) - 1))] * 1000))
    assert killed.is_set() and not failed, f"the replica was not killed: {failed}"
    assert {s for s, _ in attempts} <= {200, 503}, sorted({s for s, _ in attempts})
    assert all(after == "1" for s, after in attempts if s == 503)
    assert answered == REQUESTS  # every request answered in the end, on the client's retry
    assert len(records) == REQUESTS and len({r["request_id"] for r in records}) == REQUESTS


def _lines(path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []
