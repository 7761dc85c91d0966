"""Config sections of the Parallel-R1 stage: the parallel-thinking format, its dataset, and the GRPO loop."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from parallel_r1.config.base import _Section
from parallel_r1.config.stages import OpenAIEndpointConfig


class ParallelInferenceConfig(_Section):
    branches: int = Field(3, ge=2, description="Paths per <Parallel> block the model is asked for at inference.")
    max_blocks: int = Field(3, ge=1, description="Parallel blocks allowed in one reply at inference.")
    temperature: float = Field(0.8, ge=0, le=2, description="Sampling temperature of parallel inference.")
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling mass of parallel inference.")
    max_tokens: int = Field(256, ge=1, description="Token budget of one parallel reply, paths and summaries included.")


class ParallelSFTConfig(_Section):
    """The cold-start SFT (`parallel-r1 parallel-sft`): training settings that differ from `finetune`, and the
    validation it must pass before RL."""

    epochs: float | None = Field(10.0, gt=0, description="Training epochs; None: finetune.epochs. The format is "
                                                        "learnt late: fewer epochs leave most replies malformed.")
    learning_rate: float | None = Field(None, gt=0, description="Peak learning rate; None: finetune.learning_rate.")
    max_length: int = Field(512, ge=16, description="Tokens per training example: a parallel target holds every path, "
                                                    "so it is longer than a specialist's. The saved model's context "
                                                    "(max_position_embeddings) is raised to at least this.")
    min_uplift: float = Field(0.05, ge=-1, description="Relative uplift of the parallel evaluation score over the "
                                                      "starting point (base model + tags) that the SFT'd model "
                                                      "needs; below it the stage fails (the evaluation is written).")
    max_rubric_drop: float = Field(0.0, ge=0, le=1, description="The uplift counts only if the rubric score (student "
                                                                "view) does not fall: the lower bound of the paired "
                                                                "bootstrap interval (eval.ci_level) of the SFT'd minus "
                                                                "the starting point's rubric per held-out prefix must "
                                                                "be >= -this. 0: the interval must rule out any fall.")
    format_weight: float = Field(0.5, ge=0, le=1, description="Weight of format adherence in the parallel evaluation "
                                                             "score; the rest is the rubric of the student's view.")
    eval_prompts_per_slice: int = Field(3, ge=2, description="Held-out prefixes per eval slice (eval.slices, "
                                                            "never in training) the two models answer.")
    samples_per_prompt: int = Field(2, ge=1, description="Sampled replies per held-out prefix (same seeds for both).")


class PathGenerationConfig(_Section):
    """How a model writes the alternative paths of a teacher turn that the procedural simulator cannot replay."""

    model: str | None = Field(None, description="policy: the model folder or hub id that samples the paths; None: the "
                                                "base model (base_model.path or <workdir>/models/base). It runs on "
                                                "the `inference` engine: in this process, or on Ray engine actors "
                                                "when inference.num_engines > 1 or inference.gpus_per_engine > 0.")
    endpoint: OpenAIEndpointConfig = Field(default_factory=OpenAIEndpointConfig,
                                           description="endpoint: the OpenAI-compatible server that writes the paths "
                                                       "(its temperature and max_tokens are the ones below).")
    samples: int = Field(4, ge=1, description="Alternatives sampled per teacher turn; with the recorded reply they "
                                              "are the candidates the paths are chosen from.")
    temperature: float = Field(0.9, ge=0, le=2, description="Sampling temperature of the alternatives.")
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling mass of the alternatives (policy).")
    max_tokens: int = Field(200, ge=1, description="Token budget of one alternative.")
    min_words: int = Field(3, ge=1, description="Alternatives with fewer words are dropped as empty.")
    batch_turns: int = Field(16, ge=1, description="Teacher turns per engine call (policy) or per round of "
                                                   "concurrent requests (endpoint).")
    max_in_flight: int = Field(32, ge=1, description="endpoint: requests in flight at once.")
    seed: int = Field(0, description="policy: sampling seed of the alternatives.")


class ParallelConfig(_Section):
    # the format
    max_blocks: int = Field(3, ge=1, description="K: parallel blocks allowed in one reply (validation and rewards).")
    branches: int = Field(3, ge=2, description="Paths per block in the cold-start targets.")
    # the cold-start dataset
    dataset_threshold: float = Field(0.8, ge=0, le=1, description="Only dialogues scoring >= this become targets; "
                                                                  "set it to what the grader of your discovery "
                                                                  "reaches (`parallel-sft` says which threshold "
                                                                  "would give parallel.min_dialogues).")
    min_dialogues: int = Field(20, ge=1, description="Fewer dialogues at or above the threshold is an error that "
                                                     "says which threshold would do (never a silently smaller set).")
    turns_per_dialogue: int = Field(1, ge=1, description="Teacher turns of each dialogue rewritten as targets.")
    path_min_grade: float = Field(0.6, ge=0, le=1, description="Rubric grade a candidate reply needs to be a path.")
    max_path_overlap: float = Field(0.5, gt=0, le=1, description="Paths whose word overlap reaches this are not "
                                                                 "distinct; only one of them is kept.")
    summary_mode: Literal["choose", "merge"] = Field("choose", description="choose: the summary is the best-graded "
                                                                           "path; merge: it adds the runner-up's "
                                                                           "closing sentence when that grades as well.")
    seed: int = Field(0, description="Seed of the turns drawn and of the path order.")
    path_source: Literal["auto", "replay", "policy", "endpoint"] = Field(
        "auto", description="Who writes the alternative paths. replay: the procedural simulator, replayed from the "
                            "dialogue's seeds (procedural dialogues only); policy: a local model "
                            "(path_generation.model); endpoint: an OpenAI-compatible server "
                            "(path_generation.endpoint); auto: replay for procedural dialogues, the policy for the "
                            "others (real LLM dialogues, imported transcripts).")
    path_generation: PathGenerationConfig = Field(default_factory=PathGenerationConfig,
                                                  description="Sampling of the paths by the policy or the endpoint.")
    inference: ParallelInferenceConfig = Field(default_factory=ParallelInferenceConfig,
                                               description="The execution policy of parallel inference.")
    sft: ParallelSFTConfig = Field(default_factory=ParallelSFTConfig, description="The cold-start SFT and its "
                                                                                  "validation.")


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


class RLExploreConfig(_Section):
    temperature: float = Field(1.0, ge=0, le=2, description="Rollout sampling temperature while exploring.")
    branches: int = Field(4, ge=2, description="Paths per parallel block asked for while exploring.")
    max_tokens: int = Field(256, ge=1, description="Rollout token budget while exploring.")


class RLVerifyConfig(_Section):
    temperature: float = Field(0.6, ge=0, le=2, description="Rollout sampling temperature while verifying.")
    branches: int = Field(2, ge=2, description="Paths per parallel block asked for while verifying.")
    max_tokens: int = Field(256, ge=1, description="Rollout token budget while verifying.")


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


class RLConfig(_Section):
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
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling mass of the rollouts.")
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
        "float32", description="Colocated engine dtype (float32 on CPU: TRL would otherwise pick bf16, slower there).")
    vllm_gpu_memory_utilization: float = Field(0.3, gt=0, le=1, description="Colocated engine's share of the GPU.")
    vllm_kv_cache_gb: int = Field(1, ge=1, description="Colocated engine on CPU: KV cache (VLLM_CPU_KVCACHE_SPACE).")
    # scale
    num_workers: int = Field(1, ge=1, description="Ray Train workers (data-parallel GRPO).")
    cpus_per_worker: float = Field(1.0, gt=0, description="CPUs reserved per worker.")
    use_gpu: bool = Field(False, description="One GPU per worker (cluster).")
    gpus_per_worker: float = Field(1.0, gt=0)
    storage_path: str | None = Field(None, description="Ray Train storage (absolute path or URI); None: "
                                                       "<workdir>/parallel/rl/checkpoints.")
    max_failures: int = Field(1, ge=0, description="Ray Train restarts of a failed run (from its checkpoint).")

    @model_validator(mode="after")
    def _check_rollouts(self) -> RLConfig:
        if self.vllm_mode == "server" and self.rollout_backend != "hf" and not self.vllm_server_url:
            raise ValueError("rl.vllm_mode=server needs rl.vllm_server_url (e.g. http://vllm-head:8000)")
        rollouts = self.prompts_per_step * self.num_generations
        if rollouts % self.num_workers:
            raise ValueError(f"rl.prompts_per_step x rl.num_generations = {rollouts} rollouts per step must divide "
                             f"by rl.num_workers = {self.num_workers}")
        return self
