"""`parallel-r1 tune`: a Ray Tune sweep over batch size x learning rate x LoRA rank for one specialist.

Each trial trains on the first `batch_size` of the specialist's eligible dialogues in a seeded order (so a
smaller sample is part of every larger one), fine-tunes a LoRA adapter through the same Ray Train path as
`finetune` (`launcher.fit_job`), reports its training loss to Tune once per epoch so that an ASHA scheduler
can stop poor trials early, then scores the adapter the way `compare` does on the specialist's niche slices
(HF engine). The base model is scored once on the same held-out prefixes, which avoid every discovered
dialogue.

Run it with `parallel-r1 tune`, or `run_tune(load_config(path))`. It writes `<workdir>/tune/`: results.json,
best_config.yaml (a loadable config holding the winning settings), sweep.png, data/bs<N>.jsonl,
adapters/<trial>/ and ray_results/. A rerun with the same settings trains nothing that completed or was
stopped early (failed trials run again); the lora alpha of a trial keeps the configured alpha / r ratio.
Trials start from the base model whatever `finetune.specialise_from` says: they sweep the LoRA rank, which an
adapter continued from the monolithic one cannot change, and a sweep of them would measure the monolithic too.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path

import yaml

from parallel_r1.batch.batches import Batch, UngradedDialoguesError, describe, eligible
from parallel_r1.batch.report import sft_records
from parallel_r1.compare.niche import niche_score
from parallel_r1.config import BatchSpec, PipelineConfig
from parallel_r1.console import console, notice, summary_table
from parallel_r1.data import read_dialogues
from parallel_r1.data.io import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_jsonl,
    atomic_write_text,
    cached_json,
)
from parallel_r1.errors import UserFacingError
from parallel_r1.paths import RunPaths, resolve_base_model
from parallel_r1.ray_runtime import ensure_ray
from parallel_r1.recipe import run_recipe
from parallel_r1.tune.trials import TrialSetup, grid, sweep, trial_record

log = logging.getLogger(__name__)

KEPT = ("completed", "early-stopped")  # statuses a rerun does not train again


@dataclass
class TuneSummary:
    specialist: str
    slices: list[str]
    base: dict[str, float]  # per slice and "mean"
    trials: list[dict]  # the records of results.json
    best: dict | None  # the completed trial with the highest niche score
    out_dir: Path
    trained: int  # trials run by this call
    reused: int  # trials kept from a previous run


def _check(cfg: PipelineConfig) -> tuple[BatchSpec, list[str]]:
    """The specialist's batch spec and niche slices; UserFacingError naming the field otherwise."""
    t = cfg.tune
    specs = {b.name: b for b in cfg.batch.batches}
    if t.specialist not in specs:
        raise UserFacingError(f"tune.specialist: unknown specialist {t.specialist!r}; "
                              f"expected one of {', '.join(specs)} (the names in batch.batches)")
    for name, values, ok in (("batch_sizes", t.batch_sizes, lambda v: v >= 1),
                             ("learning_rates", t.learning_rates, lambda v: v > 0),
                             ("lora_ranks", t.lora_ranks, lambda v: v >= 1)):
        if not values:
            raise UserFacingError(f"tune.{name} is empty: give at least one value to sweep")
        if bad := [v for v in values if not ok(v)]:
            raise UserFacingError(f"tune.{name}: invalid value(s) {bad} (must be positive)")
    slices = cfg.eval.niches.get(t.specialist)
    if not slices:
        raise UserFacingError(f"eval.niches has no slices for specialist {t.specialist!r}: "
                              "add the eval slices it should be scored on")
    if unknown := sorted(set(slices) - {s.name for s in cfg.eval.slices}):
        raise UserFacingError(f"eval.niches[{t.specialist}]: unknown slice(s) {', '.join(unknown)}; "
                              f"eval.slices has {', '.join(s.name for s in cfg.eval.slices)}")
    return specs[t.specialist], list(slices)


def _base_model(cfg: PipelineConfig, paths: RunPaths) -> str:
    """The base model to fine-tune: an absolute local folder, or a hub id."""
    base = resolve_base_model(cfg.base_model, paths)
    local = Path(base).expanduser()
    if local.exists():
        return str(local.resolve())
    if local.is_absolute() or base.startswith((".", "~")):
        raise FileNotFoundError(f"base_model.path: {base} not found")
    return base


