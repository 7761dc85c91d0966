"""A real local HTTP server that speaks the OpenAI chat-completions API, with injectable faults.

Tests and benchmarks point the real `openai` client at `FakeOpenAIServer(...).base_url` to exercise
timeouts, retries and concurrency without a network or a model. FastAPI + uvicorn run in a daemon
thread on 127.0.0.1; handlers are async, so hundreds of requests are served at once.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from tests.fakes.threaded_server import ThreadedServer

INJECTED_STATUSES = (500, 502, 503, 429)


class FakeHTTPError(Exception):
    """Raised by a responder: the server answers with this status and an OpenAI-style error body."""

    def __init__(self, status: int, message: str = "", headers: dict[str, str] | None = None):
        super().__init__(message or f"fake error {status}")
        self.status = status
        self.message = message or f"fake error {status}"
        self.headers = headers or {}


class FakeTimeout(Exception):  # noqa: N818 - it names the behaviour, like FakeHTTPError
    """Raised by a responder: the server hangs like an injected timeout."""


def echo_responder(request: dict) -> str:
    """A short tutoring-chat reply that echoes a few words of the last user message."""
    last = next((m.get("content") or "" for m in reversed(request.get("messages", []))
                 if m.get("role") == "user"), "")
    words = str(last).split()[:6]
    snippet = " ".join(words).rstrip(".,?!") if words else "that"
    return f"You said \"{snippet}\" - which part of that feels least clear to you?"


def read_echo_responder(request: dict) -> str:
    """`echo_responder`'s reply with the size of the request it read: the same request gets the same reply, and the
    turns of a dialogue never repeat each other word for word (discovery refuses a turn that repeats the last one)."""
    read = sum(len(str(m.get("content") or "")) for m in request.get("messages", []))
    return f"{echo_responder(request)} ({read} characters read)"


def _tokens(text: str) -> int:
    return len(text.split())


def _sse(body: dict, content: str, finish: str, prompt: int):
    """The SSE events of a streamed reply: a role chunk, a chunk per word, the finish reason, usage, [DONE]."""
    cid, created = f"chatcmpl-{uuid.uuid4().hex[:12]}", int(time.time())

    def chunk(delta: dict, finish_reason: str | None = None, **extra) -> str:
        choices = [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]
        event = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": body["model"],
                 "choices": choices, **extra}
        return f"data: {json.dumps(event)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    for i, word in enumerate(content.split(" ")):
        yield chunk({"content": word if i == 0 else f" {word}"})
    yield chunk({}, finish)
    if (body.get("stream_options") or {}).get("include_usage"):
        usage = {"prompt_tokens": prompt, "completion_tokens": _tokens(content),
                 "total_tokens": prompt + _tokens(content)}
        event = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": body["model"],
                 "choices": [], "usage": usage}
        yield f"data: {json.dumps(event)}\n\n"
    yield "data: [DONE]\n\n"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    kind = {429: "rate_limit_error", 400: "invalid_request_error"}.get(status, "server_error")
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}},
                        status_code=status, headers=headers)


class FakeOpenAIServer(ThreadedServer):
    """`POST /v1/chat/completions` and `GET /v1/models` on 127.0.0.1, as a context manager.

    responder(request_json) -> str (or an awaitable of it) writes each reply (default: `read_echo_responder`); it
    may raise `FakeHTTPError` or `FakeTimeout`. Faults are drawn per call from a `seed`ed RNG before the
    responder runs: with probability `failure_rate` a call fails; the failure is a random 500/502/503/429
    or, when `timeout_rate` is None, equally often a hang. A float `timeout_rate` is instead the
    separate probability of a hang, and `failure_rate` then covers status errors only. A hang lasts
    until the client gives up (disconnects), the server stops, or `hang_s` passes (then it answers 504).
    `latency_s` is slept before every answer. Counters: `n_requests` (chat calls received), `n_ok`,
    `n_failures` (error statuses answered), `n_timeouts` (hangs), `injected` (the drawn faults by kind: "500",
    "429", "hang"...); `requests` holds every chat request body in arrival order (with its `response_format`, when
    the client sent one), `authorizations` the Authorization header of each.

    Like a vLLM server: `max_model_len` is listed on each `/v1/models` entry, and with `context_tokens` a
    request whose prompt (counted by `count_tokens`, default: whitespace words) plus `max_tokens` does not fit
    is refused with a 400 worded as vLLM (prompt alone too long) or OpenAI (with the completion) words it.
    Like an older server: `reject_response_format` answers 400 to any request that carries `response_format`.
    Like a real one, with `honour_max_tokens` a reply longer than the request's `max_tokens` (counted by
    `count_tokens`) is cut to that many words with finish_reason "length". `model_id` is the listed model.
    A request with `stream: true` is answered as OpenAI SSE chunks, a word each (usage last with
    `stream_options.include_usage`); faults and refusals still come as an error status before any chunk.
    """

    def __init__(self, responder: Callable[[dict], object] | None = None, failure_rate: float = 0.0,
                 latency_s: float = 0.0, timeout_rate: float | None = None, seed: int = 0, port: int = 0,
                 *, hang_s: float = 60.0, max_model_len: int | None = None, context_tokens: int | None = None,
                 count_tokens: Callable[[str], int] | None = None, reject_response_format: bool = False,
                 honour_max_tokens: bool = False, model_id: str = "fake-model"):
        if not 0 <= failure_rate <= 1 or not (timeout_rate is None or 0 <= timeout_rate <= 1):
            raise ValueError("failure_rate and timeout_rate must be in [0, 1]")
        self.responder = responder or read_echo_responder
        self.failure_rate = failure_rate
        self.timeout_rate = timeout_rate
        self.latency_s = latency_s
        self.hang_s = hang_s
        self.port = port
        self.max_model_len = max_model_len
        self.context_tokens = context_tokens
        self.count_tokens = count_tokens or _tokens
        self.reject_response_format = reject_response_format
        self.honour_max_tokens = honour_max_tokens
        self.model_id = model_id
        self.n_rejected = 0  # requests refused for their response_format or their length
        self._rng = random.Random(seed)
        self.requests: list[dict] = []
        self.authorizations: list[str | None] = []
        self.n_requests = self.n_ok = self.n_failures = self.n_timeouts = 0
        self.injected: Counter[str] = Counter()

    def _draw_fault(self) -> int | str | None:
        """None (answer), an HTTP status, or "hang"."""
        rng = self._rng
        if self.timeout_rate is None:
            if rng.random() < self.failure_rate:
                return rng.choice((*INJECTED_STATUSES, "hang"))
            return None
        if rng.random() < self.timeout_rate:
            return "hang"
        return rng.choice(INJECTED_STATUSES) if rng.random() < self.failure_rate else None

    def _prompt_tokens(self, body: dict) -> int:
        return sum(self.count_tokens(str(m.get("content") or "")) for m in body["messages"])

    def _refusal(self, body: dict) -> str | None:
        """The 400 message for a request this server refuses before answering, else None."""
        if self.reject_response_format and "response_format" in body:
            return "Unrecognized request argument supplied: response_format"
        if self.context_tokens is None:
            return None
        prompt, completion = self._prompt_tokens(body), int(body.get("max_tokens") or 0)
        if prompt > self.context_tokens:
            return (f"This model's maximum context length is {self.context_tokens} tokens. However, your prompt "
                    f"contains {prompt} input tokens, which exceeds this limit even without any output tokens. "
                    "Please reduce the length of the input prompt.")
        if prompt + completion > self.context_tokens:
            return (f"This model's maximum context length is {self.context_tokens} tokens. However, you requested "
                    f"{prompt + completion} tokens ({prompt} in the messages, {completion} in the completion). "
                    "Please reduce the length of the messages or completion.")
        return None

    def _cut(self, body: dict, content: str) -> tuple[str, str]:
        """The reply and its finish reason: cut to `max_tokens` words when `honour_max_tokens` says so."""
        limit = body.get("max_tokens")
        if self.honour_max_tokens and limit and self.count_tokens(content) > limit:
            return " ".join(content.split()[:limit]), "length"
        return content, "stop"

    async def _hang(self, request: Request) -> None:
        """Wait until the client disconnects, the server stops, or `hang_s` passes."""
        deadline = time.monotonic() + self.hang_s
        while time.monotonic() < deadline and not self._stopping:
            if await request.is_disconnected():
                return
            await asyncio.sleep(0.02)

    def _app(self) -> FastAPI:
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

        @app.get("/v1/models")
        async def models() -> dict:
            entry = {"id": self.model_id, "object": "model", "created": 0, "owned_by": "fake"}
            if self.max_model_len is not None:
                entry["max_model_len"] = self.max_model_len
            return {"object": "list", "data": [entry]}

        @app.post("/v1/chat/completions")
        async def chat(request: Request):
            self.n_requests += 1
            try:
                body = await request.json()
            except ValueError:
                self.n_failures += 1
                return _error(400, "request body is not JSON")
            self.requests.append(body)
            self.authorizations.append(request.headers.get("authorization"))
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or "model" not in body:
                self.n_failures += 1
                return _error(400, "'model' and a list of 'messages' are required")
            refusal = self._refusal(body)
            if refusal is not None:
                self.n_failures += 1
                self.n_rejected += 1
                return _error(400, refusal)
            fault = self._draw_fault()
            if fault is not None:
                self.injected[str(fault)] += 1
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            try:
                if fault == "hang":
                    raise FakeTimeout
                if fault is not None:
                    raise FakeHTTPError(fault, f"injected failure {fault}")
                content = self.responder(body)
                if inspect.isawaitable(content):
                    content = await content
            except FakeTimeout:
                self.n_timeouts += 1
                await self._hang(request)
                return _error(504, f"no answer within {self.hang_s} s")
            except FakeHTTPError as e:
                self.n_failures += 1
                return _error(e.status, e.message, e.headers)
            self.n_ok += 1
            content, finish = self._cut(body, str(content))
            prompt = self._prompt_tokens(body)
            if body.get("stream"):
                return StreamingResponse(_sse(body, content, finish, prompt), media_type="text/event-stream")
            return {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion",
                "created": int(time.time()), "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": finish, "logprobs": None}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": _tokens(str(content)),
                          "total_tokens": prompt + _tokens(str(content))},
            }

        return app
