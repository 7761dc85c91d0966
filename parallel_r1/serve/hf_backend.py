"""The `hf` model backend: one Serve deployment holding the base model and every adapter in an `HFEngine`.

The engine's lock serialises adapter switching and generation, so concurrent requests for different specialists
each get their own specialist's answer, streamed or not. Generation runs in a worker thread, keeping the
replica's event loop free; a streamed request's tokens cross from that thread to the loop through a queue, as
transformers' `generate` produces them, and a client that goes away stops its generation at the next token.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict

from ray import serve
from starlette.requests import Request
from transformers.generation.streamers import BaseStreamer

from parallel_r1.config import InferenceConfig
from parallel_r1.errors import UserFacingError
from parallel_r1.inference.engine import SamplingParams
from parallel_r1.serve.generation import Delta, Generation, TextDeltas
from parallel_r1.serve.routing import BASE


class GenerationCancelled(Exception):
    """Raised inside `generate` (from the streamer) once nobody reads the stream any more."""


class RowStreamer(BaseStreamer):
    """A transformers streamer for the `n` rows of one prompt: decodes each row's tokens up to its end token and
    calls `emit(row, delta)` with the new text (`TextDeltas`). Runs in the generation thread, under the lock."""

    def __init__(self, tokenizer, eos: list[int], n: int, emit: Callable[[int, str], None]) -> None:
        self._tokenizer, self._eos, self._emit = tokenizer, set(eos), emit
        self._rows: list[list[int]] = [[] for _ in range(n)]
        self._ended = [False] * n
        self.deltas = [TextDeltas() for _ in range(n)]
        self._prompt_seen = False
        self.cancelled = False

    def put(self, value) -> None:
        if self.cancelled:
            raise GenerationCancelled
        if not self._prompt_seen:  # the first call carries the prompt
            self._prompt_seen = True
            return
        for row, token in enumerate(value.reshape(-1).tolist()):
            if self._ended[row] or token in self._eos:
                self._ended[row] = True
                continue
            self._rows[row].append(token)
            delta = self.deltas[row].update(self._tokenizer.decode(self._rows[row], skip_special_tokens=True))
            if delta:
                self._emit(row, delta)

    def end(self) -> None:
        """Nothing to flush: the final replies complete the deltas (`TextDeltas.finish`)."""


def _as_generation(done) -> Generation:
    return Generation(done.texts, done.finish_reasons, done.prompt_tokens, done.completion_tokens)


@serve.deployment(name="HFSpecialists")
class HFSpecialists:
    """Base model + adapters by registry version (`name@vN`). `generate` / `generate_stream` are what the router
    calls, with the adapter's folder: a version not loaded yet (just promoted) is loaded on its first request, and
    beyond `max_loaded` adapters the least recently used is dropped. `__call__` (POST a JSON body `{"messages",
    "adapter", "sampling"}`) exposes `generate` over HTTP to measure the router against."""

    def __init__(self, inference: dict, base_model: str, adapters: dict[str, str], max_loaded: int = 16) -> None:
        from transformers import AutoTokenizer

        from parallel_r1.inference.hf_engine import HFEngine

        self._engine = HFEngine(InferenceConfig(**inference), base_model, adapters)
        self._tokenizer = AutoTokenizer.from_pretrained(base_model)  # the streamers' own: only used under the lock
        self._max_loaded = max_loaded
        self._used = {name: time.monotonic() for name in adapters}

    def models(self) -> list[str]:
        return [BASE, *self._engine.adapters]

    async def _adapter(self, model: str, path: str | None) -> str | None:
        """The engine's adapter for `model` (None: the base), loaded from `path` first when it is new."""
        if model == BASE:
            return None
        if model not in self._engine.adapters and path is not None:
            await asyncio.to_thread(self._engine.add_adapter, model, path)
            unused = sorted((t, n) for n, t in self._used.items() if n != model)
            for _, name in unused[:max(0, len(self._engine.adapters) - self._max_loaded)]:
                await asyncio.to_thread(self._engine.remove_adapter, name)
                self._used.pop(name)
        self._used[model] = time.monotonic()
        return model

    async def generate(self, conversation: list[dict], sampling: dict, model: str, path: str | None = None) -> dict:
        try:
            adapter = await self._adapter(model, path)
            params = SamplingParams(**sampling)
            done = (await asyncio.to_thread(self._engine.generate, [conversation], params, adapter))[0]
        except (UserFacingError, ValueError) as e:
            return asdict(Generation.refused(str(e)))
        return asdict(_as_generation(done))

    async def generate_stream(self, conversation: list[dict], sampling: dict, model: str,
                              path: str | None = None) -> AsyncIterator[dict]:
        """Yields `{"index", "text"}` deltas as tokens are generated, then the `Generation` as a dict."""
        try:
            adapter = await self._adapter(model, path)
            params = SamplingParams(**sampling)
        except (UserFacingError, ValueError) as e:
            yield asdict(Generation.refused(str(e)))
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Delta | None] = asyncio.Queue()
        streamer = RowStreamer(self._tokenizer, self._engine.eos_token_ids, params.n,
                               lambda row, text: loop.call_soon_threadsafe(queue.put_nowait, Delta(row, text)))
        work = asyncio.ensure_future(asyncio.to_thread(self._engine.generate, [conversation], params, adapter,
                                                       streamer=streamer))
        work.add_done_callback(lambda _: queue.put_nowait(None))  # after every delta the thread scheduled
        try:
            while (delta := await queue.get()) is not None:
                yield {"index": delta.index, "text": delta.text}
            try:
                done = _as_generation(work.result()[0])
            except (UserFacingError, ValueError) as e:
                yield asdict(Generation.refused(str(e)))
                return
            for row, text in enumerate(done.texts):
                if rest := streamer.deltas[row].finish(text):
                    yield {"index": row, "text": rest}
            yield asdict(done)
        finally:
            streamer.cancelled = True  # a no-op once generation is over; else it stops at the next token
            work.add_done_callback(lambda w: w.cancelled() or w.exception())  # retrieved: no "never retrieved"

    async def __call__(self, request: Request) -> dict:
        body = await request.json()
        return await self.generate(body["messages"], body.get("sampling", {}), body.get("adapter") or BASE)


class HFClient:
    """The router's view of an `HFSpecialists` deployment."""

    def __init__(self, handle) -> None:
        self._handle = handle
        self._streaming = handle.options(stream=True)

    async def models(self) -> list[str]:
        return await self._handle.models.remote()

    async def generate(self, conversation: list[dict], sampling: SamplingParams, model: str,
                       path: str | None = None) -> Generation:
        return Generation(**await self._handle.generate.remote(conversation, asdict(sampling), model, path))

    async def stream(self, conversation: list[dict], sampling: SamplingParams, model: str,
                     path: str | None = None) -> AsyncIterator[Delta | Generation]:
        async for item in self._streaming.generate_stream.remote(conversation, asdict(sampling), model, path):
            yield Delta(**item) if "text" in item else Generation(**item)
