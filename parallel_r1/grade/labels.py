"""Tutor replies labelled by people, read from JSONL, and which rubric criterion answers each human dimension.

The format is that of the BEA 2025 shared task on tutor evaluation: `history` (roles teacher/student or
assistant/user), `response`, and `labels` with the annotators' raw strings per dimension. A dimension the
project has no criterion for is reported as skipped; a label string it does not know is an error.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from parallel_r1.data.io import jsonl_objects
from parallel_r1.errors import UserFacingError

THREE_WAY = {"Yes": 1.0, "To some extent": 0.5, "No": 0.0}


@dataclass(frozen=True)
class Dimension:
    """A human dimension: the criterion it is compared with and how its label strings order."""

    name: str
    criterion: str
    values: dict[str, float]
    description: str

    @property
    def classes(self) -> list[float]:
        return sorted(set(self.values.values()))


DIMENSIONS = {d.name: d for d in (
    Dimension("Mistake_Identification", "mistake_identification", THREE_WAY,
              "the reply notices the student's mistake"),
    Dimension("Mistake_Location", "mistake_identification", THREE_WAY,
              "the reply points to where the mistake is"),
    Dimension("Providing_Guidance", "guidance", THREE_WAY,
              "the reply offers correct, relevant guidance: a hint, an explanation, an example"),
    Dimension("Actionability", "actionability", THREE_WAY, "it is clear what the student should do next"),
    Dimension("Revealing_of_the_Answer", "no_answer_reveal",
              {"No": 1.0, "Yes (and the answer is correct)": 0.0, "Yes (but the answer is incorrect)": 0.0},
              "the reply does not give the answer away (1 = no reveal)"),
    Dimension("Tutor_Tone", "tone", {"Encouraging": 1.0, "Neutral": 0.5, "Offensive": 0.0},
              "encouraging rather than neutral or offensive"),
    Dimension("Coherence", "coherence", THREE_WAY, "the reply follows from the dialogue"),
)}
# The overall score is compared with the mean of these, where a reply has them.
OVERALL_DIMENSIONS = ("Mistake_Identification", "Mistake_Location", "Providing_Guidance", "Actionability")


class LabelFileError(UserFacingError):
    """A labelled file that cannot be read: says which line and what is wrong."""


@dataclass
class LabelledReply:
    """One tutor reply, the dialogue before it (roles user/assistant) and its human labels as ordinals."""

    id: str
    conversation_id: str
    history: list[dict]
    response: str
    labels: dict[str, float]
    tutor: str = ""
    skipped: list[str] = field(default_factory=list)

    def overall(self) -> float | None:
        present = [self.labels[d] for d in OVERALL_DIMENSIONS if d in self.labels]
        return sum(present) / len(present) if present else None


ROLES = {"teacher": "assistant", "tutor": "assistant", "assistant": "assistant",
         "student": "user", "user": "user", "system": "system"}


def chat_history(history: list[dict]) -> list[dict]:
    """A dialogue with roles teacher/student (or tutor) in the chat roles assistant/user."""
    out = []
    for i, m in enumerate(history):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or m.get("role") not in ROLES:
            raise ValueError(f"history[{i}] must be {{'role': teacher|student|assistant|user, 'content': str}}, "
                             f"got {str(m)[:80]!r}")
        out.append({"role": ROLES[m["role"]], "content": m["content"]})
    return out


def _reply(obj: dict, where: str) -> LabelledReply:
    for key, kind in (("history", list), ("response", str), ("labels", dict)):
        if not isinstance(obj.get(key), kind):
            raise LabelFileError(f"{where}: field {key!r} is missing or not a {kind.__name__}")
    try:
        history = chat_history(obj["history"])
    except ValueError as e:
        raise LabelFileError(f"{where}: {e}") from None
    labels, skipped = {}, []
    for name, raw in obj["labels"].items():
        dim = DIMENSIONS.get(name)
        if dim is None:
            skipped.append(name)
            continue
        if raw not in dim.values:
            raise LabelFileError(f"{where}: label {name}={raw!r} is not one of {', '.join(map(repr, dim.values))}")
        labels[name] = dim.values[raw]
    conversation = obj.get("conversation_id") or hashlib.sha1(
        json.dumps(obj["history"], sort_keys=True).encode()).hexdigest()[:12]
    return LabelledReply(id=str(obj.get("id", where)), conversation_id=str(conversation), history=history,
                         response=obj["response"], labels=labels, tutor=str(obj.get("tutor", "")), skipped=skipped)


def read_labelled(path: str | Path) -> list[LabelledReply]:
    """Every labelled reply of a JSONL file; a one-line `LabelFileError` on the first bad line."""
    replies = [_reply(obj, f"{path}:{number}") for number, obj in jsonl_objects(Path(path), LabelFileError)]
    if not replies:
        raise LabelFileError(f"{path}: no labelled replies in the file")
    if not any(r.labels for r in replies):
        raise LabelFileError(f"{path}: no reply carries a known dimension ({', '.join(DIMENSIONS)})")
    return replies
