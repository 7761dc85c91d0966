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
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback

from parallel_r1.config import BatchSpec, PipelineConfig
from parallel_r1.console import console, summary_table
from parallel_r1.curate.batches import Batch, UngradedDialoguesError, describe, eligible
from parallel_r1.curate.report import sft_records
from parallel_r1.data import read_dialogues
from parallel_r1.data.io import atomic_write_bytes, atomic_write_json, atomic_write_jsonl, atomic_write_text
from parallel_r1.errors import UserFacingError
from parallel_r1.paths import RunPaths

REDUCTION_FACTOR = 2  # ASHA: at each rung, trials worse than the median so far stop
FIT_RECORD = "fit.json"  # next to a trial's adapter once its fit is done: a rerun only scores it
KEPT = ("completed", "early-stopped")  # statuses a rerun does not train again


@dataclass(frozen=True)
class TrialSpec:
    name: str
    batch_size: int
    learning_rate: float
    lora_r: int
    lora_alpha: int
    train_file: str
    n_examples: int
    n_available: int


@dataclass(frozen=True)
class _Setup:
    """What every trial needs; shipped once through the object store. Paths are absolute (trials run in
    their own working directory)."""

    cfg: PipelineConfig
    workdir: str
    out_dir: str
    base_model: str
    slices: list[str]
    trials: dict[str, TrialSpec]
    fingerprint: str


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
    from parallel_r1.train.base_model import resolve_base_model

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


def _grid(cfg: PipelineConfig, data: dict[int, tuple[Path, int, int]]) -> dict[str, TrialSpec]:
    """The trials in run order: per (learning rate, rank), every batch size."""
    t, lora = cfg.tune, cfg.finetune.lora
    trials = {}
    for lr in sorted(set(t.learning_rates)):
        for r in sorted(set(t.lora_ranks)):
            for bs in sorted(set(t.batch_sizes)):
                name = f"bs{bs}-lr{lr:g}-r{r}"
                path, n, available = data[bs]
                trials[name] = TrialSpec(name, bs, lr, r, max(1, round(r * lora.alpha / lora.r)), str(path), n,
                                         available)
    return trials


class _EpochLoss(TuneReportCallback):
    """Forwards each SFT report to Tune as `loss`, with `epoch` only before the last epoch: ASHA decides
    on intermediate epochs and never stops a trial whose training is already done."""

    def __init__(self, epochs: float):
        super().__init__()
        self.epochs = epochs

    def after_report(self, run_context, metrics, checkpoint):
        m = metrics[0]
        loss = m.get("loss", m.get("train_loss", math.nan))
        out = {"loss": loss if math.isfinite(loss) else math.inf}  # diverged: the worst loss, so ASHA stops it
        if "epoch" in m and m["epoch"] < self.epochs - 1e-6:
            out["epoch"] = m["epoch"]
        super().after_report(run_context, [out], checkpoint)


