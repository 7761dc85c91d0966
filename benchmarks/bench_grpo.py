"""A GRPO step of `parallel-r1 rl` against what a user would run instead: TRL's `GRPOTrainer` in a plain process.

Ours: the `parallel-r1 rl` command in its own process (a local Ray, a Ray Train `TorchTrainer` whose worker runs
`grpo_train_loop`: the curriculum-driven `CurriculumGRPOTrainer`), with HF `generate` rollouts, in a fresh run
directory each time. Its step times are read from the `metrics.jsonl` it writes (step_s); its start-up is the time
from the command's launch to the start of its first step (when step 1's line appears, less its step_s), and the part
of it until Ray is up (the stage's "rl: GRPO on" line); its CPU seconds per step are those of the command and all its
processes (Ray's included) from step 1's line to the last step's.
The peer: benchmarks/plain_trl_grpo.py, `GRPOTrainer` + `GRPOConfig` in a plain Python process with the same model,
prompts (parallel-r1's prompt builder), reward callables and weights, GRPOConfig values, rollout backend (HF
`generate`), steps and torch threads. It reports each step's time (a `TrainerCallback`), mean reward (checked against
ours': the same rollouts on both sides) and its process's CPU seconds.
The two alternate `--reps` times; the first step of each run (warm-up) is left out of the per-step figures. Goal: ours
≤ 1.1× the peer's mean step time. Rows (step time, CPU per step, time to first step) go into
benchmarks/results/summary.json; details into benchmarks/results/bench_grpo.json.

`--rollouts` adds the earlier comparison of colocated vLLM rollouts against HF `generate` rollouts (the same trainer
in this process, without Ray): step time, rollout tokens/s and where a step's time goes.

Run: `python benchmarks/bench_grpo.py [--model PATH] [--steps 6] [--prompts 2] [--group 4] [--max-tokens 64]
[--threads 1] [--reps 3] [--rollouts]` (about 4 minutes on 2 cores when quiet; --rollouts adds about 2)
The model defaults to <workdir>/parallel/sft/model, else the demo base model (data/models/base) with the Parallel tags
added, else a freshly built demo-size base with them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import peer  # noqa: E402
from demo_model import build_demo_size_model  # noqa: E402

from parallel_r1.config import load_config  # noqa: E402
from parallel_r1.console import console, summary_table  # noqa: E402
from parallel_r1.data.io import atomic_write_json, read_jsonl  # noqa: E402
from parallel_r1.paths import RunPaths  # noqa: E402
from parallel_r1.rl.metrics import TIMINGS  # noqa: E402

WORK = ROOT / "benchmarks" / "results" / "grpo_work"
PLAIN = ROOT / "benchmarks" / "plain_trl_grpo.py"
RAY_UP = "rl: GRPO on"  # printed by the rl stage once Ray is up, before it starts the TorchTrainer


def tagged_model(given: Path | None) -> Path:
    """The model to benchmark: the one given, the parallel-SFT output, or a demo-size base with the tags added."""
    paths = RunPaths(ROOT / "data")
    if given is not None:
        return given.resolve()
    if (paths.parallel_sft_model / "config.json").exists():
        return paths.parallel_sft_model
    out = WORK / "model"
    if (out / "config.json").exists():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from parallel_r1.finetune.parallel_tokens import add_parallel_tokens

    base = paths.base_model
    if not (base / "config.json").exists():
        base = WORK / "base"
        build_demo_size_model(base)
    tokenizer, model = AutoTokenizer.from_pretrained(base), AutoModelForCausalLM.from_pretrained(base)
    add_parallel_tokens(tokenizer, model)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def rl_overrides(args) -> dict:
    """The rl settings both sides share (the peer gets them as its flags)."""
    return {"rl.prompts_per_step": args.prompts, "rl.num_generations": args.group, "rl.explore.max_tokens":
            args.max_tokens, "rl.verify.max_tokens": args.max_tokens, "rl.prompt_pool": args.prompt_pool,
            "rl.seed": 0, "rl.learning_rate": args.lr, "rl.cpus_per_worker": args.threads}


def launch(cmd: list[str], log: Path) -> tuple[subprocess.Popen, float]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # ours starts a local Ray, as a user's would
    env["PYTHONUNBUFFERED"] = "1"  # the log's lines appear when they are printed (ours' start-up marks)
    with open(log, "w") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT), time.time()


def finish(proc: subprocess.Popen, log: Path) -> None:
    if proc.wait() != 0:
        sys.exit(f"{' '.join(map(str, proc.args))} failed (exit {proc.returncode}); the end of {log}:\n"
                 + "\n".join(log.read_text().splitlines()[-30:]))


def figures(steps: list[float], startup: float, wall: float) -> dict:
    return {"step_s": statistics.fmean(steps[1:]), "startup_s": startup, "first_step_s": steps[0],
            "wall_s": wall, "steps": steps}


def run_ours(model: Path, args) -> dict:
    """One `parallel-r1 rl` run in a fresh run directory; its start-up from when step 1's metrics line appeared."""
    workdir = WORK / "ours"
    shutil.rmtree(workdir, ignore_errors=True)
    metrics = RunPaths(workdir).rl_metrics
    sets = [f"{k}={v}" for k, v in rl_overrides(args).items()]
    cmd = [str(Path(sys.executable).with_name("parallel-r1")), "rl", "--model", str(model), "--force", "--workdir",
           str(workdir), "--rollouts", "hf", "--steps", str(args.steps), *[x for s in sets for x in ("--set", s)]]
    log = WORK / "ours.log"
    proc, started = launch(cmd, log)
    marks: dict[str, float] = {}  # when Ray was up (the stage's "rl: GRPO on" line), when step 1's line appeared
    cpu: dict[int, float] = {}  # CPU seconds of the command and all its processes when step n's line appeared
    while proc.poll() is None:
        if "ray" not in marks and RAY_UP in log.read_text(errors="replace"):
            marks["ray"] = time.time()
        lines = metrics.read_text().count("\n") if metrics.exists() else 0
        for n in (1, args.steps):
            if lines >= n and n not in cpu:
                cpu[n] = peer.cpu_seconds(proc.pid) + sum(s for _, s in peer.tree_cpu_seconds(proc.pid).values())
                marks.setdefault("step", time.time())
        time.sleep(0.05)
    wall = time.time() - started
    finish(proc, log)
    records = read_jsonl(metrics)
    out = figures([r["step_s"] for r in records], marks["step"] - started - records[0]["step_s"], wall)
    out["ray_up_s"] = marks["ray"] - started
    out["cpu_s_per_step"] = (cpu[args.steps] - cpu[1]) / (args.steps - 1)
    out["reward"] = [r["reward"] for r in records]
    out["phases"] = {key: statistics.fmean(r[key] for r in records[1:]) for key in TIMINGS}
    console.print(f"  ours (parallel-r1 rl on Ray Train): {out['step_s']:.3f} s per step, start-up "
                  f"{out['startup_s']:.1f} s (Ray up after {out['ray_up_s']:.1f} s), wall {wall:.1f} s")
    return out


