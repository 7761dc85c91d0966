"""The `rl` section: the GRPO loop on the parallel-thinking model: rewards and their schedule, the curriculum and
its explore/verify phases, stop criteria, rollouts and Ray Train workers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from parallel_r1.config.base import _Section
from parallel_r1.config.groups import MaxTokens, RayTrainWorkersConfig, StoragePath, Temperature, TopP
from parallel_r1.config.parallel import Branches


class RewardWeightsConfig(_Section):
    rubric: float = Field(1.0, ge=0, description="Weight of the rubric grade of the reply the student sees.")
    diversity: float = Field(0.2, ge=0, description="Weight of path diversity (1 - mean pairwise self-BLEU).")
    consistency: float = Field(0.2, ge=0, description="Weight of verification consistency (the summary sides with "
                                                      "the best-graded path: the grader's, and rl.critic's).")
    format: float = Field(0.5, ge=0, description="Weight of the format reward.")


class RewardScheduleConfig(_Section):
    kind: Literal["constant", "alternating"] = Field("constant", description="constant: every weight every step; "
                                                                             "alternating: the paper's schedule.")
    period: int = Field(10, ge=1, description="alternating: steps per cycle.")
    bonus_steps: int = Field(2, ge=1, description="alternating: the last steps of each cycle with every component.")
    task_components: list[Literal["rubric", "diversity", "consistency", "format"]] = Field(
        default_factory=lambda: ["rubric"], description="alternating: the components of the other steps.")

    @model_validator(mode="after")
    def _check(self) -> RewardScheduleConfig:
        if self.bonus_steps > self.period:
            raise ValueError(f"bonus_steps ({self.bonus_steps}) must be <= period ({self.period})")
        return self


class RLPhaseConfig(_Section):
    """Rollout sampling of one curriculum phase (top_p is rl.top_p, the same in both)."""

    temperature: Temperature = 1.0
    branches: Branches = 4
    max_tokens: MaxTokens = 256


class RLExploreConfig(RLPhaseConfig):
    """The explore phase, early on each tier."""


class RLVerifyConfig(RLPhaseConfig):
    """The verify phase: conservative sampling, fewer paths."""

    temperature: Temperature = 0.6
    branches: Branches = 2


class CurriculumConfig(_Section):
    tiers: list[Literal["easy", "medium", "hard"]] = Field(
        default_factory=lambda: ["easy", "medium", "hard"], min_length=1, description="Scenario tiers, in order.")
    promote_threshold: float = Field(0.7, description="Mean step reward over promote_window that promotes.")
    promote_window: int = Field(20, ge=1, description="Steps the promotion mean is taken over.")
    explore_steps: int | None = Field(50, ge=0, description="Steps on a tier before the verify phase; None: by "
                                                            "reward only.")
    verify_from_reward: float | None = Field(0.5, description="Windowed mean reward that starts the verify phase "
                                                              "early; None: by steps only.")


class RLStopConfig(_Section):
    eval_window: int = Field(10, ge=1, description="Steps per evaluation window.")
    min_improvement: float = Field(0.01, ge=0, description="Relative improvement a window must bring ...")
    patience: int = Field(3, ge=1, description="... within this many windows, else stop (plateau).")
    min_variance: float = Field(0.02, ge=0, description="Stop when a window's reward variance is below this.")


class RLConfig(RayTrainWorkersConfig):
    # rewards
    rewards: RewardWeightsConfig = Field(default_factory=RewardWeightsConfig, description="Reward weights.")
    schedule: RewardScheduleConfig = Field(default_factory=RewardScheduleConfig, description="Which weights apply "
                                                                                             "at which step.")
    format_partial_credit: float = Field(0.5, ge=0, le=1, description="Format reward of a malformed reply whose "
                                                                      "blocks are all well formed.")
    diversity_max_n: int = Field(4, ge=1, description="Longest n-gram of the self-BLEU behind path diversity.")
    critic: Literal["none", "fitted", "llm"] = Field(
        "none", description="Critic of verification consistency: it grades every path, and the reward asks whether "
                            "the summary sides with the critic's best. fitted: the fitted grader (grade.fitted_path, "
                            "else <workdir>/grader/fitted); llm: the LLM judge at grade.judge.")
    critic_weight: float = Field(0.5, ge=0, le=1, description="Share of consistency from the critic's pick (when "
                                                              "rl.critic is set); the rest is the grader's pick.")
    # curriculum and phases
    curriculum: CurriculumConfig = Field(default_factory=CurriculumConfig, description="easy -> medium -> hard.")
    explore: RLExploreConfig = Field(default_factory=RLExploreConfig,
                                     description="Sampling of the explore phase (early on each tier).")
    verify: RLVerifyConfig = Field(default_factory=RLVerifyConfig,
                                   description="Sampling of the verify phase (conservative).")
    stop: RLStopConfig = Field(default_factory=RLStopConfig, description="Stop criteria.")

    # the GRPO run (`parallel-r1 rl`)
    model: str | None = Field(None, description="Policy to start from; None: <workdir>/parallel/sft/model (the "
                                                "output of `parallel-r1 parallel-sft`).")
    max_steps: int = Field(40, ge=1, description="GRPO steps in total; a resumed run continues up to this.")
    prompts_per_step: int = Field(2, ge=1, description="Distinct prompts per step (each answered num_generations "
                                                       "times).")
    num_generations: int = Field(4, ge=2, description="Rollouts per prompt (the GRPO group).")
    learning_rate: float = Field(1e-5, gt=0, description="Policy learning rate.")
    beta: float = Field(0.0, ge=0, description="KL coefficient against the starting policy (0: no reference model).")
    top_p: TopP = Field(0.95, description="Nucleus sampling mass of the rollouts.")
    save_steps: int = Field(5, ge=1, description="Steps between checkpoints (a killed run resumes from the last).")
    seed: int = Field(0, description="Seed of the prompts, the sampler and the rollouts.")
    prompt_pool: int = Field(48, ge=1, description="Procedural dialogue prefixes simulated per tier.")
    max_model_len: int | None = Field(None, ge=16, description="Prompt + completion tokens; None: the model's "
                                                               "context length.")
    # rollouts
    rollout_backend: Literal["auto", "vllm", "hf"] = Field("auto", description="auto: vLLM where it imports, "
                                                                               "else HF generate.")
    vllm_mode: Literal["colocate", "server"] = Field("colocate", description="colocate: an engine inside the "
                                                                             "trainer; server: a `trl vllm-serve`.")
    vllm_server_url: str | None = Field(None, description="vllm_mode=server: the server's base URL.")
    vllm_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "float32", description="Colocated engine dtype (float32 on CPU, where bf16, TRL's pick otherwise, is slower).")
    vllm_gpu_memory_utilization: float = Field(0.3, gt=0, le=1, description="Colocated engine's share of the GPU.")
    vllm_kv_cache_gb: int = Field(1, ge=1, description="Colocated engine on CPU: KV cache in GiB "
                                                       "(VLLM_CPU_KVCACHE_SPACE).")
    # scale: RayTrainWorkersConfig
    storage_path: StoragePath = Field(None, description="Ray Train storage (absolute path or URI); None: "
                                                        "<workdir>/parallel/rl/checkpoints.")

    @model_validator(mode="after")
    def _check_rollouts(self) -> RLConfig:
        if self.vllm_mode == "server" and self.rollout_backend != "hf" and not self.vllm_server_url:
            raise ValueError("rl.vllm_mode=server needs rl.vllm_server_url (e.g. http://vllm-head:8000)")
        rollouts = self.prompts_per_step * self.num_generations
        if rollouts % self.num_workers:
            raise ValueError(f"rl.prompts_per_step x rl.num_generations = {rollouts} rollouts per step must divide "
                             f"by rl.num_workers = {self.num_workers}")
        return self
