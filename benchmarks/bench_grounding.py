"""Grounding measured: whether `kb.ground: [parallel_sft]` changes the Parallel-R1 cold start's rubric score and how
much of its answers the retrieved passages support, and the latency `kb.ground: [serve]` adds to the router.

Run: `python benchmarks/bench_grounding.py [--parts sft serve] [--dialogues 1500] [--epochs 6] [--prompts 10]
[--seed 0] [--reps 3] [--requests 22]`. The sft part takes about 6 minutes on 2 idle cores (30 under a load average of
20), plus the base model's pre-training the first time (2-8 minutes); the base model, the dialogues and finished
stages are kept in benchmarks/results/grounding_work, so a rerun only measures. The serve part takes 2-3 minutes.

sft: one set of graded procedural dialogues, the demo-size base model, and `parallel-r1 parallel-sft` (the stage
itself, `run_parallel_sft`) twice with the same data, settings and seeds, once with the built-in notes ingested into
the embedded PostgreSQL and `kb.ground: [parallel_sft]`, once without. Both SFT'd models answer the stage's own
held-out prefixes (never in training) twice: with the stage's validation prompt (its replies and rubric scores are
the stage's, from `eval.json` and its reply cache), and with the passages retrieved for the prefix appended to that
prompt, as the grounded records had them in training. Per answer: the rubric score of what the student sees (the
stage's measure), and its groundedness: the share of its sentences (4+ words) whose best MiniLM cosine to a sentence
of the passages retrieved for that prefix reaches `--support` (0.5), against the same share for the passages of
another prefix (no passage in common), which says what an unrelated note would score. The grounded minus ungrounded
differences get paired bootstrap intervals over prefixes. Only the data's grounding differs between the runs, so an
interval is the noise of the held-out prefixes and samples, not of training: `--seed N` repeats the pair with
finetune.seed N (in run directories of their own) to see that noise.

serve: the router (hf backend, the tiny model of bench_serve.py, context raised to fit the notes) deployed twice,
with and without `kb.ground: [serve]`, the same sequential requests (the kb benchmark's questions, made unique per
request so that every grounded request embeds and searches; then repeated, so that the Redis cache answers),
alternating `--reps` times; p50 / p99 of each and the difference.

Prints the tables; writes benchmarks/results/bench_grounding.json (atomically).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import peer  # noqa: E402
from bench_kb import QUESTIONS  # noqa: E402
from bench_serve import figures, free_port, prepare  # noqa: E402

from parallel_r1.base_model.stage import build_base_model  # noqa: E402
from parallel_r1.compare.heldout import fingerprint  # noqa: E402
from parallel_r1.compare.parallel_replies import ParallelEvaluation  # noqa: E402
from parallel_r1.compare.replies import prompts_for  # noqa: E402
from parallel_r1.compare.stats import paired_bootstrap_ci  # noqa: E402
from parallel_r1.config import BaseModelConfig, KBConfig, load_config  # noqa: E402
from parallel_r1.console import console, summary_table  # noqa: E402
from parallel_r1.data.io import atomic_write_json, read_jsonl  # noqa: E402
from parallel_r1.data.parallel_format import SPECIAL_TOKENS  # noqa: E402
from parallel_r1.kb import open_kb  # noqa: E402
from parallel_r1.kb.endpoints import postgres_endpoint, running_postgres  # noqa: E402
from parallel_r1.kb.grounding import high_confidence, reference_block  # noqa: E402
from parallel_r1.kb.stage import run_ingest  # noqa: E402
from parallel_r1.parallel_sft.check import heldout_items, training_prefix_keys  # noqa: E402
from parallel_r1.parallel_sft.grounding import prefix_query  # noqa: E402
from parallel_r1.parallel_sft.stage import run_parallel_sft  # noqa: E402
from parallel_r1.paths import RunPaths  # noqa: E402

WORK = ROOT / "benchmarks" / "results" / "grounding_work"
RUNS = ("grounded", "ungrounded")
# The demo's base model (configs/demo.yaml), pre-trained with the demo's step budget.
BASE = BaseModelConfig(hidden_size=192, num_layers=4, corpus_dialogues=3000, max_steps=300, train_minutes=8)
PLAN_SEED = 3  # the dialogues' plan; the held-out prefixes come from eval.seed, and the stage drops any it trained on
MIN_WORDS = 4  # shorter sentences ("Good.", "Let's see.") say nothing a note could support
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_TAGS = re.compile("|".join(re.escape(t) for t in SPECIAL_TOKENS))


def write_dialogues_once(path: Path, n: int) -> None:
    """n graded procedural dialogues (simulated with discover.seed 0, so that the dataset builder replays them)."""
    from parallel_r1.data import discovery_plan
    from parallel_r1.data.schema import write_dialogues
    from parallel_r1.discover.procedural import ProceduralBackend
    from parallel_r1.discover.simulator import simulate_dialogue
    from parallel_r1.grade import grade_dialogues

    if path.exists():
        return

    async def simulate():
        backend = ProceduralBackend(seed=0)
        return [await simulate_dialogue(backend, t) for t in discovery_plan(n, include_special=True, seed=PLAN_SEED)]

    path.parent.mkdir(parents=True, exist_ok=True)
    write_dialogues(path, grade_dialogues(asyncio.run(simulate())))


def run_dir(run: str, seed: int) -> Path:
    return WORK / (run if seed == 0 else f"{run}-seed{seed}")


def sft_config(args, run: str):
    """The two runs' config: identical but for the workdir and kb.ground; the gate is opened (min_uplift -1, any
    rubric drop) because this measures the models, it does not promote them."""
    return load_config(overrides={
        "workdir": str(run_dir(run, args.seed)), "base_model.path": str(WORK / "base"), "inference.engine": "hf",
        "ray.num_cpus": 2, "kb.ground": ["parallel_sft"] if run == "grounded" else [],
        "parallel.dataset_threshold": 0.75, "parallel.turns_per_dialogue": 2, "parallel.sft.epochs": args.epochs,
        "parallel.sft.max_length": args.max_length, "parallel.sft.eval_prompts_per_slice": args.prompts,
        "parallel.sft.samples_per_prompt": 2, "parallel.sft.min_uplift": -1.0, "parallel.sft.max_rubric_drop": 1.0,
        "parallel.inference.max_tokens": args.max_tokens, "finetune.cpus_per_worker": 1,
        "finetune.per_device_batch_size": 4, "finetune.seed": args.seed})


class NotedEvaluation(ParallelEvaluation):
    """The stage's evaluation with each prefix's reference notes appended to the validation prompt, the way the
    grounded records carry them (`Grounder.ground`)."""

    def __init__(self, cfg, items, cache_dir: Path, notes: dict[str, list[str]]):
        digest = hashlib.sha1(repr(sorted(notes.items())).encode()).hexdigest()[:10]
        super().__init__(cfg, items, cache_dir / digest)
        self.notes = notes

    def _prompts(self, model_dir: Path) -> list[list[dict]]:
        from transformers import AutoConfig, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        context = self.cfg.inference.max_model_len or AutoConfig.from_pretrained(model_dir).max_position_embeddings
        prompts = []
        for item in self.items:
            texts = self.notes[item.item_id]
            system = f"{self.system_prompt}\n\n{reference_block(texts)}" if texts else self.system_prompt
            prompts += prompts_for([item], tokenizer, context, self.policy.max_tokens, system)
        return prompts


def sentences(text: str) -> list[str]:
    """The sentences of everything a reply says (paths and summaries: the tags only separate them)."""
    text = _TAGS.sub("\n", text)
    return [s.strip() for s in _SENTENCE.split(text) if len(re.findall(r"[A-Za-z']+", s)) >= MIN_WORDS]


class Support:
    """Groundedness of answers: per answer, the share of its sentences whose best cosine to a sentence of a set of
    passages reaches `threshold`, and the mean of those best cosines; embeddings by the kb's MiniLM, memoised."""

    def __init__(self, embedder, threshold: float):
        self.embedder, self.threshold, self._vectors = embedder, threshold, {}

    def vectors(self, texts: list[str]) -> np.ndarray:
        todo = sorted({t for t in texts if t not in self._vectors})
        for text, vec in zip(todo, self.embedder.embed(todo) if todo else [], strict=True):
            self._vectors[text] = vec
        return np.stack([self._vectors[t] for t in texts]) if texts else np.zeros((0, self.embedder.dimension))

    def of(self, answer: str, passages: list[str]) -> tuple[float, float] | None:
        """(supported share, mean best cosine), or None when the answer has no sentence or there is no passage."""
        said, notes = sentences(answer), [s for p in passages for s in sentences(p)]
        if not said or not notes:
            return None
        best = (self.vectors(said) @ self.vectors(notes).T).max(axis=1)
        return float((best >= self.threshold).mean()), float(best.mean())


