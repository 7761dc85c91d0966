"""The LLM judge: the rubric asked of a model behind an OpenAI-compatible endpoint, for a whole dialogue or for
one tutor reply, as structured output (a JSON schema the server enforces); and `CombinedGrader`, which blends
it with the heuristic rubric and is only as confident as the two agree.

The judge fits each prompt to the served model's context, falls back to free-text JSON when a server refuses
`response_format`, and grades many items so that one failure is reported in place (`JudgeFailure`) instead of
discarding the rest.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import statistics
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from parallel_r1.config import OpenAIEndpointConfig
from parallel_r1.data import ScenarioCard, StudentProfileConfig
from parallel_r1.grade.grade import DialogueItem, Grade, clamp, weighted_score
from parallel_r1.grade.judge_prompt import (
    CHARS_PER_TOKEN,
    MESSAGE_OVERHEAD_TOKENS,
    MIN_TRANSCRIPT_CHARS,
    JudgePrompt,
    build_judge_messages,
    dialogue_prompt,
    judge_response_format,
    normalise_history,
    turn_prompt,
)
from parallel_r1.grade.judge_reply import JudgeError, parse_judge_reply, read_structured_reply
from parallel_r1.grade.rubric import HeuristicRubricGrader
from parallel_r1.llm_client import Completion, EndpointError, OpenAIChatClient, run_closing

log = logging.getLogger(__name__)

JUDGE_MAX_TOKENS = 512  # room for every criterion, the confidence and the notes
MIN_REPLY_TOKENS = 160
REPAIR_QUOTE_CHARS = 300  # how much of an unreadable reply is quoted back when asking again
CONTEXT_NUMBERS = (re.compile(r"maximum context length is (\d+)"), re.compile(r"context length \((\d+)\)"))
PROMPT_NUMBERS = (re.compile(r"prompt contains (?:at least )?(\d+) input tokens"),
                  re.compile(r"\((\d+) in the messages"), re.compile(r"Input length \((\d+)\)"))

__all__ = ["CombinedGrader", "JudgeError", "JudgeFailure", "LLMJudgeGrader", "build_judge_messages", "combine",
           "parse_judge_reply"]


@dataclass(frozen=True)
class JudgeFailure:
    """In place of a `Grade`: an item that could not be graded, with the error's type and message."""

    error: str
    error_type: str

    @classmethod
    def of(cls, err: BaseException) -> JudgeFailure:
        return cls(error=str(err) or type(err).__name__, error_type=type(err).__name__)


async def gather_grades(coros: list[Coroutine], return_failures: bool) -> list[Any]:
    """Await grading coroutines together; with `return_failures`, an item that raises becomes a `JudgeFailure`
    in its place, otherwise the first error propagates."""
    if not return_failures:
        return list(await asyncio.gather(*coros))

    async def isolated(coro: Coroutine) -> Grade | JudgeFailure:
        try:
            return await coro
        except Exception as e:  # one item's failure, of any kind, must not discard the others
            return JudgeFailure.of(e)

    return list(await asyncio.gather(*(isolated(c) for c in coros)))


def _first_int(patterns: tuple[re.Pattern, ...], text: str) -> int | None:
    for pattern in patterns:
        if m := pattern.search(text):
            return int(m.group(1))
    return None


