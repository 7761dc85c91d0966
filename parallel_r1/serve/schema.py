"""The OpenAI-compatible request and response shapes of the router, and OpenAI-style errors.

Requests are validated here, before any model is called: every problem a client can cause becomes an
`APIError` with a 4xx status and a message that names the field, never a 5xx.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from parallel_r1.config import ServeConfig
from parallel_r1.data.profiles import StudentProfileConfig
from parallel_r1.inference.engine import SamplingParams
from parallel_r1.inference.policy import ParallelExecutionPolicy

SPECIALIST_HEADER = "x-parallel-r1-specialist"
VERSION_HEADER = "x-parallel-r1-version"  # the registry version that answered (name@vN, or base)
PROFILE_KEY = "student_profile"
MAX_STOP = 4  # stop strings per request, as OpenAI allows


class APIError(Exception):
    """An error returned to the client as `{"error": {...}}` with an HTTP status (always 4xx for bad input)."""

    def __init__(self, status: int, message: str, *, param: str | None = None,
                 code: str | None = None, kind: str = "invalid_request_error", headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind
        self.headers = headers

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


class ChatMessage(BaseModel):
    """One chat message; content is a string or a list of text parts (other part types are rejected)."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str

    @field_validator("content", mode="before")
    @classmethod
    def _text_parts(cls, content: Any) -> Any:
        if not isinstance(content, list):
            return content
        if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                   for p in content):
            raise ValueError("only text content parts ({\"type\": \"text\", \"text\": ...}) are supported")
        return "".join(p["text"] for p in content)