def other_prefix(item_ids: list[str], notes: dict[str, list[str]]) -> dict[str, str]:
    """For each prefix with notes, the next one (in order, cyclically) with notes and none of its passages."""
    having = [i for i in item_ids if notes[i]]
    out = {}
    for n, item in enumerate(having):
        later = having[n + 1:] + having[:n]
        out[item] = next((j for j in later if not set(notes[j]) & set(notes[item])), None)
    return {k: v for k, v in out.items() if v is not None}


def paired(a: dict[str, float], b: dict[str, float]) -> dict:
    """Means of a and b over the prefixes both have, and the mean a - b with its paired bootstrap interval."""
    shared = sorted(set(a) & set(b))
    diffs = np.array([a[k] - b[k] for k in shared])
    low, high = paired_bootstrap_ci(diffs, 2000, 0.95, seed=0)
    return {"a": float(np.mean([a[k] for k in shared])) if shared else None,
            "b": float(np.mean([b[k] for k in shared])) if shared else None,
            "diff": float(diffs.mean()) if shared else None, "ci95": [low, high], "prefixes": len(shared),
            "inside_noise": bool(not shared or low <= 0 <= high)}


def per_prefix(values: list[tuple[str, float]]) -> dict[str, float]:
    """The mean per held-out prefix of (prefix, value) pairs (samples averaged first, as the stage does)."""
    acc: dict[str, list[float]] = {}
    for item, value in values:
        acc.setdefault(item, []).append(value)
    return {k: statistics.fmean(v) for k, v in acc.items()}


