"""What the ensemble router costs: latency and throughput through the router against calling the specialist
deployment directly, in one run, with the same model work per request; and the router with the vllm backend against
its peer, vLLM's own OpenAI-compatible server with the same model and LoRA adapters.

Run: `python benchmarks/bench_serve.py [--requests 200] [--clients 16] [--rounds 3] [--parts direct peer] [--haproxy]
[--without-engine-metrics]`
Builds a tiny base model and two random-init LoRA specialists under benchmarks/results/serve_work, deploys the
router app (hf backend) and, as a second application at /direct, the same `HFSpecialists` deployment on its own;
then sends the same greedy, 8-token requests three ways: through the router (validation, profile inference from
the student's words, routing, online grading of the configured share), straight to the model deployment over
HTTP (the same proxy: the difference is the router's hop and work), and through a Serve handle from this
process (no HTTP at all). Sequential and with `--clients` concurrent clients, in alternating rounds (the host's
load drifts); prints p50 / p99 / requests/s and the router's added latency against both direct paths, and the
host's load average over the run (on a shared host every figure moves with it), writes
benchmarks/results/bench_serve.json. Target (against direct HTTP): +5 ms at p50, +15 ms at p99.

The peer part builds the demo-size model (benchmarks/demo_model.py) and two random rank-16 adapters, deploys the
router app with `serve.backend=vllm` twice (Ray Serve LLM, multi-LoRA, as a deployment; and with
`serve.vllm_in_router`, the engine in the router's replica) and starts `python -m vllm.entrypoints.openai.api_server
--enable-lora --lora-modules ...` with the same engine settings at the niceness of Ray's workers, then sends the same
greedy 8-token request for one adapter to the three, in rotating order `--rounds` times, with 1 and `--clients`
clients. Goal: the router adds at most 5 ms at p50 and keeps at least 0.9× the server's requests/s with `--clients`
clients; the rows go to benchmarks/results/summary.json. `--haproxy`: behind Ray Serve's HAProxy ingress, which
forwards HTTP to the router replicas' own servers, instead of Serve's Python proxy. `--without-engine-metrics`: also
the engine in the router without Serve LLM's engine metrics (`serve.engine_metrics=false`); `--with-vllm-lora-ops`:
also the engine in the router with vLLM's own CPU LoRA ops (`inference.vllm_cpu_lora=vllm`).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import peer  # noqa: E402
from demo_model import build_demo_size_model  # noqa: E402

from parallel_r1.base_model.stage import build_base_model  # noqa: E402
from parallel_r1.config import BaseModelConfig, load_config  # noqa: E402
from parallel_r1.console import console, summary_table  # noqa: E402
from parallel_r1.data.io import atomic_write_json  # noqa: E402
from tests.support.adapters import promote, random_adapter  # noqa: E402

SPECIALISTS = ("neurodivergent", "prior_trauma_recovery")
MESSAGES = [{"role": "user", "content": "No analogies please, what literally happens when a loop runs?"}]
# The target is against the first: the same HTTP front door; the handle also drops HTTP and the proxy.
BASELINES = ("direct HTTP", "direct handle")
RAY_WORKER_NICENESS = 15
SAMPLING = {"temperature": 0.0, "max_tokens": 8, "n": 1, "top_p": 1.0, "seed": 0}
TINY = BaseModelConfig(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=1, max_seq_len=64, vocab_size=512,
                       corpus_dialogues=60, max_steps=150, batch_size=8, learning_rate=1e-2)


def prepare(work: Path, demo_size: bool = False) -> Path:
    """A run directory with a base model (tiny, or the demo-size one) and two specialists (built once, reused)."""
    base = work / "models" / "base"
    if demo_size and not (base / "config.json").exists():
        build_demo_size_model(base)
    elif not demo_size:
        build_base_model(TINY, base, progress=False)
    for seed, name in enumerate(SPECIALISTS):
        if not (work / "adapters" / name / "adapter_config.json").exists():
            random_adapter(base, work / "adapters" / name, seed, r=16 if demo_size else 8)
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


class VLLMServer:
    """vLLM's own OpenAI-compatible server in its own process group, with the engine settings of our vllm backend
    (`build_llm_backend`): float32, the KV cache in bytes, no chunked prefill, every adapter resident."""

    def __init__(self, work: Path, inference, port: int):
        adapters = [f"{n}={work / 'adapters' / n}" for n in SPECIALISTS]
        self.url = f"http://127.0.0.1:{port}"
        self.log = work / "vllm_server.log"
        # At the niceness of Ray's workers (RAY_worker_niceness, 15 by default), which ours run at: both sides then
        # yield the same way to the load generator in this process.
        self.argv = ["nice", "-n", str(RAY_WORKER_NICENESS), sys.executable, "-m", "vllm.entrypoints.openai.api_server",
                     "--model", str(work / "models" / "base"), "--dtype", inference.dtype,
                     "--kv-cache-memory-bytes", str(inference.kv_cache_memory_bytes),
                     "--no-enable-chunked-prefill", "--enable-lora", "--max-lora-rank", str(inference.max_lora_rank),
                     "--max-loras", str(len(SPECIALISTS)), "--lora-modules", *adapters,
                     "--host", "127.0.0.1", "--port", str(port), "--disable-uvicorn-access-log"]

    def __enter__(self) -> VLLMServer:
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        started = time.perf_counter()
        while time.perf_counter() - started < 600:
            if self.proc.poll() is not None:
                tail = self.log.read_text().splitlines()[-15:]
                raise RuntimeError(f"vLLM's server exited with {self.proc.returncode}:\n" + "\n".join(tail))
            try:
                if httpx.get(f"{self.url}/v1/models", timeout=5).status_code == 200:
                    self.start_s = time.perf_counter() - started
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(1)
        self.__exit__()
        raise TimeoutError(f"vLLM's server did not answer within 600 s; see {self.log}")

    def __exit__(self, *exc) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def figures(latencies: list[float], wall: float) -> dict:
    return {"requests": len(latencies), "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * percentile(latencies, 0.99), "requests_per_s": len(latencies) / wall}


def direct_part(args, work: Path, port: int) -> dict:
    """The router (hf backend) against the same model deployment called directly; the figures."""
    from ray import serve

    from parallel_r1.serve.deployment import deployment_options
    from parallel_r1.serve.hf_backend import HFSpecialists
    from parallel_r1.serve.stage import start_local

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
    samples = {(mode, path): ([], 0.0) for mode in modes for path in paths}
    for r in range(args.rounds):
        for mode, clients in modes.items():
            for path in (list(paths) if r % 2 == 0 else list(reversed(paths))):
                latencies, wall = run_load(paths[path], clients, args.requests)
                done, total = samples[mode, path]
                samples[mode, path] = (done + latencies, total + wall)
        console.print(f"direct part: round {r + 1}/{args.rounds} done (load average {os.getloadavg()[0]:.1f})")
    for app in (cfg.serve.app_name, "direct"):
        serve.delete(app)

    results, rows = {}, []
    for mode in modes:
        for path in paths:
            results.setdefault(mode, {})[path] = figures(*samples[mode, path])
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
    console.print(f"target (router adds <= 5 ms at p50 and <= 15 ms at p99): {'met' if target else 'NOT met'}")
    return {"results": results, "target_met": target}


class Side(NamedTuple):
    """One of our sides: what the run calls it, its serve.vllm_in_router, serve.engine_metrics and
    inference.vllm_cpu_lora, and what its summary rows add to the benchmark's name."""

    label: str
    in_router: bool
    engine_metrics: bool
    suffix: str
    lora_ops: str = "grouped"


