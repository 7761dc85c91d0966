"""The `parallel-r1 rl` stage: GRPO on the parallel-SFT model, in a Ray Train `TorchTrainer` (one worker here, a
scaling config on clusters), with rollouts through vLLM or HF generate as `rl.rollout_backend` says.

Artifacts under `<workdir>/parallel/rl/`: `metrics.jsonl` (one line per step: every reward component, format
adherence, curriculum tier and phase, the step-time breakdown), `metrics.png`, `state.json` (step, tier, phase,
promotions, stop reason), `fingerprint.json` (the start model's digest and the settings that shape training),
`checkpoints/` (Ray Train storage) and `model/` (the final policy). A killed or shorter run resumes from its last
checkpoint under the same Ray Train run name; a run that met a stop criterion is not restarted. A run whose start
model or training settings changed is refused; `--restart` discards it and starts over.

The policy must have passed its parallel-SFT validation: the `eval.json` beside it (`parallel/sft/eval.json` for the
default policy) must have evaluated its weights and passed; otherwise the stage refuses to start, unless forced.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from parallel_r1.compare.models import PARALLEL_RL, PARALLEL_SFT
from parallel_r1.config import PipelineConfig
from parallel_r1.config.groups import train_storage
from parallel_r1.config.workers import JOB_KEY, GRPOJob
from parallel_r1.console import console, progress_bar, summary_table
from parallel_r1.data.io import atomic_write_json, remove_stale_temps
from parallel_r1.data.records import ArtifactError
from parallel_r1.data.run_lock import run_lock
from parallel_r1.errors import UserFacingError
from parallel_r1.grade import resolved_grade
from parallel_r1.paths import RunPaths
from parallel_r1.recipe import run_recipe
from parallel_r1.registry.versions import ModelRegistry, weights_digest
from parallel_r1.rl.critic import build_critic, critic_grade_config
from parallel_r1.rl.metrics import ADHERENCE, REWARD_NAMES, TIMINGS, MetricsLog, plot_metrics, trend
from parallel_r1.rl.state import (
    RLFingerprint,
    RLState,
    discard_run,
    fingerprint,
    read_fingerprint,
    read_state,
    remove_discarded,
)

RUN_NAME = "grpo"
FINGERPRINT_FILE = "fingerprint.json"
log = logging.getLogger(__name__)


@dataclass
class RLResult:
    """What one invocation did: steps before and after, why it stopped (if a criterion did), where the model is."""

    backend: str
    model: str
    start_step: int
    end_step: int
    max_steps: int
    stopped: dict | None
    policy: Path | None
    records: list[dict] = field(default_factory=list)


def resolve_backend(backend: str) -> str:
    """`auto` -> vLLM where it imports, else HF generate."""
    if backend == "auto":
        return "vllm" if importlib.util.find_spec("vllm") is not None else "hf"
    if backend == "vllm" and importlib.util.find_spec("vllm") is None:
        raise UserFacingError("rl.rollout_backend=vllm but vLLM is not installed: install the `cpu` or `gpu` extra, "
                              "or set rl.rollout_backend=hf")
    return backend


class NotValidatedError(UserFacingError):
    """The policy has no passed parallel-SFT validation behind it (`parallel-r1 rl --force` starts anyway)."""


class RunChangedError(UserFacingError):
    """The recorded run started from another model or other training settings (`parallel-r1 rl --restart` starts
    over)."""


class RLStage:
    """setup() -> run() -> cleanup() over one PipelineConfig."""

    def __init__(self, cfg: PipelineConfig, model: Path | None = None, *, force: bool = False,
                 restart: bool = False):
        """model: the policy to start from (overrides rl.model and the parallel-SFT output); force: start even when
        its parallel-SFT validation failed or is missing; restart: start over when the recorded run's start model or
        training settings differ (or its records cannot be read)."""
        self.cfg, self.rl = cfg, cfg.rl
        self.paths = RunPaths(cfg.workdir)
        self.model_arg = model
        self.force, self.restart = force, restart
        self.critic = critic_grade_config(cfg)
        self.metrics = MetricsLog(self.paths.rl_metrics)
        self.model: Path | None = None
        self.backend = ""
        self.start_step = 0
        self.done: str | None = None
        self.fingerprint: RLFingerprint | None = None

    def _state(self) -> RLState:
        return read_state(self.paths.rl_state)

    @property
    def fingerprint_file(self) -> Path:
        return self.paths.rl / FINGERPRINT_FILE

    def _storage(self) -> str:
        """Ray Train's storage: an absolute path or a URI."""
        return train_storage(self.rl.storage_path or self.paths.rl_checkpoints)

    def setup(self) -> None:
        from transformers import AutoTokenizer

        from parallel_r1.finetune.parallel_tokens import PARALLEL_TAGS, parallel_token_ids
        from parallel_r1.rl.grpo_worker import model_budget

        given = self.model_arg or (Path(self.rl.model) if self.rl.model else None)
        self.model = Path(given or self.paths.parallel_sft_model).resolve()
        if not (self.model / "config.json").exists():
            how = "check --model / rl.model" if given else "run `parallel-r1 parallel-sft` first"
            raise FileNotFoundError(f"policy model {self.model} not found (no config.json): {how}")
        missing = set(PARALLEL_TAGS) - set(parallel_token_ids(AutoTokenizer.from_pretrained(self.model)))
        if missing:
            raise UserFacingError(f"{self.model}: the tokenizer lacks the Parallel tags {sorted(missing)}; train it "
                                  "with `parallel-r1 parallel-sft` (which adds them) before `parallel-r1 rl`")
        model_budget(str(self.model), self.rl)
        self._check_validation()
        if self.critic is not None:
            build_critic(self.critic)  # a missing fitted grader fails here, not in a worker
        self.backend = resolve_backend(self.rl.rollout_backend)
        remove_stale_temps(self.paths.rl)
        self._check_fingerprint()
        state = self._state()
        self.start_step = state.step
        if state.stopped:
            s = state.stopped
            self.done = f"stopped at step {s.step} ({s.code}): {s.message}"
        elif self.start_step >= self.rl.max_steps and self.paths.rl_model.exists():
            self.done = f"already at step {self.start_step} of rl.max_steps={self.rl.max_steps}"

    def _check_fingerprint(self) -> None:
        """Resume only a run of the same start model and training settings whose records can be read; another is
        refused, or with --restart discarded. A run from before fingerprints is resumed with a warning."""
        checkpoints = f"{self._storage()}/{RUN_NAME}"
        remove_discarded(self.paths.rl, checkpoints)
        self.fingerprint = fingerprint(self.cfg, self.model)
        try:
            why = self._why_not_resumable()
        except ArtifactError as e:
            if not self.restart:
                raise
            why = str(e)
        if why is None:
            return
        if not self.restart:
            raise RunChangedError(f"rl: the run in {self.paths.rl} {why}: `parallel-r1 rl --restart` discards it "
                                  "(checkpoints, metrics, model) and starts over")
        log.warning("rl --restart: discarding the run in %s (%s) and starting over", self.paths.rl, why)
        discard_run(self.paths.rl, checkpoints)

    def _why_not_resumable(self) -> str | None:
        """What stops the recorded run from being resumed (None: nothing, or no run); an unreadable record raises."""
        recorded = read_fingerprint(self.fingerprint_file)
        read_state(self.paths.rl_state)
        if recorded is None:
            if self.paths.rl_state.exists():
                log.warning("rl: %s has no %s (a run from an older version): resuming it as a run from %s",
                            self.paths.rl, FINGERPRINT_FILE, self.model)
            return None
        changes = recorded.changes(self.fingerprint)
        return f"was trained with other settings ({'; '.join(changes)})" if changes else None

    def _check_validation(self) -> None:
        """Refuse a policy whose `eval.json` (beside it) is missing, stale or failed; with --force, warn instead."""
        from parallel_r1.parallel_sft.check import validation_problem

        eval_file = self.model.parent / self.paths.parallel_sft_eval.name
        if not eval_file.exists():
            problem = (f"{eval_file} not found: {self.model} has no parallel-SFT validation (`parallel-r1 "
                       "parallel-sft` writes it)")
        else:
            try:
                found = validation_problem(json.loads(eval_file.read_text()), self.model)
            except (ValueError, KeyError, TypeError) as e:
                found = f"unreadable ({type(e).__name__}: {e}): run `parallel-r1 parallel-sft` again"
            if found is None:
                return
            problem = f"{eval_file}: {found}"
        if not self.force:
            raise NotValidatedError(f"rl: refusing to start from {self.model}: {problem}. `parallel-r1 rl --force` "
                                    "starts anyway")
        console.print(f"[yellow]warning:[/] rl --force: starting from {self.model} although {problem}",
                      highlight=False, soft_wrap=True)

    def job(self) -> GRPOJob:
        """What every Ray Train worker receives."""
        return GRPOJob(rl=self.rl, model=str(self.model), backend=self.backend, max_blocks=self.cfg.parallel.max_blocks,
                       metrics_file=str(self.paths.rl_metrics), state_file=str(self.paths.rl_state),
                       grade=resolved_grade(self.cfg), critic=self.critic,
                       torch_threads=None if self.rl.use_gpu else max(1, int(self.rl.cpus_per_worker)),
                       card_dir=str(Path(card_dir).resolve()) if (card_dir := self.cfg.discover.card_dir) else None)

    def run(self) -> RLResult:
        """Train (unless done), redraw the plot from the metrics file (also after a failed or killed run), print
        the summary."""
        started = time.perf_counter()
        try:
            if self.done is not None:
                console.print(f"rl: {self.done}; nothing to do (raise rl.max_steps to train further)")
            else:
                self._fit()
        finally:
            plot = plot_metrics(self.metrics.read(), self.paths.rl_plot)
        state = self._state()
        result = RLResult(self.backend, str(self.model), self.start_step, state.step,
                          self.rl.max_steps, state.stopped.model_dump() if state.stopped else None,
                          self.paths.rl_model if self.paths.rl_model.exists() else None, self.metrics.read())
        console.print(summary(result))
        console.print(f"rl: {time.perf_counter() - started:.0f} s; metrics {self.paths.rl_metrics}"
                      + (f", plot {plot}" if plot else "") + (f", policy {result.policy}" if result.policy else ""))
        return result

    def _trainer(self):
        from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig

        from parallel_r1.base_model.torch_trainer import torch_trainer
        from parallel_r1.rl.grpo_worker import grpo_train_loop

        rl = self.rl
        resources = {"CPU": rl.cpus_per_worker, **({"GPU": rl.gpus_per_worker} if rl.use_gpu else {})}
        storage = self._storage()
        return torch_trainer(
            grpo_train_loop, train_loop_config={JOB_KEY: self.job()},
            scaling_config=ScalingConfig(num_workers=rl.num_workers, use_gpu=rl.use_gpu,
                                         resources_per_worker=resources),
            run_config=RunConfig(name=RUN_NAME, storage_path=storage,
                                 failure_config=FailureConfig(max_failures=rl.max_failures),
                                 checkpoint_config=CheckpointConfig(num_to_keep=2)))

    def _fit(self) -> None:
        from parallel_r1.ray_runtime import ensure_ray
        from parallel_r1.rl.grpo_worker import HF_CHECKPOINT, export_model

        console.print(ensure_ray(self.cfg.ray))
        atomic_write_json(self.fingerprint_file, self.fingerprint.model_dump(mode="json"))
        where = f"resuming after step {self.start_step}" if self.start_step else "from step 0"
        console.print(f"rl: GRPO on {self.model} with {self.backend} rollouts, {where}, up to rl.max_steps="
                      f"{self.rl.max_steps} ({self.rl.num_workers} Ray Train worker(s))")
        trainer = self._trainer()
        outcome: dict = {}
        thread = threading.Thread(target=lambda: outcome.update(result=_fit_or_error(trainer)), daemon=True)
        thread.start()
        self._follow(thread)
        result = outcome["result"]
        if isinstance(result, BaseException):
            raise result
        if result.checkpoint is not None:
            with result.checkpoint.as_directory() as ckpt:
                export_model(Path(ckpt) / HF_CHECKPOINT, self.paths.rl_model)
            self._register()

    def _register(self) -> None:
        """The policy as a registry version, its parent the registered version of the model it started from."""
        registry = ModelRegistry(self.paths.workdir)
        start = registry.find(PARALLEL_SFT, weights_digest("model", self.model)) if self.model.exists() else None
        version = registry.register(PARALLEL_RL, "model", self.paths.rl_model, training=self.rl.model_dump(mode="json"),
                                    parent=start.ref if start else None, metrics=self._state().model_dump())
        console.print(f"rl: registered as {version.ref}")

    def _follow(self, thread: threading.Thread) -> None:
        """A progress bar over the steps, fed by the metrics file the worker appends to."""
        with progress_bar() as bar:
            task = bar.add_task("rl", total=self.rl.max_steps, completed=self.start_step, status="starting")
            while thread.is_alive():
                thread.join(timeout=1.0)
                rows = self.metrics.read()
                if rows:
                    r = rows[-1]
                    bar.update(task, completed=r["step"], status=(
                        f"{r['tier']}/{r['phase']} reward {r['reward']:.3f} format {r[ADHERENCE]:.2f} "
                        f"step {r['step_s']:.1f}s"))

    def cleanup(self) -> None:
        """Nothing to release: run() redraws the plot however training ends, and Ray Train owns its workers."""


