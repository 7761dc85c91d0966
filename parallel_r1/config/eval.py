"""The `eval` section: the held-out slices `compare` scores every model on, how replies are sampled, and the
statistics and success criteria of the comparison."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from parallel_r1.config.base import _Section
from parallel_r1.config.batch import Lengths, QuestionTypes
from parallel_r1.config.groups import MaxTokens, SamplingConfig, Temperature


class EvalSliceSpec(_Section):
    name: str = Field(description="Slice name.")
    description: str = Field("", description="One line on who the slice's students are.")
    lengths: Lengths = Field(None, description="Dialogue lengths admitted; None: any length.")
    question_types: QuestionTypes = Field(None, description="Question types admitted; None: any.")
    profile_kinds: list[str] | None = Field(None, description="Student profile kinds admitted; None: any.")
    traits: list[str] | None = Field(None, description="The student has at least one of these traits; None: any.")


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


class EvalConfig(SamplingConfig):
    # sampling (temperature, top_p, max_tokens: SamplingConfig): the same for every model
    temperature: Temperature = Field(0.8, description="Sampling temperature (sampled: greedy decoding of tiny "
                                                      "models loops).")
    max_tokens: MaxTokens = 80
    samples_per_prompt: int = Field(2, ge=1, description="Sampled replies per prefix (same seeds for every model).")
    sampling_seed: int = Field(0, description="Seed of the sampled replies.")
    # the held-out set
    prompts_per_slice: int = Field(24, ge=2, description="Held-out conversation prefixes per slice.")
    seed: int = Field(10_000, description="Seed of the held-out dialogues (kept apart from discovery's).")
    slices: list[EvalSliceSpec] = Field(default_factory=_default_slices, description="The held-out slices.")
    # which models
    models: list[str] | None = Field(None, description="None: base, every adapter, the monolithic one and "
                                                       "OpenAI fine-tuned models from the manifest.")
    niches: dict[str, list[str]] = Field(default_factory=_default_niches,
                                         description="Specialist -> the slices it is trained for.")
    system_prompt: Literal["served", "generic"] = Field(
        "served", description="served: each model gets the system prompt it is trained and served with (a "
                              "specialist's own, the generic tutor prompt for the base and the monolithic "
                              "baseline); generic: every model gets the generic tutor prompt.")
    # statistics and success criteria
    bootstrap_samples: int = Field(2000, ge=100, description="Paired bootstrap resamples per CI.")
    ci_level: float = Field(0.95, gt=0, lt=1, description="Confidence level of the intervals.")
    improvement_threshold: float = Field(0.15, ge=0, description="'Improves on the base' means delta >= this.")
    min_improving_specialists: int = Field(2, ge=1, description="Specialists that must improve on the base in "
                                                                "their niche.")
    generalist: str = Field("varied_original_diverse", description="The diverse-patterns batch that should "
                                                                   "generalise.")
    generalist_tolerance: float = Field(0.05, ge=0, description="'Close to the best' on a slice: within this.")
