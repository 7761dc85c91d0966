"""The LLM judge: the same rubric asked of a model behind an OpenAI-compatible endpoint, parsed robustly
into a `Grade`; and `CombinedGrader`, which blends it with the heuristic rubric and is only as
confident as the two agree.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
from collections.abc import Coroutine
from typing import Any

from parallel_r1.config import OpenAIEndpointConfig
from parallel_r1.data import ScenarioCard, StudentProfileConfig
from parallel_r1.grading.grade import (
    DESCRIPTIONS,
    DialogueItem,
    Grade,
    applicable_criteria,
    clamp,
    effective_profile,
    weighted_score,
)
from parallel_r1.grading.rubric import HeuristicRubricGrader
from parallel_r1.llm_client import OpenAIChatClient


class JudgeError(ValueError):
    """The judge's reply could not be read as a grade, even after asking again."""


SYSTEM_PROMPT = """You are an expert teacher-trainer. You grade how well a TUTOR teaches a STUDENT in a \
dialogue. Judge pedagogy, not politeness: a good tutor guides the student to work things out, does not \
give away the answer, checks understanding, leaves a clear next step, adapts to this particular student, \
and avoids stock phrases.

Score each criterion below from 0.0 (fails completely) to 1.0 (excellent):
{criteria}

Reply with only one JSON object, no other text:
{{"criteria": {{{example}}}, "confidence": <0.0-1.0, how sure you are>, "notes": "<one sentence>"}}"""