OURS = {"ours": Side("router + Serve LLM", False, True, ""),
        "in_router": Side("router running the engine", True, True, ", engine in the router"),
        "in_router_quiet": Side("router running the engine without its metrics", True, False,
                                ", engine in the router without its metrics"),
        "in_router_vllm_ops": Side("router running the engine with vLLM's CPU LoRA ops", True, True,
                                   ", engine in the router, vLLM's CPU LoRA ops", "vllm")}
OPTIONAL = {"in_router_quiet": "without_engine_metrics", "in_router_vllm_ops": "with_vllm_lora_ops"}
PEER_LABEL = "vLLM's server"


def rotate(runs: dict[str, Callable[[], dict]], rounds: int) -> dict[str, list[dict]]:
    """`rounds` figures of each side, the order rotated every round so that the host's load drift hits all alike."""
    names, got = list(runs), {name: [] for name in runs}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            got[name].append(runs[name]())
    return got


def peer_part(args, work: Path, port: int) -> tuple[dict, list[dict]]:
    """The router (vllm backend; the Serve LLM deployment, and the engine in the router's replica) against vLLM's
    own server on the demo-size model: the figures and summary rows."""
    from ray import serve

    from parallel_r1.serve.stage import start_local

    def config(app: str, side: Side):
        return load_config(None, {"workdir": str(work), "ray": {"num_cpus": 8}, "serve": {
            "port": port, "backend": "vllm", "app_name": app, "route_prefix": f"/{app}", "add_system_prompt": False,
            "router_num_cpus": 0.1, "vllm_in_router": side.in_router, "engine_metrics": side.engine_metrics},
            "inference": {"engine": "vllm", "max_lora_rank": 16, "vllm_cpu_lora": side.lora_ops}})

    ours = [side for side in OURS if side not in OPTIONAL or getattr(args, OPTIONAL[side])]
    urls, start_s = {}, {}
    for side in ours:
        started = time.perf_counter()
        urls[side] = start_local(config(f"bench_{side}", OURS[side]))
        start_s[side] = time.perf_counter() - started
    body = {"model": SPECIALISTS[0], "messages": MESSAGES, "temperature": 0.0, "max_tokens": 8, "seed": 0}
    with VLLMServer(work, load_config(None, {"inference": {"max_lora_rank": 16}}).inference, free_port()) as server:
        urls["peer"], start_s["peer"] = server.url, server.start_s
        callers = {k: http_caller(f"{u}/v1/chat/completions", body) for k, u in urls.items()}
        replies = {k: httpx.post(f"{u}/v1/chat/completions", json=body, timeout=120).json()["choices"][0]
                   ["message"]["content"].strip() for k, u in urls.items()}
        for caller in callers.values():
            run_load(caller, 1, 10)

        def measure(side: str, clients: int) -> dict:
            """One run's figures, with the CPU the serving side's processes spent per request (all of our Ray
            below this process but the vLLM server, both apps; the server's process group), and by process."""
            vllm = server.proc.pid
            root, exclude = (vllm, None) if side == "peer" else (os.getpid(), vllm)
            before, server_before = peer.tree_cpu_seconds(root, exclude), peer.cpu_seconds(vllm)
            out = figures(*run_load(callers[side], clients, args.peer_requests))
            spent = peer.cpu_spent(before, peer.tree_cpu_seconds(root, exclude))
            if side == "peer":
                spent["api_server"] = peer.cpu_seconds(vllm) - server_before
            ms = {k: 1000 * v / out["requests"] for k, v in spent.items()}
            return {**out, "cpu_ms_per_request": sum(ms.values()),
                    "cpu_ms_by_process": dict(sorted(ms.items(), key=lambda kv: -kv[1])[:8])}

        runs = {}
        for clients in (1, args.clients):
            runs[clients] = rotate({side: (lambda s=side, c=clients: measure(s, c)) for side in urls}, args.rounds)
            console.print(f"peer part: {clients} client(s) done (load average {os.getloadavg()[0]:.1f})")
    for side in ours:
        serve.delete(f"bench_{side}")
    rows = []
    for clients, got in runs.items():
        most = clients == args.clients
        ingress = ", HAProxy ingress" if args.haproxy else ""
        for side in ours:
            where = f"serve vLLM demo model{OURS[side].suffix}{ingress}, {clients} client{'s' if clients > 1 else ''}"
            cpu_ms = statistics.median(f["cpu_ms_per_request"] for f in got[side])
            limit = {"value": 1000 * os.cpu_count() / cpu_ms, "unit": "requests/s",
                     "note": f"{os.cpu_count()} CPUs ÷ {cpu_ms:.1f} CPU ms per request of ours"}
            for key, unit, goal in (("p50_ms", "ms p50", peer.Goal("difference", "<=", 5)), ("p99_ms", "ms p99", None),
                                    ("requests_per_s", "requests/s", peer.Goal("ratio", ">=", 0.9) if most else None),
                                    ("cpu_ms_per_request", "CPU ms/request", None)):
                rows.append(peer.row(f"{where}, {unit}", [f[key] for f in got[side]], [f[key] for f in got["peer"]],
                                     unit, goal, limit if key == "requests_per_s" and most else None))
    result = {"runs": {str(c): got for c, got in runs.items()}, "replies": replies,
              "same_reply": len(set(replies.values())) == 1, "start_s": start_s}
    return result, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=200, help="requests per path, per mode, per round (direct part)")
    ap.add_argument("--peer-requests", type=int, default=100, help="requests per side, per mode, per round (peer)")
    ap.add_argument("--clients", type=int, default=16, help="concurrent clients of the concurrent mode")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of the two sides")
    ap.add_argument("--parts", nargs="+", choices=("direct", "peer"), default=["direct", "peer"])
    ap.add_argument("--haproxy", action="store_true", help="Ray Serve's HAProxy ingress instead of its proxy "
                                                          "(RAY_SERVE_ENABLE_HA_PROXY=1 for the Ray this starts)")
    ap.add_argument("--without-engine-metrics", action="store_true",
                    help="a further side: the engine in the router with serve.engine_metrics=false")
    ap.add_argument("--with-vllm-lora-ops", action="store_true",
                    help="a further side: the engine in the router with inference.vllm_cpu_lora=vllm")
    args = ap.parse_args()
    if args.haproxy:
        os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "1"
    machine = peer.Machine()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Serve's logging setup would log every request
    from ray import serve

    work = ROOT / "benchmarks" / "results" / "serve_work"
    port = free_port()
    out = {"args": vars(args), "cpus": os.cpu_count(), "load_before": machine.load_before}
    if "direct" in args.parts:
        out["direct"] = direct_part(args, prepare(work), port)
    if "peer" in args.parts:
        out["peer"], rows = peer_part(args, prepare(work / "vllm", demo_size=True), port)
        peer.print_table("router + Serve (vllm backend) against vLLM's OpenAI server (median of rounds, min–max)",
                         {"rows": rows})
        starts = out["peer"]["start_s"]
        labels = {**{k: side.label for k, side in OURS.items()}, "peer": PEER_LABEL}
        console.print(f"same greedy reply from all: {out['peer']['same_reply']}; ready after "
                      + ", ".join(f"{start:.0f} s ({labels[k]})" for k, start in starts.items()))
        console.print(f"wrote {peer.record(rows, machine)}")
    serve.shutdown()
    out["load_after"] = list(os.getloadavg())
    console.print(f"1-min load average {out['load_before'][0]:.1f} before, {out['load_after'][0]:.1f} after, on "
                  f"{os.cpu_count()} CPUs")
    console.print(f"wrote {atomic_write_json(ROOT / 'benchmarks' / 'results' / 'bench_serve.json', out)}")


if __name__ == "__main__":
    main()
