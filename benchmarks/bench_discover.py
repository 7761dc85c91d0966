"""Discovery throughput: the Ray actor pool against a sequential in-process loop over the same backend, and on an
endpoint against its peer, a plain `asyncio` + `openai.AsyncOpenAI` script with as many dialogues in flight.

Run: `python benchmarks/bench_discover.py [--n-procedural 4000] [--n-pool 1000] [--n-seq 40] [--latency 0.1] [--reps 3]`
Measures dialogues/s for (a) the procedural backend, alone and with the heuristic grader (what
`discover` runs by default), and (b) a local OpenAI-compatible endpoint with a fixed latency per call,
started by the benchmark in its own process: the pool and the peer script alternate `--reps` times on the same
dialogues (the same prompts and calls per dialogue). Prints the rates and ratios, the physical limit (in flight ÷
latency), writes JSON to benchmarks/results/bench_discover.json and the peer rows to benchmarks/results/summary.json.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import peer  # noqa: E402

from parallel_r1.config import GradeConfig, load_config  # noqa: E402
from parallel_r1.console import console, summary_table  # noqa: E402
from parallel_r1.data import discovery_plan  # noqa: E402
from parallel_r1.data.io import atomic_write_json  # noqa: E402
from parallel_r1.discover.openai_backend import STUDENT_KICKOFF, student_prompt, teacher_prompt  # noqa: E402
from parallel_r1.discover.pool import DiscoveryPool, build_backend  # noqa: E402
from parallel_r1.discover.simulator import context_for, simulate_dialogue  # noqa: E402
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


def plain_asyncio_rate(ep_cfg, tasks, in_flight: int) -> float:
    """The peer: what a user would write instead of the pool, one `asyncio` loop with one `AsyncOpenAI` client and
    `in_flight` dialogues at once, each turn one chat call with the same prompts as the openai backend's."""
    import openai

    api = ep_cfg.openai

    async def dialogue(client, gate, task) -> list[str]:
        async with gate:
            ctx = context_for(task)
            system = {"student": student_prompt(ctx.persona, ctx.card), "teacher": teacher_prompt(ctx.card)}
            turns = [("student", ctx.card.opening)]
            while len(turns) < task.target_turns:
                role = "student" if len(turns) % 2 == 0 else "teacher"
                messages = [{"role": "system", "content": system[role]},
                            *([{"role": "user", "content": STUDENT_KICKOFF}] if role == "student" else []),
                            *({"role": "assistant" if who == role else "user", "content": text} for who, text in turns)]
                reply = await client.chat.completions.create(model=api.model, messages=messages,
                                                             temperature=api.temperature, max_tokens=api.max_tokens)
                turns.append((role, reply.choices[0].message.content.strip()))
            return [text for _, text in turns]

    async def run() -> None:
        async with openai.AsyncOpenAI(base_url=api.base_url, api_key="EMPTY", timeout=api.timeout_s,
                                      max_retries=api.max_retries) as client:
            gate = asyncio.Semaphore(in_flight)
            await asyncio.gather(*(dialogue(client, gate, t) for t in tasks))

    started = time.perf_counter()
    asyncio.run(run())
    return len(tasks) / (time.perf_counter() - started)


def endpoint_comparison(args, server, tasks) -> tuple[dict, list[dict]]:
    """The pool against the sequential loop (once) and against the plain asyncio script (`--reps`, alternating);
    the figures, and the summary rows."""
    in_flight = args.actors * args.in_flight
    ep = load_config(overrides={
        "discover.backend": "openai", "discover.num_actors": args.actors,
        "discover.max_in_flight": args.in_flight, "discover.grade": False,
        "discover.openai.base_url": server.base_url, "discover.openai.timeout_s": 30}).discover
    seq, _ = sequential_rate(ep, tasks[: args.n_seq])
    runs: dict[str, list] = {k: [] for k in ("pool", "pool_up", "peer", "calls_pool", "calls_peer",
                                             "endpoint_busy_pool", "endpoint_busy_peer", "peer_client_busy")}

    def ours() -> float:
        (with_start, run_only), calls = server.counting(lambda: pool_rate(ep, tasks))
        runs["pool"].append(with_start)
        runs["calls_pool"].append(calls)
        runs["endpoint_busy_pool"].append(server.cpu_s[-1] * with_start / len(tasks))  # share of one core
        return run_only

    def theirs() -> float:
        cpu = time.process_time()
        rate, calls = server.counting(lambda: plain_asyncio_rate(ep, tasks, in_flight))
        runs["calls_peer"].append(calls)
        runs["endpoint_busy_peer"].append(server.cpu_s[-1] * rate / len(tasks))
        runs["peer_client_busy"].append((time.process_time() - cpu) * rate / len(tasks))
        return rate

    runs["pool_up"], runs["peer"] = peer.alternate(ours, theirs, args.reps)
    per_dialogue = max(runs["calls_peer"]) / len(tasks)
    calls_limit = in_flight / args.latency
    limit = {"value": calls_limit / per_dialogue, "unit": "dialogues/s",
             "note": f"in flight {in_flight} ÷ latency {args.latency} s = {calls_limit:.0f} calls/s, "
                     f"{per_dialogue:.2f} calls per dialogue"}
    name = f"discover {1000 * args.latency:.0f} ms × {in_flight}"
    rows = [peer.row(f"{name}, actors up", runs["pool_up"], runs["peer"], "dialogues/s", peer.Goal("ratio", ">=", 0.8),
                     limit),
            peer.row(f"{name}, incl. actor start", runs["pool"], runs["peer"], "dialogues/s",
                     peer.Goal("ratio", ">=", 0.8), limit)]
    result = {"n_seq": args.n_seq, "n_pool": len(tasks), "latency_s": args.latency, "in_flight": in_flight,
              "sequential_per_s": seq, **{k: peer.spread(v) for k, v in runs.items()},
              "calls_per_dialogue_limit": limit}
    return result, rows


