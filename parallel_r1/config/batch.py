"""The `batch` section: how graded dialogues are curated into the specialists' training batches."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from parallel_r1.config.base import _Section

Lengths = list[Literal["short", "medium", "long"]] | None
QuestionTypes = list[Literal["original", "koan"]] | None


RESERVED_NAMES = {"base", "monolithic", "parallel_sft", "parallel_rl", "parallel-r1"}


class BatchSpec(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
                      description="Batch name; the specialist trained on it is named the same (letters, digits, "
                                  "_ and -; it names files and folders of the run directory).")
    size: int = Field(ge=1, description="Dialogues in the batch.")
    description: str = Field("", description="One line on what the batch is for.")
    lengths: Lengths = Field(None, description="Dialogue lengths admitted; None: any length.")
    question_types: QuestionTypes = Field(None, description="Question types admitted; None: any.")
    confidence: Literal["high", "medium", "any"] = Field("any", description="Grader confidence tier admitted.")
    profile_kinds: list[str] | None = Field(None, description="Student profile kinds admitted; None: any.")
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
    seed: int = Field(0, description="Seed of the candidates' order inside a stratum.")
    batches: list[BatchSpec] = Field(default_factory=_default_batches, description="The batches, one per "
                                                                                   "specialist.")

    @model_validator(mode="after")
    def _check(self) -> BatchConfig:
        if self.medium_confidence > self.high_confidence:
            raise ValueError("medium_confidence must be <= high_confidence")
        names = [b.name for b in self.batches]
        if len(set(names)) != len(names):
            raise ValueError(f"batch names must be unique: {names}")
        reserved = sorted(set(names) & RESERVED_NAMES)
        if reserved:
            raise ValueError(f"batch name(s) {reserved} are taken by the models compare and serve add "
                             f"({', '.join(sorted(RESERVED_NAMES))})")
        return self
