"""The `openai` remote backend: promoted OpenAI fine-tuned ids answered by the OpenAI-compatible endpoint
`serve.openai_base_url`, through the `openai` client, streamed or not.

The router calls it like the model deployment (`generate`, `stream`). What the endpoint refuses as a bad request
(400, 413, 422: a prompt over the context length, ...) comes back as a refusal, the router's 400; its rate limit is
the client's 429; anything else (a wrong key, an unknown model id, a 5xx, no connection) is a 502, and a timeout a
504, each an `APIError` in the OpenAI error shape naming the endpoint and the version.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import openai

from parallel_r1.config import ServeConfig
from parallel_r1.inference.engine import SamplingParams
from parallel_r1.serve.generation import Delta, Generation, StreamedChoices
from parallel_r1.serve.schema import APIError
from parallel_r1.serve.served import Target

REFUSED = frozenset({400, 413, 422})  # the endpoint found the request itself bad: the client's 400


class OpenAIRemote:
    """The router's client for `serve.openai_base_url`; the API key is read from the replica's environment
    (`serve.openai_api_key_env`)."""

    def __init__(self, cfg: ServeConfig) -> None:
        key = os.environ.get(cfg.openai_api_key_env, "") if cfg.openai_api_key_env else ""
        self.base_url = cfg.openai_base_url
        self._client = openai.AsyncOpenAI(base_url=cfg.openai_base_url, api_key=key or "unused",
                                          timeout=cfg.openai_timeout_s, max_retries=cfg.openai_max_retries)

    def _request(self, conversation: list[dict], sampling: SamplingParams, target: Target) -> dict:
        return {"model": target.source, "messages": conversation, "n": sampling.n,
                "temperature": sampling.temperature, "top_p": sampling.top_p, "max_tokens": sampling.max_tokens,
                **({"stop": list(sampling.stop)} if sampling.stop else {}),
                **({"seed": sampling.seed} if sampling.seed is not None else {})}

    def _failure(self, err: openai.OpenAIError, target: Target) -> Generation | APIError:
        """A refusal for a request the endpoint found bad, else the router's error for the failure."""
        where = f"the OpenAI-compatible endpoint {self.base_url} ({target.ref}, model {target.source!r})"
        if isinstance(err, openai.APITimeoutError):
            return APIError(504, f"{where} did not answer in time", code="upstream_timeout", kind="server_error")
        if not isinstance(err, openai.APIStatusError):
            return APIError(502, f"{where} failed: {type(err).__name__}: {err}", code="upstream_error",
                            kind="server_error")
        if err.status_code in REFUSED:
            return Generation.refused(err.message)
        if err.status_code == 429:
            return APIError(429, f"{where} is rate limiting: {err.message}", code="rate_limit_exceeded",
                            kind="rate_limit_error")
        return APIError(502, f"{where} answered HTTP {err.status_code}: {err.message}", code="upstream_error",
                        kind="server_error")

    async def generate(self, conversation: list[dict], sampling: SamplingParams, target: Target) -> Generation:
        try:
            reply = await self._client.chat.completions.create(**self._request(conversation, sampling, target))
        except openai.OpenAIError as e:
            if isinstance(failure := self._failure(e, target), APIError):
                raise failure from None
            return failure
        choices = sorted(reply.choices, key=lambda c: c.index)
        usage = reply.usage
        return Generation(texts=[(c.message.content or "").strip() for c in choices],
                          finish_reasons=[c.finish_reason or "stop" for c in choices],
                          prompt_tokens=usage.prompt_tokens if usage else 0,
                          completion_tokens=[usage.completion_tokens if usage else 0])

    async def stream(self, conversation: list[dict], sampling: SamplingParams,
                     target: Target) -> AsyncIterator[Delta | Generation]:
        choices = StreamedChoices(sampling.n)
        try:
            chunks = await self._client.chat.completions.create(**self._request(conversation, sampling, target),
                                                                stream=True, stream_options={"include_usage": True})
            async for chunk in chunks:
                for delta in choices.add(chunk.model_dump()):
                    yield delta
        except openai.OpenAIError as e:
            if isinstance(failure := self._failure(e, target), APIError):
                raise failure from None
            yield failure
            return
        rest, done = choices.finish()
        for delta in rest:
            yield delta
        yield done
