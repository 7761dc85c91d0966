"""The Ray Train worker loop of `parallel-r1 rl`: build the curriculum-driven GRPO trainer, resume from the run's
latest checkpoint (model, optimizer, step and curriculum state), train, report checkpoints.

Between steps, `CurriculumCallback` feeds the step's sample rewards to the curriculum (promotion, phase, stop
criteria; a stop ends the run with a checkpoint and its reason) and, on rank 0, appends the step's record to
`metrics.jsonl` and rewrites `state.json`. `CheckpointReporter` reports each saved checkpoint, with the curriculum
state beside it, to Ray Train. `run_grpo_locally` runs the same training without Ray (the benchmark).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback

from parallel_r1.config.workers import GRPOJob, worker_job
from parallel_r1.data.card_files import use_card_dir
from parallel_r1.rl.state import MODEL_FILES, RLState, StopRecord

HF_CHECKPOINT = "checkpoint"
CURRICULUM_FILE = "curriculum.json"


class CurriculumCallback(TrainerCallback):
    """Curriculum decisions between steps and the per-step record (metrics.jsonl, state.json) on rank 0."""

    def __init__(self, trainer, metrics, state_file: Path | None, is_writer: bool, on_record=None):
        self.trainer, self.metrics, self.state_file, self.is_writer = trainer, metrics, state_file, is_writer
        self.on_record = on_record
        self._started = time.perf_counter()
        self._event: dict = {}

    def on_step_begin(self, args, state, control, **kwargs):
        self._started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        step_s = time.perf_counter() - self._started
        trainer, cur = self.trainer, self.trainer.curriculum
        rollout = trainer.rollout
        self._event = {"timings": trainer.step_timings(step_s), "rollout": rollout}
        outcome = cur.update(state.global_step, rollout.sample_rewards if rollout else [])
        self._event.update(promoted_to=outcome.promoted_to, phase_changed_to=outcome.phase_changed_to)
        if outcome.stop is not None:
            self._event["stop"] = outcome.stop
            control.should_training_stop = True
            control.should_save = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        from parallel_r1.rl.metrics import ADHERENCE, component_means

        if not self.is_writer or not self._event or "reward" not in (logs or {}):
            return
        ev, self._event = self._event, {}
        rollout, stop = ev["rollout"], ev.get("stop")
        record = {
            "step": state.global_step, "tier": rollout.tier, "phase": rollout.phase.name,
            "temperature": rollout.phase.temperature, "branches": rollout.phase.branches,
            "weights": rollout.weights, **component_means(logs), "reward": logs.get("reward"),
            "reward_std": logs.get("reward_std"), ADHERENCE: rollout.format_adherence,
            "completion_tokens": rollout.completion_tokens,
            "completion_mean_length": logs.get("completions/mean_length"), "loss": logs.get("loss"),
            **ev["timings"], "promoted_to": ev["promoted_to"], "phase_changed_to": ev["phase_changed_to"],
            "stop_reason": stop.code if stop else None,
        }
        self.metrics.append(record)
        if self.state_file is not None:
            self.write_state(state.global_step, args.max_steps)
        if self.on_record is not None:
            self.on_record(record)

    def write_state(self, step: int, max_steps: int) -> None:
        from parallel_r1.data.io import atomic_write_json

        cur = self.trainer.curriculum
        stopped = cur.stopped
        state = RLState(step=step, max_steps=max_steps, tier=cur.tier, phase=cur.state.phase,
                        promotions=cur.state.promotions, curriculum=json.loads(cur.state.to_json()),
                        stopped=StopRecord(code=stopped.code, message=stopped.message, step=stopped.step)
                        if stopped else None)
        atomic_write_json(self.state_file, state.model_dump(mode="json"))


class CheckpointReporter(TrainerCallback):
    """After each checkpoint save: the HF checkpoint and the curriculum state, reported to Ray Train."""

    def __init__(self, trainer):
        self.trainer = trainer

    def on_save(self, args, state, control, **kwargs):
        import ray.train
        from transformers.trainer_utils import get_last_checkpoint

        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            source = get_last_checkpoint(args.output_dir)
            if source is not None and ray.train.get_context().get_world_rank() == 0:
                shutil.copytree(source, Path(tmp, HF_CHECKPOINT))
                Path(tmp, CURRICULUM_FILE).write_text(self.trainer.curriculum.state.to_json())
                checkpoint = ray.train.Checkpoint.from_directory(tmp)
            stopped = self.trainer.curriculum.stopped
            ray.train.report({"step": state.global_step, "stopped": stopped.code if stopped else ""},
                             checkpoint=checkpoint)


@contextlib.contextmanager
def vllm_engine_settings(dtype: str, kv_cache_gb: int) -> Iterator[None]:
    """TRL's colocated engine is built without a dtype (vLLM then runs an fp32 model in bf16: ~3x slower on CPU and
    off the trainer's numerics) and, on CPU, needs a KV cache size: supply both while the trainer is built."""
    import trl.generation.vllm_generation as vg

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gb))
    original = vg.LLM

    def llm(*args, **kwargs):
        if dtype != "auto":
            kwargs.setdefault("dtype", dtype)
        return original(*args, **kwargs)

    vg.LLM = llm
    try:
        yield
    finally:
        vg.LLM = original


