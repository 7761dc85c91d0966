"""What the LLM judge is asked: the rubric prompt for a whole dialogue or for one tutor reply, the JSON schema
its answer must follow, and the transcript trimmed to fit the endpoint's context window.

Token counts here are estimates, not a tokenizer's: `CHARS_PER_TOKEN` characters a token is conservative for
English BPE vocabularies (they average about four), and the judge lowers it when the server reports more
prompt tokens than estimated, or answers that the prompt is too long.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from parallel_r1.data import ScenarioCard, StudentProfileConfig
from parallel_r1.grade.grade import DESCRIPTIONS, applicable_criteria, effective_profile

CHARS_PER_TOKEN = 3.0
MESSAGE_OVERHEAD_TOKENS = 8  # what a chat template adds around each message
MIN_TRANSCRIPT_CHARS = 300  # below this the judge has too little to grade: send it and let the server refuse
NOTES_MAX_CHARS = 160

STUDENT, TUTOR = "STUDENT", "TUTOR"
SPEAKERS = {"user": STUDENT, "student": STUDENT, "assistant": TUTOR, "teacher": TUTOR, "tutor": TUTOR}
TARGET = ">>> TUTOR (the reply to grade)"

SYSTEM_PROMPT = """You are an expert teacher-trainer. You grade how well a TUTOR teaches a STUDENT {subject}. \
Judge pedagogy, not politeness: a good tutor guides the student to work things out, does not give away the \
answer, checks understanding, leaves a clear next step, adapts to this particular student, and avoids stock \
phrases.

Score each criterion below from 0.0 (fails completely) to 1.0 (excellent):
{criteria}

Reply with only one JSON object, no other text:
{{"criteria": {{{example}}}, "confidence": <0.0-1.0, how sure you are>, "notes": "<one short sentence>"}}"""

DIALOGUE_SUBJECT = "in a dialogue"
TURN_SUBJECT = "in one reply: the last TUTOR reply of the dialogue, marked >>>"


def speaker(role: str) -> str | None:
    """STUDENT or TUTOR for a chat role (user/assistant or student/teacher), None for any other (system)."""
    return SPEAKERS.get(str(role).lower())


def normalise_history(history: list[dict]) -> list[dict]:
    """The history in the chat `messages` roles (student → user, teacher → assistant), other roles dropped."""
    role = {STUDENT: "user", TUTOR: "assistant"}
    return [{"role": role[s], "content": str(m.get("content") or "")} for m in history
            if (s := speaker(m.get("role", ""))) is not None]


def estimate_tokens(text: str, chars_per_token: float = CHARS_PER_TOKEN) -> int:
    """A conservative estimate of the tokens of `text` (see the module docstring)."""
    return math.ceil(len(text) / chars_per_token)


def _shorten(text: str, limit: int) -> str:
    """The text cut in the middle to about `limit` characters, the cut marked."""
    if len(text) <= limit:
        return text
    mark = " [...] "
    keep = max(0, limit - len(mark))
    head = keep * 2 // 5
    return text[:head] + mark + text[len(text) - (keep - head):]


def _cap(lengths: list[int], budget: int) -> int:
    """The largest per-entry length L with sum(min(n, L)) <= budget (water-filling)."""
    lo, hi = 0, max(lengths, default=0)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(min(n, mid) for n in lengths) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def fit_transcript(entries: list[tuple[str, str]], budget_chars: int | None) -> tuple[list[tuple[str, str]], int]:
    """The transcript entries (speaker, text) that fit in `budget_chars`, and how many turns were left out.

    Keeps the opening and the most recent turns (the last one always), and marks the cut with one entry;
    when even the opening and the last turn do not fit, they are shortened in the middle.
    """
    def size(items: list[tuple[str, str]]) -> int:
        return sum(len(s) + len(t) + 4 for s, t in items)

    if budget_chars is None or not entries or size(entries) <= budget_chars:
        return list(entries), 0
    first, rest = entries[0], entries[1:]
    recent: list[tuple[str, str]] = []
    marker_room = 80
    for entry in reversed(rest):
        if recent and size([first, entry, *recent]) + marker_room > budget_chars:
            break
        recent.insert(0, entry)
    omitted = len(rest) - len(recent)
    marker = [("[...]", f"{omitted} turn(s) left out here to fit the judge's context")] if omitted else []
    kept = [first, *marker, *recent]
    if size(kept) > budget_chars:  # the opening and the last turns alone are too long: shorten the longest
        overhead = sum(len(s) + 4 for s, _ in kept)
        cap = _cap([len(t) for _, t in kept], max(0, budget_chars - overhead))
        kept = [(s, _shorten(t, max(cap, 40))) for s, t in kept]
    return kept, omitted


@dataclass(frozen=True)
class JudgePrompt:
    """One judge request before fitting: the system prompt, the context lines, the transcript, the closing ask."""

    names: tuple[str, ...]
    system: str
    header: str
    entries: tuple[tuple[str, str], ...]
    footer: str

    def fixed_chars(self) -> int:
        """Characters of everything but the transcript."""
        return len(self.system) + len(self.header) + len(self.footer) + 8

    def transcript_chars(self) -> int:
        return sum(len(s) + len(t) + 4 for s, t in self.entries)

    def messages(self, transcript_budget: int | None = None) -> tuple[list[dict], int]:
        """The chat request with the transcript fitted to `transcript_budget` characters (None: all of it),
        and how many turns were left out."""
        kept, omitted = fit_transcript(list(self.entries), transcript_budget)
        transcript = "\n\n".join(f"{s}: {t}" for s, t in kept)
        user = f"{self.header}\n\n{transcript}\n\n{self.footer}"
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}], omitted


def _system(names: tuple[str, ...], subject: str) -> str:
    return SYSTEM_PROMPT.format(
        subject=subject,
        criteria="\n".join(f"- {n}: {DESCRIPTIONS[n]}" for n in names),
        example=", ".join(f'"{n}": <0.0-1.0>' for n in names),
    )


def _context(profile: StudentProfileConfig | None, scenario: ScenarioCard | None) -> str:
    student = effective_profile(profile, scenario)
    lines = [f"Student profile: {student.kind} (traits: {', '.join(student.traits) or 'none'})."]
    if scenario is not None:
        lines.append(
            f"Topic: {scenario.topic} ({scenario.question_type} question). Learning goal: {scenario.goal}. "
            f"The answer the student should reach themselves: {scenario.answer}. "
            f"Good teaching here: {scenario.good_teaching}."
        )
    return "\n".join(lines)


def _entries(messages: list[dict]) -> list[tuple[str, str]]:
    return [(s, str(m.get("content") or "")) for m in messages if (s := speaker(m.get("role", ""))) is not None]


def dialogue_prompt(messages: list[dict], profile: StudentProfileConfig | None,
                    scenario: ScenarioCard | None) -> JudgePrompt:
    """The request that asks the judge to grade the tutor's turns of a whole dialogue."""
    names = applicable_criteria(profile, scenario)
    return JudgePrompt(names=names, system=_system(names, DIALOGUE_SUBJECT),
                       header=_context(profile, scenario) + "\n\nDialogue:",
                       entries=tuple(_entries(messages)), footer="Grade the TUTOR's turns. JSON only.")


