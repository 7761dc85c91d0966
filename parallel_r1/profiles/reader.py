"""One entry point for reading a student's profile from their messages, whichever reader does it.

`read_profile(messages, method)` gives a `ProfileReading`: the profile, a score per trait (summed cue weights for
"cues", probabilities for "embedding", 0/1 for "llm"), the evidence (which cue fired in which message, and the
phrase), and the specialist `ServeConfig.static_routes` picks for the profile's kind. `messages` is the student's
messages as strings, or chat messages with roles (then a short reply is read against the teacher turn before it).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from parallel_r1.config import OpenAIEndpointConfig, ServeConfig
from parallel_r1.data.profiles import TRAITS, StudentProfileConfig
from parallel_r1.profiles.cues import Evidence, read_cues
from parallel_r1.profiles.messages import Turn, to_turns

METHODS = ("cues", "embedding", "llm")
LLM_CONCURRENCY = 8
_LOCK = threading.Lock()
_EMBEDDING_READER = None


@dataclass(frozen=True)
class ProfileReading:
    """What a reader made of a conversation."""

    profile: StudentProfileConfig
    scores: dict[str, float]
    evidence: list[Evidence] = field(default_factory=list)
    specialist: str = ""
    method: str = "embedding"

    @property
    def kind(self) -> str:
        return self.profile.kind

    @property
    def traits(self) -> list[str]:
        return self.profile.traits

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "kind": self.kind, "traits": self.traits, "specialist": self.specialist,
                "scores": dict(self.scores), "evidence": [e.to_dict() for e in self.evidence]}


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown profile reader method {method!r}; choose one of {', '.join(METHODS)}")
    return method


def embedding_reader():
    """The process-wide embedding reader (the classifier and the MiniLM encoder load once per process)."""
    global _EMBEDDING_READER
    with _LOCK:
        if _EMBEDDING_READER is None:
            from parallel_r1.profiles.embedding import EmbeddingReader

            _EMBEDDING_READER = EmbeddingReader()
        return _EMBEDDING_READER


def _reading(result: Any, method: str, routes: dict[str, str] | None) -> ProfileReading:
    routes = routes if routes is not None else ServeConfig().static_routes
    return ProfileReading(result.profile, dict(result.scores), list(result.evidence),
                          routes.get(result.profile.kind, ""), method)


def _local(turns: list[Turn], method: str) -> Any:
    return read_cues(turns) if method == "cues" else embedding_reader().read(turns)


def _llm_reader(endpoint: OpenAIEndpointConfig | None):
    from parallel_r1.profiles.llm import LLMProfileReader

    if endpoint is None:
        raise ValueError("the 'llm' profile reader needs an endpoint (an OpenAIEndpointConfig, e.g. grade.judge)")
    return LLMProfileReader(endpoint)


def read_profile(messages: str | Sequence[Any], method: str = "embedding",
                 endpoint: OpenAIEndpointConfig | None = None,
                 routes: dict[str, str] | None = None) -> ProfileReading:
    """The profile read from `messages` by `method` ("cues" | "embedding" | "llm"; llm asks `endpoint`).
    `routes`: profile kind -> specialist (default: `ServeConfig().static_routes`)."""
    check_method(method)
    turns = to_turns(messages)
    if method == "llm":
        return _reading(_llm_reader(endpoint).read(turns), method, routes)
    return _reading(_local(turns, method), method, routes)


async def aread_profile(messages: str | Sequence[Any], method: str = "embedding",
                        endpoint: OpenAIEndpointConfig | None = None, routes: dict[str, str] | None = None,
                        llm_reader: Any = None) -> ProfileReading:
    """`read_profile` for an event loop: the local readers run in a worker thread; "llm" awaits `llm_reader` (an
    `LLMProfileReader` kept by the caller, e.g. one per Serve replica) or a new one for `endpoint`."""
    check_method(method)
    turns = to_turns(messages)
    if method != "llm":
        return _reading(await asyncio.to_thread(_local, turns, method), method, routes)
    if llm_reader is not None:
        return _reading(await llm_reader.aread(turns), method, routes)
    reader = _llm_reader(endpoint)
    try:
        return _reading(await reader.aread(turns), method, routes)
    finally:
        await reader.aclose()


def read_profiles(conversations: Sequence[str | Sequence[Any]], method: str = "embedding",
                  endpoint: OpenAIEndpointConfig | None = None,
                  routes: dict[str, str] | None = None) -> list[ProfileReading]:
    """Many readings at once (an evaluation): the LLM reader asks up to `LLM_CONCURRENCY` at a time."""
    check_method(method)
    if method != "llm":
        return [read_profile(c, method, routes=routes) for c in conversations]
    reader = _llm_reader(endpoint)
    gate = asyncio.Semaphore(LLM_CONCURRENCY)

    async def one(conversation) -> ProfileReading:
        async with gate:
            return _reading(await reader.aread(to_turns(conversation)), method, routes)

    async def every() -> list[ProfileReading]:
        return list(await asyncio.gather(*(one(c) for c in conversations)))

    return reader.run_sync(every())


def infer_profile(messages: str | Sequence[Any], method: str = "embedding",
                  endpoint: OpenAIEndpointConfig | None = None) -> StudentProfileConfig:
    """The student's profile (trait flags) read from their messages."""
    return read_profile(messages, method, endpoint).profile


def format_reading(reading: ProfileReading, messages: str | Sequence[Any] | None = None):
    """A rich renderable for `parallel-r1 profile`: the traits read, the specialist, each trait's score, the student's
    messages by number (when `messages` is given) and the evidence (cue or classifier, phrase, message number,
    weight or probability)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    head = Text.assemble(("traits: ", "bold"), ", ".join(reading.traits) or "none (standard student)",
                         ("   kind: ", "bold"), reading.kind, ("   specialist: ", "bold"), reading.specialist or "-",
                         ("   reader: ", "bold"), reading.method)
    parts: list[Any] = [head]
    if messages is not None:
        said = Table(title="student messages", title_justify="left", show_header=False)
        said.add_column("#", justify="right")
        said.add_column("message", overflow="fold")
        for t in to_turns(messages):
            if t.role == "student":
                said.add_row(str(t.index), t.content.strip())
        parts.append(said)
    scores = Table(title="score per trait", title_justify="left")
    scores.add_column("trait")
    scores.add_column("score", justify="right")
    scores.add_column("set", justify="center")
    for t in TRAITS:
        scores.add_row(t, f"{reading.scores.get(t, 0.0):.2f}", "yes" if getattr(reading.profile, t) else "")
    parts.append(scores)
    if reading.evidence:
        evidence = Table(title="evidence", title_justify="left")
        for col in ("trait", "cue", "phrase", "message", "weight"):
            evidence.add_column(col, justify="right" if col in ("message", "weight") else "left", overflow="fold")
        for e in reading.evidence:
            evidence.add_row(e.trait, e.cue, e.phrase, str(e.message), f"{e.weight:+.2f}")
        parts.append(evidence)
    return Group(*parts)