def prepare_data(cfg: PipelineConfig, spec: BatchSpec, paths: RunPaths) -> dict[int, tuple[Path, int, int]]:
    """Write `tune/data/bs<N>.jsonl` (SFT messages) per batch size: the first N eligible dialogues in a
    seeded order. Returns {N: (file, examples written, eligible dialogues)}; fewer than N when short."""
    dialogues = read_dialogues(paths.require(paths.dialogues, "discover"))
    if ungraded := [d.dialogue_id for d in dialogues if d.score is None]:
        raise UngradedDialoguesError(f"{len(ungraded)} of {len(dialogues)} dialogues in {paths.dialogues} are "
                                     "ungraded: run `parallel-r1 grade` first")
    pool = eligible(dialogues, spec, cfg.batch)
    if not pool:
        raise UserFacingError(f"tune.specialist {spec.name!r}: none of the {len(dialogues)} dialogues in "
                              f"{paths.dialogues} is eligible ({describe(spec, cfg.batch)})")
    random.Random(f"{cfg.batch.seed}:tune:{spec.name}").shuffle(pool)
    out = {}
    for n in sorted(set(cfg.tune.batch_sizes)):
        chosen = pool[:n]
        records = sft_records(Batch(spec=spec, dialogues=chosen, eligible=len(pool), cap_removed=0),
                              cfg.batch.turn_floor)
        out[n] = (atomic_write_jsonl(paths.tune / "data" / f"bs{n}.jsonl", records), len(chosen), len(pool))
    return out


def _fingerprint(cfg: PipelineConfig, spec: BatchSpec, base: str, slices: list[str], paths: RunPaths) -> str:
    """Everything a trial's outcome depends on besides its own batch size, learning rate and rank."""
    ft, ev = cfg.finetune, cfg.eval
    parts = {
        "spec": spec.model_dump(mode="json"), "base": base,
        "data": hashlib.sha1(paths.dialogues.read_bytes()).hexdigest(),
        "batch": cfg.batch.model_dump(mode="json", include={"high_confidence", "medium_confidence", "quality_floor",
                                                            "turn_floor", "seed"}),
        "finetune": ft.model_dump(mode="json", include={"epochs", "max_length", "per_device_batch_size", "seed",
                                                        "gradient_accumulation_steps", "num_workers", "use_gpu"}),
        "lora": [ft.lora.alpha / ft.lora.r, ft.lora.dropout, ft.lora.target_modules],
        "eval": ev.model_dump(mode="json", include={"seed", "samples_per_prompt", "temperature", "top_p", "max_tokens",
                                                    "sampling_seed", "system_prompt"}),
        "slices": [s.model_dump(mode="json") for s in ev.slices if s.name in slices],
        "inference": cfg.inference.model_dump(mode="json", include={"dtype", "max_model_len"}),
        "tune": [cfg.tune.eval_prompts, cfg.tune.grace_epochs],
    }
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def best_trial(trials: list[dict]) -> dict | None:
    """The completed trial with the highest niche score (the first in grid order on a tie)."""
    done = [t for t in trials if t["status"] == "completed"]
    return max(done, key=lambda t: t["niche_score"]) if done else None


def best_config(cfg: PipelineConfig, best: dict) -> str:
    """A loadable config (finetune and batch sections) with the winning settings."""
    ft = cfg.finetune.model_copy(update={"learning_rate": best["learning_rate"], "lora": cfg.finetune.lora.model_copy(
        update={"r": best["lora_r"], "alpha": best["lora_alpha"]})})
    batches = [b.model_copy(update={"size": best["batch_size"]}) if b.name == cfg.tune.specialist else b
               for b in cfg.batch.batches]
    body = {"finetune": ft.model_dump(mode="json"),
            "batch": cfg.batch.model_copy(update={"batches": batches}).model_dump(mode="json")}
    head = (f"# Best trial of `parallel-r1 tune` for specialist {cfg.tune.specialist!r}: {best['trial']}, niche score "
            f"{best['niche_score']:.3f} ({best['delta_vs_base']:+.3f} vs the base).\n"
            f"# Paste these sections into a config; they set batch.batches[{cfg.tune.specialist}].size to "
            f"{best['batch_size']}.\n")
    return head + yaml.safe_dump(body, sort_keys=False)


