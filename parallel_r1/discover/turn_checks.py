"""The rules a role-played turn from a real model must keep before it joins a dialogue.

Both roles: a message of its own (no speaker labels, never the other side's lines), no talk of being an AI or
of role-playing, within its length limit and not cut off, and not a repeat of the last message. The student
also stays a student: no tutor phrases ("Great question!", "Let me explain") and no lecture-shaped lists.
A turn that breaks a rule comes back as a `TurnProblem` whose `fix` tells the model what to do instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from parallel_r1.config import RolePlayConfig
from parallel_r1.data import Turn

SPEAKER_WORDS = frozenset({"student", "teacher", "tutor", "assistant", "user", "learner", "instructor"})
OWN_LABELS = {"student": frozenset({"student", "assistant"}), "teacher": frozenset({"teacher", "tutor", "assistant"})}
_LABEL = re.compile(r"^\s*[*_]*\s*\[?(\w+)\]?\s*[*_]*\s*:\s*[*_]*\s*")
_AI_TALK = re.compile(
    r"\bas an? (?:ai|artificial intelligence|(?:large )?language model|chatbot|virtual assistant)\b|"
    r"\bi(?:'m| am) (?:just |only )?(?:an? )?(?:ai|artificial intelligence|(?:large )?language model|chatbot|"
    r"virtual assistant)\b|\brole[- ]?play|\b(?:stay|staying|break|breaking|out of) character\b|\bOOC\b",
    re.IGNORECASE)
_TUTOR_VOICE = re.compile(
    r"\b(?:great|good|excellent) question\b|\blet me (?:explain|break|walk you through|clarify)\b|"
    r"\blet'?s break (?:this|it|that) down\b|\bi hope (?:this|that) helps\b|\bfeel free to (?:ask|reach out)\b|"
    r"\bdoes (?:this|that) make sense\b|\bdo you have any (?:other |more |further )?questions\b|"
    r"\bas your (?:tutor|teacher)\b|\byou'?ve got it\b|\b(?:well done|good job|great job|nice work)\b",
    re.IGNORECASE)
_LIST_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*\u2022])\s+\S")
_MARKDOWN_BLOCK = re.compile(r"^\s*(?:#{1,6}\s|```)", re.MULTILINE)
LECTURE_ITEMS = 3  # list items from which a student message reads as a lesson


@dataclass(frozen=True)
class TurnProblem:
    """Why a turn was refused: a short `code`, what was `found` (a clause), and the `fix` asked of the model."""

    code: str
    found: str
    fix: str

    def note(self) -> str:
        """The corrective note added to the system prompt when the turn is asked for again."""
        return f"Your last attempt at this message was rejected because {self.found}. {self.fix}"


class TurnRejected(RuntimeError):
    """A turn still broke the role-play rules after every retry; the dialogue attempt fails with this reason."""

    def __init__(self, role: str, index: int, problem: TurnProblem, retries: int, text: str):
        super().__init__(f"{role} turn {index + 1}: {problem.code} ({problem.found}) after {retries} "
                         f"retr{'y' if retries == 1 else 'ies'}; last reply: {text[:160]!r}")
        self.problem = problem


def strip_own_label(role: str, text: str, name: str) -> str:
    """The text without a leading speaker label of its own role ("Tutor:", "**Amara:**"), which role-playing
    models like to add; a label of the other side is left for `check_turn` to refuse."""
    m = _LABEL.match(text)
    if m and m.group(1).lower() in OWN_LABELS[role] | ({name.lower()} if role == "student" else set()):
        return text[m.end():].strip()
    return text.strip()


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", "", text.lower()).split())


def _label_lines(text: str, labels: frozenset[str]) -> list[str]:
    return [m.group(0).strip() for line in text.splitlines()
            if (m := _LABEL.match(line)) and m.group(1).lower() in labels]


def check_turn(role: str, text: str, *, finish_reason: str | None, history: list[Turn], name: str,
               rules: RolePlayConfig) -> TurnProblem | None:
    """The first rule `text` (already stripped of its own leading label) breaks as `role`'s next turn, or None.

    `name` is the student persona's name (a label too); `history` is the dialogue before this turn.
    """
    own = "the student" if role == "student" else "the tutor"
    limit = rules.max_student_chars if role == "student" else rules.max_teacher_chars
    if not text.strip():
        return TurnProblem("empty", "it was empty", f"Write {own}'s next chat message.")
    if finish_reason == "length":
        return TurnProblem("cut_off", "it was cut off at the token limit",
                           f"Write a shorter message, well under {limit} characters.")
    if len(text) > limit:
        return TurnProblem("too_long", f"it was {len(text)} characters long",
                           f"Write a shorter message, under {limit} characters.")
    if labels := _label_lines(text, SPEAKER_WORDS | {name.lower()}):
        return TurnProblem("speaker_label", f"it has a speaker label ({labels[0]!r})",
                           f"Write only {own}'s own message: no name labels, never the other person's lines.")
    if m := _AI_TALK.search(text):
        return TurnProblem("ai_talk", f"it talks about being an AI or role-playing ({m.group(0)!r})",
                           f"Stay in character as {own}; never mention AI, language models or role-play.")
    if role == "student":
        if m := _TUTOR_VOICE.search(text):
            return TurnProblem("tutor_voice", f"it sounds like the tutor ({m.group(0)!r})",
                               f"You are {name}, the student, not the tutor: do not explain, teach or praise; "
                               "react to the tutor in one to three short sentences.")
        items = sum(bool(_LIST_ITEM.match(line)) for line in text.splitlines())
        if items >= LECTURE_ITEMS or _MARKDOWN_BLOCK.search(text):
            return TurnProblem("lecture", "it is laid out like a lesson (a list, heading or code block)",
                               f"You are {name}, the student: write a short chat message in your own voice, "
                               "not a lesson.")
    if history and _normal(text) in {_normal(t.content) for t in history[-2:]}:
        return TurnProblem("repeat", "it repeats an earlier message",
                           "Write a new message that responds to the last one.")
    return None