def turn_prompt(history: list[dict], response: str, profile: StudentProfileConfig | None,
                scenario: ScenarioCard | None) -> JudgePrompt:
    """The request that asks the judge to grade one tutor reply (`response`) given the dialogue before it."""
    names = applicable_criteria(profile, scenario)
    return JudgePrompt(names=names, system=_system(names, TURN_SUBJECT),
                       header=_context(profile, scenario) + "\n\nDialogue so far, then the reply to grade:",
                       entries=(*_entries(history), (TARGET, str(response))),
                       footer="Grade only the last TUTOR reply (marked >>>), given the dialogue before it. "
                              "JSON only.")


def build_judge_messages(messages: list[dict], profile: StudentProfileConfig | None,
                         scenario: ScenarioCard | None) -> list[dict]:
    """The chat request that asks the judge to grade one dialogue, untrimmed."""
    return dialogue_prompt(messages, profile, scenario).messages()[0]


def judge_response_format(names: tuple[str, ...]) -> dict:
    """The OpenAI `response_format` asking for exactly these criteria in [0, 1], a confidence and short notes.

    vLLM's OpenAI server enforces it by structured decoding (xgrammar or guidance); `maxLength` keeps a
    small model from writing notes until it runs out of tokens.
    """
    unit = {"type": "number", "minimum": 0, "maximum": 1}
    schema = {
        "type": "object",
        "properties": {
            "criteria": {"type": "object", "properties": {n: unit for n in names}, "required": list(names),
                         "additionalProperties": False},
            "confidence": unit,
            "notes": {"type": "string", "maxLength": NOTES_MAX_CHARS},
        },
        "required": ["criteria", "confidence", "notes"],
        "additionalProperties": False,
    }
    return {"type": "json_schema", "json_schema": {"name": "pedagogy_grade", "schema": schema, "strict": True}}


def prompt_tokens(messages: list[dict], chars_per_token: float = CHARS_PER_TOKEN) -> int:
    """Estimated prompt tokens of a chat request, template overhead included."""
    return sum(estimate_tokens(str(m["content"]), chars_per_token) + MESSAGE_OVERHEAD_TOKENS for m in messages)
