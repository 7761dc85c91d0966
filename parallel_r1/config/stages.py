"""Config sections of the pipeline's stages: Ray, discover, grade, batch, base model, finetune, inference,
eval, gate and tune."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from parallel_r1.config.base import _Section
from parallel_r1.config.roleplay import RolePlayConfig


class RayConfig(_Section):
    address: str | None = Field(None, description="Ray cluster address; None: RAY_ADDRESS or a local Ray.")
    num_cpus: int | None = Field(None, ge=1, description="CPUs of a locally started Ray (None: all).")
    include_dashboard: bool = Field(False, description="Start the dashboard with a local Ray.")


class OpenAIEndpointConfig(_Section):
    base_url: str = Field("https://api.openai.com/v1", description="Any OpenAI-compatible endpoint.")
    model: str = Field("gpt-4o-mini", description="Model name sent with each request.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the API key.")
    timeout_s: float = Field(30.0, gt=0, description="Per-request timeout.")
    max_retries: int = Field(5, ge=0, description="Retries on 429, 5xx, timeouts and connection errors.")
    backoff_s: float = Field(0.5, ge=0, description="First backoff; doubles each retry, with jitter.")
    max_backoff_s: float = Field(20.0, ge=0, description="Upper bound of one backoff.")
    temperature: float = Field(0.8, ge=0, le=2)
    max_tokens: int = Field(300, ge=1)
    context_tokens: int | None = Field(None, ge=256, description="The served model's context window in tokens; "
                                                                 "prompts are trimmed to fit it. None: asked of "
                                                                 "the server's /v1/models (vLLM's max_model_len), "
                                                                 "else no trimming.")


class DiscoverConfig(_Section):
    n: int = Field(2000, ge=0, description="Discovery iterations (dialogues) to reach in total.")
    include_special: bool = Field(True, description="Add the four special cards and trait-heavy profiles.")
    backend: Literal["procedural", "openai"] = Field("procedural", description="Chat backend.")
    seed: int = Field(0, description="Seed of the discovery plan and the procedural backend.")
    num_actors: int = Field(2, ge=1, description="Ray actors in the discovery pool.")
    max_in_flight: int = Field(32, ge=1, description="Dialogues in flight per actor (async).")
    chunk_size: int = Field(8, ge=1, description="Dialogues per actor call (amortises Ray's per-call cost).")
    actor_num_cpus: float = Field(0.5, ge=0, description="CPUs reserved per discovery actor.")
    dialogue_attempts: int = Field(2, ge=1, description="Attempts per dialogue before it is a failure.")
    max_actor_restarts: int = Field(10, ge=0, description="Crashed actors replaced before giving up.")
    flush_every: int = Field(50, ge=1, description="Append finished dialogues to Parquet every N.")
    grade: bool = Field(True, description="Grade each dialogue as it is discovered.")
    openai: OpenAIEndpointConfig = Field(default_factory=OpenAIEndpointConfig)
    roleplay: RolePlayConfig = Field(default_factory=RolePlayConfig,
                                     description="Rules the openai backend's turns must keep.")


class GradeConfig(_Section):
    grader: Literal["heuristic", "llm", "combined", "fitted"] = Field(
        "heuristic", description="heuristic: the pure-Python rubric; llm: the LLM judge; combined: both, weighted by "
                                 "llm_weight; fitted: the model `parallel-r1 grader fit` wrote (fitted_path).")
    fitted_path: str | None = Field(None, description="The fitted grader's folder; None: <workdir>/grader/fitted.")
    judge: OpenAIEndpointConfig = Field(default_factory=OpenAIEndpointConfig, description="LLM judge.")
    llm_weight: float = Field(0.5, ge=0, le=1, description="Weight of the LLM judge when combined.")


class BatchSpec(_Section):
    name: str
    size: int = Field(ge=1)
    description: str = ""
    lengths: list[Literal["short", "medium", "long"]] | None = Field(None, description="None: any length.")
    question_types: list[Literal["original", "koan"]] | None = Field(None, description="None: any.")
    confidence: Literal["high", "medium", "any"] = "any"
    profile_kinds: list[str] | None = Field(None, description="None: any student profile.")
    stratify_by: list[str] = Field(
        default_factory=lambda: ["profile_kind", "scenario_id"],
        description="Columns whose values are balanced inside the batch.",
    )
    diverse_patterns: bool = Field(False, description="Prefer dialogues with distinct teacher openers.")
    rank_by: list[str] = Field(
        default_factory=list,
        description="Rubric criteria of the batch's niche: inside a stratum, candidates rank by the mean of their "
                    "score and those of these criteria they are graded on. Empty: by score alone.",
    )


def _default_batches() -> list[BatchSpec]:
    return [
        BatchSpec(name="short_original_high", size=40, lengths=["short"], question_types=["original"],
                  confidence="high", description="Short, direct questions, high grader confidence"),
        BatchSpec(name="medium_koan_high", size=35, lengths=["medium"], question_types=["koan"],
                  confidence="high", description="Medium-length koans, high grader confidence"),
        BatchSpec(name="long_mixed_medium", size=35, lengths=["long"], confidence="medium",
                  description="Long dialogues, mixed question types, medium confidence"),
        BatchSpec(name="varied_original_diverse", size=40, question_types=["original"],
                  diverse_patterns=True, stratify_by=["length_bucket", "profile_kind", "scenario_id"],
                  description="Varied length, direct questions, diverse teacher patterns"),
        BatchSpec(name="neurodivergent", size=30,
                  profile_kinds=["neurodivergent", "rejects_metaphor", "executive_function_gap", "hyperfocus"],
                  description="Neurodivergent-optimised"),
        # rank_by validation: niche delta +0.142 -> +0.156 on the demo's data (README: Training data). Ranking the
        # neurodivergent batch by its criteria gave +0.115 against +0.119 / +0.128 without: not adopted.
        BatchSpec(name="prior_trauma_recovery", size=30, profile_kinds=["bad_prior_teacher"],
                  rank_by=["validation"], description="Recovery from a bad prior teacher"),
    ]


class BatchConfig(_Section):
    high_confidence: float = Field(0.7, ge=0, le=1, description="Confidence >= this is 'high'.")
    medium_confidence: float = Field(0.5, ge=0, le=1, description="'medium' is [this, high_confidence).")
    quality_floor: float = Field(0.6, ge=0, le=1, description="Only dialogues scoring >= this are used.")
    turn_floor: float | None = Field(
        0.7, ge=0, le=1, description="Teacher turns the rubric grades below this stay in a training dialogue as "
                                      "context but carry no loss (weight 0); a dialogue's best turn is always "
                                      "trained. None: every teacher turn is trained.")
    max_stock_phrase_density: float = Field(
        0.05, ge=0, description="Cap on a batch's mean stock-phrase density (stock phrases per teacher turn)."
    )
    allow_overlap: bool = Field(False, description="Allow one dialogue in several batches.")
    strict: bool = Field(False, description="Fail (exit 2) when a batch cannot be filled.")
    seed: int = 0
    batches: list[BatchSpec] = Field(default_factory=_default_batches)

    @model_validator(mode="after")
    def _check(self) -> BatchConfig:
        if self.medium_confidence > self.high_confidence:
            raise ValueError("medium_confidence must be <= high_confidence")
        names = [b.name for b in self.batches]
        if len(set(names)) != len(names):
            raise ValueError(f"batch names must be unique: {names}")
        return self


class BaseModelConfig(_Section):
    path: str | None = Field(None, description="Any Hugging Face model path or hub id; None: build the embedded "
                                               "tiny model into <workdir>/models/base with `init-model`.")
    source: Literal["smollm2-135m-instruct"] | None = Field(
        None, description="A packaged pretrained model that `init-model` converts into <workdir>/models/base "
                          "(the `real` extra). None: the embedded tiny model, pre-trained here; the size fields "
                          "below apply to it only.")
    hidden_size: int = Field(192, ge=8)
    intermediate_size: int = Field(512, ge=8)
    num_layers: int = Field(4, ge=1)
    num_heads: int = Field(4, ge=1)
    max_seq_len: int = Field(256, ge=32, description="Context length of the embedded model.")
    vocab_size: int = Field(2048, ge=300, description="Target BPE vocabulary (a templated corpus saturates lower).")
    corpus_dialogues: int = Field(3000, ge=10, description="Procedural dialogues generated to pre-train on.")
    max_steps: int | None = Field(350, ge=1, description="Pre-training steps (~5 minutes on 2 idle cores); a "
                                                        "step budget keeps the model the same however busy the "
                                                        "machine is (the learning-rate schedule follows the "
                                                        "steps). None: train for train_minutes.")
    train_minutes: float = Field(8.0, gt=0, description="Wall-clock cap of pre-training (stops before max_steps "
                                                        "on a slow or busy machine).")
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(3e-3, gt=0)
    seed: int = 0


class LoraSection(_Section):
    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA alpha.")
    dropout: float = Field(0.0, ge=0, lt=1, description="LoRA dropout (PEFT's default 0; on CPU a dropout on every "
                                                       "linear input costs ~20 % of a training step).")
    target_modules: list[str] | str = Field("all-linear", description="Module names, or 'all-linear'.")


class OpenAIFinetuneConfig(_Section):
    base_url: str = Field("https://api.openai.com/v1", description="OpenAI (or compatible) API root.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the API key.")
    model: str = Field("gpt-4o-mini-2024-07-18", description="Base model to fine-tune.")
    n_epochs: int | None = Field(None, ge=1, description="None: the API's default.")
    suffix: str = Field("parallel-r1", max_length=40, description="Suffix of the fine-tuned model names.")
    poll_interval_s: float = Field(10.0, gt=0, description="How often `watch` polls job status.")
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(5, ge=0, description="Retries on 429, 5xx and connection errors.")


class FinetuneConfig(_Section):
    backend: Literal["ray", "openai"] = Field("ray", description="Ray Train + TRL + PEFT, or the OpenAI API.")
    batches: list[str] | None = Field(None, description="Batch names to train; None: every batch on disk.")
    # optimisation
    learning_rate: float = Field(4e-3, gt=0, description="Peak learning rate (high: the demo's model is tiny).")
    epochs: float = Field(4.0, gt=0)
    max_length: int = Field(256, ge=16, description="Tokens per training example (longer ones are cut).")
    per_device_batch_size: int = Field(4, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    seed: int = 0
    lora: LoraSection = Field(default_factory=LoraSection)
    specialise_from: Literal["base", "monolithic"] = Field(
        "base", description="base: every adapter starts at zero on the base model and all jobs run at once. "
                            "monolithic: the monolithic baseline trains first, then the six specialists at once, each "
                            "continuing from its adapter (general tutoring first, then the niche; the specialists "
                            "keep its LoRA rank). Ray backend only.")
    # resources
    num_workers: int = Field(1, ge=1, description="Data-parallel workers per job.")
    monolithic_workers: int = Field(2, ge=1, description="Data-parallel workers of the monolithic job, which trains "
                                                         "on the union of the batches (~6x a specialist's data): "
                                                         "with one it is the stage's long pole, running alone on "
                                                         "one core after the specialists end. Its global batch "
                                                         "stays per_device_batch_size x num_workers.")
    cpus_per_worker: float = Field(0.25, gt=0, description="CPUs reserved per worker (fractions allowed; the six "
                                                           "specialists and the baseline's two workers x 0.25 fit "
                                                           "on 2 CPUs).")
    use_gpu: bool = Field(False, description="One GPU per worker (cluster).")
    gpus_per_worker: float = Field(1.0, gt=0)
    max_concurrent_jobs: int | None = Field(None, ge=1, description="None: every job at once.")
    storage_path: str | None = Field(None, description="Ray Train storage (absolute path or URI); "
                                                       "None: <workdir>/ray_results.")
    monolithic_baseline: bool = Field(True, description="`run` also trains the monolithic adapter (the baseline "
                                                        "`compare` measures the specialists against), together "
                                                        "with the specialists.")
    max_failures: int = Field(1, ge=0, description="Ray Train restarts of a failed job (from its checkpoint).")
    openai: OpenAIFinetuneConfig = Field(default_factory=OpenAIFinetuneConfig)

    @model_validator(mode="after")
    def _check(self) -> FinetuneConfig:
        if self.specialise_from == "monolithic" and self.backend == "openai":
            raise ValueError("specialise_from: monolithic needs backend: ray (the OpenAI backend submits every job at "
                             "once, from finetune.openai.model)")
        return self


class InferenceConfig(_Section):
    engine: Literal["auto", "hf", "vllm"] = Field("auto", description="auto: vLLM where it imports, else HF.")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="Weights dtype (float32 on CPU: bf16 is ~3x slower here).")
    max_batch_size: int = Field(32, ge=1, description="HF engine: conversations per generate() call.")
    hf_cache: Literal["static", "dynamic"] = Field(
        "static", description="HF engine KV cache. static: preallocated for a batch's prompt + max_tokens and written "
                              "in place (measured on the demo model: generation 18 % faster than dynamic, the same "
                              "replies); dynamic: grown by concatenation each step, for a model without static-cache "
                              "support.")
    num_engines: int = Field(1, ge=1, description="Engines `compare` spreads its models over, one Ray actor each "
                                                  "holding the base model and every adapter; 1: one engine in "
                                                  "the calling process, no Ray.")
    cpus_per_engine: float = Field(1.0, gt=0, description="CPUs per engine actor (its torch threads on CPU).")
    gpus_per_engine: float = Field(0.0, ge=0, description="GPUs per engine actor (cluster; fractions share one).")
    max_loras: int = Field(8, ge=1, description="vLLM: adapters held in the engine at once.")
    max_lora_rank: int = Field(16, ge=1, description="vLLM: the largest LoRA rank it accepts.")
    kv_cache_memory_bytes: int = Field(512 * 1024**2, ge=1, description="vLLM on CPU: KV cache size.")
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="vLLM on GPU.")
    max_model_len: int | None = Field(None, ge=16, description="None: the base model's context length.")


class EvalSliceSpec(_Section):
    name: str
    description: str = ""
    lengths: list[Literal["short", "medium", "long"]] | None = Field(None, description="None: any length.")
    question_types: list[Literal["original", "koan"]] | None = Field(None, description="None: any.")
    profile_kinds: list[str] | None = Field(None, description="None: any student profile.")
    traits: list[str] | None = Field(None, description="The student has at least one of these traits.")


def _default_slices() -> list[EvalSliceSpec]:
    return [
        EvalSliceSpec(name="short_dialogues", lengths=["short"], description="Short dialogues"),
        EvalSliceSpec(name="long_dialogues", lengths=["long"], description="Long dialogues (late student turns)"),
        EvalSliceSpec(name="koans", question_types=["koan"], description="Koan-style, open questions"),
        EvalSliceSpec(name="abstract_scenarios", traits=["rejects_metaphor"],
                      description="Students who reject metaphors"),
        EvalSliceSpec(name="validation_heavy", traits=["bad_prior_teacher"],
                      description="Students hurt by a bad prior teacher"),
        EvalSliceSpec(name="exec_function", traits=["executive_function_gap"],
                      description="Students with an executive-function gap"),
        EvalSliceSpec(name="hyperfocus", traits=["hyperfocus_trait"], description="Hyperfocused students"),
        EvalSliceSpec(name="general", profile_kinds=["standard"], description="Standard students"),
    ]


def _default_niches() -> dict[str, list[str]]:
    return {
        "short_original_high": ["short_dialogues"],
        "medium_koan_high": ["koans"],
        "long_mixed_medium": ["long_dialogues"],
        "varied_original_diverse": ["general"],
        "neurodivergent": ["abstract_scenarios", "exec_function", "hyperfocus"],
        "prior_trauma_recovery": ["validation_heavy"],
    }


class EvalConfig(_Section):
    # the held-out set
    prompts_per_slice: int = Field(24, ge=2, description="Held-out conversation prefixes per slice.")
    seed: int = Field(10_000, description="Seed of the held-out dialogues (kept apart from discovery's).")
    slices: list[EvalSliceSpec] = Field(default_factory=_default_slices)
    # which models
    models: list[str] | None = Field(None, description="None: base, every adapter, the monolithic one and "
                                                       "OpenAI fine-tuned models from the manifest.")
    niches: dict[str, list[str]] = Field(default_factory=_default_niches,
                                         description="Specialist -> the slices it is trained for.")
    system_prompt: Literal["served", "generic"] = Field(
        "served", description="served: each model gets the system prompt it is trained and served with (a "
                              "specialist's own, the generic tutor prompt for the base and the monolithic "
                              "baseline); generic: every model gets the generic tutor prompt.")
    # sampling: the same for every model
    samples_per_prompt: int = Field(2, ge=1, description="Sampled replies per prefix (same seeds for every model).")
    temperature: float = Field(0.8, ge=0, le=2, description="Greedy decoding of tiny models loops; sample.")
    top_p: float = Field(0.95, gt=0, le=1)
    max_tokens: int = Field(80, ge=1)
    sampling_seed: int = 0
    # statistics and success criteria
    bootstrap_samples: int = Field(2000, ge=100, description="Paired bootstrap resamples per CI.")
    ci_level: float = Field(0.95, gt=0, lt=1)
    improvement_threshold: float = Field(0.15, ge=0, description="'Improves on the base' means delta >= this.")
    min_improving_specialists: int = Field(2, ge=1)
    generalist: str = Field("varied_original_diverse", description="The diverse-patterns batch that should "
                                                                   "generalise.")
    generalist_tolerance: float = Field(0.05, ge=0, description="'Close to the best' on a slice: within this.")


class GateConfig(_Section):
    candidate: str | None = Field(None, description="Model to consider; None: the best in the compare results.")
    min_relative_gain: float = Field(0.04, ge=0, description="Promote only at >= (1 + this) x the promoted score.")
    max_pattern_density: float = Field(0.10, ge=0, description="Stock phrases per reply at most.")
    max_dismissive_rate: float = Field(0.0, ge=0, le=1, description="Share of replies with a dismissive or "
                                                                    "offensive tone (insults, profanity).")
    max_answer_dump_rate: float = Field(0.10, ge=0, le=1,
                                        description="Share of replies revealing the answer where the card "
                                                    "calls for guidance.")


class TuneConfig(_Section):
    specialist: str = Field("neurodivergent", description="The batch whose specialist is swept.")
    batch_sizes: list[int] = Field(default_factory=lambda: [30, 50, 100], description="Training samples per trial.")
    learning_rates: list[float] = Field(default_factory=lambda: [4e-3])
    lora_ranks: list[int] = Field(default_factory=lambda: [16])
    max_concurrent_trials: int = Field(3, ge=1)
    grace_epochs: int = Field(1, ge=1, description="Epochs before a poor trial may be stopped early.")
    eval_prompts: int = Field(16, ge=2, description="Held-out prefixes of the specialist's slices per trial.")