def _serve(latency: float, port_queue, stop, served, host: str) -> None:
    """A lean OpenAI-compatible chat endpoint (aiohttp): a fixed latency and little CPU per call, so the
    benchmark measures our client side rather than a heavyweight fake server sharing the 2 cores."""
    import asyncio

    from aiohttp import web

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        await asyncio.sleep(latency)
        with served.get_lock():
            served.value += 1
            count = served.value
        last = body["messages"][-1]["content"].split()[:8]
        text = f"Let's look at {' '.join(last)} (reply {count}). What would you try first?"  # never a repeat
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
        site = web.TCPSite(runner, host, 0, backlog=1024)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        port_queue.put((f"http://{host}:{port}/v1", None))
        while not stop.is_set():
            await asyncio.sleep(0.1)
        await runner.cleanup()
        port_queue.put((None, served.value))

    asyncio.run(main())


class EndpointProcess:
    """The fake endpoint in its own process, as a real endpoint would be (not sharing the driver's GIL), listening on
    `host` (another node's address makes it reachable from that node)."""

    def __init__(self, latency: float, host: str = "127.0.0.1"):
        ctx = mp.get_context("spawn")
        self._queue, self._stop, self._served = ctx.Queue(), ctx.Event(), ctx.Value("q", 0)
        self._proc = ctx.Process(target=_serve, args=(latency, self._queue, self._stop, self._served, host),
                                 daemon=True)
        self.cpu_s: list[float] = []

    def counting(self, run):
        """`run()`'s result, the chat calls the endpoint answered meanwhile and the CPU seconds it took for them."""
        before, cpu = self._served.value, peer.cpu_seconds(self._proc.pid)
        result = run()
        self.cpu_s.append(peer.cpu_seconds(self._proc.pid) - cpu)
        return result, self._served.value - before

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
    ap.add_argument("--n-pool", type=int, default=1000, help="dialogues run on the pool (endpoint case)")
    ap.add_argument("--n-seq", type=int, default=40, help="dialogues run sequentially (endpoint case)")
    ap.add_argument("--latency", type=float, default=0.1, help="seconds per endpoint call")
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--in-flight", type=int, default=64, help="dialogues in flight per actor (endpoint case)")
    ap.add_argument("--reps", type=int, default=3, help="alternating repetitions of the pool and its peer")
    args = ap.parse_args()
    machine = peer.Machine()

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
        results["endpoint"], peer_rows = endpoint_comparison(args, server, tasks)
    results["endpoint"]["requests_served"] = server.n_requests

    rows = [(name, r["sequential_per_s"], r["pool_per_s"], r["pool_run_only_per_s"], f"{r['ratio']:.1f}×")
            for name, r in results.items() if name != "endpoint"]
    ep = results["endpoint"]
    rows.append(("endpoint", ep["sequential_per_s"], ep["pool"]["median"], ep["pool_up"]["median"],
                 f"{ep['pool']['median'] / ep['sequential_per_s']:.1f}×"))
    columns = ["backend", "sequential", "pool (incl. actor start)", "pool (actors up)", "ratio"]
    console.print(summary_table("discover throughput (dialogues/s, endpoint: median)", columns, rows))
    peer.print_table("discover against a plain asyncio + AsyncOpenAI script (median, min–max)", {"rows": peer_rows})
    console.print(f"calls per dialogue: pool {ep['calls_pool']['runs']}, peer {ep['calls_peer']['runs']} "
                  f"(for {ep['n_pool']} dialogues); {peer_rows[0]['limit']['note']}")
    busy = {k: [round(v, 2) for v in ep[k]["runs"]] for k in ep if "busy" in k}
    console.print(f"cores kept busy (1.0 = one core): {busy}; load average {os.getloadavg()[0]:.1f} "
                  f"on {os.cpu_count()} CPUs")
    out = ROOT / "benchmarks" / "results" / "bench_discover.json"
    atomic_write_json(out, {"args": vars(args), "results": results})
    console.print(f"wrote {out}; {peer.record(peer_rows, machine)}")


if __name__ == "__main__":
    main()
