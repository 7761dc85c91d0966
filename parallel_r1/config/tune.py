"""The `tune` section: the hyperparameter sweep of one specialist."""

from __future__ import annotations

from pydantic import Field

from parallel_r1.config.base import _Section


class TuneConfig(_Section):
    specialist: str = Field("neurodivergent", description="The batch whose specialist is swept.")
    batch_sizes: list[int] = Field(default_factory=lambda: [30, 50, 100], description="Training samples per trial.")
    learning_rates: list[float] = Field(default_factory=lambda: [4e-3], description="Peak learning rates swept.")
    lora_ranks: list[int] = Field(default_factory=lambda: [16], description="LoRA ranks swept.")
    max_concurrent_trials: int = Field(3, ge=1, description="Trials running at once.")
    grace_epochs: int = Field(1, ge=1, description="Epochs before a poor trial may be stopped early.")
    eval_prompts: int = Field(16, ge=2, description="Held-out prefixes of the specialist's slices per trial.")