def sft_part(args) -> dict:
    started = time.perf_counter()
    build_base_model(BASE, WORK / "base", progress=False)
    cfgs = {run: sft_config(args, run) for run in RUNS}
    dialogues = WORK / "dialogues.parquet"
    write_dialogues_once(dialogues, args.dialogues)
    for cfg in cfgs.values():
        RunPaths(cfg.workdir).workdir.mkdir(parents=True, exist_ok=True)
        if not RunPaths(cfg.workdir).dialogues.exists():
            shutil.copyfile(dialogues, RunPaths(cfg.workdir).dialogues)
    run_ingest(cfgs["grounded"], [], builtin=True, progress=False)
    records, seconds = {}, {}
    for run, cfg in cfgs.items():
        t = time.perf_counter()
        records[run] = run_parallel_sft(cfg).record
        seconds[run] = time.perf_counter() - t
        console.print(f"sft part: {run} run done in {seconds[run]:.0f} s (load average {os.getloadavg()[0]:.1f})")
    if len({r["heldout_fingerprint"] for r in records.values()}) != 1:
        raise RuntimeError("the two runs evaluated different held-out prefixes")

    cfg = cfgs["grounded"]
    items, _ = heldout_items(cfg, training_prefix_keys(read_jsonl(RunPaths(cfg.workdir).parallel_sft_data)))
    if fingerprint(items) != records["grounded"]["heldout_fingerprint"]:
        raise RuntimeError("the held-out prefixes rebuilt here are not those the stage evaluated")
    with open_kb(cfg.kb, cfg.workdir) as kb:
        # the query a record with this prefix would get (prefix_query leaves out the last message: the target)
        hits = high_confidence(kb, [prefix_query([*i.history, {}]) for i in items], cfg.kb.top_k, cfg.kb.min_score)
        notes = {i.item_id: [h.passage.text for h in found] for i, found in zip(items, hits, strict=True)}
        support = Support(kb.embedder, args.support)
        control = other_prefix([i.item_id for i in items], notes)
        out = {"conditions": {}, "items": len(items), "items_with_notes": sum(bool(v) for v in notes.values()),
               "training": {r: records[r]["training"] for r in RUNS},
               "dataset": {r: records[r]["dataset"] for r in RUNS},
               "stage_s": seconds}  # ~0 for a stage that was up to date
        for condition in ("stage prompt", "notes in prompt"):
            scores = {}
            for run in RUNS:
                rcfg, model = cfgs[run], RunPaths(cfgs[run].workdir).parallel_sft_model
                if condition == "stage prompt":
                    evaluation = ParallelEvaluation(rcfg, items, RunPaths(rcfg.workdir).parallel_sft / "replies")
                else:
                    evaluation = NotedEvaluation(rcfg, items, rcfg.workdir / "noted_replies", notes)
                try:
                    replies = evaluation.replies("sft", model)
                    scored = evaluation.score("sft", replies)
                finally:
                    evaluation.close()
                own = [(r.item_id, support.of(r.text, notes[r.item_id])) for r in replies]
                other = [(r.item_id, support.of(r.text, notes[control[r.item_id]]))
                         for r in replies if r.item_id in control]
                scores[run] = {"rubric": scored.item_rubric, "format_adherence": scored.format_adherence,
                               "own": per_prefix([(k, s[0]) for k, s in own if s]),
                               "own_cosine": per_prefix([(k, s[1]) for k, s in own if s]),
                               "other": per_prefix([(k, s[0]) for k, s in other if s]),
                               "answers_measured": sum(s is not None for _, s in own), "answers": len(replies)}
            g, u = scores["grounded"], scores["ungrounded"]
            out["conditions"][condition] = {
                "rubric": paired(g["rubric"], u["rubric"]),
                "supported_share": paired(g["own"], u["own"]),
                "best_cosine": paired(g["own_cosine"], u["own_cosine"]),
                "own_vs_other_notes": {run: paired(scores[run]["own"], scores[run]["other"]) for run in RUNS},
                "format_adherence": {run: scores[run]["format_adherence"] for run in RUNS},
                "answers_measured": {run: [scores[run]["answers_measured"], scores[run]["answers"]] for run in RUNS}}
        reference = [(i.item_id, support.of(i.reference, notes[i.item_id])) for i in items]
        out["simulated_teacher_supported_share"] = statistics.fmean(s[0] for _, s in reference if s)
    out["support_threshold"], out["wall_s"] = args.support, time.perf_counter() - started
    rows = []
    for condition, c in out["conditions"].items():
        for measure in ("rubric", "supported_share", "best_cosine"):
            m = c[measure]
            rows.append((condition, measure, m["a"], m["b"], m["diff"], f"[{m['ci95'][0]:+.3f}, {m['ci95'][1]:+.3f}]",
                         m["prefixes"], "yes" if m["inside_noise"] else "no"))
        for run in RUNS:
            m = c["own_vs_other_notes"][run]
            rows.append((condition, f"supported: own - other notes ({run})", m["a"], m["b"], m["diff"],
                         f"[{m['ci95'][0]:+.3f}, {m['ci95'][1]:+.3f}]", m["prefixes"],
                         "yes" if m["inside_noise"] else "no"))
    console.print(summary_table(
        f"parallel-sft grounded vs ungrounded ({out['items']} held-out prefixes, {out['items_with_notes']} with notes;"
        f" supported: best cosine >= {args.support})",
        ["prompt", "measure", "grounded / own", "ungrounded / other", "diff", "95% CI", "prefixes", "inside noise"],
        rows))
    return out


