"""What the ensemble router costs: latency and throughput through the router against calling the specialist
deployment directly, in one run, with the same model work per request.

Run: `python benchmarks/bench_serve.py [--requests 200] [--clients 16] [--rounds 3]` (about 2 minutes on 2 cores)
Builds a tiny base model and two random-init LoRA specialists under benchmarks/results/serve_work, deploys the
router app (hf backend) and, as a second application at /direct, the same `HFSpecialists` deployment on its own;
then sends the same greedy, 8-token requests three ways: through the router (validation, profile inference from
the student's words, routing, online grading of the configured share), straight to the model deployment over
HTTP (the same proxy: the difference is the router's hop and work), and through a Serve handle from this
process (no HTTP at all). Sequential and with `--clients` concurrent clients, in alternating rounds (the host's
load drifts); prints p50 / p99 / requests/s and the router's added latency against both direct paths, and the
host's load average over the run (on a shared host every figure moves with it), writes
benchmarks/results/bench_serve.json. Target (against direct HTTP): +5 ms at p50, +15 ms at p99.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from parallel_r1.base_model.stage import build_base_model  # noqa: E402
from parallel_r1.config import BaseModelConfig, load_config  # noqa: E402
from parallel_r1.console import console, summary_table  # noqa: E402
from parallel_r1.data.io import atomic_write_json  # noqa: E402
from tests.support.adapters import promote, random_adapter  # noqa: E402

SPECIALISTS = ("neurodivergent", "prior_trauma_recovery")
MESSAGES = [{"role": "user", "content": "No analogies please, what literally happens when a loop runs?"}]
# The target is against the first: the same HTTP front door; the handle also drops HTTP and the proxy.
BASELINES = ("direct HTTP", "direct handle")
SAMPLING = {"temperature": 0.0, "max_tokens": 8, "n": 1, "top_p": 1.0, "seed": 0}


def prepare(work: Path) -> Path:
    """A run directory with a tiny base model and two specialists (built once, reused)."""
    base = work / "models" / "base"
    build_base_model(BaseModelConfig(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=1, max_seq_len=64,
                                     vocab_size=512, corpus_dialogues=60, max_steps=150, batch_size=8,
                                     learning_rate=1e-2), base, progress=False)
    for seed, name in enumerate(SPECIALISTS):
        if not (work / "adapters" / name / "adapter_config.json").exists():
            random_adapter(base, work / "adapters" / name, seed)
        promote(work, name, work / "adapters" / name)
    return work


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_caller(url: str, body: dict):
    """A per-thread caller POSTing `body` to `url` over a keep-alive connection."""
    def make():
        http = httpx.Client(timeout=60)

        def call() -> None:
            http.post(url, json=body).raise_for_status()

        return call

    return make


def handle_caller(handle, body: dict):
    """A caller of the model deployment's `generate` through a Serve handle (no HTTP at all)."""
    def make():
        def call() -> None:
            if handle.generate.remote(body["messages"], body["sampling"], body["adapter"]).result()["error"]:
                raise RuntimeError("the model deployment refused the benchmark request")

        return call

    return make