def run_peer(model: Path, args) -> dict:
    """One run of the plain TRL script; its start-up from the wall-clock time its first step began."""
    result = WORK / "peer.json"
    result.unlink(missing_ok=True)
    cmd = [sys.executable, str(PLAIN), str(model), "--steps", str(args.steps), "--prompts", str(args.prompts),
           "--group", str(args.group), "--max-tokens", str(args.max_tokens), "--lr", str(args.lr),
           "--prompt-pool", str(args.prompt_pool), "--threads", str(args.threads), "--out", str(result)]
    proc, started = launch(cmd, WORK / "peer.log")
    finish(proc, WORK / "peer.log")
    wall = time.time() - started
    data = json.loads(result.read_text())
    out = figures(data["step_s"], data["first_step_began"] - started, wall)
    out["reward"] = data["reward"]
    out["cpu_s_per_step"] = (data["cpu_s"][-1] - data["cpu_s"][0]) / (len(data["cpu_s"]) - 1)
    console.print(f"  peer (plain TRL GRPOTrainer): {out['step_s']:.3f} s per step, start-up "
                  f"{out['startup_s']:.1f} s, wall {wall:.1f} s")
    return out


def rollouts(model: Path, backend: str, args) -> dict:
    """--rollouts: the trainer of `parallel-r1 rl` in this process with `backend` rollouts; means without step 1."""
    from parallel_r1.config.workers import GRPOJob
    from parallel_r1.rl.grpo_worker import run_grpo_locally

    rl = load_config(overrides={**rl_overrides(args), "rl.max_steps": args.steps}).rl
    metrics = WORK / f"metrics-{backend}.jsonl"
    metrics.unlink(missing_ok=True)
    job = GRPOJob(rl=rl, model=str(model), backend=backend, max_blocks=3, metrics_file=str(metrics),
                  torch_threads=args.threads)
    records = run_grpo_locally(job)
    timed = records[1:]
    out = {key: statistics.fmean(r[key] for r in timed) for key in TIMINGS}
    out["rollout_tokens_per_s"] = sum(r["completion_tokens"] for r in timed) / sum(r["generation_s"] for r in timed)
    out["first_step_s"] = records[0]["step_s"]
    return out