class StreamOptions(BaseModel):
    """OpenAI's `stream_options`: `include_usage` adds a last chunk with the token counts."""

    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatRequest(BaseModel):
    """The fields of an OpenAI chat completion request the router uses; other OpenAI fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    seed: int | None = Field(None, ge=-2 ** 63, le=2 ** 63 - 1)
    stop: list[str] = Field(default_factory=list, max_length=MAX_STOP)  # a string, or up to MAX_STOP of them
    metadata: dict[str, Any] | None = None
    student_profile: StudentProfileConfig | None = None
    # a model answering in the Parallel-R1 format: what the student sees (summaries), or the whole reply with its paths
    parallel_view: Literal["student", "raw"] = "student"

    @field_validator("messages")
    @classmethod
    def _ends_with_user(cls, messages: list[ChatMessage]) -> list[ChatMessage]:
        if messages[-1].role != "user":
            raise ValueError(f"the last message must have role 'user' (the student), got {messages[-1].role!r}")
        if not any(m.role == "user" and m.content.strip() for m in messages):
            raise ValueError("at least one user message must have non-empty content")
        return messages

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_list(cls, stop: Any) -> Any:
        return [stop] if isinstance(stop, str) else [] if stop is None else stop

    @field_validator("stop")
    @classmethod
    def _stop_strings(cls, stop: list[str]) -> list[str]:
        if not all(stop):
            raise ValueError("stop strings must not be empty")
        return stop

    def conversation(self) -> list[dict]:
        """The messages as plain `{role, content}` dicts ('developer' is OpenAI's newer name for 'system')."""
        return [{"role": "system" if m.role == "developer" else m.role, "content": m.content} for m in self.messages]


def _profile_from_metadata(metadata: dict[str, Any] | None) -> StudentProfileConfig | None:
    """`metadata.student_profile`: an object of trait flags, or that object as a JSON string (OpenAI's metadata
    values are strings)."""
    raw = (metadata or {}).get(PROFILE_KEY)
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise APIError(400, "metadata.student_profile must be a JSON object of trait flags",
                           param="metadata.student_profile") from None
    try:
        return StudentProfileConfig.model_validate(raw)
    except ValidationError as e:
        raise _as_api_error(e, prefix="metadata.student_profile") from None


def requested_profile(request: ChatRequest) -> tuple[StudentProfileConfig | None, str | None]:
    """The profile the client sent and where ("body" or "metadata"), or (None, None)."""
    if request.student_profile is not None:
        return request.student_profile, "body"
    profile = _profile_from_metadata(request.metadata)
    return (profile, "metadata") if profile is not None else (None, None)


def _as_api_error(err: ValidationError, prefix: str = "") -> APIError:
    first = err.errors()[0]
    loc = ".".join(p for p in (prefix, ".".join(str(p) for p in first["loc"])) if p)
    if first["type"] == "extra_forbidden":
        return APIError(400, f"{loc}: unknown field", param=loc, code="unknown_field")
    msg = first["msg"].removeprefix("Value error, ")
    return APIError(400, f"{loc or 'body'}: {msg}", param=loc or None, code="invalid_value")


# OpenAI request fields this server does not implement: refused by name rather than silently ignored
UNSUPPORTED = ("tools", "tool_choice", "functions", "function_call", "response_format", "logprobs", "top_logprobs",
               "logit_bias", "audio", "modalities", "prediction")


def _no_constants(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _chars(content) -> int:
    """Characters of a message's content: a string, or the text of its parts."""
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(len(p["text"]) for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return 0


def _limits(data: dict, cfg: ServeConfig) -> None:
    """Refuse unsupported fields and oversized conversations before any validation or model work."""
    for name in UNSUPPORTED:
        if data.get(name) not in (None, False, [], {}):
            raise APIError(400, f"{name}: not supported by this server", param=name, code="unsupported_parameter")
    messages = data.get("messages")
    if isinstance(messages, list):
        if len(messages) > cfg.max_messages:
            raise APIError(400, f"messages: {len(messages)} messages, above this server's limit of "
                                f"{cfg.max_messages}", param="messages", code="invalid_value")
        for i, m in enumerate(messages):
            size = _chars(m.get("content") if isinstance(m, dict) else None)
            if size > cfg.max_message_chars:
                raise APIError(400, f"messages.{i}.content: {size} characters, above this server's limit of "
                                    f"{cfg.max_message_chars}", param=f"messages.{i}.content", code="invalid_value")


def parse_request(raw: bytes, cfg: ServeConfig) -> ChatRequest:
    """The validated request, or an APIError that names the first problem."""
    if len(raw or b"") > cfg.max_body_bytes:
        raise APIError(413, f"the request body is {len(raw)} bytes, above this server's limit of "
                            f"{cfg.max_body_bytes}", code="request_too_large")
    try:
        data = json.loads(raw or b"", parse_constant=_no_constants)
    except RecursionError:
        raise APIError(400, "the request body is not valid JSON: nested too deeply", code="invalid_json") from None
    except ValueError as e:  # malformed, not UTF-8, NaN/Infinity, or an integer of thousands of digits
        raise APIError(400, f"the request body is not valid JSON: {e}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise APIError(400, "the request body must be a JSON object", code="invalid_json")
    _limits(data, cfg)
    try:
        request = ChatRequest.model_validate(data)
    except ValidationError as e:
        raise _as_api_error(e) from None
    requested_profile(request)  # a bad profile in metadata is a bad request too
    if request.n > cfg.max_n:
        raise APIError(400, f"n: {request.n} is above this server's limit of {cfg.max_n}", param="n",
                       code="invalid_value")
    wanted = request.max_completion_tokens or request.max_tokens
    if wanted is not None and wanted > cfg.max_tokens_limit:
        field = "max_completion_tokens" if request.max_completion_tokens else "max_tokens"
        raise APIError(400, f"{field}: {wanted} is above this server's limit of {cfg.max_tokens_limit}",
                       param=field, code="invalid_value")
    return request


def request_sampling(request: ChatRequest, policy: ParallelExecutionPolicy) -> SamplingParams:
    """The request's sampling; what it leaves unset (temperature, top_p, max tokens) comes from the policy."""
    return SamplingParams(
        n=request.n, seed=request.seed,
        temperature=policy.temperature if request.temperature is None else request.temperature,
        top_p=policy.top_p if request.top_p is None else request.top_p,
        max_tokens=request.max_completion_tokens or request.max_tokens or policy.max_tokens, stop=tuple(request.stop))


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def _usage(prompt_tokens: int, completion_tokens: list[int]) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": sum(completion_tokens),
            "total_tokens": prompt_tokens + sum(completion_tokens)}


def completion_body(cid: str, model: str, texts: list[str], finish_reasons: list[str], prompt_tokens: int,
                    completion_tokens: list[int], extra: dict) -> dict:
    """A non-streaming `chat.completion` object, with the router's own fields (`specialist`, ...) added."""
    return {
        "id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": reason,
                     "logprobs": None} for i, (text, reason) in enumerate(zip(texts, finish_reasons, strict=True))],
        "usage": _usage(prompt_tokens, completion_tokens),
        **extra,
    }


def chunk_body(cid: str, model: str, index: int, delta: dict, finish_reason: str | None, extra: dict) -> dict:
    """One `chat.completion.chunk` of a streamed reply."""
    return {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason, "logprobs": None}], **extra}


def usage_body(cid: str, model: str, prompt_tokens: int, completion_tokens: list[int], extra: dict) -> dict:
    """The last chunk of a stream with `stream_options.include_usage`: no choices, the token counts."""
    return {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [], "usage": _usage(prompt_tokens, completion_tokens), **extra}


def with_system_prompt(conversation: list[dict], prompt: str) -> list[dict]:
    """The conversation with `prompt` as its system message, unless it has one already (the client's wins)."""
    if not prompt or any(m["role"] == "system" for m in conversation):
        return conversation
    return [{"role": "system", "content": prompt}, *conversation]


def with_instruction(conversation: list[dict], instruction: str) -> list[dict]:
    """The conversation with `instruction` appended to its first system message (one is added when it has none)."""
    first = next((i for i, m in enumerate(conversation) if m["role"] == "system"), None)
    if first is None:
        return [{"role": "system", "content": instruction}, *conversation]
    merged = {**conversation[first], "content": f"{conversation[first]['content']}\n\n{instruction}".strip()}
    return [*conversation[:first], merged, *conversation[first + 1:]]
