"""The `gate` section: when a candidate model is promoted."""

from __future__ import annotations

from pydantic import Field

from parallel_r1.config.base import _Section


class GateConfig(_Section):
    candidate: str | None = Field(None, description="Model to consider; None: every compared model but the base.")
    min_relative_gain: float = Field(0.04, ge=0, description="Promote only at >= (1 + this) x the score the model's "
                                                             "promoted version was promoted on (the base's score "
                                                             "when none is).")
    max_pattern_density: float = Field(0.10, ge=0, description="Stock phrases per reply at most.")
    max_dismissive_rate: float = Field(0.0, ge=0, le=1, description="Share of replies with a dismissive or "
                                                                    "offensive tone (insults, profanity).")
    max_answer_dump_rate: float = Field(0.10, ge=0, le=1,
                                        description="Share of replies revealing the answer where the card "
                                                    "calls for guidance.")
    min_path_diversity: float = Field(0.15, ge=0, le=1, description="For models answering in the parallel format: "
                                      "mean path diversity at least this (below: one path copied).")
    max_path_diversity: float = Field(0.95, ge=0, le=1, description="For models answering in the parallel format: "
                                      "mean path diversity at most this (above: unrelated noise).")