def _trial(config: dict, setup: _Setup) -> None:
    """One Tune trial: fine-tune through Ray Train, then report the niche score of the adapter."""
    from parallel_r1.evaluate.niche import niche_score
    from parallel_r1.evaluate.replies import eval_system_prompt
    from parallel_r1.train.launcher import fit_job, job_config

    spec, cfg = setup.trials[config["trial"]], setup.cfg
    ft = cfg.finetune.model_copy(update={
        "learning_rate": spec.learning_rate,
        "lora": cfg.finetune.lora.model_copy(update={"r": spec.lora_r, "alpha": spec.lora_alpha})})
    adapter = Path(setup.out_dir) / "adapters" / spec.name
    record = adapter / FIT_RECORD
    fit = json.loads(record.read_text()) if record.exists() else {}
    if fit.get("fingerprint") != setup.fingerprint:
        job = job_config(spec.name, Path(spec.train_file), setup.base_model, ft, spec.n_examples)
        per_worker = math.ceil(spec.n_examples / ft.num_workers)
        job["save_steps"] = max(1, math.ceil(per_worker / ft.per_device_batch_size) // ft.gradient_accumulation_steps)
        storage = str(Path(setup.out_dir) / "ray_results" / "train")
        fit = fit_job(job, ft, f"{spec.name}-{setup.fingerprint[:8]}", storage, str(adapter),
                      callbacks=[_EpochLoss(ft.epochs)])["metrics"]
        atomic_write_json(record, {**fit, "fingerprint": setup.fingerprint})
    inference = cfg.inference.model_copy(update={"engine": "hf"})  # a vLLM start per trial costs more than it saves
    scores = niche_score(cfg.eval, inference, setup.base_model, adapter, setup.slices, Path(setup.workdir),
                         cfg.tune.eval_prompts, eval_system_prompt(cfg.tune.specialist, cfg.eval, cfg.batch.batches))
    tune.report({"loss": fit["train_loss_mean_last_5"], "niche_score": scores["mean"], "niche": scores,
                 "examples_trained": fit["examples"], "fit_wall_time_s": fit["fit_wall_time_s"]})


def _trial_name(trial) -> str:
    return trial.config["trial"]


class _Recorder(tune.Callback):
    """Driver side: one line per trial event; each finished trial goes to `record(name, result, error)`."""

    def __init__(self, record):
        self.record = record

    def __getstate__(self) -> dict:
        return {"record": None}  # Tune pickles its callbacks into tuner.pkl; the live hook stays here

    def on_trial_start(self, iteration, trials, trial, **info):
        console.print(f"  {trial.config['trial']}: training")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "epoch" in result:
            console.print(f"  {trial.config['trial']}: epoch {result['epoch']:g}, loss {result['loss']:.3f}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.record(trial.config["trial"], trial.last_result, None)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.record(trial.config["trial"], trial.last_result, trial.get_error() or "failed")


def _record(spec: TrialSpec, result: dict, error, base_mean: float, adapter: Path) -> dict:
    score = result.get("niche_score")
    status = "failed" if error else "completed" if score is not None else "early-stopped"
    lines = str(error or "").strip().splitlines()
    return {
        "trial": spec.name, "batch_size": spec.batch_size, "learning_rate": spec.learning_rate,
        "lora_r": spec.lora_r, "lora_alpha": spec.lora_alpha, "n_examples": spec.n_examples,
        "n_available": spec.n_available, "status": status, "train_loss": result.get("loss"),
        "stopped_at_epoch": result.get("epoch") if status == "early-stopped" else None,
        "niche_score": score, "delta_vs_base": None if score is None else score - base_mean,
        "slice_scores": {k: v for k, v in result.get("niche", {}).items() if k != "mean"} or None,
        "wall_time_s": result.get("time_total_s"), "fit_wall_time_s": result.get("fit_wall_time_s"),
        "adapter": str(adapter) if score is not None else None,
        "error": lines[-1][:500] if lines else None,
    }


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


def _sweep(cfg: PipelineConfig, setup: _Setup, todo: list[str], record) -> None:
    from ray.tune.schedulers import ASHAScheduler

    grace = cfg.tune.grace_epochs
    scheduler = ASHAScheduler(time_attr="epoch", metric="loss", mode="min", grace_period=grace,
                              max_t=max(grace, math.ceil(cfg.finetune.epochs)), reduction_factor=REDUCTION_FACTOR,
                              stop_last_trials=False)
    trainable = tune.with_resources(tune.with_parameters(_trial, setup=setup), {"CPU": 0, "memory": 64 * 1024**2})
    tuner = tune.Tuner(
        trainable, param_space={"trial": tune.grid_search(todo)},
        tune_config=tune.TuneConfig(scheduler=scheduler, max_concurrent_trials=cfg.tune.max_concurrent_trials,
                                    trial_name_creator=_trial_name),
        run_config=tune.RunConfig(name=f"{cfg.tune.specialist}-{time.strftime('%Y%m%d-%H%M%S')}",
                                  storage_path=str(Path(setup.out_dir) / "ray_results"), verbose=0,
                                  callbacks=[_Recorder(record)]),
    )
    tuner.fit()


def run_tune(cfg: PipelineConfig) -> TuneSummary:
    """Sweep cfg.tune's grid for cfg.tune.specialist; write and return the results (see the module doc)."""
    from parallel_r1.evaluate.niche import niche_score
    from parallel_r1.ray_runtime import ensure_ray

    spec, slices = _check(cfg)
    paths = RunPaths(cfg.workdir)
    data = prepare_data(cfg, spec, paths)
    base = _base_model(cfg, paths)
    fingerprint = _fingerprint(cfg, spec, base, slices, paths)
    trials = _grid(cfg, data)
    out, results_path = paths.tune, paths.tune / "results.json"
    previous = json.loads(results_path.read_text()) if results_path.exists() else {}
    if previous and previous.get("fingerprint") != fingerprint:
        console.print("tune: the settings or data changed since the last sweep: every trial runs again")
        previous = {}
    records = {r["trial"]: r for r in previous.get("trials", []) if r["trial"] in trials and r["status"] in KEPT}
    todo = [n for n in trials if n not in records]
    console.print(f"tune: {cfg.tune.specialist} on {', '.join(slices)}: {len(trials)} trial(s), {len(todo)} to run "
                  f"({len(records)} kept from a previous run); base model {base}")
    if cfg.finetune.specialise_from != "base":
        console.print("tune: trials start from the base model, not from the monolithic adapter "
                      "(finetune.specialise_from): they sweep the LoRA rank, which it fixes")
    base_scores = previous.get("base")
    if base_scores is None:
        console.print("tune: scoring the base model")
        base_scores = niche_score(cfg.eval, cfg.inference.model_copy(update={"engine": "hf"}), base, None, slices,
                                  paths.workdir, cfg.tune.eval_prompts)
    header = {"specialist": cfg.tune.specialist, "slices": slices, "base_model": base, "fingerprint": fingerprint,
              "base": base_scores}

    def write() -> list[dict]:
        rows = sorted(records.values(), key=lambda r: (r["learning_rate"], r["lora_r"], r["batch_size"]))
        atomic_write_json(results_path, {**header, "trials": rows, "best": best_trial(rows)})
        return rows

    def record(name: str, result: dict, error) -> None:
        records[name] = _record(trials[name], result, error, base_scores["mean"], out / "adapters" / name)
        r = records[name]
        note = f", niche score {r['niche_score']:.3f}" if r["niche_score"] is not None else ""
        console.print(f"  {name}: {r['status']}{note}" + (f" ({r['error']})" if r["error"] else ""))
        write()

    if todo:
        console.print(ensure_ray(cfg.ray))
        setup = _Setup(cfg, str(paths.workdir), str(out), base, slices, trials, fingerprint)
        _sweep(cfg, setup, todo, record)
        for name in todo:  # a trial Tune never reported (e.g. the sweep was interrupted)
            if name not in records:
                record(name, {}, "interrupted")
    rows = write()
    best = best_trial(rows)
    if best:
        atomic_write_text(out / "best_config.yaml", best_config(cfg, best))
    else:
        (out / "best_config.yaml").unlink(missing_ok=True)
    plot_sweep(rows, base_scores["mean"], f"tune: {cfg.tune.specialist} on {', '.join(slices)}", out / "sweep.png")
    console.print(summary_table(
        f"tune: {cfg.tune.specialist} (base niche score {base_scores['mean']:.3f})",
        ["trial", "batch", "examples", "lr", "rank", "status", "train loss", "niche score", "Δ base", "wall s"],
        [(r["trial"], r["batch_size"],
          f"{r['n_examples']} (all)" if r["n_examples"] < r["batch_size"] else r["n_examples"],
          f"{r['learning_rate']:g}", r["lora_r"], r["status"] + (" (best)" if r is best else ""), r["train_loss"],
          r["niche_score"], r["delta_vs_base"], r["wall_time_s"]) for r in rows]))
    console.print(f"tune: results in {out}" + (f"; best {best['trial']} -> {out / 'best_config.yaml'}" if best else
                                               "; no trial completed"))
    return TuneSummary(cfg.tune.specialist, slices, base_scores, rows, best, out, trained=len(todo),
                       reused=len(trials) - len(todo))
