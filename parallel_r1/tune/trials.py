"""The Ray Tune side of `parallel-r1 tune`: the trial grid, one trial (a fine-tune through Ray Train reporting its
loss per epoch, so that ASHA can stop it early, then the niche score of its adapter), the driver's record of each
finished trial, and the sweep itself."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback

from parallel_r1.compare.niche import niche_score
from parallel_r1.compare.replies import eval_system_prompt
from parallel_r1.config import PipelineConfig
from parallel_r1.config.workers import SFTJob
from parallel_r1.console import console
from parallel_r1.data.io import atomic_write_json, cached_json

REDUCTION_FACTOR = 2  # ASHA: at each rung, trials worse than the median so far stop
FIT_RECORD = "fit.json"  # next to a trial's adapter once its fit is done: a rerun only scores it


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
class TrialSetup:
    """What every trial needs; shipped once through the object store. Paths are absolute (trials run in
    their own working directory)."""

    cfg: PipelineConfig
    workdir: str
    out_dir: str
    base_model: str
    slices: list[str]
    trials: dict[str, TrialSpec]
    fingerprint: str


def grid(cfg: PipelineConfig, data: dict[int, tuple[Path, int, int]]) -> dict[str, TrialSpec]:
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


def _trial(config: dict, setup: TrialSetup) -> None:
    """One Tune trial: fine-tune through Ray Train, then report the niche score of the adapter."""
    from parallel_r1.finetune.launcher import fit_job  # TRL, PEFT and torch: in the trial's worker

    spec, cfg = setup.trials[config["trial"]], setup.cfg
    ft = cfg.finetune.model_copy(update={
        "learning_rate": spec.learning_rate,
        "lora": cfg.finetune.lora.model_copy(update={"r": spec.lora_r, "alpha": spec.lora_alpha})})
    adapter = Path(setup.out_dir) / "adapters" / spec.name
    record = adapter / FIT_RECORD
    fit = cached_json(record) or {}
    if fit.get("fingerprint") != setup.fingerprint:
        per_worker = math.ceil(spec.n_examples / ft.num_workers)
        steps_per_epoch = math.ceil(per_worker / ft.per_device_batch_size) // ft.gradient_accumulation_steps
        job = replace(SFTJob.for_batch(spec.name, Path(spec.train_file), setup.base_model, ft, spec.n_examples),
                      save_steps=max(1, steps_per_epoch))
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


def trial_record(spec: TrialSpec, result: dict, error, base_mean: float, adapter: Path) -> dict:
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


def sweep(cfg: PipelineConfig, setup: TrialSetup, todo: list[str], record) -> None:
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
