"""The LoRA SFT job that runs on each Ray Train worker: TRL's SFTTrainer with a PEFT LoRA config, loss on the
trained teacher turns only (masks built from the rendered conversation, whatever the chat template), checkpoints
reported to Ray Train for resumption. A job with
`parallel_tokens` (the Parallel-R1 cold start) first adds the format's tags to the tokenizer and trains their
new embedding rows along with the LoRA.

`sft_train_loop` is the `train_loop_per_worker` of a job's own run; `packed_train_loop` that of one-worker jobs
sharing a run; `run_sft_locally(job)` runs the same training in the calling process (the plain baseline of the
benchmark).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from parallel_r1.config.workers import SFTJob, SFTPack, worker_job
from parallel_r1.data.context import token_counter
from parallel_r1.data.io import atomic_write_json, folder_build
from parallel_r1.finetune.turn_mask import tokenize_with_turn_mask
from parallel_r1.finetune.windows import training_windows

ADAPTER_SUBDIR = "adapter"
FINAL_SUBDIR = "final"  # a packed job's finished adapter and metrics.json, in its folder
ERROR_FILE = "error.json"  # why a packed job failed, in its folder


def _load_records(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    if not rows:
        raise ValueError(f"training file {path} is empty")
    return [{"messages": r["messages"]} for r in rows]


def bf16_mixed(use_gpu: bool) -> bool:
    """Train in bf16 mixed precision (fp32 master weights) on a GPU that supports it; fp32 on CPU and older GPUs."""
    import torch

    return use_gpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def build_trainer(job: SFTJob, output_dir: str, callbacks: list | None = None):
    """An SFTTrainer for one job."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    if job.torch_threads:
        torch.set_num_threads(job.torch_threads)
    tokenizer = AutoTokenizer.from_pretrained(job.base_model)
    model = AutoModelForCausalLM.from_pretrained(job.base_model, dtype=torch.float32)
    lora = job.lora
    tag_ids = _add_parallel_tags(tokenizer, model, job.max_length) if job.parallel_tokens else None
    peft_config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                             target_modules=lora.target_modules, task_type="CAUSAL_LM",
                             trainable_token_indices=tag_ids)
    if job.init_adapter:  # continue that adapter's LoRA weights: the result stands alone on the base
        model, peft_config = PeftModel.from_pretrained(model, job.init_adapter, is_trainable=True), None
    use_gpu = job.use_gpu
    args = SFTConfig(
        output_dir=output_dir, num_train_epochs=job.epochs, learning_rate=job.learning_rate,
        per_device_train_batch_size=job.per_device_batch_size,
        gradient_accumulation_steps=job.gradient_accumulation_steps, max_length=job.max_length,
        use_cpu=not use_gpu, bf16=bf16_mixed(use_gpu),
        gradient_checkpointing=use_gpu,  # TRL defaults it on: on CPU it only recomputes the forward (~30 % slower)
        report_to="none", logging_steps=1,
        save_strategy="steps", save_steps=job.save_steps, save_total_limit=2, disable_tqdm=True,
        seed=job.seed, dataloader_num_workers=0, lr_scheduler_type="linear", warmup_steps=0,
        logging_nan_inf_filter=False,  # a diverged run must log NaN: the filter would log 0.0, the best loss
    )
    records = _load_records(job.train_file)
    n_records = len(records)
    count = token_counter(tokenizer)
    examples = [tokenize_with_turn_mask(tokenizer, w) for r in records
                for w in training_windows(r["messages"], count, job.max_length)]
    trainer_class = _full_logits_trainer(SFTTrainer) if tag_ids else SFTTrainer
    trainer = trainer_class(model=model, args=args, train_dataset=Dataset.from_list(examples),
                            processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks or [])
    if len(trainer.train_dataset) == 0:
        raise ValueError(f"{job.train_file}: none of the {len(examples)} examples has an assistant token within "
                         f"finetune.max_length={job.max_length}; raise max_length")
    trainer.examples_dropped = len(examples) - len(trainer.train_dataset)
    trainer.records = n_records
    return trainer


