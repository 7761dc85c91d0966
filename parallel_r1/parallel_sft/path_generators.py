"""Model-written alternatives for teacher turns: replies sampled for the dialogue so far, under the tutor system
prompt, by the policy (a local model on the project's inference engines) or by an OpenAI-compatible endpoint.

Both answer a batch of turns at once: the policy in one engine call (`samples` replies per conversation), the
endpoint with all of the batch's requests in flight together. A failed endpoint request comes back as an error next
to the texts that did arrive, never as an exception for the batch. Engines, tokenizers and clients are made on
first use, so a generator costs nothing until it generates; `close()` frees them. Torch, vLLM, Ray and the OpenAI
client are imported only then.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from parallel_r1.data.parallel_format import SPECIAL_TOKENS, student_view
from parallel_r1.data.prompts import TUTOR_SYSTEM_PROMPT
from parallel_r1.errors import UserFacingError

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from parallel_r1.config import InferenceConfig, PathGenerationConfig, RayConfig

POLICY, ENDPOINT = "policy", "endpoint"


@dataclass
class Generated:
    """What came back for one turn: the replies (format tags stripped) and the error of each failed request."""

    texts: list[str]
    errors: list[str] = field(default_factory=list)


class PathGenerator(Protocol):
    """Samples alternative teacher replies for a batch of conversations that each end with a student turn."""

    source: str  # "policy" | "endpoint": what the records name as their paths' source
    model: str  # the model that writes them

    def generate(self, histories: list[list[dict]], first: int) -> list[Generated]:
        """One `Generated` per history (chat messages without a system prompt), in order; `first` is the index of
        the batch's first turn in the whole build (it offsets the sampling seeds)."""

    def close(self) -> None:
        """Free the engine or client; a later `generate` makes a new one."""


def tutor_prompt(history: list[dict]) -> list[dict]:
    """The conversation a tutor model answers: the tutor system prompt, then the dialogue so far."""
    return [{"role": "system", "content": TUTOR_SYSTEM_PROMPT}, *history]


def plain_reply(text: str) -> str:
    """The reply as the student would see it: a reply written in the parallel format keeps only its summaries."""
    text = text.strip()
    return student_view(text).strip() if any(tag in text for tag in SPECIAL_TOKENS) else text


