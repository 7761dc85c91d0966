"""Knowledge-base retrieval: recall@5 of the built-in notes on a labelled query set, and query latency with and
without the Redis read cache.

Run: `python benchmarks/bench_kb.py [--rounds 5]`
Ingests the built-in corpus into the embedded PostgreSQL of a fresh temporary run directory, then asks each
labelled question (written for this benchmark; each names the note that answers it). Recall@k: the share of
questions whose note is among the top k passages' sources. Latency: every question `--rounds` times, uncached
(kb.cache off: embedding + HNSW search each time) and through the embedded Redis (the first round fills it); the
cache's hit rate over the cached rounds. Prints the table; writes JSON to benchmarks/results/bench_kb.json.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from parallel_r1.config import load_config  # noqa: E402
from parallel_r1.console import console, summary_table  # noqa: E402
from parallel_r1.data.io import atomic_write_json  # noqa: E402
from parallel_r1.kb import open_kb  # noqa: E402
from parallel_r1.kb.stage import run_ingest  # noqa: E402

QUESTIONS = [
    ("how can a function call itself without looping forever", "recursion.md"),
    ("where does the result of a recursive function come from", "recursion.md"),
    ("my swap function in C leaves a and b unchanged", "pointers.md"),
    ("what does *p = 7 do to the variable p points at", "pointers.md"),
    ("are two nested for loops always quadratic", "big-o.md"),
    ("how fast is a loop inside a loop that halves each time", "big-o.md"),
    ("why is looking up a key in a dictionary faster than searching a list", "hash-maps.md"),
    ("what happens when two keys land in the same bucket", "hash-maps.md"),
    ("my loop starting at 1 skips the first element of the list", "off-by-one.md"),
    ("why can't I add the numerators and the denominators of two fractions", "fractions.md"),
    ("what is the meaning of the derivative of x squared", "derivatives.md"),
    ("how do I solve 3x + 5 = 20 step by step", "linear-equations.md"),
    ("I tested positive on a 99% accurate test, how likely am I to be ill", "conditional-probability.md"),
    ("a price rises 20% then falls 20%, why is it lower than before", "percentages.md"),
    ("how can infinitely many numbers add up to a finite total", "infinite-series.md"),
    ("how can x = x + 1 be true", "variables.md"),
    ("why is 6 divided by 0 undefined rather than infinity", "division-by-zero.md"),
    ("if a git branch is only a pointer where is my code stored", "git-branches.md"),
    ("how do I find the slope of a line from two points", "graphs-of-functions.md"),
    ("I keep losing track of the steps when dividing 736 by 4", "long-division.md"),
    ("why do the prime numbers never run out", "prime-numbers.md"),
    ("how should a tutor check that a student really understood", "pedagogy.md"),
]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1000, q))


def timed_queries(cfg, workdir: Path, rounds: int, k: int) -> tuple[list[float], list[list], object]:
    latencies, results = [], []
    with open_kb(cfg.kb, workdir) as kb:
        kb.embed_queries(["warm-up"])  # the model loads outside the measurement
        for _ in range(rounds):
            for question, _note in QUESTIONS:
                start = time.perf_counter()
                results.append(kb.query(question, k))
                latencies.append(time.perf_counter() - start)
        return latencies, results, kb.cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-kb-"))
    try:
        cfg = load_config(None, {"workdir": str(workdir)})
        run_ingest(cfg, [], builtin=True, progress=False)
        uncached_cfg = load_config(None, {"workdir": str(workdir), "kb.cache": False})
        plain, hits, _ = timed_queries(uncached_cfg, workdir, args.rounds, 5)
        cached, _, cache = timed_queries(cfg, workdir, args.rounds, 5)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    first = hits[:len(QUESTIONS)]
    ranks = [next((i for i, h in enumerate(found) if Path(h.passage.source).name == note), None)
             for found, (_q, note) in zip(first, QUESTIONS, strict=True)]
    out = {
        "questions": len(QUESTIONS), "rounds": args.rounds,
        "recall_at_1": sum(r == 0 for r in ranks) / len(ranks),
        "recall_at_5": sum(r is not None for r in ranks) / len(ranks),
        "misses_at_5": [q for (q, _), r in zip(QUESTIONS, ranks, strict=True) if r is None],
        "uncached_ms": {"p50": percentile(plain, 50), "p99": percentile(plain, 99)},
        "cached_ms": {"p50": percentile(cached, 50), "p99": percentile(cached, 99)},
        "cache_hit_rate": cache.hit_rate(),
    }
    out["p50_speedup"] = out["uncached_ms"]["p50"] / out["cached_ms"]["p50"]
    console.print(summary_table("kb retrieval", ["measure", "value"], [
        ("questions", out["questions"]), ("recall@1", out["recall_at_1"]), ("recall@5", out["recall_at_5"]),
        ("query p50 ms, uncached", out["uncached_ms"]["p50"]), ("query p99 ms, uncached", out["uncached_ms"]["p99"]),
        ("query p50 ms, cached", out["cached_ms"]["p50"]), ("query p99 ms, cached", out["cached_ms"]["p99"]),
        ("p50 speed-up", out["p50_speedup"]), ("cache hit rate", out["cache_hit_rate"])]))
    atomic_write_json(ROOT / "benchmarks" / "results" / "bench_kb.json", out)


if __name__ == "__main__":
    main()
