"""The LLM reader: the student's traits asked of a model behind an OpenAI-compatible endpoint (the LLM judge's),
as JSON that a `response_format` schema asks for.

The reply is read tolerantly (code fences and prose around the object, flags nested under "traits" or given as a
list of names, "yes"/"true"/probabilities for booleans). A reply that still cannot be read is asked for once more,
then is a `ProfileReplyError` quoting it. A server that refuses `response_format` is asked again without it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from parallel_r1.config import OpenAIEndpointConfig
from parallel_r1.data.profiles import TRAITS, StudentProfileConfig
from parallel_r1.errors import UserFacingError
from parallel_r1.llm_client import EndpointError, OpenAIChatClient, json_object, run_closing
from parallel_r1.profiles.cues import Evidence
from parallel_r1.profiles.messages import Turn, trait_name

MAX_TOKENS = 400
TEACHER_CHARS = 400  # a teacher turn is shown up to this long, with its full length in words

DESCRIPTIONS = {
    "neurodivergent": "says they are autistic, ADHD, dyslexic or otherwise neurodivergent, or shows it: asks for "
                      "exact definitions and precise, literal wording, is thrown by vague words, idioms or "
                      "inconsistencies, gets overloaded, needs time to process",
    "bad_prior_teacher": "was hurt by a past teacher: apologises for asking, calls themself stupid or 'not a maths "
                         "person', mentions a teacher's contempt or being laughed at, is afraid of being wrong",
    "rejects_metaphor": "refuses analogies, metaphors or a particular picture or comparison ('stop with the pizza "
                        "slices', 'can we not do the train thing') and wants the literal mechanism",
    "executive_function_gap": "loses the order of steps, does not know where to begin or what to do first or next, "
                              "asks for a checklist or numbered steps, is overwhelmed by long explanations (a bare "
                              "'lost', '?' or 'ok' after one)",
    "hyperfocus_trait": "wants to stay on one topic or point, resists moving on, wants to dig ever deeper into one "
                        "detail, has spent hours on it",
}
SYSTEM_PROMPT = (
    "You read a student's learning profile from what they wrote to a tutor. Decide each trait below from the "
    "STUDENT's words only (the tutor's turns are context). Most students have none of them: a student who asks FOR "
    "an analogy, asks once for the first step of a calculation, or says sorry once in passing is a standard "
    "student. Mark a trait only when the student's words show it.\n\n"
    + "\n".join(f"- {t}: {d}" for t, d in DESCRIPTIONS.items())
    + '\n\nReply with only one JSON object: {"neurodivergent": true|false, "bad_prior_teacher": ..., '
      '"rejects_metaphor": ..., "executive_function_gap": ..., "hyperfocus_trait": ..., "evidence": '
      '[{"trait": "<trait>", "quote": "<the student\'s words that show it>"}]}'
)


class ProfileReplyError(UserFacingError, ValueError):
    """The LLM's reply could not be read as the student's traits."""


def response_format() -> dict:
    """The JSON schema the reply must follow (OpenAI structured outputs; vLLM's guided decoding)."""
    evidence = {"type": "array", "items": {
        "type": "object", "additionalProperties": False, "required": ["trait", "quote"],
        "properties": {"trait": {"type": "string", "enum": list(TRAITS)}, "quote": {"type": "string"}}}}
    schema = {"type": "object", "additionalProperties": False, "required": [*TRAITS, "evidence"],
              "properties": {**{t: {"type": "boolean"} for t in TRAITS}, "evidence": evidence}}
    return {"type": "json_schema", "json_schema": {"name": "student_traits", "strict": True, "schema": schema}}


def build_messages(turns: Sequence[Turn]) -> list[dict]:
    """The request: the instructions, then the conversation with each student message numbered."""
    lines = []
    for t in turns:
        if t.role == "student":
            lines.append(f"STUDENT (message {t.index}): {t.content.strip()}")
        elif t.role == "teacher":
            text = t.content.strip()
            shown = text if len(text) <= TEACHER_CHARS else text[:TEACHER_CHARS].rstrip() + " [...]"
            lines.append(f"TUTOR ({t.words} words): {shown}")
    user = "Conversation:\n\n" + "\n\n".join(lines) + "\n\nWhich traits does the student show? JSON only."
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value >= 0.5
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "y", "1", "present"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "no", "n", "0", "absent", "none", ""):
        return False
    if value is None:
        return False
    raise ValueError(f"trait {name!r} is not a yes/no value: {value!r}")


