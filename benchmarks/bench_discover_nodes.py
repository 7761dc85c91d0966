"""Discovery with a second Ray node: the actor pool on a two-node cluster (one actor per node) against the same pool
on one node and against the plain `asyncio` + `openai.AsyncOpenAI` peer, on the fixed-latency endpoint of
bench_discover, with the same dialogues in flight.

Run (root, for the network namespaces of tests/support/two_nodes.py; two loopback nodes otherwise):
`python benchmarks/bench_discover_nodes.py [--n 1000] [--latency 0.1] [--in-flight 128] [--reps 3]` (about 4 minutes
on 2 cores). Both nodes run on this machine, so the second node adds a Ray node and a network hop but no cores: the
figure is what spanning nodes costs, not what a second machine would add. Writes
benchmarks/results/bench_discover_nodes.json and two rows of benchmarks/results/summary.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import peer  # noqa: E402
from bench_discover import EndpointProcess, plain_asyncio_rate  # noqa: E402

from parallel_r1.config import load_config  # noqa: E402
from parallel_r1.console import console  # noqa: E402
from parallel_r1.data import discovery_plan  # noqa: E402
from parallel_r1.data.io import atomic_write_json  # noqa: E402
from parallel_r1.discover.pool import DiscoveryPool  # noqa: E402
from parallel_r1.ray_runtime import ensure_ray  # noqa: E402
from tests.support.two_nodes import TwoNodes  # noqa: E402

NODE_CPUS = 2  # per node; an actor asks for all of them, so two actors cannot share a node


def pool_on(actors: int, in_flight: int, base_url: str, tasks, address: str) -> tuple[float, set[str]]:
    """The pool of `actors` actors (each a whole node) with `in_flight` dialogues in all; its rate once the actors
    are up, and the nodes they ran on (Ray's state API)."""
    import ray
    from ray.util.state import list_actors

    cfg = load_config(overrides={
        "discover.backend": "openai", "discover.num_actors": actors, "discover.actor_num_cpus": NODE_CPUS,
        "discover.max_in_flight": in_flight // actors, "discover.grade": False,
        "discover.openai.base_url": base_url, "discover.openai.timeout_s": 30}).discover
    pool = DiscoveryPool(cfg, None)
    pool.start()
    ray.get([a.pid.remote() for a in pool.actors])
    nodes = {a.node_id for a in list_actors(address=address, filters=[("class_name", "=", "DiscoveryWorker"),
                                                                       ("state", "=", "ALIVE")])}
    stats = pool.run(tasks, lambda task, result: None)
    pool.shutdown()
    time.sleep(2)  # the killed actors leave the state API before the next pool counts its own
    if stats.failed:
        raise RuntimeError(f"{stats.failed} dialogues failed during the benchmark")
    return len(tasks) / stats.elapsed_s, nodes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="dialogues per run")
    ap.add_argument("--latency", type=float, default=0.1, help="seconds per endpoint call")
    ap.add_argument("--in-flight", type=int, default=128, help="dialogues in flight in all")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    machine = peer.Machine()
    tasks = discovery_plan(args.n, include_special=True, seed=11)
    runs: dict[str, list] = {"two_nodes": [], "one_node": [], "peer": [], "nodes_two": [], "nodes_one": [],
                             "calls_peer": []}
    with TwoNodes(head_cpus=NODE_CPUS, worker_cpus=NODE_CPUS) as cluster, \
            EndpointProcess(args.latency, host=cluster.head_ip) as server:
        console.print(f"two-node cluster: {cluster.mode} (head {cluster.head_ip}, worker {cluster.worker_ip}); "
                      + ensure_ray(load_config(overrides={"ray.address": cluster.head.gcs_address}).ray))
        api = load_config(overrides={"discover.backend": "openai", "discover.openai.base_url": server.base_url,
                                     "discover.openai.timeout_s": 30}).discover
        address = cluster.head.dashboard_url

        def run(kind: str) -> None:
            if kind == "peer":
                rate, calls = server.counting(lambda: plain_asyncio_rate(api, tasks, args.in_flight))
                runs["peer"].append(rate)
                runs["calls_peer"].append(calls)
            else:
                rate, nodes = pool_on(2 if kind == "two_nodes" else 1, args.in_flight, server.base_url, tasks, address)
                runs[kind].append(rate)
                runs["nodes_two" if kind == "two_nodes" else "nodes_one"].append(len(nodes))
            console.print(f"  {kind}: {runs[kind][-1]:.1f} dialogues/s")

        kinds = ["two_nodes", "one_node", "peer"]
        for rep in range(args.reps):  # rotated, so that load drift hits all three alike
            for kind in kinds[rep % 3:] + kinds[:rep % 3]:
                run(kind)
        mode = cluster.mode
    if set(runs["nodes_two"]) != {2} or set(runs["nodes_one"]) != {1}:
        raise RuntimeError(f"the actors were not placed as intended: {runs}")
    per_dialogue = max(runs["calls_peer"]) / len(tasks)
    limit = {"value": args.in_flight / args.latency / per_dialogue, "unit": "dialogues/s",
             "note": f"in flight {args.in_flight} ÷ latency {args.latency} s ÷ {per_dialogue:.2f} calls per dialogue"}
    name = f"discover {1000 * args.latency:.0f} ms × {args.in_flight}, two nodes ({mode})"
    rows = [peer.row(f"{name}, vs plain asyncio", runs["two_nodes"], runs["peer"], "dialogues/s",
                     peer.Goal("ratio", ">=", 0.8), limit),
            peer.row(f"{name}, vs the pool on one node", runs["two_nodes"], runs["one_node"], "dialogues/s", None,
                     limit)]
    peer.print_table("discover with a second node (median, min–max)", {"rows": rows})
    out = ROOT / "benchmarks" / "results" / "bench_discover_nodes.json"
    atomic_write_json(out, {"args": vars(args), "mode": mode, "runs": {k: peer.spread(v) for k, v in runs.items()}})
    console.print(f"wrote {out}; {peer.record(rows, machine)}")


if __name__ == "__main__":
    main()