def deploy_routers(work: Path) -> dict[str, str]:
    """The router app twice on one Serve, with and without kb.ground: [serve]; their URLs once ready."""
    from parallel_r1.serve.stage import start_local

    port, urls = free_port(), {}
    for name, ground in (("grounded", ["serve"]), ("ungrounded", [])):
        cfg = load_config(None, {"workdir": str(work), "ray": {"num_cpus": 4}, "kb": {"ground": ground},
                                 "inference": {"max_model_len": 1024}, "serve": {
            "port": port, "app_name": f"bench_{name}", "route_prefix": f"/{name}", "add_system_prompt": False,
            "model_num_cpus": 0.5, "router_num_cpus": 0.1}})
        if ground:
            run_ingest(cfg, [], builtin=True, progress=False)
        urls[name] = start_local(cfg)
    return urls


def time_routers(urls: dict[str, str], args) -> dict[str, tuple[list[dict], list[dict]]]:
    """Per mode, the figures of each alternating repetition: (grounded, ungrounded)."""
    def body(text: str) -> dict:
        return {"model": "neurodivergent", "messages": [{"role": "user", "content": text}], "temperature": 0.0,
                "max_tokens": 8, "seed": 0}

    check = httpx.post(f"{urls['grounded']}/v1/chat/completions", json=body(QUESTIONS[2][0]), timeout=120).json()
    if not check.get("grounding"):
        raise RuntimeError(f"the grounded router named no passage: {check}")
    questions = [q for q, _ in QUESTIONS][:args.requests]
    fresh = iter(range(10**6))

    def measure(name: str, mode: str) -> dict:
        """One sequential pass over the questions: unique texts (`new`: the grounded side embeds and searches each)
        or the questions as they are (`repeated`: warmed, so its retrieval is a cache hit)."""
        run = next(fresh)
        texts = [f"{q} (request {run}.{i})" for i, q in enumerate(questions)] if mode == "new" else questions
        latencies = []
        with httpx.Client(timeout=120) as http:
            for text in texts:
                started = time.perf_counter()
                http.post(f"{urls[name]}/v1/chat/completions", json=body(text)).raise_for_status()
                latencies.append(time.perf_counter() - started)
        return figures(latencies, sum(latencies))

    for name in urls:
        measure(name, "repeated")  # warm-up: model, store connection, cache
    runs = {}
    for mode in ("new", "repeated"):
        runs[mode] = peer.alternate(lambda m=mode: measure("grounded", m), lambda m=mode: measure("ungrounded", m),
                                    args.reps)
        console.print(f"serve part: {mode} messages done (load average {os.getloadavg()[0]:.1f})")
    return runs