def model_budget(model_path: str, rl) -> tuple[int, int]:
    """(max_model_len, prompt token budget): the model's context (or rl.max_model_len) minus the longest phase."""
    from transformers import AutoConfig

    from parallel_r1.errors import UserFacingError

    context = rl.max_model_len or AutoConfig.from_pretrained(model_path).max_position_embeddings
    completion = max(rl.explore.max_tokens, rl.verify.max_tokens)
    if context - completion < 16:
        raise UserFacingError(f"rl: {completion} completion tokens leave {context - completion} prompt tokens in a "
                              f"{context}-token context: lower rl.explore.max_tokens / rl.verify.max_tokens or "
                              "raise rl.max_model_len")
    return context, context - completion


def build_trainer(job: GRPOJob, output_dir: str, curriculum_state=None, world_size: int = 1,
                  is_writer: bool = True, on_record=None, save: bool = True):
    """The curriculum-driven GRPO trainer of one run."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from parallel_r1.grade import build_grader
    from parallel_r1.rl.critic import build_critic
    from parallel_r1.rl.curriculum import Curriculum
    from parallel_r1.rl.grpo import CurriculumGRPOTrainer, grpo_args
    from parallel_r1.rl.metrics import MetricsLog
    from parallel_r1.rl.prompts import CurriculumPrompts
    from parallel_r1.rl.rewards import COMPONENTS, rewards_from_config

    if job.torch_threads:
        torch.set_num_threads(job.torch_threads)
    rl = job.rl
    tokenizer = AutoTokenizer.from_pretrained(job.model)
    model = AutoModelForCausalLM.from_pretrained(job.model, dtype=torch.float32)
    max_model_len, budget = model_budget(job.model, rl)
    curriculum = Curriculum.from_config(rl, curriculum_state)

    def count_tokens(messages: list[dict]) -> int:
        return len(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                 return_dict=True)["input_ids"])

    prompts = CurriculumPrompts(rl.curriculum.tiers, rl.prompt_pool, rl.seed, job.max_blocks, count_tokens,
                                budget)
    grader = build_grader(job.grade) if job.grade else None
    combined = rewards_from_config(rl, job.max_blocks, critic=build_critic(job.critic), grader=grader)
    args = grpo_args(rl, output_dir, backend=job.backend, max_model_len=max_model_len,
                     use_gpu=rl.use_gpu, world_size=world_size, first_phase=curriculum.phase, save=save)
    dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": ""}]] * rl.prompt_pool,
                                 "slot": list(range(rl.prompt_pool))})
    engine = (vllm_engine_settings(rl.vllm_dtype, rl.vllm_kv_cache_gb) if job.backend == "vllm"
              else contextlib.nullcontext())
    with engine:
        trainer = CurriculumGRPOTrainer(
            model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
            reward_funcs=[combined.components[c] for c in COMPONENTS], prompts=prompts, curriculum=curriculum,
            schedule=combined.schedule, max_blocks=job.max_blocks)
    trainer.remove_callback(PrinterCallback)  # the stage shows progress; per-step dicts would flood the logs
    state_file = Path(job.state_file) if job.state_file else None
    trainer.add_callback(CurriculumCallback(trainer, MetricsLog(job.metrics_file), state_file, is_writer,
                                            on_record))
    return trainer


def _resume_point(into: str) -> tuple[str | None, object, int]:
    """(HF checkpoint dir, curriculum state, step) of the run's latest Ray Train checkpoint, downloaded `into` a
    folder, or (None, None, 0)."""
    import ray.train

    from parallel_r1.rl.curriculum import CurriculumState

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return None, None, 0
    local = Path(checkpoint.to_directory(into))
    state = CurriculumState.from_json((local / CURRICULUM_FILE).read_text())
    step = json.loads((local / HF_CHECKPOINT / "trainer_state.json").read_text())["global_step"]
    return str(local / HF_CHECKPOINT), state, step


def grpo_train_loop(config: dict) -> None:
    """Ray Train worker loop over `{"job": GRPOJob}`: resume from the latest checkpoint, drop metrics of steps after
    it, train."""
    import ray.train

    from parallel_r1.rl.metrics import MetricsLog

    job = worker_job(config, GRPOJob)
    use_card_dir(job.card_dir)  # this process does not know the card files the driver read
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    output_dir = tempfile.mkdtemp(prefix=f"grpo-r{rank}-")
    resume_dir, state, step = _resume_point(os.path.join(output_dir, "resume"))
    if rank == 0:
        MetricsLog(job.metrics_file).keep_until(step)
    trainer = build_trainer(job, output_dir, state, world_size=ctx.get_world_size(), is_writer=rank == 0)
    trainer.add_callback(CheckpointReporter(trainer))
    trainer.train(resume_from_checkpoint=resume_dir)


def export_model(checkpoint_dir: Path, out: Path) -> Path:
    """The policy's files of an HF checkpoint (no optimizer / RNG state), copied atomically to `out`."""
    from parallel_r1.data.io import folder_build

    src = Path(checkpoint_dir)
    with folder_build(out) as tmp:
        for name in MODEL_FILES:
            if (src / name).exists():
                shutil.copy2(src / name, tmp / name)
    return out


def run_grpo_locally(job: GRPOJob, on_record=None) -> list[dict]:
    """The same training in this process, without Ray and without checkpoints; returns the step records."""
    records: list[dict] = []

    def keep(record: dict) -> None:
        records.append(record)
        if on_record is not None:
            on_record(record)

    with tempfile.TemporaryDirectory() as output_dir:
        trainer = build_trainer(job, output_dir, on_record=keep, save=False)
        trainer.train()
    return records
