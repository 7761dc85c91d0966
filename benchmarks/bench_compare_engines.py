"""compare's generation: every model's replies from one HF engine in this process against an `EnginePool` of HF
engines on Ray actors (`inference.num_engines`), on the same prompts, sampling and seeds.

Run: `python benchmarks/bench_compare_engines.py [--adapters 7] [--n 64] [--engines 2] [--repeats 2]` (about
4 minutes on 2 cores). Builds the demo-size base model (a few pre-training steps: the cost of a token does not
depend on them) and random-init rank-16 adapters under benchmarks/results/compare_engines_work, asks the base and
every adapter for 2 sampled replies to each of `--n` procedural openings (compare's request shape), and times
`generate_each` over all of them: median of the repeats after a warm-up call, the engines' start apart. Checks the
pool's replies are the single engine's, prints the ratio and writes benchmarks/results/bench_compare_engines.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.demo_model import build_demo_size_model  # noqa: E402
from parallel_r1.base_model.stage import generate_corpus  # noqa: E402
from parallel_r1.config import InferenceConfig  # noqa: E402
from parallel_r1.console import console, summary_table  # noqa: E402
from parallel_r1.data.io import atomic_write_json  # noqa: E402
from parallel_r1.inference import InferenceEngine, SamplingParams  # noqa: E402
from parallel_r1.inference.hf_engine import HFEngine  # noqa: E402
from parallel_r1.inference.pool import EnginePool  # noqa: E402
from parallel_r1.ray_runtime import ensure_ray  # noqa: E402
from tests.support.adapters import random_adapter  # noqa: E402


def measure(engine: InferenceEngine, requests, sampling: SamplingParams, repeats: int, label: str) -> dict:
    """Wall time of each repeat of `generate_each(requests)`, their median, tokens/s at the median, the replies."""
    engine.generate_each([(conversations[:2], adapter) for conversations, adapter in requests],
                         SamplingParams(max_tokens=8))  # warm-up: every engine, every adapter
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        out = engine.generate_each(requests, sampling)
        times.append(time.perf_counter() - started)
    tokens = sum(sum(c.completion_tokens) for completions in out for c in completions)
    median = statistics.median(times)
    console.print(f"{label}: {median:.1f} s, {tokens} tokens, {tokens / median:,.0f} tokens/s")
    replies = [[c.texts for c in completions] for completions in out]
    return {"times_s": times, "median_s": median, "tokens": tokens, "tokens_per_s": tokens / median,
            "replies": replies}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--adapters", type=int, default=7, help="adapters besides the base (compare: 6 + monolithic)")
    ap.add_argument("--n", type=int, default=64, help="prompts per model")
    ap.add_argument("--engines", type=int, default=2, help="engine actors of the pool, 1 CPU each")
    ap.add_argument("--max-tokens", type=int, default=80)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    work = ROOT / "benchmarks" / "results" / "compare_engines_work"
    base = work / "models" / "base"
    built = build_demo_size_model(base)
    adapters = {f"a{i}": random_adapter(base, work / f"a{i}", seed=i, r=16) for i in range(args.adapters)}
    conversations = [d.messages()[:1] for d in generate_corpus(args.n, seed=1)]
    requests = [(conversations, None), *((conversations, name) for name in adapters)]
    sampling = SamplingParams(n=2, temperature=0.8, max_tokens=args.max_tokens, seed=0)
    cfg = InferenceConfig(engine="hf", max_batch_size=64, num_engines=args.engines, cpus_per_engine=1)

    started = time.perf_counter()
    single = HFEngine(cfg, base, adapters)
    single_start = time.perf_counter() - started
    one = measure(single, requests, sampling, args.repeats, "one engine in this process")
    single.close()

    console.print(ensure_ray())
    started = time.perf_counter()
    pool = EnginePool(cfg, base, adapters)
    pool.generate_each([(conversations[:1], None)], SamplingParams(max_tokens=1))  # the actors are up
    pool_start = time.perf_counter() - started
    pooled = measure(pool, requests, sampling, args.repeats, f"pool of {args.engines} engine actors")
    pool.close()

    same = pooled.pop("replies") == one.pop("replies")
    ratio = one["median_s"] / pooled["median_s"]
    title = (f"{len(requests)} models x {args.n} prompts x 2 samples, {args.max_tokens} tokens max "
             f"({built.params:,}-parameter model, median of {args.repeats})")
    console.print(summary_table(title, ["run", "start s", "generate s", "tokens/s", "speed-up"], [
        ("one HF engine, this process (torch default threads)", single_start, one["median_s"],
         one["tokens_per_s"], "1.00×"),
        (f"EnginePool: {args.engines} HF engines on Ray actors, 1 CPU each", pool_start, pooled["median_s"],
         pooled["tokens_per_s"], f"{ratio:.2f}×"),
    ]))
    console.print(f"same replies: {same}")
    out = ROOT / "benchmarks" / "results" / "bench_compare_engines.json"
    atomic_write_json(out, {"args": vars(args), "model_params": built.params, "same_replies": same,
                            "results": {"single_start_s": single_start, "pool_start_s": pool_start,
                                        "single": one, "pool": pooled, "speedup": ratio}})
    console.print(f"wrote {out}")
    if not same:
        raise SystemExit("the pool's replies differ from the single engine's")


if __name__ == "__main__":
    main()