def compare_rollouts(model: Path, args) -> dict:
    results = {backend: rollouts(model, backend, args) for backend in ("hf", "vllm")}
    hf, vllm = results["hf"], results["vllm"]
    rows = [(key.removesuffix("_s"), hf[key], vllm[key]) for key in TIMINGS]
    rows += [("rollout tokens/s", hf["rollout_tokens_per_s"], vllm["rollout_tokens_per_s"]),
             ("first step (warm-up, not in the means)", hf["first_step_s"], vllm["first_step_s"])]
    console.print(summary_table(f"rollouts, in-process (mean s over steps 2-{args.steps})", ["", "HF", "vLLM"], rows))
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--prompts", type=int, default=2, help="prompts per step")
    ap.add_argument("--group", type=int, default=4, help="rollouts per prompt (num_generations)")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--prompt-pool", type=int, default=16, help="prompts per tier")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (and rl.cpus_per_worker)")
    ap.add_argument("--reps", type=int, default=3, help="alternating repetitions of ours and the peer")
    ap.add_argument("--rollouts", action="store_true", help="also compare vLLM and HF rollouts (in-process)")
    args = ap.parse_args()
    if args.steps < 2:
        ap.error("--steps must be at least 2: the first step is warm-up")
    machine = peer.Machine()
    WORK.mkdir(parents=True, exist_ok=True)
    model = tagged_model(args.model)
    console.print(f"bench_grpo: {model}, {args.steps} steps x {args.prompts} prompts x {args.group} rollouts, "
                  f"{args.max_tokens} tokens max, {args.threads} torch thread(s), HF rollouts")
    ours, theirs = peer.alternate(lambda: run_ours(model, args), lambda: run_peer(model, args), args.reps)

    name = (args.model.name if args.model else "demo-size model") + \
        f", {args.prompts}×{args.group} rollouts × {args.max_tokens} tokens"
    rows = [peer.row(f"GRPO step, {name}: rl on Ray Train vs plain TRL", [r["step_s"] for r in ours],
                     [r["step_s"] for r in theirs], "s per step", peer.Goal("ratio", "<=", 1.1)),
            peer.row(f"GRPO step CPU, {name}", [r["cpu_s_per_step"] for r in ours],
                     [r["cpu_s_per_step"] for r in theirs], "CPU s per step", None),
            peer.row(f"GRPO time to first step, {name}", [r["startup_s"] for r in ours],
                     [r["startup_s"] for r in theirs], "s", None)]
    peer.print_table("GRPO: parallel-r1 rl (Ray Train) against TRL's GRPOTrainer in a plain process "
                     "(median, min–max)", {"rows": rows})
    same = all(abs(a - b) < 1e-3 for o, t in zip(ours, theirs, strict=True)
               for a, b in zip(o["reward"], t["reward"], strict=True))
    console.print(f"the same mean reward at every step on both sides (the same rollouts): {same}")
    phases = {key: statistics.median(r["phases"][key] for r in ours) for key in TIMINGS}
    console.print("ours, median over runs of the mean per step (s): "
                  + ", ".join(f"{k.removesuffix('_s')} {v:.3f}" for k, v in phases.items()))
    ray_up = statistics.median(r["ray_up_s"] for r in ours)
    console.print(f"ours' start-up, medians: {ray_up:.1f} s until Ray is up (imports, the stage's checks, local Ray), "
                  f"{statistics.median(r['startup_s'] - r['ray_up_s'] for r in ours):.1f} s more to the first step "
                  "(TorchTrainer, its worker, the trainer)")
    results = {"ours": ours, "peer": theirs, "ours_phases": phases, "same_rewards": same}
    if args.rollouts:
        results["rollouts"] = compare_rollouts(model, args)
    out = ROOT / "benchmarks" / "results" / "bench_grpo.json"
    atomic_write_json(out, {"args": {**vars(args), "model": str(model)}, "rows": rows, "results": results})
    console.print(f"wrote {out}; {peer.record(rows, machine)}")


if __name__ == "__main__":
    main()
