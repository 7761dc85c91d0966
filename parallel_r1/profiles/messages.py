"""The conversation a profile is read from: student and teacher turns, from plain strings or chat messages.

A list of strings is taken as the student's messages alone; chat messages (`{"role", "content"}` dicts, or objects
with `role` and `content` attributes) keep the teacher's turns too, so a reader can see what a short reply answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from parallel_r1.data.profiles import TRAITS

STUDENT_ROLES = frozenset({"user", "student", "human"})
TEACHER_ROLES = frozenset({"assistant", "teacher", "tutor", "ai"})
SYSTEM_ROLES = frozenset({"system", "developer"})
# Names a label may use for a trait flag, besides the flag's own name.
TRAIT_ALIASES = {"hyperfocus": "hyperfocus_trait", "hyper_focus": "hyperfocus_trait", "nd": "neurodivergent",
                 "ef": "executive_function_gap", "executive_function": "executive_function_gap",
                 "prior_trauma": "bad_prior_teacher", "metaphor": "rejects_metaphor"}


@dataclass(frozen=True)
class Turn:
    """One message: `role` is "student", "teacher" or "system"; `index` its position in what was passed."""

    role: str
    content: str
    index: int

    @property
    def words(self) -> int:
        return len(self.content.split())


def message_role(raw: Any) -> str:
    """"student", "teacher" or "system" for a chat role name (OpenAI's or a plain one); ValueError otherwise."""
    role = str(raw or "").strip().lower()
    if role in STUDENT_ROLES:
        return "student"
    if role in TEACHER_ROLES:
        return "teacher"
    if role in SYSTEM_ROLES:
        return "system"
    raise ValueError(f"unknown message role {raw!r}; expected one of "
                     f"{', '.join(sorted(STUDENT_ROLES | TEACHER_ROLES | SYSTEM_ROLES))}")


def _content(raw: Any) -> str:
    """Text content; OpenAI's list-of-parts content is joined from its text parts."""
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, list):
        return " ".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in raw)
    return str(raw)


def to_turns(messages: str | Sequence[Any]) -> list[Turn]:
    """The conversation as turns. A string is one student message; strings in a list are student messages."""
    if isinstance(messages, str):
        messages = [messages]
    turns = []
    for i, m in enumerate(messages):
        if isinstance(m, str):
            turns.append(Turn("student", m, i))
        elif isinstance(m, dict):
            turns.append(Turn(message_role(m.get("role")), _content(m.get("content")), i))
        elif hasattr(m, "role") and hasattr(m, "content"):
            turns.append(Turn(message_role(m.role), _content(m.content), i))
        else:
            raise ValueError(f"message {i} is a {type(m).__name__}; expected a string or a {{role, content}} message")
    return turns


def student_text(turns: Iterable[Turn], max_chars: int = 1500) -> str:
    """The student's messages joined (the most recent ones when they run past `max_chars`)."""
    texts = [t.content.strip() for t in turns if t.role == "student" and t.content.strip()]
    joined = "\n".join(texts)
    return joined[-max_chars:] if len(joined) > max_chars else joined


def trait_name(name: str) -> str:
    """A trait flag's name from a label's spelling of it ("hyperfocus" is hyperfocus_trait)."""
    key = str(name).strip().lower().replace("-", "_").replace(" ", "_")
    key = TRAIT_ALIASES.get(key, key)
    if key not in TRAITS:
        raise ValueError(f"unknown trait {name!r}; expected one of {', '.join(TRAITS)} (or 'hyperfocus')")
    return key
