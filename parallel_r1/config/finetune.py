"""The `finetune` section: how the specialists and the monolithic baseline are trained, on Ray Train or the
OpenAI fine-tuning API."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from parallel_r1.config.base import _Section
from parallel_r1.config.groups import CpusPerWorker, OpenAIAPIConfig, RayTrainWorkersConfig, StoragePath, TimeoutS


class LoraSection(_Section):
    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA alpha.")
    dropout: float = Field(0.0, ge=0, lt=1, description="LoRA dropout (0 by default: on CPU a dropout on every "
                                                       "linear input slows each training step noticeably).")
    target_modules: list[str] | str = Field("all-linear", description="Module names, or 'all-linear'.")


class OpenAIFinetuneConfig(OpenAIAPIConfig):
    model: str = Field("gpt-4o-mini-2024-07-18", description="Base model to fine-tune.")
    n_epochs: int | None = Field(None, ge=1, description="None: the API's default.")
    suffix: str = Field("parallel-r1", max_length=40, description="Suffix of the fine-tuned model names.")
    poll_interval_s: float = Field(10.0, gt=0, description="How often `watch` polls job status, in seconds.")
    max_concurrent_submissions: int = Field(4, ge=1, description="Jobs whose training file is uploaded and whose "
                                                                 "job is created at once (the API's rate limits "
                                                                 "bound how many help).")
    timeout_s: TimeoutS = 60.0


class FinetuneConfig(RayTrainWorkersConfig):
    backend: Literal["ray", "openai"] = Field("ray", description="Ray Train + TRL + PEFT, or the OpenAI API.")
    batches: list[str] | None = Field(None, description="Batch names to train; None: every batch on disk.")
    # optimisation
    learning_rate: float = Field(4e-3, gt=0, description="Peak learning rate (high: the demo's model is tiny).")
    epochs: float = Field(4.0, gt=0, description="Training epochs (fractions allowed).")
    max_length: int = Field(256, ge=16, description="Tokens per training example (longer ones are cut).")
    per_device_batch_size: int = Field(4, ge=1, description="Examples per worker per step.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Steps whose gradients add up to one update.")
    seed: int = Field(0, description="Seed of the data order and the adapters' initial weights.")
    lora: LoraSection = Field(default_factory=LoraSection, description="The LoRA adapters.")
    specialise_from: Literal["base", "monolithic"] = Field(
        "base", description="base: every adapter starts at zero on the base model and all jobs run at once. "
                            "monolithic: the monolithic baseline trains first, then the six specialists at once, each "
                            "continuing from its adapter (general tutoring first, then the niche; the specialists "
                            "keep its LoRA rank). Ray backend only.")
    # resources, besides the workers of RayTrainWorkersConfig
    cpus_per_worker: CpusPerWorker = 0.25
    monolithic_workers: int = Field(2, ge=1, description="Data-parallel workers of the monolithic job, which trains "
                                                         "on the union of the batches: more than one keeps it from "
                                                         "being the stage's long pole. Its global batch stays "
                                                         "per_device_batch_size x num_workers.")
    max_concurrent_jobs: int | None = Field(None, ge=1, description="Jobs training at once; None: every job.")
    storage_path: StoragePath = Field(None, description="Ray Train storage (absolute path or URI); None: "
                                                        "<workdir>/ray_results.")
    pack_jobs: bool = Field(True, description="Jobs of one worker each share one Ray Train run (one controller, a "
                                              "worker per job training alone and checkpointing to its own folder "
                                              "under storage_path), which then must be a path every node sees; "
                                              "false, or a URI storage_path: one Ray Train run per job.")
    monolithic_baseline: bool = Field(True, description="`run` also trains the monolithic adapter (the baseline "
                                                        "`compare` measures the specialists against), together "
                                                        "with the specialists.")
    openai: OpenAIFinetuneConfig = Field(default_factory=OpenAIFinetuneConfig,
                                         description="The OpenAI backend's API and job settings.")

    @model_validator(mode="after")
    def _check(self) -> FinetuneConfig:
        if self.specialise_from == "monolithic" and self.backend == "openai":
            raise ValueError("specialise_from: monolithic needs backend: ray (the OpenAI backend submits every job at "
                             "once, from finetune.openai.model)")
        return self