def _add_parallel_tags(tokenizer, model, max_length: int) -> list[int]:
    """The Parallel-R1 tags as atomic tokens, embeddings resized, context raised to `max_length`; their ids, which
    PEFT trains as `trainable_token_indices` (the rows are new: LoRA on the linear layers alone never moves them)."""
    from parallel_r1.finetune.parallel_tokens import add_parallel_tokens, extend_context, parallel_token_ids

    add_parallel_tokens(tokenizer, model)
    extend_context(model, tokenizer, max_length)
    return sorted(parallel_token_ids(tokenizer).values())


def _full_logits_trainer(sft_trainer: type) -> type:
    """An SFTTrainer whose loss comes from the model's own logits. TRL's fused LM head multiplies by
    `lm_head.weight` directly, which skips PEFT's trainable-token wrapper on a tied head (and fails on it)."""
    from transformers import Trainer

    class FullLogitsSFTTrainer(sft_trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            return Trainer.compute_loss(self, model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

    return FullLogitsSFTTrainer


def _trained_tokens(trainer) -> int:
    """Tokens that carry loss (assistant tokens) in one epoch of the processed dataset."""
    total = 0
    for row in trainer.train_dataset:
        if row.get("labels") is not None:
            total += sum(1 for t in row["labels"] if t != -100)
        elif row.get("assistant_masks") is not None:
            total += sum(row["assistant_masks"])
        else:
            total += len(row["input_ids"])
    return total


def _timed_train(trainer, resume_from_checkpoint: str | None = None) -> float:
    """Run `trainer.train()`; the seconds it took."""
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    return time.perf_counter() - started


def _metrics(trainer, started: float, train_s: float, resumed_from_step: int) -> dict:
    """The job's record: losses, steps, token counts; tokens/s over `trainer.train()` alone (`train_time_s`), the
    wall time from `started` (building the trainer: imports, tokenising the batch) besides."""
    history = [h for h in trainer.state.log_history if "loss" in h]
    wall = time.perf_counter() - started
    epochs_done = trainer.state.epoch or 0.0
    trained = _trained_tokens(trainer)
    tokens = sum(len(r["input_ids"]) for r in trainer.train_dataset)
    steps_now = trainer.state.global_step - resumed_from_step
    frac = steps_now / max(trainer.state.max_steps, 1)
    return {
        "train_loss_first": history[0]["loss"] if history else None,
        "train_loss": history[-1]["loss"] if history else None,
        "train_loss_mean_last_5": sum(h["loss"] for h in history[-5:]) / len(history[-5:]) if history else None,
        "global_step": trainer.state.global_step,
        "resumed_from_step": resumed_from_step,
        "epochs": epochs_done,
        "examples": len(trainer.train_dataset),
        "examples_dropped": getattr(trainer, "examples_dropped", 0),  # no assistant token within max_length
        "records": getattr(trainer, "records", None),  # before turns past max_length got their own windows
        "assistant_tokens_per_epoch": trained,
        "tokens_per_epoch": tokens,
        "tokens_per_s": tokens * trainer.args.num_train_epochs * frac / train_s if train_s > 0 else None,
        "train_time_s": train_s,
        "wall_time_s": wall,
    }


def save_adapter(trainer, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    trainer.model.save_pretrained(out_dir)
    trainer.processing_class.save_pretrained(out_dir)
    return out_dir


def sft_train_loop(config: dict) -> None:
    """Ray Train worker loop over `{"job": SFTJob}`: resume from the run's latest checkpoint, train, report the
    adapter."""
    import tempfile

    import ray.train
    from ray.train.huggingface.transformers import RayTrainReportCallback
    from transformers.trainer_utils import get_last_checkpoint

    started = time.perf_counter()
    job = worker_job(config, SFTJob)
    ctx = ray.train.get_context()
    resume_dir, resumed_from_step = None, 0
    checkpoint = ray.train.get_checkpoint()
    local = checkpoint.to_directory(tempfile.mkdtemp(prefix="resume-")) if checkpoint is not None else None
    if local is not None and os.path.exists(os.path.join(local, "metrics.json")):
        # killed after its final report, before the launcher recorded it: the adapter is done, report it again
        with open(os.path.join(local, "metrics.json")) as f:
            metrics = json.load(f)
        done = ray.train.Checkpoint.from_directory(local) if ctx.get_world_rank() == 0 else None
        ray.train.report({**metrics, "final": True}, checkpoint=done)
        return
    output_dir = tempfile.mkdtemp(prefix=f"sft-{job.name}-r{ctx.get_world_rank()}-")
    trainer = build_trainer(job, output_dir, callbacks=[RayTrainReportCallback()])
    if local is not None:
        resume_dir = get_last_checkpoint(local) or os.path.join(local, RayTrainReportCallback.CHECKPOINT_NAME)
        with open(os.path.join(resume_dir, "trainer_state.json")) as f:
            resumed_from_step = json.load(f)["global_step"]
    train_s = _timed_train(trainer, resume_dir)
    metrics = {**_metrics(trainer, started, train_s, resumed_from_step), "workers": ctx.get_world_size()}
    _check_finite(job, metrics)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if ctx.get_world_rank() == 0:
            save_adapter(trainer, Path(tmp) / ADAPTER_SUBDIR)
            Path(tmp, "metrics.json").write_text(json.dumps(metrics))
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report({**metrics, "final": True}, checkpoint=checkpoint)


def _check_finite(job: SFTJob, metrics: dict) -> None:
    if metrics["train_loss"] is not None and not math.isfinite(metrics["train_loss"]):
        raise FloatingPointError(f"{job.name}: the training loss diverged ({metrics['train_loss']}) at "
                                 f"learning rate {job.learning_rate:g}: lower finetune.learning_rate")


def packed_train_loop(config: dict) -> None:
    """Ray Train worker loop over `{"job": SFTPack}`: train this rank's job alone, resuming from the newest complete
    checkpoint in its folder, and leave there `final/` (adapter, metrics.json) or, if it failed, `error.json`;
    a failing job ends its own worker's loop only, so the run and the other jobs go on."""
    import ray.train

    pack = worker_job(config, SFTPack)
    rank = ray.train.get_context().get_world_rank()
    job, folder = pack.jobs[rank], Path(pack.dirs[rank])
    if (folder / FINAL_SUBDIR / "metrics.json").exists():
        return  # finished before the run was restarted
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ERROR_FILE).unlink(missing_ok=True)
    try:
        _train_alone(job, folder)
    except Exception as e:  # noqa: BLE001 - recorded for the driver, which fails this job only
        atomic_write_json(folder / ERROR_FILE, {"error": f"{type(e).__name__}: {e}"})


def _train_alone(job: SFTJob, folder: Path) -> None:
    started = time.perf_counter()
    resume = last_complete_checkpoint(folder)
    trainer = build_trainer(job, str(folder))
    resumed_from_step = json.loads((resume / "trainer_state.json").read_text())["global_step"] if resume else 0
    train_s = _timed_train(trainer, str(resume) if resume else None)
    metrics = {**_metrics(trainer, started, train_s, resumed_from_step), "workers": 1}
    _check_finite(job, metrics)
    with folder_build(folder / FINAL_SUBDIR) as tmp:
        save_adapter(trainer, tmp / ADAPTER_SUBDIR)
        (tmp / "metrics.json").write_text(json.dumps(metrics))


def last_complete_checkpoint(folder: Path) -> Path | None:
    """The newest `checkpoint-<step>` in `folder` that the Trainer finished writing (its trainer_state.json, written
    last, parses); newer, torn ones are removed so the Trainer's rotation never keeps them over it."""
    import shutil

    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    found = sorted((p for p in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*") if p.name.split("-")[-1].isdigit()),
                   key=lambda p: int(p.name.split("-")[-1]), reverse=True)
    for path in found:
        try:
            json.loads((path / "trainer_state.json").read_text())
            return path
        except (OSError, ValueError):
            shutil.rmtree(path, ignore_errors=True)
    return None


def run_sft_locally(job: SFTJob, adapter_dir: Path) -> dict:
    """The same SFT in the calling process, without Ray (the benchmark's baseline)."""
    import tempfile

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as output_dir:
        trainer = build_trainer(job, output_dir)
        metrics = _metrics(trainer, started, _timed_train(trainer), 0)
        save_adapter(trainer, adapter_dir)
    return metrics
