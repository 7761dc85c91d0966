"""An async chat client for any OpenAI-compatible endpoint, with timeouts and retries with backoff.

Shared by the discovery backend and the LLM judge. Retries 408, 409, 429, 5xx, timeouts and connection
errors with bounded, jittered exponential backoff (honouring `Retry-After`); any other failure (a bad
request, a wrong key, an unreadable response) raises `EndpointError` at once. Every attempt has a hard
deadline, so one call takes at most about (max_retries + 1) * (timeout_s + max_backoff_s).
`EndpointError` keeps the HTTP status and the server's message, so callers can tell a prompt that is too long
or a `response_format` the server does not take from other bad requests.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import openai

from parallel_r1.config import OpenAIEndpointConfig
from parallel_r1.errors import UserFacingError

RETRYABLE_STATUS = frozenset({408, 409, 429})  # and every 5xx


T = TypeVar("T")
CONTEXT_LENGTH = re.compile(r"context[ _-]length|context window|prompt is too long|too many tokens|"
                            r"reduce the length", re.IGNORECASE)


class EndpointError(UserFacingError, RuntimeError):
    """A request failed for good: not retryable, or out of retries. `status` is the HTTP status when the
    server answered (None for timeouts and connection errors); `detail` is the server's own message."""

    def __init__(self, message: str, *, status: int | None = None, detail: str = ""):
        super().__init__(message)
        self.status = status
        self.detail = detail

    @property
    def context_length(self) -> bool:
        """The server refused the request because the prompt (+ max_tokens) exceeds the model's context."""
        return self.status in (400, 413, 422) and bool(CONTEXT_LENGTH.search(self.detail))


@dataclass(frozen=True)
class Completion:
    """One chat completion: the reply, why generation stopped ("stop", "length"...), and the prompt's token
    count as the server reported it (None when it did not)."""

    text: str
    finish_reason: str | None
    prompt_tokens: int | None


def _retryable(err: Exception) -> bool:
    if isinstance(err, (openai.APIConnectionError, TimeoutError)):  # APITimeoutError is a connection error
        return True
    return isinstance(err, openai.APIStatusError) and (
        err.status_code in RETRYABLE_STATUS or err.status_code >= 500
    )


def _retry_after_s(err: Exception) -> float | None:
    """The server's requested wait (`retry-after-ms` or `retry-after` in seconds), if any."""
    if not isinstance(err, openai.APIStatusError):
        return None
    headers = err.response.headers
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        try:
            return max(0.0, float(headers[name]) * scale)
        except (KeyError, ValueError):
            continue
    return None


def backoff_delay(attempt: int, base_s: float, cap_s: float, rng: random.Random,
                  retry_after_s: float | None = None) -> float:
    """Seconds to wait before retry number `attempt + 1`: base * 2**attempt with jitter in [1/2, 1],
    at least the server's Retry-After, and never more than `cap_s`."""
    delay = base_s * 2 ** min(attempt, 32) * (0.5 + 0.5 * rng.random())
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return min(cap_s, delay)


