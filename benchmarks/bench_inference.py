"""Generation throughput: the vLLM engine against the HF (transformers + PEFT) engine, on the same prompts with
the same sampling parameters and seeds, through the base model and through a LoRA adapter.

Run: `python benchmarks/bench_inference.py [--n 64] [--max-tokens 64] [--repeats 3] [--model MODEL]` (about 2
minutes on 2 cores for the demo model). Builds the demo-size base model (a few pre-training steps: the cost of a
token does not depend on them), or with `--model smollm2-135m-instruct` converts the real one, and a
random-init rank-16 adapter under benchmarks/results/inference_work, takes the openings of procedural dialogues
as prompts, times each engine's `generate` over all of them (median of the repeats, after a warm-up call; HF
with torch's default threads and with one, as vLLM's CPU worker computes on one core of two), and prints
absolute times, generated tokens/s and the vLLM/HF ratios; writes benchmarks/results/bench_inference.json.
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

from benchmarks.demo_model import MODELS, bench_model  # noqa: E402
from parallel_r1.base_model.stage import generate_corpus  # noqa: E402
from parallel_r1.config import InferenceConfig  # noqa: E402
from parallel_r1.console import console, summary_table  # noqa: E402
from parallel_r1.data.io import atomic_write_json  # noqa: E402
from parallel_r1.inference import InferenceEngine, SamplingParams  # noqa: E402
from parallel_r1.inference.hf_engine import HFEngine  # noqa: E402
from tests.support.adapters import random_adapter  # noqa: E402

ADAPTER = "bench"
ROUTES = {"base": None, "adapter": ADAPTER}


def measure(engine: InferenceEngine, conversations: list[list[dict]], sampling: SamplingParams,
            repeats: int, label: str) -> dict:
    """Per route: wall time of each repeat, their median, and generated tokens/s at the median."""
    results = {}
    for route, adapter in ROUTES.items():
        engine.generate(conversations[:4], SamplingParams(max_tokens=8), adapter=adapter)  # warm-up
        times, tokens = [], 0
        for _ in range(repeats):
            started = time.perf_counter()
            out = engine.generate(conversations, sampling, adapter=adapter)
            times.append(time.perf_counter() - started)
            tokens = sum(sum(c.completion_tokens) for c in out)
        median = statistics.median(times)
        results[route] = {"times_s": times, "median_s": median, "tokens": tokens, "tokens_per_s": tokens / median}
        console.print(f"{label} {route}: {median:.2f} s, {tokens} tokens, {tokens / median:,.0f} tokens/s")
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=64, help="conversations (prompts) per generate call")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--hf-batch-size", type=int, default=InferenceConfig().max_batch_size)
    ap.add_argument("--model", choices=MODELS, default="demo", help="the demo-size model or a real pretrained one")
    args = ap.parse_args()

    from parallel_r1.inference.vllm_engine import VLLMEngine

    work = ROOT / "benchmarks" / "results" / "inference_work" / args.model
    base = work / "models" / "base"
    params = bench_model(args.model, base)
    adapters = {ADAPTER: random_adapter(base, work / "adapter", r=16)}
    # Openings of dialogues the base model was not pre-trained on (another corpus seed).
    conversations = [d.messages()[:1] for d in generate_corpus(args.n, seed=1)]
    sampling = SamplingParams(temperature=args.temperature, max_tokens=args.max_tokens, seed=0)
    cfg = InferenceConfig(max_batch_size=args.hf_batch_size, max_loras=1, max_lora_rank=16)

    started = time.perf_counter()
    hf = HFEngine(cfg, base, adapters)
    hf_start = time.perf_counter() - started
    # vLLM's CPU worker computes on one core of two here (auto-binding keeps one for its scheduler): HF runs
    # with torch's default threads (what users get) and with one thread (the same compute).
    default_threads = torch.get_num_threads()
    hf_results = {}
    for threads in sorted({default_threads, 1}, reverse=True):
        torch.set_num_threads(threads)
        hf_results[threads] = measure(hf, conversations, sampling, args.repeats, f"hf ({threads} threads)")
    torch.set_num_threads(default_threads)
    hf.close()
    started = time.perf_counter()
    vllm = VLLMEngine(cfg, base, adapters)
    vllm_start = time.perf_counter() - started
    vllm_results = measure(vllm, conversations, sampling, args.repeats, "vllm")
    vllm.close()

    ratios = {f"{r}_vs_hf_{t}_threads": vllm_results[r]["tokens_per_s"] / h[r]["tokens_per_s"]
              for t, h in hf_results.items() for r in ROUTES}
    rows = [("HF engine start (load model + adapter)", hf_start, None, None, ""),
            ("vLLM engine start", vllm_start, None, None, "")]
    for route in ROUTES:
        v = vllm_results[route]
        for threads, h in hf_results.items():
            rows.append((f"{route}: HF generate, {threads} thread(s)", h[route]["median_s"], h[route]["tokens"],
                         h[route]["tokens_per_s"], ""))
        rows.append((f"{route}: vLLM generate", v["median_s"], v["tokens"], v["tokens_per_s"],
                     " / ".join(f"{ratios[f'{route}_vs_hf_{t}_threads']:.2f}×" for t in hf_results)))
    title = (f"generation, {args.n} prompts × {args.max_tokens} tokens max, temperature {args.temperature} "
             f"({params:,}-parameter model, median of {args.repeats})")
    ratio_header = "vLLM/HF (" + " / ".join(f"{t} thr" for t in hf_results) + ")"
    console.print(summary_table(title, ["run", "s", "tokens", "tokens/s", ratio_header], rows))
    suffix = "" if args.model == "demo" else f"_{args.model}"
    out = ROOT / "benchmarks" / "results" / f"bench_inference{suffix}.json"
    atomic_write_json(out, {
        "args": vars(args), "model_params": params,
        "results": {"hf_start_s": hf_start, "vllm_start_s": vllm_start, "hf": hf_results, "vllm": vllm_results,
                    "tokens_per_s_ratio_vllm_over_hf": ratios},
    })
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
