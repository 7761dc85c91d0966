"""The `grade` section: which grader scores dialogues and replies."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from parallel_r1.config.base import _Section
from parallel_r1.config.groups import OpenAIEndpointConfig


class GradeConfig(_Section):
    grader: Literal["heuristic", "llm", "combined", "fitted"] = Field(
        "heuristic", description="heuristic: the pure-Python rubric; llm: the LLM judge; combined: both, weighted by "
                                 "llm_weight; fitted: the model `parallel-r1 grader fit` wrote (fitted_path).")
    fitted_path: str | None = Field(None, description="The fitted grader's folder; None: <workdir>/grader/fitted.")
    judge: OpenAIEndpointConfig = Field(default_factory=OpenAIEndpointConfig, description="LLM judge.")
    llm_weight: float = Field(0.5, ge=0, le=1, description="Weight of the LLM judge when combined.")