def plot_sweep(trials: list[dict], base_mean: float, title: str, path: Path) -> Path:
    """Niche score against batch size, one line per (learning rate, rank); the base as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for lr, r in sorted({(t["learning_rate"], t["lora_r"]) for t in trials}):
        mine = [t for t in trials if (t["learning_rate"], t["lora_r"]) == (lr, r)]
        points = sorted((t["batch_size"], t["niche_score"]) for t in mine if t["niche_score"] is not None)
        line = ax.plot(*zip(*points, strict=True), marker="o", label=f"lr {lr:g}, rank {r}")[0] if points else None
        stopped = [t["batch_size"] for t in mine if t["status"] == "early-stopped"]
        if stopped:
            ax.plot(stopped, [base_mean] * len(stopped), "x", ms=9, color=line.get_color() if line else None,
                    label=f"lr {lr:g}, rank {r}: stopped early")
    ax.axhline(base_mean, ls="--", color="gray", label="base model")
    ax.set_xticks(sorted({t["batch_size"] for t in trials}))
    ax.set_xlabel("training samples (batch size)")
    ax.set_ylabel("niche score (mean rubric)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


class TuneStage:
    """setup() → run() → cleanup() over one PipelineConfig: sweep cfg.tune's grid for cfg.tune.specialist."""

    def __init__(self, cfg: PipelineConfig):
        self.cfg = cfg
        self.paths = RunPaths(cfg.workdir)

    def setup(self) -> None:
        cfg, paths = self.cfg, self.paths
        self.spec, self.slices = _check(cfg)
        data = prepare_data(cfg, self.spec, paths)
        self.base = _base_model(cfg, paths)
        self.fingerprint = _fingerprint(cfg, self.spec, self.base, self.slices, paths)
        self.trials = grid(cfg, data)

    def run(self) -> TuneSummary:
        cfg, paths, slices, base, fingerprint, trials = (self.cfg, self.paths, self.slices, self.base,
                                                         self.fingerprint, self.trials)
        out, results_path = paths.tune, paths.tune / "results.json"
        previous = cached_json(results_path) or {}
        if previous and previous.get("fingerprint") != fingerprint:
            notice("tune: the settings or data changed since the last sweep: every trial runs again", log)
            previous = {}
        records = {r["trial"]: r for r in previous.get("trials", []) if r["trial"] in trials and r["status"] in KEPT}
        todo = [n for n in trials if n not in records]
        notice(f"tune: {cfg.tune.specialist} on {', '.join(slices)}: {len(trials)} trial(s), {len(todo)} to run "
               f"({len(records)} kept from a previous run); base model {base}", log)
        if cfg.finetune.specialise_from != "base":
            notice("tune: trials start from the base model, not from the monolithic adapter "
                   "(finetune.specialise_from): they sweep the LoRA rank, which it fixes", log)
        base_scores = previous.get("base")
        if base_scores is None:
            console.print("tune: scoring the base model")
            base_scores = niche_score(cfg.eval, cfg.inference.model_copy(update={"engine": "hf"}), base, None, slices,
                                      paths.workdir, cfg.tune.eval_prompts)
        header = {"specialist": cfg.tune.specialist, "slices": slices, "base_model": base,
                  "fingerprint": fingerprint, "base": base_scores}

        def write() -> list[dict]:
            rows = sorted(records.values(), key=lambda r: (r["learning_rate"], r["lora_r"], r["batch_size"]))
            atomic_write_json(results_path, {**header, "trials": rows, "best": best_trial(rows)})
            return rows

        def record(name: str, result: dict, error) -> None:
            records[name] = trial_record(trials[name], result, error, base_scores["mean"], out / "adapters" / name)
            r = records[name]
            note = f", niche score {r['niche_score']:.3f}" if r["niche_score"] is not None else ""
            notice(f"  {name}: {r['status']}{note}" + (f" ({r['error']})" if r["error"] else ""), log)
            write()

        if todo:
            notice(ensure_ray(cfg.ray), log)
            setup = TrialSetup(cfg, str(paths.workdir), str(out), base, slices, trials, fingerprint)
            sweep(cfg, setup, todo, record)
            for name in todo:  # a trial Tune never reported (e.g. the sweep was interrupted)
                if name not in records:
                    record(name, {}, "interrupted")
        rows = write()
        best = best_trial(rows)
        if best:
            atomic_write_text(out / "best_config.yaml", best_config(cfg, best))
        else:
            (out / "best_config.yaml").unlink(missing_ok=True)
        plot_sweep(rows, base_scores["mean"], f"tune: {cfg.tune.specialist} on {', '.join(slices)}",
                   out / "sweep.png")
        _print(cfg.tune.specialist, base_scores["mean"], rows, best, out)
        return TuneSummary(cfg.tune.specialist, slices, base_scores, rows, best, out, trained=len(todo),
                           reused=len(trials) - len(todo))

    def cleanup(self) -> None:
        """Nothing to release: Ray Tune ends its trials."""


def _print(specialist: str, base_mean: float, rows: list[dict], best: dict | None, out: Path) -> None:
    notice(summary_table(
        f"tune: {specialist} (base niche score {base_mean:.3f})",
        ["trial", "batch", "examples", "lr", "rank", "status", "train loss", "niche score", "Δ base", "wall s"],
        [(r["trial"], r["batch_size"],
          f"{r['n_examples']} (all)" if r["n_examples"] < r["batch_size"] else r["n_examples"],
          f"{r['learning_rate']:g}", r["lora_r"], r["status"] + (" (best)" if r is best else ""), r["train_loss"],
          r["niche_score"], r["delta_vs_base"], r["wall_time_s"]) for r in rows]), log)
    notice(f"tune: results in {out}" + (f"; best {best['trial']} -> {out / 'best_config.yaml'}" if best else
                                        "; no trial completed"), log)


def run_tune(cfg: PipelineConfig) -> TuneSummary:
    """Sweep cfg.tune's grid for cfg.tune.specialist; write and return the results (see the module doc)."""
    return run_recipe(TuneStage(cfg))
