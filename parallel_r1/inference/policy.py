"""How a model is asked to think in parallel at inference (`ParallelExecutionPolicy`), and the parallel KPIs
over its replies: parallel ratio, mean path diversity and consensus rate. Pure Python: no torch, no Ray."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from parallel_r1.data.parallel_format import (
    DEFAULT_MAX_BLOCKS,
    MIN_PATHS,
    ParallelBlock,
    overlap,
    parallel_instruction,
    parse_reply,
    path_diversity,
)
from parallel_r1.data.prompts import TUTOR_SYSTEM_PROMPT
from parallel_r1.inference.engine import SamplingParams

if TYPE_CHECKING:
    from parallel_r1.config import ParallelInferenceConfig


class ParallelExecutionPolicy(BaseModel):
    """Branch count, sampling and token budget of parallel-thinking inference, shared by engines and the router."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    branches: int = Field(3, ge=MIN_PATHS, description="Paths per <Parallel> block the model is asked for.")
    max_blocks: int = Field(DEFAULT_MAX_BLOCKS, ge=1, description="Parallel blocks allowed in one reply.")
    temperature: float = Field(0.8, ge=0, le=2, description="Sampling temperature of the reply.")
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling mass.")
    max_tokens: int = Field(256, ge=1, description="Token budget of the whole reply, paths and summaries included.")

    @classmethod
    def from_config(cls, cfg: ParallelInferenceConfig) -> ParallelExecutionPolicy:
        """From a config section with the same field names (`ParallelConfig.inference`)."""
        return cls(**{name: getattr(cfg, name) for name in cls.model_fields})

    def sampling_params(self, seed: int | None = 0) -> SamplingParams:
        """The engine's sampling parameters for one reply under this policy."""
        return SamplingParams(n=1, temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens,
                              seed=seed)

    def instruction(self) -> str:
        """One sentence for the system prompt that asks for this many paths per block."""
        return parallel_instruction(self.branches, self.max_blocks)

    def system_prompt(self) -> str:
        """The tutor prompt plus the instruction: what parallel models are trained, rewarded and evaluated under."""
        return f"{TUTOR_SYSTEM_PROMPT} {self.instruction()}"


@dataclass(frozen=True)
class ParallelKPIs:
    """The parallel KPIs of a set of replies (rates in [0, 1]; diversity and consensus over well-formed replies)."""

    n_replies: int
    parallel_ratio: float
    mean_path_diversity: float
    consensus_rate: float


def _parallel_blocks(replies: Sequence[str], max_blocks: int) -> list[list[ParallelBlock]]:
    """The blocks of every reply that uses the format validly."""
    parsed = (parse_reply(r, max_blocks=max_blocks) for r in replies)
    return [p.blocks for p in parsed if p.uses_parallel]


def parallel_ratio(replies: Sequence[str], max_blocks: int = DEFAULT_MAX_BLOCKS) -> float:
    """Share of replies that use the parallel format validly (0 for no replies)."""
    return len(_parallel_blocks(replies, max_blocks)) / len(replies) if replies else 0.0


def mean_path_diversity(replies: Sequence[str], max_blocks: int = DEFAULT_MAX_BLOCKS) -> float:
    """Mean over the well-formed blocks of all replies of their path diversity (0 when there is none)."""
    blocks = [b for blocks in _parallel_blocks(replies, max_blocks) for b in blocks]
    return statistics.fmean(path_diversity(b.paths) for b in blocks) if blocks else 0.0


def majority_paths(paths: Sequence[str]) -> list[int]:
    """Indices of the paths that agree most with the others (mean overlap); ties are all majority."""
    support = [statistics.fmean(overlap(p, q) for j, q in enumerate(paths) if j != i) for i, p in enumerate(paths)]
    best = max(support)
    return [i for i, s in enumerate(support) if s >= best - 1e-9]


def agrees_with_majority(block: ParallelBlock, min_overlap: float = 0.5) -> bool:
    """Whether the summary is closest to a majority path, and close enough to it (overlap >= `min_overlap`)."""
    closeness = [overlap(block.summary or "", p) for p in block.paths]
    closest = max(closeness)
    chosen = [i for i, c in enumerate(closeness) if c >= closest - 1e-9]
    return closest >= min_overlap and bool(set(chosen) & set(majority_paths(block.paths)))


def consensus_rate(replies: Sequence[str], max_blocks: int = DEFAULT_MAX_BLOCKS, min_overlap: float = 0.5) -> float:
    """Share of the well-formed blocks whose summary agrees with their majority path (0 when there is none)."""
    blocks = [b for blocks in _parallel_blocks(replies, max_blocks) for b in blocks]
    return sum(agrees_with_majority(b, min_overlap) for b in blocks) / len(blocks) if blocks else 0.0


def parallel_kpis(replies: Sequence[str], max_blocks: int = DEFAULT_MAX_BLOCKS,
                  min_overlap: float = 0.5) -> ParallelKPIs:
    """All parallel KPIs of one model's replies."""
    return ParallelKPIs(n_replies=len(replies), parallel_ratio=parallel_ratio(replies, max_blocks),
                        mean_path_diversity=mean_path_diversity(replies, max_blocks),
                        consensus_rate=consensus_rate(replies, max_blocks, min_overlap))
