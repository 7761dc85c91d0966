"""Fine-tuning makespan: six LoRA SFT jobs at once on Ray Train against the same six one after another,
and one job through Ray Train against the same SFT in a plain process (the overhead of Ray Train).

Run: `python benchmarks/bench_finetune.py [--per-batch 35] [--epochs 3] [--model MODEL]` (about 10 minutes on 2
cores for the demo model). Builds the demo-size base model (or, with `--model smollm2-135m-instruct`, converts the
real one) and six procedural batches under benchmarks/results/finetune_work/<model>, prints
absolute times and both ratios, and writes benchmarks/results/bench_finetune.json.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.demo_model import MODELS, bench_model  # noqa: E402
from parallel_r1.config import load_config  # noqa: E402
from parallel_r1.config.workers import SFTJob  # noqa: E402
from parallel_r1.console import console, summary_table  # noqa: E402
from parallel_r1.data.io import atomic_write_json, read_jsonl  # noqa: E402
from parallel_r1.finetune.sft import run_sft_locally  # noqa: E402
from parallel_r1.finetune.stage import run_finetune  # noqa: E402
from parallel_r1.ray_runtime import ensure_ray  # noqa: E402
from tests.support.batches import BATCHES, write_batches  # noqa: E402


def finetune_makespan(workdir: Path, base: Path, overrides: dict) -> tuple[float, dict]:
    shutil.rmtree(workdir / "adapters", ignore_errors=True)
    shutil.rmtree(workdir / "ray_results", ignore_errors=True)
    (workdir / "finetune_manifest.json").unlink(missing_ok=True)
    cfg = load_config(overrides={"workdir": str(workdir), "base_model.path": str(base), **overrides})
    started = time.perf_counter()
    jobs = run_finetune(cfg)
    makespan = time.perf_counter() - started
    bad = {n: j.error for n, j in jobs.items() if j.status != "succeeded"}
    if bad:
        raise RuntimeError(f"jobs failed during the benchmark: {bad}")
    return makespan, {n: j.metrics for n, j in jobs.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-batch", type=int, default=35, help="dialogues per batch (the demo's batches: 30-40)")
    ap.add_argument("--epochs", type=float, default=3)
    ap.add_argument("--cpus-per-worker", type=float, default=0.25)
    ap.add_argument("--max-length", type=int, default=256, help="tokens per training example")
    ap.add_argument("--model", choices=MODELS, default="demo", help="the demo-size model or a real pretrained one")
    args = ap.parse_args()

    work = ROOT / "benchmarks" / "results" / "finetune_work" / args.model
    base = work / "models" / "base"
    params = bench_model(args.model, base)
    write_batches(work, per_batch=args.per_batch)
    console.print(ensure_ray(load_config(overrides={"ray.num_cpus": 2}).ray))
    common = {"finetune.epochs": args.epochs, "finetune.max_length": args.max_length, "finetune.cpus_per_worker":
              args.cpus_per_worker}

    concurrent, metrics = finetune_makespan(work, base, common)
    sequential, _ = finetune_makespan(work, base, {**common, "finetune.max_concurrent_jobs": 1})

    ft = load_config(overrides=common).finetune
    name = BATCHES[0]
    train_file = work / "batches" / f"{name}.jsonl"
    job = replace(SFTJob.for_batch(name, train_file, str(base), ft, len(read_jsonl(train_file))), torch_threads=1)
    started = time.perf_counter()
    plain_metrics = run_sft_locally(job, work / "plain_adapter")
    plain = time.perf_counter() - started
    one_ray, one_metrics = finetune_makespan(work, base, {**common, "finetune.batches": [name]})

    m = one_metrics[name]
    results = {
        "six_concurrent_s": concurrent, "six_sequential_s": sequential, "makespan_ratio": concurrent / sequential,
        "one_job_ray_s": one_ray, "one_job_plain_s": plain, "overhead_ratio": one_ray / plain,
        "one_job_in_worker_s": m["wall_time_s"], "one_job_fit_s": m["fit_wall_time_s"],
        "plain_train_s": plain_metrics["wall_time_s"],
        "per_job_train_loss": {n: x["train_loss"] for n, x in metrics.items()},
    }
    rows = [
        ("six jobs, concurrent on Ray Train", concurrent, ""),
        ("six jobs, one after another on Ray Train", sequential, f"makespan ratio {concurrent / sequential:.2f}"),
        ("one job, plain process (TRL + PEFT)", plain, ""),
        ("one job, Ray Train", one_ray, f"overhead ratio {one_ray / plain:.2f}×"),
        ("  of which: inside the worker (load + train + save)", m["wall_time_s"], ""),
        ("  of which: TorchTrainer.fit() start-up and teardown", m["fit_wall_time_s"] - m["wall_time_s"], ""),
        ("  of which: driver (Ray task, manifest, adapter copy)", one_ray - m["fit_wall_time_s"], ""),
    ]
    console.print(summary_table(f"finetune makespan (seconds; {params:,}-parameter model)", ["run", "s", "ratio"],
                                rows))
    suffix = "" if args.model == "demo" else f"_{args.model}"
    out = ROOT / "benchmarks" / "results" / f"bench_finetune{suffix}.json"
    atomic_write_json(out, {"args": vars(args), "model_params": params, "results": results})
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