def _fit_or_error(trainer):
    try:
        return trainer.fit()
    except BaseException as e:  # noqa: BLE001 - re-raised in the calling thread
        return e


def summary(result: RLResult):
    """One screen: the run, every component's first vs last window, format adherence, where the step time went."""
    rows = result.records
    n = len(rows)
    lines = [("steps", f"{result.start_step} -> {result.end_step} of {result.max_steps}", ""),
             ("rollouts", result.backend, ""),
             ("tier / phase", f"{rows[-1]['tier']} / {rows[-1]['phase']}" if rows else "-", ""),
             ("stop", result.stopped["code"] if result.stopped else "-",
              result.stopped["message"] if result.stopped else "")]
    for key in (*REWARD_NAMES, "reward", ADHERENCE):
        first, last = trend(rows, key)
        lines.append((key, first, last))
    for key in TIMINGS:
        values = [r[key] for r in rows if r.get(key) is not None]
        lines.append((f"mean {key}", sum(values) / len(values) if values else None, ""))
    gen = sum(r.get("generation_s") or 0.0 for r in rows)
    tokens = sum(r.get("completion_tokens") or 0 for r in rows)
    lines.append(("rollout tokens/s", tokens / gen if gen else None, f"{n} step(s) logged"))
    return summary_table("parallel-r1 rl (first steps | last steps)", ["", "first / value", "last / note"],
                         lines)


def run_rl(cfg: PipelineConfig, model: Path | None = None, *, force: bool = False, restart: bool = False) -> RLResult:
    with run_lock(cfg.workdir, "rl"):
        return run_recipe(RLStage(cfg, model, force=force, restart=restart))
