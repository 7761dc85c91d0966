"""An async chat client for any OpenAI-compatible endpoint, with timeouts and retries with backoff.

Shared by the discovery backend and the LLM judge. Retries 429, 5xx, timeouts and connection errors;
other errors (4xx: a bad request, a wrong key) are raised at once.
"""

from __future__ import annotations

import asyncio
import os
import random

import openai

from parallel_r1.config import OpenAIEndpointConfig

RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError,
             openai.APIConnectionError)


class EndpointError(RuntimeError):
    """A request failed for good: not retryable, or out of retries."""


class OpenAIChatClient:
    def __init__(self, cfg: OpenAIEndpointConfig, *, seed: int | None = None):
        self.cfg = cfg
        api_key = os.environ.get(cfg.api_key_env) or "EMPTY"
        self._client = openai.AsyncOpenAI(base_url=cfg.base_url, api_key=api_key,
                                          timeout=cfg.timeout_s, max_retries=0)
        self._rng = random.Random(seed)
        self.retries = 0  # retries made so far, for reporting

    async def complete(self, messages: list[dict], *, temperature: float | None = None,
                       max_tokens: int | None = None) -> str:
        """The assistant's reply text to `messages`."""
        cfg = self.cfg
        for attempt in range(cfg.max_retries + 1):
            try:
                resp = await self._client.chat.completions.create(
                    model=cfg.model, messages=messages,
                    temperature=cfg.temperature if temperature is None else temperature,
                    max_tokens=max_tokens or cfg.max_tokens,
                )
                text = (resp.choices[0].message.content or "").strip() if resp.choices else ""
                if not text:
                    raise EndpointError(f"{cfg.base_url}: empty completion from model {cfg.model!r}")
                return text
            except RETRYABLE as e:
                if attempt == cfg.max_retries:
                    raise EndpointError(
                        f"{cfg.base_url}: gave up after {attempt + 1} attempts: {type(e).__name__}: {e}"
                    ) from e
                self.retries += 1
                delay = min(cfg.max_backoff_s, cfg.backoff_s * 2**attempt)
                await asyncio.sleep(delay * (0.5 + self._rng.random()))
            except openai.APIStatusError as e:
                raise EndpointError(f"{cfg.base_url}: HTTP {e.status_code}: {e.message}") from e
        raise AssertionError("unreachable")

    async def close(self) -> None:
        await self._client.close()
