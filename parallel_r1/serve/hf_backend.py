"""The `hf` model backend: one Serve deployment holding the base model and every adapter in an `HFEngine`, and each
promoted full model (a merged Parallel-R1 model) in an `HFEngine` of its own, with that model's tokenizer and chat
template.

An engine's lock serialises adapter switching and generation, so concurrent requests for different specialists
each get their own specialist's answer, streamed or not. Generation runs in a worker thread, keeping the
replica's event loop free; a streamed request's tokens cross from that thread to the loop through a queue, as
transformers' `generate` produces them, and a client that goes away stops its generation at the next token.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from ray import serve
from starlette.requests import Request
from transformers.generation.streamers import BaseStreamer

from parallel_r1.config import InferenceConfig
from parallel_r1.errors import UserFacingError
from parallel_r1.inference.engine import SamplingParams
from parallel_r1.serve.generation import Delta, Generation, TextDeltas
from parallel_r1.serve.routing import BASE
from parallel_r1.serve.served import Target

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from parallel_r1.inference.hf_engine import HFEngine


class GenerationCancelled(Exception):
    """Raised inside `generate` (from the streamer) once nobody waits for the reply any more."""


class Cancellable(BaseStreamer):
    """A transformers streamer that stops its generation at the next token once `cancelled` is set (the request
    was cancelled, timed out, or its client went away), freeing the engine."""

    cancelled = False

    def put(self, value) -> None:
        if self.cancelled:
            raise GenerationCancelled

    def end(self) -> None:
        """Nothing to flush."""


class RowStreamer(Cancellable):
    """A transformers streamer for the `n` rows of one prompt: decodes each row's tokens up to its end token and
    calls `emit(row, delta)` with the new text (`TextDeltas`, cut at the `stop` strings). Runs in the generation
    thread, under the lock."""

    def __init__(self, tokenizer, eos: list[int], n: int, emit: Callable[[int, str], None],
                 stop: tuple[str, ...] = ()) -> None:
        self._tokenizer, self._eos, self._emit = tokenizer, set(eos), emit
        self._rows: list[list[int]] = [[] for _ in range(n)]
        self._ended = [False] * n
        self.deltas = [TextDeltas(stop) for _ in range(n)]
        self._prompt_seen = False

    def put(self, value) -> None:
        super().put(value)
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


def _as_generation(done) -> Generation:
    return Generation(done.texts, done.finish_reasons, done.prompt_tokens, done.completion_tokens)


@dataclass
class _Engine:
    """An engine and the tokenizer its streamers decode with (their own: used only under the engine's lock)."""

    engine: HFEngine
    tokenizer: PreTrainedTokenizerBase
    used: float = 0.0


@serve.deployment(name="HFSpecialists")
class HFSpecialists:
    """Base model + adapters by registry version (`name@vN`), and full-model versions each in an engine of its own.
    `generate` / `generate_stream` are what the router calls, with the version's folder and kind: a version not
    loaded yet (just promoted) is loaded on its first request; beyond `max_loaded` adapters or `max_models` full
    models the least recently used is dropped. `__call__` (POST a JSON body `{"messages", "adapter", "sampling"}`)
    exposes `generate` over HTTP to measure the router against."""

    def __init__(self, inference: dict, base_model: str, adapters: dict[str, str], max_loaded: int = 16,
                 max_models: int = 2) -> None:
        self._inference = InferenceConfig(**inference)
        self._base = _load(self._inference, base_model, adapters)
        self._max_loaded, self._max_models = max_loaded, max_models
        self._used = {name: time.monotonic() for name in adapters}
        self._models: dict[str, _Engine] = {}
        self._loading = asyncio.Lock()

    def models(self) -> list[str]:
        return [BASE, *self._base.engine.adapters, *self._models]

    async def _adapter(self, model: str, path: str | None) -> str | None:
        """The base engine's adapter for `model` (None: the base), loaded from `path` first when it is new."""
        if model == BASE:
            return None
        engine = self._base.engine
        if model not in engine.adapters and path is not None:
            await asyncio.to_thread(engine.add_adapter, model, path)
            unused = sorted((t, n) for n, t in self._used.items() if n != model)
            for _, name in unused[:max(0, len(engine.adapters) - self._max_loaded)]:
                await asyncio.to_thread(engine.remove_adapter, name)
                self._used.pop(name)
        self._used[model] = time.monotonic()
        return model

    async def _full_model(self, model: str, path: str) -> _Engine:
        """The engine of full-model version `model`, loaded from `path` on first use. Dropping the least recently
        used one only forgets it: a request still generating with it finishes, then its memory is freed."""
        if model not in self._models:
            async with self._loading:  # one load at a time, and never the same model twice
                if model not in self._models:
                    self._models[model] = await asyncio.to_thread(_load, self._inference, path)  # used: now
                    for name in sorted(self._models, key=lambda n: self._models[n].used)[:-self._max_models]:
                        del self._models[name]
        loaded = self._models[model]
        loaded.used = time.monotonic()
        return loaded

    async def _engine(self, model: str, path: str | None, kind: str) -> tuple[_Engine, str | None]:
        """The engine that answers for `model` and the adapter to generate with (None: the engine's own model)."""
        if kind == "model" and path is not None:
            return await self._full_model(model, path), None
        return self._base, await self._adapter(model, path)

    async def generate(self, conversation: list[dict], sampling: dict, model: str, path: str | None = None,
                       kind: str = "adapter") -> dict:
        try:
            loaded, adapter = await self._engine(model, path, kind)
            params = SamplingParams(**sampling)
        except (UserFacingError, ValueError) as e:
            return asdict(Generation.refused(str(e)))
        streamer = Cancellable()
        work = asyncio.ensure_future(asyncio.to_thread(loaded.engine.generate, [conversation], params, adapter,
                                                       streamer=streamer))
        try:
            done = (await asyncio.shield(work))[0]
        except (UserFacingError, ValueError) as e:
            return asdict(Generation.refused(str(e)))
        except asyncio.CancelledError:  # the router gave up (timeout, client gone): stop at the next token
            streamer.cancelled = True
            work.add_done_callback(lambda w: w.cancelled() or w.exception())
            raise
        return asdict(_as_generation(done))

    async def generate_stream(self, conversation: list[dict], sampling: dict, model: str, path: str | None = None,
                              kind: str = "adapter") -> AsyncIterator[dict]:
        """Yields `{"index", "text"}` deltas as tokens are generated, then the `Generation` as a dict."""
        try:
            loaded, adapter = await self._engine(model, path, kind)
            params = SamplingParams(**sampling)
        except (UserFacingError, ValueError) as e:
            yield asdict(Generation.refused(str(e)))
            return
        engine = loaded.engine
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Delta | None] = asyncio.Queue()
        streamer = RowStreamer(loaded.tokenizer, engine.eos_token_ids, params.n,
                               lambda row, text: loop.call_soon_threadsafe(queue.put_nowait, Delta(row, text)),
                               params.stop)
        work = asyncio.ensure_future(asyncio.to_thread(engine.generate, [conversation], params, adapter,
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


def _load(inference: InferenceConfig, model: str, adapters: dict[str, str] | None = None) -> _Engine:
    """An `HFEngine` on the model folder `model` (with `adapters`), and its streamers' tokenizer."""
    from transformers import AutoTokenizer

    from parallel_r1.inference.hf_engine import HFEngine

    return _Engine(HFEngine(inference, model, adapters), AutoTokenizer.from_pretrained(model), time.monotonic())


class HFClient:
    """The router's view of an `HFSpecialists` deployment."""

    def __init__(self, handle) -> None:
        self._handle = handle
        self._streaming = handle.options(stream=True)

    async def models(self) -> list[str]:
        return await self._handle.models.remote()

    async def generate(self, conversation: list[dict], sampling: SamplingParams, target: Target) -> Generation:
        response = self._handle.generate.remote(conversation, asdict(sampling), target.ref, target.source,
                                                target.kind)
        try:
            return Generation(**await response)
        except asyncio.CancelledError:  # timed out or the client went away: the replica stops generating
            response.cancel()
            raise

    async def stream(self, conversation: list[dict], sampling: SamplingParams,
                     target: Target) -> AsyncIterator[Delta | Generation]:
        async for item in self._streaming.generate_stream.remote(conversation, asdict(sampling), target.ref,
                                                                 target.source, target.kind):
            yield Delta(**item) if "text" in item else Generation(**item)