class PolicyPathGenerator:
    """The policy on the `inference` engine: in this process, or on Ray engine actors when the config spreads
    engines (`num_engines > 1`) or reserves GPUs for them (a cluster's driver may have none). Prompts are cut to
    the model's context the way evaluation cuts them (`fit_prompt`). Prompt i of an engine's share of a batch is
    sampled with seed `seed + first + i`."""

    source = POLICY

    def __init__(self, model: Path | str, inference: InferenceConfig, gen: PathGenerationConfig,
                 ray: RayConfig | None = None) -> None:
        self.model = str(model)
        self.inference, self.gen, self.ray = inference, gen, ray
        self._engine: Any = None
        self._count: Any = None
        self._budget = 0

    @property
    def spread(self) -> bool:
        """Whether the engines run as Ray actors (`inference.num_engines > 1` or GPUs per engine)."""
        return self.inference.num_engines > 1 or self.inference.gpus_per_engine > 0

    def _start(self) -> Any:
        if self._engine is not None:
            return self._engine
        from transformers import AutoConfig, AutoTokenizer

        from parallel_r1.data.context import token_counter

        self._count = token_counter(AutoTokenizer.from_pretrained(self.model))
        context = (self.inference.max_model_len
                   or getattr(AutoConfig.from_pretrained(self.model), "max_position_embeddings", None))
        if context is None:
            raise UserFacingError(f"{self.model} does not state its context length: set inference.max_model_len")
        self._budget = context - self.gen.max_tokens
        if self.spread:
            from parallel_r1.console import notice
            from parallel_r1.inference.pool import EnginePool
            from parallel_r1.ray_runtime import ensure_ray

            notice(ensure_ray(self.ray), log)
            self._engine = EnginePool(self.inference, self.model)
        else:
            from parallel_r1.inference import build_engine

            self._engine = build_engine(self.inference, self.model)
        return self._engine

    def generate(self, histories: list[list[dict]], first: int) -> list[Generated]:
        from parallel_r1.data.context import fit_prompt
        from parallel_r1.inference import SamplingParams

        engine = self._start()
        hint = "lower parallel.path_generation.max_tokens or raise inference.max_model_len"
        prompts = [fit_prompt(h, self._count, self._budget, TUTOR_SYSTEM_PROMPT, hint) for h in histories]
        gen = self.gen
        sampling = SamplingParams(n=gen.samples, temperature=gen.temperature, top_p=gen.top_p,
                                  max_tokens=gen.max_tokens, seed=gen.seed + first)
        shares = self.inference.num_engines if self.spread else 1
        size = -(-len(prompts) // shares) if prompts else 1
        requests = [(prompts[i:i + size], None) for i in range(0, len(prompts), size)]
        completions = [c for out in engine.generate_each(requests, sampling) for c in out]
        return [Generated([plain_reply(t) for t in c.texts]) for c in completions]

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None


class EndpointPathGenerator:
    """An OpenAI-compatible endpoint: `samples` requests per turn, every request of a batch in flight together (at
    most `max_in_flight`), each retried by the client as its endpoint config says."""

    source = ENDPOINT

    def __init__(self, gen: PathGenerationConfig, seed: int = 0) -> None:
        self.cfg = gen.endpoint.model_copy(update={"temperature": gen.temperature, "max_tokens": gen.max_tokens})
        self.model = self.cfg.model
        self.samples, self.max_in_flight, self.seed = gen.samples, gen.max_in_flight, seed
        self._runner: asyncio.Runner | None = None
        self._client: Any = None

    def generate(self, histories: list[list[dict]], first: int) -> list[Generated]:
        if self._runner is None:
            from parallel_r1.llm_client import OpenAIChatClient

            self._runner = asyncio.Runner()
            self._client = OpenAIChatClient(self.cfg, seed=self.seed)
        return self._runner.run(self._generate(histories))

    async def _generate(self, histories: list[list[dict]]) -> list[Generated]:
        from parallel_r1.llm_client import EndpointError

        gate = asyncio.Semaphore(self.max_in_flight)

        async def one(messages: list[dict]) -> tuple[str | None, str | None]:
            async with gate:
                try:
                    return await self._client.complete(messages), None
                except EndpointError as e:
                    return None, str(e)

        answers = await asyncio.gather(*(one(tutor_prompt(h)) for h in histories for _ in range(self.samples)))
        out = []
        for k in range(len(histories)):
            mine = answers[k * self.samples:(k + 1) * self.samples]
            out.append(Generated([plain_reply(t) for t, _ in mine if t is not None],
                                 [e for _, e in mine if e is not None]))
        return out

    def close(self) -> None:
        if self._runner is not None:
            self._runner.run(self._client.close())
            self._runner.close()
            self._runner, self._client = None, None


def path_generator(source: str, gen: PathGenerationConfig, *, inference: InferenceConfig,
                   base_model: Path | str | None = None, ray: RayConfig | None = None) -> PathGenerator | None:
    """The generator `parallel.path_source` asks for (None for "replay"; for "auto" the policy, or None when there
    is no model to run); a UserFacingError when "policy" has no model."""
    if source == ENDPOINT:
        return EndpointPathGenerator(gen)
    model = gen.model or base_model
    if source == "replay" or (source == "auto" and model is None):
        return None
    if model is None:
        raise UserFacingError("parallel.path_source is 'policy' but there is no model to sample paths from: set "
                              "parallel.path_generation.model or base_model.path")
    return PolicyPathGenerator(model, inference, gen, ray)
