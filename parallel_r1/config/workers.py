"""What a Ray Train worker receives: one frozen dataclass per worker loop, built by its stage from the pipeline
config and handed over as `train_loop_config={"job": job}` (Ray Train takes a dict), so a worker reads typed,
checked fields instead of dict keys."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from parallel_r1.config.finetune import FinetuneConfig, LoraSection
from parallel_r1.config.grade import GradeConfig
from parallel_r1.config.rl import RLConfig

JOB_KEY = "job"


@dataclass(frozen=True)
class SFTJob:
    """One LoRA SFT job (`finetune.sft.sft_train_loop`)."""

    name: str
    train_file: str
    base_model: str
    learning_rate: float
    epochs: float
    max_length: int
    per_device_batch_size: int
    num_workers: int
    gradient_accumulation_steps: int
    seed: int
    lora: LoraSection
    save_steps: int
    use_gpu: bool = False
    torch_threads: int | None = None
    init_adapter: str | None = None  # a LoRA adapter to continue training instead of a new one
    parallel_tokens: bool = False  # add the Parallel-R1 tags as tokens and train their embeddings

    @classmethod
    def for_batch(cls, name: str, train_file: Path, base_model: str, ft: FinetuneConfig, n_examples: int,
                  num_workers: int | None = None, init_adapter: str | None = None) -> SFTJob:
        """The job of one training file. `num_workers` (default `ft.num_workers`) data-parallel workers share the
        job's global batch, `ft.per_device_batch_size` x `ft.num_workers` examples, so a job given more workers
        takes the same optimizer steps."""
        workers = num_workers or ft.num_workers
        per_device = max(1, ft.per_device_batch_size * ft.num_workers // workers)
        steps_per_epoch = max(1, -(-n_examples // (per_device * workers * ft.gradient_accumulation_steps)))
        total_steps = max(1, int(steps_per_epoch * ft.epochs))
        return cls(
            name=name, train_file=str(Path(train_file).resolve()), base_model=base_model,
            learning_rate=ft.learning_rate, epochs=ft.epochs, max_length=ft.max_length,
            per_device_batch_size=per_device, num_workers=workers,
            gradient_accumulation_steps=ft.gradient_accumulation_steps, seed=ft.seed, lora=ft.lora,
            save_steps=max(1, total_steps // 3),  # about three checkpoints per job to resume from
            use_gpu=ft.use_gpu, torch_threads=None if ft.use_gpu else max(1, int(ft.cpus_per_worker)),
            init_adapter=init_adapter)


@dataclass(frozen=True)
class SFTPack:
    """One-worker SFT jobs sharing one Ray Train run (`finetune.sft.packed_train_loop`): the worker of rank r
    trains `jobs[r]` alone, checkpointing to and finishing in the folder `dirs[r]`."""

    jobs: tuple[SFTJob, ...]
    dirs: tuple[str, ...]


@dataclass(frozen=True)
class GRPOJob:
    """The GRPO run (`rl.grpo_worker.grpo_train_loop`)."""

    rl: RLConfig
    model: str
    backend: Literal["hf", "vllm"]
    max_blocks: int
    metrics_file: str
    state_file: str | None = None  # the curriculum's state, written by rank 0 (None: not kept)
    grade: GradeConfig | None = None  # the grader behind the rubric reward (None: the default rubric)
    critic: GradeConfig | None = None  # the critic of the consistency reward (None: no critic)
    torch_threads: int | None = None
    card_dir: str | None = None  # discover.card_dir, absolute: the rewards read the scenario cards of its files too


def worker_job(config: dict, kind: type):
    """The job a worker loop was handed; a clear error for anything else (a loop launched by hand with a dict)."""
    job = config.get(JOB_KEY) if isinstance(config, dict) else None
    if not isinstance(job, kind):
        raise TypeError(f"train_loop_config must be {{'{JOB_KEY}': {kind.__name__}(...)}}, got {config!r:.200}")
    return job