class OpenAIChatClient:
    """One `AsyncOpenAI` connection pool; use it from one event loop (create it anywhere)."""

    def __init__(self, cfg: OpenAIEndpointConfig, *, seed: int | None = None):
        self.cfg = cfg
        api_key = os.environ.get(cfg.api_key_env) or "EMPTY"
        self._client = openai.AsyncOpenAI(base_url=cfg.base_url, api_key=api_key,
                                          timeout=cfg.timeout_s, max_retries=0)
        self._rng = random.Random(seed)
        self.retries = 0  # retries made so far, for reporting

    def _error(self, err: Exception, attempts: int) -> EndpointError:
        cfg = self.cfg
        where = f"{cfg.base_url} (model {cfg.model!r})"
        if _retryable(err):
            status = err.status_code if isinstance(err, openai.APIStatusError) else None
            return EndpointError(f"{where}: gave up after {attempts} attempts: {type(err).__name__}: {err}",
                                 status=status, detail=str(err))
        if isinstance(err, openai.APIStatusError):
            hint = ""
            if err.status_code in (401, 403):
                hint = f" (check the API key in ${cfg.api_key_env})"
            elif err.status_code == 404:
                hint = " (check base_url and model)"
            return EndpointError(f"{where}: HTTP {err.status_code}: {err.message}{hint}", status=err.status_code,
                                 detail=err.message)
        return EndpointError(f"{where}: {type(err).__name__}: {err}", detail=str(err))

    async def _call(self, request: Callable[[], Awaitable[T]]) -> T:
        """`request()` under the per-attempt deadline, retried with backoff as the module docstring says."""
        cfg = self.cfg
        for attempt in range(cfg.max_retries + 1):
            try:
                async with asyncio.timeout(cfg.timeout_s):  # httpx's timeouts are per phase, not total
                    return await request()
            except (openai.OpenAIError, TimeoutError) as e:
                if attempt == cfg.max_retries or not _retryable(e):
                    raise self._error(e, attempt + 1) from e
                self.retries += 1
                await asyncio.sleep(backoff_delay(attempt, cfg.backoff_s, cfg.max_backoff_s, self._rng,
                                                  _retry_after_s(e)))
        raise AssertionError("unreachable")

    async def complete(self, messages: list[dict], *, temperature: float | None = None,
                       max_tokens: int | None = None, response_format: dict | None = None) -> str:
        """The assistant's reply text to `messages`; raises `EndpointError` when it cannot get one."""
        return (await self.complete_full(messages, temperature=temperature, max_tokens=max_tokens,
                                         response_format=response_format)).text

    async def complete_full(self, messages: list[dict], *, temperature: float | None = None,
                            max_tokens: int | None = None, response_format: dict | None = None) -> Completion:
        """`complete` with the finish reason and prompt token count; `response_format` (e.g. a JSON schema)
        is sent only when given."""
        cfg = self.cfg
        extra = {} if response_format is None else {"response_format": response_format}
        resp = await self._call(lambda: self._client.chat.completions.create(
            model=cfg.model, messages=messages, temperature=cfg.temperature if temperature is None else temperature,
            max_tokens=max_tokens or cfg.max_tokens, **extra))
        choice = resp.choices[0] if resp.choices else None
        text = (choice.message.content or "").strip() if choice else ""
        if not text:
            raise EndpointError(f"{cfg.base_url}: empty completion from model {cfg.model!r}")
        usage = getattr(resp, "usage", None)
        return Completion(text=text, finish_reason=choice.finish_reason,
                          prompt_tokens=getattr(usage, "prompt_tokens", None))

    async def context_window(self) -> int | None:
        """The served model's context length from `GET /models` (vLLM lists `max_model_len` per model), or
        None when the server does not say (OpenAI itself does not) or the listing fails."""
        try:
            page = await self._call(self._client.models.list)
        except EndpointError:
            return None
        lengths = {m.id: n for m in page.data if isinstance(n := getattr(m, "max_model_len", None), int) and n > 0}
        if self.cfg.model in lengths:
            return lengths[self.cfg.model]
        return min(lengths.values(), default=None)  # a served name we do not know: the tightest is safe

    async def close(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> OpenAIChatClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


def json_object(text: str) -> dict:
    """The first JSON object in a model's reply (code fences and prose around it are ignored); ValueError if none."""
    text = re.sub(r"```(?:json)?", "", text)
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            obj, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    raise ValueError("no JSON object in the reply")


def run_closing(coro: Coroutine, aclose: Callable[[], Awaitable[None]], instead: str) -> Any:
    """Run a coroutine in a fresh event loop, then `aclose()` (an async client lives in one loop). Inside a running
    event loop, where this would block it, it refuses and says what to await `instead`."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        coro.close()
        raise RuntimeError(f"a sync call inside a running event loop; await {instead} instead")

    async def closing() -> Any:
        try:
            return await coro
        finally:
            await aclose()

    return asyncio.run(closing())
