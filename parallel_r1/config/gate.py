"""The `gate` section: when a candidate model is promoted."""

from __future__ import annotations

from pydantic import Field

from parallel_r1.config.base import _Section


class GateConfig(_Section):
    candidate: str | None = Field(None, description="Model to consider; None: the best in the compare results.")
    min_relative_gain: float = Field(0.04, ge=0, description="Promote only at >= (1 + this) x the promoted score.")
    max_pattern_density: float = Field(0.10, ge=0, description="Stock phrases per reply at most.")
    max_dismissive_rate: float = Field(0.0, ge=0, le=1, description="Share of replies with a dismissive or "
                                                                    "offensive tone (insults, profanity).")
    max_answer_dump_rate: float = Field(0.10, ge=0, le=1,
                                        description="Share of replies revealing the answer where the card "
                                                    "calls for guidance.")
