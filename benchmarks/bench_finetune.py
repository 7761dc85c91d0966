"""Fine-tuning makespan: six LoRA SFT jobs at once through the `finetune` stage on Ray Train against its peer, six plain
TRL processes (`plain_trl_sft.py`: `SFTTrainer` + PEFT `LoraConfig`) started together on the same cores.

Run: `python benchmarks/bench_finetune.py [--per-batch 16] [--epochs 2] [--reps 3] [--model MODEL] [--self]
[--unpacked]`
(about 7 minutes on 2 idle cores for the demo model). Builds the demo-size base model (or, with `--model
smollm2-135m-instruct`, converts the real one) and six procedural batches under
benchmarks/results/finetune_work/<model>. Both sides take their settings from the same `SFTJob`s (base model, LoRA
r/alpha/dropout/target modules, epochs, learning rate, batch size, max_length, checkpoint steps, torch threads = the
job's, from cpus_per_worker) and train the same examples: the peer gets each batch as the training windows our job
makes of it (written out as chat records), so both train the same tokens. The two alternate `--reps` times. Prints
the medians (min–max), where each side's time goes (ours: inside the Ray Train workers, `TorchTrainer.fit()`
start-up and teardown, the driver; the peer: imports, build, train, save, interpreter), the CPU seconds of each side
by process kind, and the physical limit: 6 × parameters × tokens trained ÷ the FLOP/s of a float32 matmul on all
cores, measured at the start. Ray's own start is timed once and is not in our makespan. `--self` also runs the six
jobs one after another and one job on Ray Train against the same SFT in this process; `--unpacked` also runs ours
with a Ray Train run per job (`finetune.pack_jobs: false`) next to each run of ours, in alternating order. Writes
benchmarks/results/bench_finetune.json and two rows (makespan, CPU seconds) of benchmarks/results/summary.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import peer  # noqa: E402

from benchmarks.demo_model import MODELS, bench_model  # noqa: E402
from parallel_r1.config import load_config  # noqa: E402
from parallel_r1.config.workers import SFTJob  # noqa: E402
from parallel_r1.console import console, summary_table  # noqa: E402
from parallel_r1.data.context import token_counter  # noqa: E402
from parallel_r1.data.io import atomic_write_json, atomic_write_jsonl, read_jsonl  # noqa: E402
from parallel_r1.finetune.sft import run_sft_locally  # noqa: E402
from parallel_r1.finetune.stage import run_finetune  # noqa: E402
from parallel_r1.finetune.windows import training_windows  # noqa: E402
from parallel_r1.ray_runtime import ensure_ray  # noqa: E402
from tests.support.batches import BATCHES, write_batches  # noqa: E402

PLAIN = Path(__file__).with_name("plain_trl_sft.py")


def matmul_flops(seconds: float = 3.0, n: int = 1024) -> float:
    """FLOP/s of a float32 n×n matmul on every core of this machine (torch's threads), the best of 1 s windows."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best, until = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < until:
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < 1.0:
            a @ b
            count += 1
        best = max(best, 2 * n**3 * count / (time.perf_counter() - started))
    torch.set_num_threads(threads)
    return best


class CpuByKind:
    """CPU seconds spent during a `with` block by this process and each kind of process below it (Ray's included),
    from /proc every `every` s (a process that ends between two looks loses at most that interval's CPU)."""

    def __init__(self, every: float = 0.5):
        self.every, self.seen, self.base = every, {}, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _kind(self, pid: int) -> str:
        """The process's title without its method (`ray::TrainController.run`), or its script's name. A process
        keeps the last kind it was seen with when it ends (no command line) or its actor goes idle (`ray::IDLE`)."""
        before = self.seen.get(pid, ("ended before it was seen",))[0]
        try:
            args = [a for a in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
                    if a and not a.startswith("-")]
        except OSError:
            args = []
        if not args:
            return before
        name = Path(args[1] if Path(args[0]).name.startswith("python") and len(args) > 1 else args[0]).name
        kind = name.split(".")[0] or name
        return before if kind == "ray::IDLE" and before.startswith("ray::") else kind

    def _look(self) -> dict[int, tuple[str, float]]:
        found = {pid: (self._kind(pid), peer.cpu_seconds(pid)) for pid in peer.descendants(os.getpid())}
        found[os.getpid()] = ("driver (this process)", peer.cpu_seconds(os.getpid()))
        return found

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.seen.update(self._look())

    def __enter__(self) -> CpuByKind:
        self.base = {pid: cpu for pid, (_, cpu) in self._look().items()}
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.seen.update(self._look())
        self.by_kind: dict[str, float] = {}
        for pid, (kind, cpu) in self.seen.items():
            self.by_kind[kind] = self.by_kind.get(kind, 0.0) + cpu - self.base.get(pid, 0.0)


def windowed_files(files: dict[str, Path], base: Path, max_length: int, out: Path) -> dict[str, Path]:
    """Each training file as the examples our SFT job trains on (`training_windows`: a teacher turn past
    `max_length` gets its own window, earlier turns as context with `"weight": 0`), for the peer to train on too."""
    from transformers import AutoTokenizer

    count = token_counter(AutoTokenizer.from_pretrained(base))
    return {name: atomic_write_jsonl(out / f"{name}.jsonl", [{"messages": w} for r in read_jsonl(path)
                                                           for w in training_windows(r["messages"], count, max_length)])
            for name, path in files.items()}


def finetune_makespan(workdir: Path, base: Path, overrides: dict) -> tuple[float, dict]:
    """`run_finetune` on a run directory cleared of the last run's adapters, checkpoints, manifest and registry."""
    for folder in ("adapters", "ray_results", "registry"):
        shutil.rmtree(workdir / folder, ignore_errors=True)
    (workdir / "finetune_manifest.json").unlink(missing_ok=True)
    cfg = load_config(overrides={"workdir": str(workdir), "base_model.path": str(base), **overrides})
    started = time.perf_counter()
    jobs = run_finetune(cfg)
    makespan = time.perf_counter() - started
    bad = {n: j.error for n, j in jobs.items() if j.status != "succeeded"}
    if bad:
        raise RuntimeError(f"jobs failed during the benchmark: {bad}")
    return makespan, {n: j.metrics for n, j in jobs.items()}


def plain_makespan(jobs: dict[str, SFTJob], out: Path) -> tuple[float, dict]:
    """The peer: one `plain_trl_sft.py` process per job, all started at once; the seconds until the last exits."""
    shutil.rmtree(out, ignore_errors=True)
    procs = {}
    started = time.perf_counter()
    for name, job in jobs.items():
        lora = job.lora
        modules = lora.target_modules if isinstance(lora.target_modules, str) else ",".join(lora.target_modules)
        cmd = [sys.executable, str(PLAIN), "--base-model", job.base_model, "--train-file", job.train_file,
               "--output-dir", str(out / name), "--epochs", str(job.epochs), "--learning-rate", str(job.learning_rate),
               "--batch-size", str(job.per_device_batch_size), "--grad-accum", str(job.gradient_accumulation_steps),
               "--max-length", str(job.max_length), "--lora-r", str(lora.r), "--lora-alpha", str(lora.alpha),
               "--lora-dropout", str(lora.dropout), "--target-modules", modules, "--save-steps", str(job.save_steps),
               "--seed", str(job.seed), "--threads", str(job.torch_threads or 1),
               "--metrics", str(out / f"{name}.json")]
        procs[name] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    errors = {name: p.communicate()[1] for name, p in procs.items()}
    makespan = time.perf_counter() - started
    bad = {name: errors[name][-2000:] for name, p in procs.items() if p.returncode != 0}
    if bad:
        raise RuntimeError(f"plain TRL processes failed: {bad}")
    return makespan, {name: json.loads((out / f"{name}.json").read_text()) for name in jobs}


def _median(values) -> float:
    return statistics.median(list(values))


def ours_phases(makespan: float, metrics: dict) -> dict:
    """Where one six-job run's time went, from the jobs' metrics (medians over the jobs)."""
    fit = [m["fit_wall_time_s"] for m in metrics.values()]
    return {"worker_build_s": _median(m["wall_time_s"] - m["train_time_s"] for m in metrics.values()),
            "worker_train_s": _median(m["train_time_s"] for m in metrics.values()),
            "fit_startup_teardown_s": _median(m["fit_wall_time_s"] - m["wall_time_s"] for m in metrics.values()),
            "driver_s": makespan - max(fit)}


def peer_phases(makespan: float, metrics: dict) -> dict:
    """Where one peer run's time went, from what each process timed itself (medians over the processes)."""
    inside = [m["import_s"] + m["build_s"] + m["train_s"] + m["save_s"] for m in metrics.values()]
    return {"import_s": _median(m["import_s"] for m in metrics.values()),
            "build_s": _median(m["build_s"] for m in metrics.values()),
            "train_s": _median(m["train_s"] for m in metrics.values()),
            "save_s": _median(m["save_s"] for m in metrics.values()),
            "interpreter_and_exit_s": makespan - max(inside)}


def self_comparison(work: Path, base: Path, common: dict, concurrent: float) -> tuple[dict, list]:
    """`--self`: six jobs one after another on Ray Train, and one job on Ray Train against the same SFT in this
    process."""
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
    results = {"six_sequential_s": sequential, "makespan_ratio": concurrent / sequential, "one_job_ray_s": one_ray,
               "one_job_plain_s": plain, "overhead_ratio": one_ray / plain, "one_job_in_worker_s": m["wall_time_s"],
               "one_job_fit_s": m["fit_wall_time_s"], "plain_train_s": plain_metrics["wall_time_s"]}
    rows = [("six jobs, one after another on Ray Train", sequential,
             f"six at once: {concurrent / sequential:.2f} × this"),
            ("one job, in this process (run_sft_locally)", plain, ""),
            ("one job, Ray Train", one_ray, f"{one_ray / plain:.2f} × in this process"),
            ("  of which: inside the worker (load + train)", m["wall_time_s"], ""),
            ("  of which: TorchTrainer.fit() start-up and teardown", m["fit_wall_time_s"] - m["wall_time_s"], ""),
            ("  of which: driver (manifest, adapter copy, registry)", one_ray - m["fit_wall_time_s"], "")]
    return results, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-batch", type=int, default=16, help="dialogues per batch (the demo's batches: 30-40)")
    ap.add_argument("--epochs", type=float, default=2)
    ap.add_argument("--cpus-per-worker", type=float, default=0.25)
    ap.add_argument("--max-length", type=int, default=256, help="tokens per training example")
    ap.add_argument("--reps", type=int, default=3, help="alternating repetitions of ours and the peer")
    ap.add_argument("--model", choices=MODELS, default="demo", help="the demo-size model or a real pretrained one")
    ap.add_argument("--self", dest="self_runs", action="store_true",
                    help="also six jobs one after another, and one job on Ray Train against in-process")
    ap.add_argument("--unpacked", action="store_true",
                    help="also ours with one Ray Train run per job (finetune.pack_jobs: false) beside each run of ours")
    args = ap.parse_args()
    machine = peer.Machine()
    flops = matmul_flops()

    work = ROOT / "benchmarks" / "results" / "finetune_work" / args.model
    base = work / "models" / "base"
    bench_model(args.model, base)
    write_batches(work, per_batch=args.per_batch)
    started = time.perf_counter()
    console.print(ensure_ray(load_config().ray))
    ray_start = time.perf_counter() - started
    common = {"finetune.epochs": args.epochs, "finetune.max_length": args.max_length, "finetune.cpus_per_worker":
              args.cpus_per_worker, "finetune.pack_jobs": True}
    ft = load_config(overrides=common).finetune
    files = {name: work / "batches" / f"{name}.jsonl" for name in BATCHES}
    windows = windowed_files(files, base, args.max_length, work / "plain_trl_batches")
    jobs = {name: replace(SFTJob.for_batch(name, path, str(base), ft, len(read_jsonl(path))),
                          train_file=str(windows[name])) for name, path in files.items()}

    runs: dict[str, list] = {"ours": [], "peer": [], "unpacked": []}

    def one_of_ours(side: str, overrides: dict) -> float:
        with CpuByKind() as cpu:
            makespan, metrics = finetune_makespan(work, base, overrides)
        runs[side].append({"makespan_s": makespan, "phases": ours_phases(makespan, metrics), "jobs": metrics,
                           "cpu_s": cpu.by_kind})
        return makespan

    def ours() -> float:
        if not args.unpacked:
            return one_of_ours("ours", common)
        order = [("ours", common), ("unpacked", {**common, "finetune.pack_jobs": False})]
        if len(runs["ours"]) % 2:
            order.reverse()
        figures = {side: one_of_ours(side, overrides) for side, overrides in order}
        return figures["ours"]

    def theirs() -> float:
        with CpuByKind() as cpu:
            makespan, metrics = plain_makespan(jobs, work / "plain_trl")
        runs["peer"].append({"makespan_s": makespan, "phases": peer_phases(makespan, metrics), "jobs": metrics,
                             "cpu_s": cpu.by_kind})
        return makespan

    mine, their = peer.alternate(ours, theirs, args.reps)
    first_ours, first_peer = runs["ours"][0]["jobs"], runs["peer"][0]["jobs"]
    tokens = sum(m["tokens_per_epoch"] * args.epochs for m in first_ours.values())
    params = next(iter(first_peer.values()))["params"]  # the base model's and one adapter's
    least = 6 * params * tokens / flops
    limit = {"value": least, "unit": "s",
             "note": f"6 × {params:,} parameters × {tokens:,.0f} tokens (six jobs, {args.epochs:g} epochs) ÷ "
                     f"{flops / 1e9:.1f} GFLOP/s (float32 matmul, {os.cpu_count()} cores)"}
    longer = "" if args.epochs == 2 else f", {args.epochs:g} epochs"  # a row of its own beside make bench's
    name = f"finetune six LoRA jobs at once, {args.model}{longer}: Ray Train vs plain TRL processes"
    cpu = {side: [sum(r["cpu_s"].values()) for r in runs[side]] for side in runs}
    rows = [peer.row(name, mine, their, "s", peer.Goal("ratio", "<=", 1.2), limit),
            peer.row(f"{name}, CPU s", cpu["ours"], cpu["peer"], "CPU s", None)]
    if args.unpacked:
        alone = f"finetune six LoRA jobs at once, {args.model}{longer}: one Ray Train run vs a run per job"
        rows += [peer.row(alone, mine, [r["makespan_s"] for r in runs["unpacked"]], "s", None),
                 peer.row(f"{alone}, CPU s", cpu["ours"], cpu["unpacked"], "CPU s", None)]
    runs = {side: found for side, found in runs.items() if found}
    phases = {side: {k: _median(r["phases"][k] for r in runs[side]) for k in runs[side][0]["phases"]}
              for side in runs}
    peer_tokens = sum(m["tokens_per_epoch"] * args.epochs for m in first_peer.values())
    table = [("ours: six jobs at once, finetune on Ray Train (makespan)", rows[0]["ours"],
              f"{rows[0]['ratio']:.2f} × the peer"),
             *[(f"  median job: {k}", v, "") for k, v in phases["ours"].items()],
             ("peer: six plain TRL processes at once (makespan)", rows[0]["peer"], ""),
             *[(f"  median process: {k}", v, "") for k, v in phases["peer"].items()],
             ("Ray's start (once, not in the makespan)", ray_start, ""),
             ("physical limit (6 N T ÷ FLOP/s)", least, limit["note"])]
    console.print(summary_table(f"finetune makespan, s (medians of {args.reps}; tokens trained: ours {tokens:,.0f}, "
                                f"peer {peer_tokens:,.0f})", ["run", "s", "note"], table))
    peer.print_table("finetune against six plain TRL processes (median, min–max)", {"rows": rows})
    by_kind = {}
    for side in runs:
        by_kind[side] = {k: _median(r["cpu_s"].get(k, 0.0) for r in runs[side]) for k in runs[side][0]["cpu_s"]}
        top = ", ".join(f"{k} {v:.1f}" for k, v in sorted(by_kind[side].items(), key=lambda kv: -kv[1]) if v >= 0.5)
        console.print(f"{side}: CPU s by process kind (medians): {top}")
    results = {"ours": runs["ours"], "peer": runs["peer"], "phases": phases, "cpu_s_by_kind": by_kind,
               "ray_start_s": ray_start,
               "matmul_flops": flops, "params": params, "tokens": tokens, "peer_tokens": peer_tokens, "limit": limit,
               "jobs": {name: {"examples": first_ours[name]["examples"], "peer_examples": first_peer[name]["examples"],
                               "steps": first_ours[name]["global_step"],
                               "peer_steps": first_peer[name]["global_step"]} for name in jobs}}
    if args.self_runs:
        results["self"], self_rows = self_comparison(work, base, common, rows[0]["ours"])
        console.print(summary_table("six at once against one after another; one job on Ray Train against in-process "
                                    "(s)", ["run", "s", "ratio"], self_rows))
    suffix = ("" if args.model == "demo" else f"_{args.model}") + ("" if args.epochs == 2 else f"_{args.epochs:g}ep")
    out = ROOT / "benchmarks" / "results" / f"bench_finetune{suffix}.json"
    atomic_write_json(out, {"args": vars(args), "results": results})
    console.print(f"wrote {out}; {peer.record(rows, machine)}")


if __name__ == "__main__":
    main()