def parse_reply(text: str) -> tuple[StudentProfileConfig, list[tuple[str, str]]]:
    """(profile, [(trait, quote)]) from the LLM's reply; ValueError when it holds no trait judgement."""
    obj = json_object(text)
    raw = obj.get("traits", obj.get("profile", obj))
    flags: dict[str, bool] = {}
    if isinstance(raw, list):  # a list of the traits present
        flags = {trait_name(t): True for t in raw if str(t).strip().lower() not in ("standard", "none")}
    elif isinstance(raw, dict):
        for key, value in raw.items():
            try:
                name = trait_name(key)
            except ValueError:
                continue
            flags[name] = _flag(value, key)
        if not flags:
            raise ValueError(f"no trait in the reply's object (keys: {sorted(raw)[:8]})")
    else:
        raise ValueError('"traits" is neither an object of flags nor a list of names')
    quotes = []
    for item in obj.get("evidence") or []:
        if isinstance(item, dict) and item.get("quote"):
            try:
                quotes.append((trait_name(item.get("trait", "")), str(item["quote"])))
            except ValueError:
                continue
    return StudentProfileConfig(**flags), quotes


@dataclass(frozen=True)
class LLMReading:
    profile: StudentProfileConfig
    scores: dict[str, float]
    evidence: list[Evidence]


def _message_of(quote: str, turns: Sequence[Turn]) -> int:
    """The index of the student message a quote comes from (-1 when none holds it)."""
    needle = quote.strip().strip("'\"").lower()[:60]
    for t in turns:
        if t.role == "student" and needle and needle in t.content.lower():
            return t.index
    return -1


class LLMProfileReader:
    """Asks the endpoint for a student's traits. The async client lives in one event loop: the first `aread`
    creates it there; `read` runs one reading in a fresh loop (not inside a running one)."""

    def __init__(self, endpoint: OpenAIEndpointConfig, *, max_attempts: int = 2):
        self.endpoint = endpoint
        self.max_attempts = max_attempts
        self._client: OpenAIChatClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._structured = True  # cleared when the server refuses response_format

    def _chat(self) -> OpenAIChatClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client, self._loop = OpenAIChatClient(self.endpoint), loop
        return self._client

    async def _complete(self, request: list[dict]) -> str:
        if self._structured:
            try:
                return await self._chat().complete(request, temperature=0.0, max_tokens=MAX_TOKENS,
                                                   response_format=response_format())
            except EndpointError as e:
                if getattr(e, "status", None) not in (400, 422) or "response_format" not in str(e):
                    raise
                self._structured = False
        return await self._chat().complete(request, temperature=0.0, max_tokens=MAX_TOKENS)

    async def aread(self, turns: Sequence[Turn]) -> LLMReading:
        request = build_messages(turns)
        reply, error = "", None
        for _ in range(self.max_attempts):
            reply = await self._complete(request)
            try:
                profile, quotes = parse_reply(reply)
            except ValueError as e:
                error = e
                request = request + [
                    {"role": "assistant", "content": reply},
                    {"role": "user", "content": f"That reply could not be read ({e}). Reply with only the JSON "
                                                "object described above."}]
                continue
            evidence = [Evidence(t, "llm", q[:120], _message_of(q, turns), 1.0) for t, q in quotes]
            return LLMReading(profile, {t: float(getattr(profile, t)) for t in TRAITS}, evidence)
        raise ProfileReplyError(f"the profile LLM {self.endpoint.model!r} at {self.endpoint.base_url} gave no "
                                f"readable trait JSON in {self.max_attempts} attempts ({error}); last reply: "
                                f"{reply[:200]!r}")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = self._loop = None

    def run_sync(self, coro: Coroutine) -> Any:
        """Run a coroutine using this reader in a fresh event loop, then close the client."""
        return run_closing(coro, self.aclose, "aread_profile")

    def read(self, turns: Sequence[Turn]) -> LLMReading:
        return self.run_sync(self.aread(turns))