def serve_part(args) -> dict:
    """The router with and without kb.ground: [serve] on the same model, alternately; p50 / p99 per mode."""
    from ray import serve

    work = prepare(WORK / "serve")
    # this process keeps the embedded PostgreSQL up while the router replicas use it, and stops it at the end
    with running_postgres(postgres_endpoint(KBConfig(), work)):
        urls = deploy_routers(work)
        try:
            runs = time_routers(urls, args)
        finally:
            serve.shutdown()
    out, rows = {}, []
    for mode, (grounded, ungrounded) in runs.items():
        out[mode] = {"grounded": grounded, "ungrounded": ungrounded}
        for q in ("p50_ms", "p99_ms"):
            g, u = peer.spread([f[q] for f in grounded]), peer.spread([f[q] for f in ungrounded])
            added = [a[q] - b[q] for a, b in zip(grounded, ungrounded, strict=True)]
            out[mode][f"added_{q}"] = peer.spread(added)
            rows.append((mode, q, f"{g['median']:.1f} ({g['min']:.1f}–{g['max']:.1f})",
                         f"{u['median']:.1f} ({u['min']:.1f}–{u['max']:.1f})",
                         f"{statistics.median(added):+.1f} ({min(added):+.1f}–{max(added):+.1f})"))
    console.print(summary_table(
        f"router with and without kb.ground: \\[serve] (tiny model, 8 greedy tokens, {args.requests} sequential "
        f"requests per repetition, medians of {args.reps} alternating repetitions, min–max)",
        ["messages", "latency", "grounded", "ungrounded", "added"], rows))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", nargs="+", choices=("sft", "serve"), default=["sft", "serve"])
    ap.add_argument("--dialogues", type=int, default=1500, help="procedural dialogues (about 4 %% reach 0.75)")
    ap.add_argument("--epochs", type=float, default=6.0, help="parallel.sft.epochs of both runs")
    ap.add_argument("--max-length", type=int, default=768, help="parallel.sft.max_length: room for the notes")
    ap.add_argument("--max-tokens", type=int, default=192, help="parallel.inference.max_tokens of the answers")
    ap.add_argument("--prompts", type=int, default=10, help="parallel.sft.eval_prompts_per_slice")
    ap.add_argument("--support", type=float, default=0.5, help="cosine at which a sentence counts as supported")
    ap.add_argument("--seed", type=int, default=0, help="finetune.seed of both runs (another seed: other run dirs)")
    ap.add_argument("--reps", type=int, default=3, help="alternating repetitions of the serve part")
    ap.add_argument("--requests", type=int, default=len(QUESTIONS), help="sequential requests per repetition")
    args = ap.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    path = ROOT / "benchmarks" / "results" / "bench_grounding.json"
    out = json.loads(path.read_text()) if path.exists() else {}  # a part run alone replaces only its own entry
    parts = {"sft": (f"sft_seed{args.seed}", sft_part), "serve": ("serve", serve_part)}
    for part in args.parts:
        key, measure = parts[part]
        machine = peer.Machine()
        out[key] = {**measure(args), "args": vars(args), "machine": machine.describe()}
        m = out[key]["machine"]
        console.print(f"{key}: load average {m['load_before'][0]:.1f} before, {m['load_after'][0]:.1f} after, on "
                      f"{m['cpus']} CPUs; commit {m['commit']}")
    console.print(f"wrote {atomic_write_json(path, out)}")

if __name__ == "__main__":
    main()
