"""GRPO step time and rollout tokens/s with vLLM rollouts (colocated) against HF `generate` rollouts: the same
model, prompts, rewards and settings, one after the other in one run, and where each step's time goes
(generation, reward, update, weight sync).

Run: `python benchmarks/bench_grpo.py [--model PATH] [--steps 6] [--max-tokens 64]` (a few minutes on 2 cores)
The model defaults to <workdir>/parallel/sft/model, else the demo base model (data/models/base) with the Parallel tags
added, else a freshly built demo-size base. Both runs go through the same trainer as `parallel-r1 rl`, in this
process (Ray Train adds a fixed start-up, not a per-step cost). The first step of each run (engine warm-up, first
weight sync) is left out of the means. Writes benchmarks/results/bench_grpo.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.demo_model import build_demo_size_model  # noqa: E402
from parallel_r1.config import load_config  # noqa: E402
from parallel_r1.config.workers import GRPOJob  # noqa: E402
from parallel_r1.console import console, summary_table  # noqa: E402
from parallel_r1.data.io import atomic_write_json  # noqa: E402
from parallel_r1.paths import RunPaths  # noqa: E402
from parallel_r1.rl.metrics import TIMINGS  # noqa: E402

WORK = ROOT / "benchmarks" / "results" / "grpo_work"


def tagged_model(given: Path | None) -> Path:
    """The model to benchmark: the one given, the parallel-SFT output, or a demo-size base with the tags added."""
    paths = RunPaths(ROOT / "data")
    if given is not None:
        return given
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


def measure(model: Path, backend: str, args) -> dict:
    from parallel_r1.rl.grpo_worker import run_grpo_locally

    overrides = {"rl.max_steps": args.steps, "rl.prompts_per_step": args.prompts, "rl.num_generations": args.group,
                 "rl.explore.max_tokens": args.max_tokens, "rl.verify.max_tokens": args.max_tokens,
                 "rl.prompt_pool": 16, "rl.seed": 0}
    rl = load_config(overrides=overrides).rl
    metrics = WORK / f"metrics-{backend}.jsonl"
    metrics.unlink(missing_ok=True)
    job = GRPOJob(rl=rl, model=str(model), backend=backend, max_blocks=3, metrics_file=str(metrics),
                  torch_threads=args.threads)
    records = run_grpo_locally(job, on_record=lambda r: console.print(
        f"  {backend} step {r['step']}: {r['step_s']:.2f} s (generation {r['generation_s']:.2f} s, "
        f"{r['completion_tokens']} tokens)"))
    timed = records[1:] or records
    out = {key: statistics.fmean(r[key] for r in timed) for key in TIMINGS}
    tokens = sum(r["completion_tokens"] for r in timed)
    out["rollout_tokens_per_s"] = tokens / sum(r["generation_s"] for r in timed)
    out["first_step_s"] = records[0]["step_s"]
    out["steps_timed"] = len(timed)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--prompts", type=int, default=2, help="prompts per step")
    ap.add_argument("--group", type=int, default=4, help="rollouts per prompt (num_generations)")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core host)")
    args = ap.parse_args()

    model = tagged_model(args.model)
    console.print(f"bench_grpo: {model}, {args.steps} steps x {args.prompts} prompts x {args.group} rollouts, "
                  f"{args.max_tokens} tokens max")
    results = {backend: measure(model, backend, args) for backend in ("hf", "vllm")}
    hf, vllm = results["hf"], results["vllm"]
    results["step_time_ratio_hf_over_vllm"] = hf["step_s"] / vllm["step_s"]
    results["tokens_per_s_ratio_vllm_over_hf"] = vllm["rollout_tokens_per_s"] / hf["rollout_tokens_per_s"]
    rows = [(key.removesuffix("_s"), hf[key], vllm[key]) for key in TIMINGS]
    rows += [("rollout tokens/s", hf["rollout_tokens_per_s"], vllm["rollout_tokens_per_s"]),
             ("first step (warm-up, not in the means)", hf["first_step_s"], vllm["first_step_s"])]
    console.print(summary_table(f"GRPO step (mean seconds over {hf['steps_timed']} steps)", ["", "HF", "vLLM"], rows))
    console.print(f"step time HF / vLLM = {results['step_time_ratio_hf_over_vllm']:.2f}x; "
                  f"rollout tokens/s vLLM / HF = {results['tokens_per_s_ratio_vllm_over_hf']:.2f}x")
    out = ROOT / "benchmarks" / "results" / "bench_grpo.json"
    atomic_write_json(out, {"args": {**vars(args), "model": str(model)}, "results": results})
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
