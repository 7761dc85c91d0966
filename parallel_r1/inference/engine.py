"""The inference interface every engine implements: generate replies for a batch of conversations,
optionally through a named LoRA adapter, with explicit sampling parameters.

Engines: `hf` (transformers + PEFT, `parallel_r1.inference.hf_engine`) and `vllm` (`vllm.LLM` with
LoRA, `parallel_r1.inference.vllm_engine`); `build_engine` picks one from `InferenceConfig`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. temperature 0 means greedy. With a seed, prompt i of a call is sampled with seed
    `seed + i`, so the same prompts get the same seeds whichever model or adapter answers them."""

    n: int = 1
    temperature: float = 0.8
    top_p: float = 0.95
    max_tokens: int = 96
    seed: int | None = 0
    stop: tuple[str, ...] = ()  # a reply ends before the first of these strings (finish reason "stop")

    def __post_init__(self) -> None:
        object.__setattr__(self, "stop", tuple(self.stop))
        if not all(isinstance(s, str) and s for s in self.stop):
            raise ValueError(f"stop strings must be non-empty strings, got {self.stop!r}")
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")


def stop_index(text: str, stop: Sequence[str]) -> int | None:
    """Where the earliest stop string in `text` starts (None: none occurs)."""
    found = [i for s in stop if (i := text.find(s)) >= 0]
    return min(found) if found else None


def partial_stop(text: str, stop: Sequence[str]) -> int:
    """The length of the longest end of `text` that a stop string starts with (text that may yet become one)."""
    return max((k for s in stop for k in range(min(len(s) - 1, len(text)), 0, -1) if text.endswith(s[:k])),
               default=0)


@dataclass
class Completion:
    """The replies to one conversation: `n` samples, their token counts and why each one stopped."""

    texts: list[str]
    adapter: str | None
    prompt_tokens: int
    completion_tokens: list[int] = field(default_factory=list)
    finish_reasons: list[str] = field(default_factory=list)  # "stop" (end of turn) or "length"

    @property
    def text(self) -> str:
        return self.texts[0]


class InferenceEngine(Protocol):
    """A base model plus named LoRA adapters, answering chat conversations."""

    name: str  # "hf" | "vllm"

    def add_adapter(self, name: str, path: Path | str) -> None:
        """Register a PEFT LoRA adapter folder under `name` (an error if the folder is not an adapter)."""

    @property
    def adapters(self) -> list[str]:
        """Names of the registered adapters."""

    def generate(self, conversations: list[list[dict]], sampling: SamplingParams,
                 adapter: str | None = None) -> list[Completion]:
        """One Completion per conversation (chat `messages`, ending with a user turn), in order;
        `adapter=None` answers with the base model. Safe to call from several threads at once."""

    def generate_each(self, requests: list[tuple[list[list[dict]], str | None]],
                      sampling: SamplingParams) -> list[list[Completion]]:
        """`[generate(conversations, sampling, adapter) for conversations, adapter in requests]`, with the same
        results, in as few engine calls as the engine can (vLLM: one, batching every adapter together)."""

    def close(self) -> None:
        """Free the engine's model(s) and processes."""