def build_judge_messages(messages: list[dict], profile: StudentProfileConfig | None,
                         scenario: ScenarioCard | None) -> list[dict]:
    """The chat request that asks the judge to grade one dialogue."""
    names = applicable_criteria(profile, scenario)
    system = SYSTEM_PROMPT.format(
        criteria="\n".join(f"- {n}: {DESCRIPTIONS[n]}" for n in names),
        example=", ".join(f'"{n}": <0.0-1.0>' for n in names),
    )
    student = effective_profile(profile, scenario)
    context = [f"Student profile: {student.kind} (traits: {', '.join(student.traits) or 'none'})."]
    if scenario is not None:
        context.append(
            f"Topic: {scenario.topic} ({scenario.question_type} question). Learning goal: {scenario.goal}. "
            f"The answer the student should reach themselves: {scenario.answer}. "
            f"Good teaching here: {scenario.good_teaching}."
        )
    speaker = {"user": "STUDENT", "assistant": "TUTOR"}
    transcript = "\n\n".join(f"{speaker[m['role']]}: {m['content']}" for m in messages if m["role"] in speaker)
    user = "\n".join(context) + "\n\nDialogue:\n\n" + transcript + "\n\nGrade the TUTOR's turns. JSON only."
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _json_object(text: str) -> dict:
    """The first JSON object in the text (code fences and prose around it are ignored)."""
    text = re.sub(r"```(?:json)?", "", text)
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            obj, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    raise JudgeError("no JSON object in the reply")


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise JudgeError(f"criterion {name!r} is not a number: {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise JudgeError(f"criterion {name!r} is not a number: {value!r}") from None
    if not 0 <= number <= 100:
        raise JudgeError(f"criterion {name!r} is out of range: {number}")
    return number


def parse_judge_reply(text: str, names: tuple[str, ...]) -> tuple[dict[str, float], float | None, str]:
    """(criteria in [0, 1], the judge's confidence or None, notes) from a judge reply.

    Accepts the criteria nested under "criteria" or at the top level, numbers as strings, and 0–10 or
    0–100 scales (detected from the largest value). At least half of the criteria must be present.
    """
    obj = _json_object(text)
    raw = obj.get("criteria", obj)
    if not isinstance(raw, dict):
        raise JudgeError('"criteria" is not an object')
    values = {n: _number(raw[n], n) for n in names if n in raw}
    if len(values) * 2 < len(names):
        raise JudgeError(f"too few criteria: got {sorted(values)}, expected {list(names)}")
    top = max(values.values())
    scale = 1.0 if top <= 1 else 10.0 if top <= 10 else 100.0
    criteria = {n: v / scale for n, v in values.items()}
    confidence = obj.get("confidence")
    if confidence is not None:
        confidence = _number(confidence, "confidence")
        confidence = confidence if confidence <= 1 else confidence / 100
    notes = obj.get("notes") or obj.get("rationale") or ""
    return criteria, confidence, str(notes)


class LLMJudgeGrader:
    """Asks an LLM judge (any OpenAI-compatible endpoint) to score the rubric's criteria as JSON."""

    def __init__(self, endpoint_cfg: OpenAIEndpointConfig, *, max_attempts: int = 3, concurrency: int = 8):
        self.cfg = endpoint_cfg
        self.max_attempts = max_attempts
        self.concurrency = concurrency
        self.name = f"llm-judge:{endpoint_cfg.model}"
        self._client: OpenAIChatClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _chat(self) -> OpenAIChatClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:  # an async client lives in one event loop
            self._client, self._loop = OpenAIChatClient(self.cfg), loop
        return self._client

    async def agrade_dialogue(self, messages: list[dict], profile: StudentProfileConfig | None = None,
                              scenario: ScenarioCard | None = None) -> Grade:
        names = applicable_criteria(profile, scenario)
        request = build_judge_messages(messages, profile, scenario)
        reply, error = "", None
        for _ in range(self.max_attempts):
            reply = await self._chat().complete(request, temperature=0.0, max_tokens=max(self.cfg.max_tokens, 512))
            try:
                criteria, confidence, notes = parse_judge_reply(reply, names)
            except JudgeError as e:
                error = e
                request = request + [
                    {"role": "assistant", "content": reply},
                    {"role": "user", "content": f"That reply could not be read ({e}). Reply with only the "
                                                "JSON object described above, nothing else."},
                ]
                continue
            if confidence is None:  # no self-report: as sure as its scores are decisive
                confidence = statistics.fmean(abs(2 * v - 1) for v in criteria.values())
            missing = [n for n in names if n not in criteria]
            remarks = ([notes] if notes else []) + ([f"judge skipped {missing}"] if missing else [])
            return Grade(score=weighted_score(criteria), confidence=clamp(confidence), criteria=criteria,
                         grader=self.name, notes=remarks)
        raise JudgeError(f"LLM judge {self.cfg.model!r} at {self.cfg.base_url} gave no valid JSON grade in "
                         f"{self.max_attempts} attempts: {error}; last reply: {reply[:200]!r}")

    async def agrade_many(self, items: list[DialogueItem]) -> list[Grade]:
        gate = asyncio.Semaphore(self.concurrency)

        async def one(item: DialogueItem) -> Grade:
            async with gate:
                return await self.agrade_dialogue(*item)

        return list(await asyncio.gather(*(one(i) for i in items)))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = self._loop = None

    def run_sync(self, coro: Coroutine) -> Any:
        """Run a coroutine that uses this judge in a fresh event loop, then close the client.

        Inside a running event loop (where this would block it) it refuses: await the coroutine there.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()
            raise RuntimeError("a sync grading call inside a running event loop; await agrade_dialogue / "
                               "agrade_dialogues instead")

        async def closing() -> Any:
            try:
                return await coro
            finally:
                await self.aclose()

        return asyncio.run(closing())

    def grade_dialogue(self, messages: list[dict], profile: StudentProfileConfig | None = None,
                       scenario: ScenarioCard | None = None) -> Grade:
        """Sync wrapper of `agrade_dialogue` (not inside a running event loop)."""
        return self.run_sync(self.agrade_dialogue(messages, profile, scenario))

    def grade_many(self, items: list[DialogueItem]) -> list[Grade]:
        """Grade many dialogues concurrently (up to `concurrency` requests in flight)."""
        return self.run_sync(self.agrade_many(items))


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

    async def agrade_many(self, items: list[DialogueItem]) -> list[Grade]:
        judged = await self.judge.agrade_many(items)
        return [combine(self.heuristic.grade_dialogue(*item), j, self.llm_weight, self.name)
                for item, j in zip(items, judged, strict=True)]

    def grade_dialogue(self, messages: list[dict], profile: StudentProfileConfig | None = None,
                       scenario: ScenarioCard | None = None) -> Grade:
        """Sync wrapper of `agrade_dialogue` (not inside a running event loop)."""
        return self.judge.run_sync(self.agrade_dialogue(messages, profile, scenario))

    def grade_many(self, items: list[DialogueItem]) -> list[Grade]:
        return self.judge.run_sync(self.agrade_many(items))

    async def aclose(self) -> None:
        await self.judge.aclose()