class LLMJudgeGrader:
    """Asks an LLM judge (any OpenAI-compatible endpoint) to score the rubric's criteria as structured JSON.

    `counts` tallies how replies were read ("structured", "tolerant"), prompts trimmed or shrunk after a
    context-length refusal, and whether the endpoint refused `response_format` (then `structured` is False).
    """

    def __init__(self, endpoint_cfg: OpenAIEndpointConfig, *, max_attempts: int = 3, concurrency: int = 8):
        self.cfg = endpoint_cfg
        self.max_attempts = max_attempts
        self.concurrency = concurrency
        self.name = f"llm-judge:{endpoint_cfg.model}"
        self.structured = True
        self.context_tokens = endpoint_cfg.context_tokens
        self.chars_per_token = CHARS_PER_TOKEN
        self.counts: Counter[str] = Counter()
        self._context_known = endpoint_cfg.context_tokens is not None
        self._client: OpenAIChatClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gate = asyncio.Semaphore(concurrency)  # both replaced with the client in each new event loop
        self._lookup = asyncio.Lock()

    async def _ready(self) -> OpenAIChatClient:
        """The client of the running event loop (an async client lives in one), with the context looked up."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client, self._loop = OpenAIChatClient(self.cfg), loop
            self._gate, self._lookup = asyncio.Semaphore(self.concurrency), asyncio.Lock()
        async with self._lookup:
            if not self._context_known:
                self.context_tokens = await self._client.context_window()
                self._context_known = True
        return self._client

    def _max_tokens(self, prompt: JudgePrompt) -> int:
        """Reply tokens: enough for the JSON, at most a quarter of the context, less when the prompt's fixed
        part leaves less room (never below `MIN_REPLY_TOKENS`)."""
        wanted = max(self.cfg.max_tokens, JUDGE_MAX_TOKENS)
        if self.context_tokens is None:
            return wanted
        least_prompt = math.ceil((prompt.fixed_chars() + MIN_TRANSCRIPT_CHARS) / self.chars_per_token)
        spare = self.context_tokens - least_prompt - 2 * MESSAGE_OVERHEAD_TOKENS
        return max(MIN_REPLY_TOKENS, min(wanted, self.context_tokens // 4, spare))

    def _budget(self, prompt: JudgePrompt, max_tokens: int, extra: list[dict]) -> int | None:
        """Transcript characters that fit the context with the reply's tokens; None when the context is unknown."""
        if self.context_tokens is None:
            return None
        room = self.context_tokens - max_tokens - (2 + len(extra)) * MESSAGE_OVERHEAD_TOKENS
        used = prompt.fixed_chars() + sum(len(m["content"]) for m in extra)
        return max(MIN_TRANSCRIPT_CHARS, int(room * self.chars_per_token) - used)

    def _calibrate(self, messages: list[dict], prompt_tokens: int | None) -> None:
        """Lower the characters-per-token estimate when the server counted more tokens than it assumed."""
        if prompt_tokens:
            observed = sum(len(m["content"]) for m in messages) / prompt_tokens
            self.chars_per_token = max(0.5, min(self.chars_per_token, observed))

    def _shrunk(self, err: EndpointError, messages: list[dict], sent_chars: int) -> int:
        """A smaller transcript budget after the server refused the prompt as too long (learning the context
        length and the real prompt size from its message where it gives them)."""
        limit = _first_int(CONTEXT_NUMBERS, err.detail)
        if limit:
            self.context_tokens = min(self.context_tokens or limit, limit)
        self._calibrate(messages, _first_int(PROMPT_NUMBERS, err.detail))
        self.counts["shrunk"] += 1
        return max(MIN_TRANSCRIPT_CHARS, sent_chars // 2 if limit is None else int(sent_chars * 0.8))

    async def _complete(self, client: OpenAIChatClient, messages: list[dict], names: tuple[str, ...],
                        max_tokens: int) -> tuple[Completion, bool]:
        """The reply, and whether it was asked for with the JSON schema. A server that answers 400/422 to
        `response_format` is asked again without it; if that works, the judge stops sending it."""
        if not self.structured:
            return await client.complete_full(messages, temperature=0.0, max_tokens=max_tokens), False
        try:
            return await client.complete_full(messages, temperature=0.0, max_tokens=max_tokens,
                                              response_format=judge_response_format(names)), True
        except EndpointError as e:
            if e.context_length or e.status not in (400, 422):
                raise
            done = await client.complete_full(messages, temperature=0.0, max_tokens=max_tokens)
            if self.structured:
                self.structured = False
                self.counts["response_format_refused"] += 1
                log.warning("judge: the endpoint refused response_format (HTTP %d); asking without the JSON schema",
                            e.status)
            return done, False

    def _read(self, text: str, names: tuple[str, ...], structured: bool) -> tuple[dict[str, float], float | None, str]:
        if structured:
            try:
                parsed = read_structured_reply(text, names)
            except JudgeError:
                pass
            else:
                self.counts["structured"] += 1
                return parsed
        parsed = parse_judge_reply(text, names)
        self.counts["tolerant"] += 1
        return parsed

    async def _judge(self, prompt: JudgePrompt) -> Grade:
        """Ask, read, and ask again (up to `max_attempts` replies); shrink the prompt once if the server
        refuses it as too long."""
        client = await self._ready()
        async with self._gate:
            names = prompt.names
            cap: int | None = None  # the transcript budget after a context-length refusal
            repair: list[dict] = []
            replies, error, reply = 0, None, ""
            while replies < self.max_attempts:
                max_tokens = self._max_tokens(prompt)
                budget = self._budget(prompt, max_tokens, repair)
                if cap is not None:
                    budget = cap if budget is None else min(budget, cap)
                messages = prompt.messages(budget)[0] + repair
                sent = prompt.transcript_chars() if budget is None else min(budget, prompt.transcript_chars())
                try:
                    done, structured = await self._complete(client, messages, names, max_tokens)
                except EndpointError as e:
                    if not e.context_length or cap is not None:
                        raise
                    cap = self._shrunk(e, messages, sent)
                    continue
                replies += 1
                self._calibrate(messages, done.prompt_tokens)
                try:
                    criteria, confidence, notes = self._read(done.text, names, structured)
                except JudgeError as e:
                    error, reply = e, done.text
                    clamped = (done.finish_reason == "length" and self.context_tokens is not None
                               and (done.prompt_tokens or 0) + max_tokens > self.context_tokens)
                    if clamped:  # the server cut the reply to fit its context: the recalibrated, shorter prompt
                        continue
                    repair = [{"role": "assistant", "content": done.text[:REPAIR_QUOTE_CHARS]},
                              {"role": "user", "content": f"That reply could not be read ({e}). Reply with only "
                                                          "the JSON object described above, nothing else."}]
                    continue
                trimmed = budget is not None and prompt.transcript_chars() > budget
                if trimmed:
                    self.counts["trimmed"] += 1
                return self._grade(criteria, confidence, notes, names, trimmed)
        raise JudgeError(f"LLM judge {self.cfg.model!r} at {self.cfg.base_url} gave no valid JSON grade in "
                         f"{self.max_attempts} attempts: {error}; last reply: {reply[:200]!r}")

    def _grade(self, criteria: dict[str, float], confidence: float | None, notes: str, names: tuple[str, ...],
               trimmed: bool) -> Grade:
        if confidence is None:  # no self-report: as sure as its scores are decisive
            confidence = statistics.fmean(abs(2 * v - 1) for v in criteria.values())
        missing = [n for n in names if n not in criteria]
        remarks = ([notes] if notes else []) + ([f"judge skipped {missing}"] if missing else [])
        if trimmed:
            remarks.append("transcript trimmed to fit the judge's context")
        return Grade(score=weighted_score(criteria), confidence=clamp(confidence), criteria=criteria,
                     grader=self.name, notes=remarks)

    async def agrade_dialogue(self, messages: list[dict], profile: StudentProfileConfig | None = None,
                              scenario: ScenarioCard | None = None) -> Grade:
        """Grade the tutor's turns of a whole dialogue (chat `messages`)."""
        return await self._judge(dialogue_prompt(messages, profile, scenario))

    async def agrade_turn(self, history: list[dict], response: str, profile: StudentProfileConfig | None = None,
                          scenario: ScenarioCard | None = None) -> Grade:
        """Grade one tutor reply given the dialogue before it (roles user/assistant or student/teacher)."""
        return await self._judge(turn_prompt(history, response, profile, scenario))

    async def agrade_many(self, items: list[DialogueItem], *, return_failures: bool = False) -> list[Any]:
        """Grade dialogues concurrently (up to `concurrency` requests in flight); see `gather_grades`."""
        return await gather_grades([self.agrade_dialogue(*item) for item in items], return_failures)

    async def agrade_turns(self, pairs: list[tuple[list[dict], str]], profile: StudentProfileConfig | None = None,
                           scenario: ScenarioCard | None = None, *, return_failures: bool = True) -> list[Any]:
        """Grade (history, response) pairs concurrently; a reply that fails is a `JudgeFailure` in its place."""
        return await gather_grades([self.agrade_turn(h, r, profile, scenario) for h, r in pairs], return_failures)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = self._loop = None

    def run_sync(self, coro: Coroutine) -> Any:
        """Run a coroutine that uses this judge in a fresh event loop, then close the client.

        Inside a running event loop (where this would block it) it refuses: await the coroutine there.
        """
        return run_closing(coro, self.aclose, "agrade_dialogue / agrade_turn / agrade_dialogues")

    def grade_dialogue(self, messages: list[dict], profile: StudentProfileConfig | None = None,
                       scenario: ScenarioCard | None = None) -> Grade:
        """Sync wrapper of `agrade_dialogue` (not inside a running event loop)."""
        return self.run_sync(self.agrade_dialogue(messages, profile, scenario))

    def grade_turn(self, history: list[dict], response: str, profile: StudentProfileConfig | None = None,
                   scenario: ScenarioCard | None = None) -> Grade:
        """Sync wrapper of `agrade_turn` (not inside a running event loop)."""
        return self.run_sync(self.agrade_turn(history, response, profile, scenario))

    def grade_many(self, items: list[DialogueItem], *, return_failures: bool = False) -> list[Any]:
        """Grade many dialogues concurrently (up to `concurrency` requests in flight)."""
        return self.run_sync(self.agrade_many(items, return_failures=return_failures))

    def grade_turns(self, pairs: list[tuple[list[dict], str]], profile: StudentProfileConfig | None = None,
                    scenario: ScenarioCard | None = None) -> list[Grade | JudgeFailure]:
        """Grade many tutor replies concurrently; each item is a `Grade` or, where it failed, a `JudgeFailure`."""
        return self.run_sync(self.agrade_turns(pairs, profile, scenario))


def combine(heuristic: Grade, judge: Grade, llm_weight: float, name: str) -> Grade:
    """Blend two grades criterion by criterion; confidence falls as the two disagree."""
    shared = [k for k in heuristic.criteria if k in judge.criteria]
    criteria = {**judge.criteria, **heuristic.criteria}
    for k in shared:
        criteria[k] = (1 - llm_weight) * heuristic.criteria[k] + llm_weight * judge.criteria[k]
    gaps = [abs(heuristic.criteria[k] - judge.criteria[k]) for k in shared]
    disagreement = (statistics.fmean(gaps) if gaps else 0.5) / 2 + abs(heuristic.score - judge.score) / 2
    agreement = clamp(1 - disagreement / 0.35)
    base = (1 - llm_weight) * heuristic.confidence + llm_weight * judge.confidence
    return Grade(score=weighted_score(criteria), confidence=clamp(agreement * (0.5 + 0.5 * base)),
                 criteria=criteria, grader=name,
                 notes=[*heuristic.notes, *judge.notes, f"judge/rubric disagreement {disagreement:.2f}"])


class CombinedGrader:
    """The heuristic rubric and the LLM judge together, weighted by `llm_weight`."""

    def __init__(self, heuristic: HeuristicRubricGrader, judge: LLMJudgeGrader, llm_weight: float = 0.5):
        if not 0 <= llm_weight <= 1:
            raise ValueError(f"llm_weight must be in [0, 1], got {llm_weight}")
        self.heuristic, self.judge, self.llm_weight = heuristic, judge, llm_weight
        self.name = f"combined({heuristic.name}+{judge.name},w={llm_weight:g})"

    async def agrade_dialogue(self, messages: list[dict], profile: StudentProfileConfig | None = None,
                              scenario: ScenarioCard | None = None) -> Grade:
        judged = await self.judge.agrade_dialogue(messages, profile, scenario)
        return combine(self.heuristic.grade_dialogue(messages, profile, scenario), judged, self.llm_weight,
                       self.name)

    async def agrade_turn(self, history: list[dict], response: str, profile: StudentProfileConfig | None = None,
                          scenario: ScenarioCard | None = None) -> Grade:
        judged = await self.judge.agrade_turn(history, response, profile, scenario)
        rubric = self.heuristic.grade_turn(normalise_history(history), response, profile, scenario)
        return combine(rubric, judged, self.llm_weight, self.name)

    async def agrade_many(self, items: list[DialogueItem], *, return_failures: bool = False) -> list[Any]:
        return await gather_grades([self.agrade_dialogue(*item) for item in items], return_failures)

    async def agrade_turns(self, pairs: list[tuple[list[dict], str]], profile: StudentProfileConfig | None = None,
                           scenario: ScenarioCard | None = None, *, return_failures: bool = True) -> list[Any]:
        return await gather_grades([self.agrade_turn(h, r, profile, scenario) for h, r in pairs], return_failures)

    def grade_dialogue(self, messages: list[dict], profile: StudentProfileConfig | None = None,
                       scenario: ScenarioCard | None = None) -> Grade:
        """Sync wrapper of `agrade_dialogue` (not inside a running event loop)."""
        return self.judge.run_sync(self.agrade_dialogue(messages, profile, scenario))

    def grade_turn(self, history: list[dict], response: str, profile: StudentProfileConfig | None = None,
                   scenario: ScenarioCard | None = None) -> Grade:
        return self.judge.run_sync(self.agrade_turn(history, response, profile, scenario))

    def grade_many(self, items: list[DialogueItem], *, return_failures: bool = False) -> list[Any]:
        return self.judge.run_sync(self.agrade_many(items, return_failures=return_failures))

    def grade_turns(self, pairs: list[tuple[list[dict], str]], profile: StudentProfileConfig | None = None,
                    scenario: ScenarioCard | None = None) -> list[Grade | JudgeFailure]:
        """Grade many tutor replies; each item is a `Grade` or, where the judge failed, a `JudgeFailure`."""
        return self.judge.run_sync(self.agrade_turns(pairs, profile, scenario))

    async def aclose(self) -> None:
        await self.judge.aclose()
