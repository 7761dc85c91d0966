"""The `hf` model backend: one Serve deployment holding the base model and every adapter in an `HFEngine`.

The engine's lock serialises adapter switching, so concurrent requests for different specialists each get
their own specialist's answer. Generation runs in a worker thread, keeping the replica's event loop free.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass

from ray import serve
from starlette.requests import Request

from parallel_r1.config import InferenceConfig
from parallel_r1.errors import UserFacingError
from parallel_r1.inference.engine import SamplingParams
from parallel_r1.serving.routing import BASE


@dataclass
class Generation:
    """What a backend returns for one conversation: `n` replies, or the user error it was refused with."""

    texts: list[str]
    finish_reasons: list[str]
    prompt_tokens: int
    completion_tokens: list[int]
    error: str | None = None  # a problem with the request (e.g. a prompt over the context length)

    @classmethod
    def refused(cls, message: str) -> Generation:
        return cls([], [], 0, [], error=message)


@serve.deployment(name="HFSpecialists")
class HFSpecialists:
    """Base model + all adapters. `generate` is what the router calls; `__call__` (POST a JSON body
    `{"messages", "adapter", "sampling"}`) exposes the same call over HTTP to measure the router against."""

    def __init__(self, inference: dict, base_model: str, adapters: dict[str, str]) -> None:
        from parallel_r1.inference.hf_engine import HFEngine

        self._engine = HFEngine(InferenceConfig(**inference), base_model, adapters)

    def models(self) -> list[str]:
        return [BASE, *self._engine.adapters]

    async def generate(self, conversation: list[dict], sampling: dict, model: str) -> dict:
        adapter = None if model == BASE else model
        try:
            params = SamplingParams(**sampling)
            done = (await asyncio.to_thread(self._engine.generate, [conversation], params, adapter))[0]
        except (UserFacingError, ValueError) as e:
            return asdict(Generation.refused(str(e)))
        return asdict(Generation(done.texts, done.finish_reasons, done.prompt_tokens, done.completion_tokens))

    async def __call__(self, request: Request) -> dict:
        body = await request.json()
        return await self.generate(body["messages"], body.get("sampling", {}), body.get("adapter") or BASE)


class HFClient:
    """The router's view of an `HFSpecialists` deployment."""

    def __init__(self, handle) -> None:
        self._handle = handle

    async def models(self) -> list[str]:
        return await self._handle.models.remote()

    async def generate(self, conversation: list[dict], sampling: SamplingParams, model: str) -> Generation:
        return Generation(**await self._handle.generate.remote(conversation, asdict(sampling), model))