def run_load(make_caller, clients: int, requests: int) -> tuple[list[float], float]:
    """`requests` calls spread over `clients` threads; their latencies (s) and the wall time."""
    latencies: list[float] = []
    lock = threading.Lock()
    per_client = [requests // clients + (i < requests % clients) for i in range(clients)]

    def client(count: int) -> None:
        call = make_caller()
        for _ in range(count):
            started = time.perf_counter()
            call()
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)

    threads = [threading.Thread(target=client, args=(c,)) for c in per_client]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=200, help="requests per path, per mode, per round")
    ap.add_argument("--clients", type=int, default=16, help="concurrent clients of the concurrent mode")
    ap.add_argument("--rounds", type=int, default=3, help="alternating router / direct rounds")
    args = ap.parse_args()

    from ray import serve

    from parallel_r1.serve.deployment import deployment_options
    from parallel_r1.serve.hf_backend import HFSpecialists
    from parallel_r1.serve.stage import start_local

    work = prepare(ROOT / "benchmarks" / "results" / "serve_work")
    port = free_port()
    cfg = load_config(None, {"workdir": str(work), "ray": {"num_cpus": 4}, "serve": {
        "port": port, "add_system_prompt": False, "model_num_cpus": 0.5, "router_num_cpus": 0.1}})
    url = start_local(cfg)
    options = deployment_options(cfg.serve, 1, cfg.serve.model_num_cpus)  # as the router app's model deployment
    direct_app = HFSpecialists.options(name="HFSpecialistsDirect", **options).bind(
        cfg.inference.model_dump(), str(work / "models" / "base"),
        {n: str(work / "adapters" / n) for n in SPECIALISTS})
    serve.run(direct_app, name="direct", route_prefix="/direct")
    direct_body = {"messages": MESSAGES, "adapter": "neurodivergent", "sampling": SAMPLING}
    paths = {"router": http_caller(f"{url}/v1/chat/completions", {
                 "model": cfg.serve.router_model, "messages": MESSAGES, "temperature": 0.0, "max_tokens": 8,
                 "seed": 0}),
             "direct HTTP": http_caller(f"{url}/direct", direct_body),
             "direct handle": handle_caller(serve.get_deployment_handle("HFSpecialistsDirect", "direct"),
                                            direct_body)}
    for caller in paths.values():  # warm-up, and a check that every path answers
        run_load(caller, 1, 10)
    modes = {"sequential": 1, f"{args.clients} clients": args.clients}
    loads = [os.getloadavg()[0]]
    samples = {(mode, path): ([], 0.0) for mode in modes for path in paths}
    for r in range(args.rounds):
        for mode, clients in modes.items():
            for path in (list(paths) if r % 2 == 0 else list(reversed(paths))):
                latencies, wall = run_load(paths[path], clients, args.requests)
                done, total = samples[mode, path]
                samples[mode, path] = (done + latencies, total + wall)
        loads.append(os.getloadavg()[0])
        console.print(f"round {r + 1}/{args.rounds} done (load average {loads[-1]:.1f} on {os.cpu_count()} CPUs)")
    serve.shutdown()

    results, rows = {}, []
    for mode in modes:
        for path in paths:
            latencies, wall = samples[mode, path]
            results.setdefault(mode, {})[path] = {
                "requests": len(latencies), "p50_ms": 1000 * statistics.median(latencies),
                "p99_ms": 1000 * percentile(latencies, 0.99), "requests_per_s": len(latencies) / wall}
        router = results[mode]["router"]
        for path in paths:
            m = results[mode][path]
            rows.append((f"{mode} / {path}", m["requests"], m["p50_ms"], m["p99_ms"], m["requests_per_s"]))
        for baseline in BASELINES:
            direct = results[mode][baseline]
            added = {q: router[f"{q}_ms"] - direct[f"{q}_ms"] for q in ("p50", "p99")}
            ratio = router["requests_per_s"] / direct["requests_per_s"]
            results[mode][f"router - {baseline}"] = {"added_ms": added, "throughput_ratio": ratio}
            rows.append((f"{mode} / router - {baseline}", "", added["p50"], added["p99"], f"x{ratio:.2f}"))
    console.print(summary_table("router vs direct specialist deployment (tiny model, 8 greedy tokens)",
                                ["path", "requests", "p50 ms", "p99 ms", "req/s"], rows))
    target = all(results[m][f"router - {BASELINES[0]}"]["added_ms"]["p50"] <= 5
                 and results[m][f"router - {BASELINES[0]}"]["added_ms"]["p99"] <= 15 for m in modes)
    console.print(f"target (router adds <= 5 ms at p50 and <= 15 ms at p99): {'met' if target else 'NOT met'}; "
                  f"1-min load average {min(loads):.1f}..{max(loads):.1f} on {os.cpu_count()} CPUs")
    out = atomic_write_json(ROOT / "benchmarks" / "results" / "bench_serve.json",
                            {"args": vars(args), "results": results, "target_met": target,
                             "load_average": loads, "cpus": os.cpu_count()})
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
