"""Generation throughput: the vLLM engine against the HF (transformers + PEFT) engine, on the same prompts with
the same sampling parameters and seeds, through the base model and through a LoRA adapter.

Run: `python benchmarks/bench_inference.py [--n 32] [--max-tokens 64] [--repeats 3] [--model MODEL] [--dtype D]`
(a few minutes on 2 cores). Builds the demo-size base model (the cost of a token does not depend on its training),
or with `--model smollm2-135m-instruct` converts the real one, and a random-init rank-16 adapter under
benchmarks/results/inference_work, takes the openings of procedural dialogues as prompts, and times both engines'
`generate` over all of them, alternating, through the base and through the adapter; a row per route goes into
benchmarks/results/summary.json (goal: vLLM at 2× HF's tokens/s at batch 32).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks import peer  # noqa: E402
from benchmarks.demo_model import MODELS, bench_model  # noqa: E402
from parallel_r1.base_model.stage import generate_corpus  # noqa: E402
from parallel_r1.config import InferenceConfig  # noqa: E402
from parallel_r1.console import console  # noqa: E402
from parallel_r1.data.io import atomic_write_json  # noqa: E402
from parallel_r1.inference import InferenceEngine, SamplingParams  # noqa: E402
from parallel_r1.inference.hf_engine import HFEngine  # noqa: E402
from tests.support.adapters import random_adapter  # noqa: E402

ADAPTER = "bench"
ROUTES = {"base": None, "adapter": ADAPTER}


def generate_rate(engine: InferenceEngine, conversations: list[list[dict]], sampling: SamplingParams,
                  adapter: str | None):
    """One timed `generate` over every conversation: its generated tokens/s."""
    def run() -> float:
        started = time.perf_counter()
        out = engine.generate(conversations, sampling, adapter=adapter)
        return sum(sum(c.completion_tokens) for c in out) / (time.perf_counter() - started)
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=32, help="conversations (prompts) per generate call: the batch")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--hf-batch-size", type=int, default=InferenceConfig().max_batch_size)
    ap.add_argument("--model", choices=MODELS, default="demo", help="the demo-size model or a real pretrained one")
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32", help="both engines' weights")
    ap.add_argument("--vllm-cpu-lora", choices=("grouped", "vllm"), default="grouped",
                    help="vLLM's CPU LoRA ops (inference.vllm_cpu_lora)")
    args = ap.parse_args()

    from parallel_r1.inference.vllm_engine import VLLMEngine

    machine = peer.Machine()
    work = ROOT / "benchmarks" / "results" / "inference_work" / args.model
    base = work / "models" / "base"
    params = bench_model(args.model, base)
    adapters = {ADAPTER: random_adapter(base, work / "adapter", r=16)}
    # Openings of dialogues the base model was not pre-trained on (another corpus seed).
    conversations = [d.messages()[:1] for d in generate_corpus(args.n, seed=1)]
    sampling = SamplingParams(temperature=args.temperature, max_tokens=args.max_tokens, seed=0)
    cfg = InferenceConfig(max_batch_size=args.hf_batch_size, max_loras=1, max_lora_rank=16, dtype=args.dtype,
                          vllm_cpu_lora=args.vllm_cpu_lora)

    started = time.perf_counter()
    hf = HFEngine(cfg, base, adapters)
    hf_start = time.perf_counter() - started
    started = time.perf_counter()
    vllm = VLLMEngine(cfg, base, adapters)
    vllm_start = time.perf_counter() - started
    results, rows = {}, []
    # A run off the defaults names its rows and file apart, so that it replaces none of the defaults' figures.
    variant = [(args.dtype, args.dtype)] if args.dtype != "float32" else []
    if args.vllm_cpu_lora != "grouped":
        variant.append(("vLLM's CPU LoRA ops", "vllm_lora_ops"))
    label = "".join(f", {name}" for name, _ in variant)
    for route, adapter in ROUTES.items():
        for engine in (hf, vllm):
            engine.generate(conversations[:4], SamplingParams(max_tokens=8), adapter=adapter)  # warm-up
        ours, theirs = peer.alternate(generate_rate(vllm, conversations, sampling, adapter),
                                      generate_rate(hf, conversations, sampling, adapter), args.repeats)
        results[route] = {"vllm_tokens_per_s": ours, "hf_tokens_per_s": theirs}
        rows.append(peer.row(f"generate {args.model}, batch {args.n}, {route}: vLLM vs HF{label}", ours, theirs,
                             "tokens/s", peer.Goal("ratio", ">=", 2.0)))
        console.print(f"{route}: vLLM {statistics.median(ours):,.0f} tokens/s, HF {statistics.median(theirs):,.0f}")
    hf.close()
    vllm.close()
    title = (f"generation, {args.n} prompts × {args.max_tokens} tokens max, temperature {args.temperature}, "
             f"{args.dtype}, vLLM's CPU LoRA ops: {args.vllm_cpu_lora} "
             f"({params:,}-parameter model; HF on {torch.get_num_threads()} threads; engine start: HF "
             f"{hf_start:.1f} s, vLLM {vllm_start:.1f} s)")
    peer.print_table(title, {"rows": rows})
    suffix = ("" if args.model == "demo" else f"_{args.model}") + "".join(f"_{tag}" for _, tag in variant)
    out = ROOT / "benchmarks" / "results" / f"bench_inference{suffix}.json"
    atomic_write_json(out, {"args": vars(args), "model_params": params,
                            "results": {"hf_start_s": hf_start, "vllm_start_s": vllm_start, **results}})
    console.print(f"wrote {out}; {peer.record(rows, machine)}")


if __name__ == "__main__":
    main()
