"""Reading a labelled JSONL of student messages and their true profiles (the profile readers' evaluation and the
embedding classifier's training data).

A line holds the student's words as `message` (a string) or `messages` (strings, or chat messages with roles), and
the truth as `traits` (trait names; "hyperfocus" is hyperfocus_trait; [] is the standard student), a `profile`
object of flags, or a profile `kind`. Other keys (a subject, a note) are ignored. A line that cannot be read is a
`LabelledFileError` naming the file and line number.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from parallel_r1.data.io import jsonl_objects
from parallel_r1.data.profiles import StudentProfileConfig
from parallel_r1.errors import UserFacingError
from parallel_r1.profiles.messages import Turn, to_turns, trait_name


class LabelledFileError(UserFacingError, ValueError):
    """A labelled file (or one of its lines) that cannot be read."""


@dataclass(frozen=True)
class LabelledExample:
    """One labelled conversation: its turns, the true profile, and its line number in the file."""

    turns: list[Turn]
    profile: StudentProfileConfig
    line: int


def _profile(row: dict) -> StudentProfileConfig:
    if "traits" in row:
        traits = row["traits"]
        if isinstance(traits, str):
            traits = [traits] if traits.strip() else []
        if not isinstance(traits, list):
            raise ValueError(f"'traits' must be a list of trait names, not {type(traits).__name__}")
        flags = {trait_name(t) for t in traits if str(t).strip().lower() not in ("standard", "none")}
        return StudentProfileConfig(**dict.fromkeys(flags, True))
    if "profile" in row:
        flags = row["profile"]
        if not isinstance(flags, dict):
            raise ValueError("'profile' must be an object of trait flags")
        return StudentProfileConfig(**{trait_name(k): bool(v) for k, v in flags.items()})
    if "kind" in row:
        return StudentProfileConfig.for_kind(str(row["kind"]))
    raise ValueError("no label: give 'traits' (a list of trait names), 'profile' (flags) or 'kind'")


def _turns(row: dict) -> list[Turn]:
    if "message" in row:
        if not isinstance(row["message"], str):
            raise ValueError("'message' must be a string")
        turns = to_turns([row["message"]])
    elif "messages" in row:
        if not isinstance(row["messages"], list) or not row["messages"]:
            raise ValueError("'messages' must be a non-empty list of strings or {role, content} messages")
        turns = to_turns(row["messages"])
    else:
        raise ValueError("no 'message' (a string) or 'messages' (a list)")
    if not any(t.role == "student" and t.content.strip() for t in turns):
        raise ValueError("no student message with text")
    return turns


def load_labelled(path: str | Path) -> list[LabelledExample]:
    """Every labelled example of a JSONL file (blank lines skipped); a clear error for a line it cannot read."""
    examples = []
    for number, row in jsonl_objects(Path(path), LabelledFileError):
        try:
            examples.append(LabelledExample(_turns(row), _profile(row), number))
        except (ValueError, TypeError) as e:
            first = str(e).splitlines()[0]
            raise LabelledFileError(f"{path} line {number}: {first}") from None
    if not examples:
        raise LabelledFileError(f"{path}: no labelled examples")
    return examples
