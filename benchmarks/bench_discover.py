"""Discovery throughput: the Ray actor pool against a sequential in-process loop over the same backend.

Run: `python benchmarks/bench_discover.py [--n-procedural 4000] [--n-pool 400] [--n-seq 40] [--latency 0.1]`
Measures dialogues/s for (a) the procedural backend, alone and with the heuristic grader (what
`discover` runs by default), and (b) a local OpenAI-compatible endpoint with a fixed latency per call,
started by the benchmark in its own process. Prints both rates and their ratio; writes JSON to
benchmarks/results/bench_discover.json.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from parallel_r1.config import GradeConfig, load_config  # noqa: E402
from parallel_r1.console import console, summary_table  # noqa: E402
from parallel_r1.data import discovery_plan  # noqa: E402
from parallel_r1.data.io import atomic_write_json  # noqa: E402
from parallel_r1.discover.pool import DiscoveryPool, build_backend  # noqa: E402
from parallel_r1.discover.simulator import simulate_dialogue  # noqa: E402
from parallel_r1.grade import HeuristicRubricGrader, grade_dialogues  # noqa: E402
from parallel_r1.ray_runtime import ensure_ray  # noqa: E402


def sequential_rate(discover_cfg, tasks) -> tuple[float, int]:
    """One dialogue after another, in this process (the baseline)."""
    backend = build_backend(discover_cfg)

    grader = HeuristicRubricGrader() if discover_cfg.grade else None

    async def loop() -> int:
        turns = 0
        for task in tasks:
            dialogue = await simulate_dialogue(backend, task)
            if grader is not None:
                grade_dialogues([dialogue], grader)
            turns += dialogue.n_turns
        await backend.close()
        return turns

    started = time.perf_counter()
    turns = asyncio.run(loop())
    return len(tasks) / (time.perf_counter() - started), turns


def pool_rate(discover_cfg, tasks) -> tuple[float, float]:
    """The actor pool; returns (rate including actor start-up, rate once the actors are up)."""
    import ray

    pool = DiscoveryPool(discover_cfg, GradeConfig() if discover_cfg.grade else None)
    started = time.perf_counter()
    pool.start()
    ray.get([a.pid.remote() for a in pool.actors])  # actors up: the rest is steady-state throughput
    stats = pool.run(tasks, lambda task, result: None)
    total = time.perf_counter() - started
    pool.shutdown()
    if stats.failed:
        raise RuntimeError(f"{stats.failed} dialogues failed during the benchmark")
    return len(tasks) / total, len(tasks) / stats.elapsed_s


def _serve(latency: float, port_queue, stop) -> None:
    """A lean OpenAI-compatible chat endpoint (aiohttp): a fixed latency and little CPU per call, so the
    benchmark measures our client side rather than a heavyweight fake server sharing the 2 cores."""
    import asyncio

    from aiohttp import web

    count = 0

    async def chat(request: web.Request) -> web.Response:
        nonlocal count
        body = await request.json()
        await asyncio.sleep(latency)
        count += 1
        last = body["messages"][-1]["content"].split()[:8]
        text = "Let's look at " + " ".join(last) + ". What would you try first?"
        return web.json_response({
            "id": f"chatcmpl-{count}", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        })

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        port_queue.put((f"http://127.0.0.1:{port}/v1", None))
        while not stop.is_set():
            await asyncio.sleep(0.1)
        await runner.cleanup()
        port_queue.put((None, count))

    asyncio.run(main())


class EndpointProcess:
    """The fake endpoint in its own process, as a real endpoint would be (not sharing the driver's GIL)."""

    def __init__(self, latency: float):
        ctx = mp.get_context("spawn")
        self._queue, self._stop = ctx.Queue(), ctx.Event()
        self._proc = ctx.Process(target=_serve, args=(latency, self._queue, self._stop), daemon=True)

    def __enter__(self) -> EndpointProcess:
        self._proc.start()
        self.base_url, _ = self._queue.get(timeout=60)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        _, self.n_requests = self._queue.get(timeout=30)
        self._proc.join(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-procedural", type=int, default=4000, help="dialogues, procedural case")
    ap.add_argument("--n-graded", type=int, default=2000, help="dialogues, procedural + grading case")
    ap.add_argument("--n-pool", type=int, default=400, help="dialogues run on the pool (endpoint case)")
    ap.add_argument("--n-seq", type=int, default=40, help="dialogues run sequentially (endpoint case)")
    ap.add_argument("--latency", type=float, default=0.1, help="seconds per endpoint call")
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--in-flight", type=int, default=64, help="dialogues in flight per actor (endpoint case)")
    args = ap.parse_args()

    console.print(ensure_ray(load_config().ray))
    results = {}
    tasks = discovery_plan(args.n_pool, include_special=True, seed=11)
    proc_tasks = discovery_plan(args.n_procedural, include_special=True, seed=12)
    proc = load_config(overrides={"discover.num_actors": args.actors, "discover.max_in_flight": 256,
                                  "discover.chunk_size": 128, "discover.grade": False}).discover
    seq, _ = sequential_rate(proc, proc_tasks)
    with_start, run_only = pool_rate(proc, proc_tasks)
    results["procedural"] = {"n": len(proc_tasks), "sequential_per_s": seq, "pool_per_s": with_start,
                             "pool_run_only_per_s": run_only, "ratio": with_start / seq}
    graded = proc.model_copy(update={"grade": True})
    graded_tasks = proc_tasks[: args.n_graded]
    seq, _ = sequential_rate(graded, graded_tasks)
    with_start, run_only = pool_rate(graded, graded_tasks)
    results["procedural + grading"] = {"n": len(graded_tasks), "sequential_per_s": seq, "pool_per_s": with_start,
                                       "pool_run_only_per_s": run_only, "ratio": with_start / seq}

    with EndpointProcess(args.latency) as server:
        ep = load_config(overrides={
            "discover.backend": "openai", "discover.num_actors": args.actors,
            "discover.max_in_flight": args.in_flight, "discover.grade": False,
            "discover.openai.base_url": server.base_url, "discover.openai.timeout_s": 30}).discover
        seq, _ = sequential_rate(ep, tasks[: args.n_seq])
        with_start, run_only = pool_rate(ep, tasks)
    calls = server.n_requests
    results["endpoint"] = {"n_seq": args.n_seq, "n_pool": len(tasks), "latency_s": args.latency,
                           "sequential_per_s": seq, "pool_per_s": with_start, "pool_run_only_per_s": run_only,
                           "ratio": with_start / seq, "requests_served": calls,
                           "in_flight": args.actors * args.in_flight}

    rows = [(name, r["sequential_per_s"], r["pool_per_s"], r["pool_run_only_per_s"], f"{r['ratio']:.1f}×")
            for name, r in results.items()]
    columns = ["backend", "sequential", "pool (incl. actor start)", "pool (actors up)", "ratio"]
    console.print(summary_table("discover throughput (dialogues/s)", columns, rows))
    out = ROOT / "benchmarks" / "results" / "bench_discover.json"
    atomic_write_json(out, {"args": vars(args), "results": results})
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
