"""The `parallel` section: the Parallel-R1 thinking format, its cold-start dataset and SFT, who writes the
alternative paths, and how parallel inference samples."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from parallel_r1.config.base import _Section
from parallel_r1.config.groups import MaxTokens, OpenAIEndpointConfig, SamplingConfig, Temperature

Branches = Annotated[int, Field(ge=2, description="Paths per <Parallel> block the model is asked for.")]


class ParallelInferenceConfig(SamplingConfig):
    """The execution policy of parallel inference: sampling of one reply, paths and summaries included."""

    max_tokens: MaxTokens = Field(256, description="Token budget of one reply, paths and summaries included.")
    branches: Branches = 3
    max_blocks: int = Field(3, ge=1, description="Parallel blocks allowed in one reply at inference.")


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


class PathGenerationConfig(SamplingConfig):
    """How a model writes the alternative paths of a teacher turn that the procedural simulator cannot replay;
    top_p applies to the policy, temperature and max_tokens to both."""

    temperature: Temperature = 0.9
    max_tokens: MaxTokens = 200
    model: str | None = Field(None, description="policy: the model folder or hub id that samples the paths; None: the "
                                                "base model (base_model.path or <workdir>/models/base). It runs on "
                                                "the `inference` engine: in this process, or on Ray engine actors "
                                                "when inference.num_engines > 1 or inference.gpus_per_engine > 0.")
    endpoint: OpenAIEndpointConfig = Field(default_factory=OpenAIEndpointConfig,
                                           description="endpoint: the OpenAI-compatible server that writes the paths "
                                                       "(its temperature and max_tokens are the ones above).")
    samples: int = Field(4, ge=1, description="Alternatives sampled per teacher turn; with the recorded reply they "
                                              "are the candidates the paths are chosen from.")
    min_words: int = Field(3, ge=1, description="Alternatives with fewer words are dropped as empty.")
    batch_turns: int = Field(16, ge=1, description="Teacher turns per engine call (policy) or per round of "
                                                   "concurrent requests (endpoint).")
    max_in_flight: int = Field(32, ge=1, description="endpoint: requests in flight at once.")
    seed: int = Field(0, description="policy: sampling seed of the alternatives.")


class ParallelConfig(_Section):
    # the format
    max_blocks: int = Field(3, ge=1, description="K: parallel blocks allowed in one reply (validation and rewards).")
    branches: Branches = Field(3, description="Paths per block in the cold-start targets.")
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
