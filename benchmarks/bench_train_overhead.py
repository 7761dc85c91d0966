"""Ray Train's fixed cost per concurrent job: the demo's seven trainers (eight workers), each importing the SFT
stack and reporting once, on the stock `TorchTrainer` against parallel-r1's `torch_trainer`. The latter leaves
out the per-run DatasetManager and placement-group cleaner actors (see parallel_r1/base_model/torch_trainer.py).

Run: `python benchmarks/bench_train_overhead.py [--jobs 7] [--rounds 2]` (about 10 minutes on 2 cores)
The two kinds alternate round by round on one local Ray. Prints each makespan, the busy CPU seconds of the
machine, the ratio, and writes benchmarks/results/bench_train_overhead.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from parallel_r1.base_model.torch_trainer import torch_trainer  # noqa: E402
from parallel_r1.config import load_config  # noqa: E402
from parallel_r1.console import console, summary_table  # noqa: E402
from parallel_r1.data.io import atomic_write_json  # noqa: E402
from parallel_r1.ray_runtime import ensure_ray  # noqa: E402


def import_and_report(config: dict) -> None:
    """What an SFT worker does before its first step (the imports), then one report."""
    import ray.train
    from peft import LoraConfig  # noqa: F401
    from trl import SFTTrainer  # noqa: F401

    ray.train.report({"done": 1})


def machine_cpu_s() -> float:
    """Busy CPU seconds of the whole machine so far (/proc/stat), exited processes included."""
    user, nice, system, _idle, _iowait, irq, softirq = map(int, Path("/proc/stat").read_text().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def makespan(kind: str, jobs: int, storage: Path) -> tuple[float, float]:
    """Seconds until `jobs` concurrent trainers (the first with two workers) all end, and the CPU seconds used."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    build = TorchTrainer if kind == "stock" else torch_trainer

    def fit(i: int) -> None:
        build(import_and_report,
              scaling_config=ScalingConfig(num_workers=2 if i == 0 else 1, resources_per_worker={"CPU": 0.25}),
              run_config=RunConfig(name=f"{kind}-{i}-{time.time_ns()}", storage_path=str(storage))).fit()

    cpu, started = machine_cpu_s(), time.perf_counter()
    threads = [threading.Thread(target=fit, args=(i,)) for i in range(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, machine_cpu_s() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=7, help="concurrent trainers (the demo: six specialists + baseline)")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    console.print(ensure_ray(load_config(overrides={"ray.num_cpus": 2}).ray))
    storage = ROOT / "benchmarks" / "results" / "train_overhead_runs"
    runs: dict[str, list[tuple[float, float]]] = {"stock": [], "lean": []}
    for r in range(args.rounds):
        for kind in runs:
            runs[kind].append(makespan(kind, args.jobs, storage))
            console.print(f"round {r + 1} {kind}: {runs[kind][-1][0]:.1f} s, {runs[kind][-1][1]:.0f} CPU-s")
    mean = {k: sum(s for s, _ in v) / len(v) for k, v in runs.items()}
    ratio = mean["stock"] / mean["lean"]
    console.print(summary_table(f"{args.jobs} concurrent trainers, import + one report",
                                ["trainer", "makespans s", "CPU-s", "mean s"],
                                [[k, " / ".join(f"{s:.1f}" for s, _ in v), " / ".join(f"{c:.0f}" for _, c in v),
                                  f"{mean[k]:.1f}"] for k, v in runs.items()]))
    console.print(f"stock / lean makespan: {ratio:.2f}x")
    atomic_write_json(ROOT / "benchmarks" / "results" / "bench_train_overhead.json",
                      {"jobs": args.jobs, "runs": runs, "mean_s": mean, "stock_over_lean": ratio})


if __name__ == "__main__":
    main()
