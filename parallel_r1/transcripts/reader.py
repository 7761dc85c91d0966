"""Reading real tutoring transcripts (JSONL or Parquet in the OpenAI `messages` format) and checking each row.

A row becomes a `Transcript` (the dialogue's turns, its profile flags when the row gives them, its scenario
metadata) or a `Rejected` naming its row number, the field and the reason. The rules:
- `user` is the student, `assistant` the teacher (with the other names the profile reader knows, e.g. `student`,
  `tutor`); `system` and `developer` messages instruct the tutor and are dropped; any other role is rejected.
- Content is a string or OpenAI's list of text parts; empty content is rejected; a message longer than
  `transcripts.max_chars` is rejected or truncated (`transcripts.too_long`).
- Consecutive messages of one role are merged into one turn (a blank line between them): chat exports split one
  message into several bubbles, and the rubric grades each teacher turn as the reply to the student turn before it.
- A row needs at least one student and one teacher message.
- The profile is `traits` (a list of trait names, or one comma-separated string; empty: a standard student) or
  `profile` (an object of trait flags); unknown trait names are rejected. Neither: the profile is inferred later.
- Scenario metadata (`scenario_id`, `topic`, `domain`, `question_type`, `difficulty`, `model`) may sit on the row
  or in its `metadata` object; `question_type` and `difficulty` must be values the project uses.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from parallel_r1.data.profiles import TRAITS, StudentProfileConfig
from parallel_r1.data.scenarios import DIFFICULTIES, QUESTION_TYPES
from parallel_r1.data.schema import Turn
from parallel_r1.errors import UserFacingError
from parallel_r1.profiles.messages import STUDENT_ROLES, SYSTEM_ROLES, TEACHER_ROLES, message_role, trait_name

OPENAI_ROLES = ("user", "assistant", "system", "developer")
METADATA_FIELDS = ("scenario_id", "topic", "domain", "question_type", "difficulty", "model")
CHOICES = {"question_type": QUESTION_TYPES, "difficulty": DIFFICULTIES}
JSONL_SUFFIXES = (".jsonl", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")
ID_PREFIX = "imp-"


class TranscriptError(UserFacingError):
    """A transcripts file that cannot be imported: unreadable, of an unknown format, or holding bad rows."""


class _Invalid(Exception):
    def __init__(self, field: str, reason: str):
        super().__init__(reason)
        self.field, self.reason = field, reason


@dataclass(frozen=True)
class Rejected:
    """A row that broke a rule, with the row as it was read."""

    row: int
    field: str
    reason: str
    raw: Any

    def message(self, source: Path) -> str:
        return f"{source} row {self.row}: {self.field}: {self.reason}"

    def to_record(self, source: Path) -> dict:
        raw = json.loads(json.dumps(self.raw, ensure_ascii=False, default=str))
        return {"source": str(source), "row": self.row, "field": self.field, "reason": self.reason, "raw": raw}


@dataclass(frozen=True)
class Transcript:
    """A valid row: the turns to import, the profile's traits when given (None: to infer) and the metadata given."""

    row: int
    turns: tuple[Turn, ...]
    traits: tuple[str, ...] | None
    metadata: dict[str, str]
    merged: int = 0  # messages merged into the turn before them (same role)
    dropped_system: int = 0
    truncated: int = 0

    @property
    def dialogue_id(self) -> str:
        """A digest of the turns: the same conversation gets the same id, whichever file or row it comes from."""
        text = json.dumps([[t.role, t.content] for t in self.turns], ensure_ascii=False)
        return ID_PREFIX + hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]

    def messages(self) -> list[dict]:
        """The turns as chat messages (student = user, teacher = assistant)."""
        role = {"student": "user", "teacher": "assistant"}
        return [{"role": role[t.role], "content": t.content} for t in self.turns]


def transcript_format(path: Path) -> str:
    """"jsonl" or "parquet" by the file's suffix; a one-line error for a missing file or another suffix."""
    path = Path(path)
    if not path.is_file():
        raise TranscriptError(f"{path}: no such transcripts file")
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    raise TranscriptError(f"{path}: expected a JSONL ({', '.join(JSONL_SUFFIXES)}) or Parquet "
                          f"({', '.join(PARQUET_SUFFIXES)}) file of conversations in the `messages` format")


def count_rows(path: Path) -> int:
    """How many rows `read_transcripts` will read (JSONL: lines, blank ones included, so it counts line numbers)."""
    if transcript_format(path) == "parquet":
        return _parquet_file(path).metadata.num_rows
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def read_transcripts(path: Path, max_chars: int, too_long: str = "reject") -> Iterator[Transcript | Rejected]:
    """Every row of the file, checked: a `Transcript` or a `Rejected`. Rows are numbered from 1 (JSONL: line
    numbers)."""
    for number, obj in _rows(Path(path)):
        yield obj if isinstance(obj, Rejected) else check_row(number, obj, max_chars, too_long)


def check_row(number: int, obj: Any, max_chars: int, too_long: str = "reject") -> Transcript | Rejected:
    """One row as a `Transcript`, or the first rule it breaks as a `Rejected`."""
    try:
        if not isinstance(obj, dict):
            raise _Invalid("row", f"expected a JSON object with `messages`, got {type(obj).__name__}")
        turns, merged, dropped, truncated = _turns(obj, max_chars, too_long)
        return Transcript(number, turns, _traits(obj), _metadata(obj), merged, dropped, truncated)
    except _Invalid as e:
        return Rejected(number, e.field, e.reason, obj)


def _parquet_file(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise TranscriptError(f"{path}: not a readable Parquet file ({e})") from None


def _rows(path: Path) -> Iterator[tuple[int, Any]]:
    if transcript_format(path) == "parquet":
        yield from _parquet_rows(path)
    else:
        yield from _jsonl_rows(path)


def _jsonl_rows(path: Path) -> Iterator[tuple[int, Any]]:
    with open(path, encoding="utf-8") as f:
        try:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as e:
                    yield number, Rejected(number, "row", f"not JSON ({e.msg})", line.rstrip("\n"))
        except UnicodeDecodeError:
            raise TranscriptError(f"{path}: not UTF-8 text (is it a Parquet file named .jsonl?)") from None


def _parquet_rows(path: Path) -> Iterator[tuple[int, Any]]:
    file = _parquet_file(path)
    columns = file.schema_arrow.names
    if "messages" not in columns:
        raise TranscriptError(f"{path}: no `messages` column (columns: {', '.join(columns) or 'none'})")
    number = 0
    for batch in file.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            number += 1
            yield number, row


def _role(raw: Any, field: str) -> str:
    try:
        return message_role(raw if isinstance(raw, str) else None)
    except ValueError:
        others = sorted((STUDENT_ROLES | TEACHER_ROLES | SYSTEM_ROLES) - set(OPENAI_ROLES))
        raise _Invalid(field, f"unknown role {raw!r}; expected one of {', '.join(OPENAI_ROLES)} "
                              f"(or {', '.join(others)})") from None


def _content(raw: Any, field: str) -> str:
    """The text of a message: a string, or the joined text of OpenAI content parts; never empty."""
    if raw is None:
        raise _Invalid(field, "missing (null); expected the message's text")
    if isinstance(raw, list):
        texts = []
        for j, part in enumerate(raw):
            kind = part.get("type", "text") if isinstance(part, dict) else None
            if kind != "text" or not isinstance(part.get("text"), str):
                raise _Invalid(f"{field}[{j}]", f"only text parts can be imported, got {kind or type(part).__name__!r}")
            texts.append(part["text"])
        raw = "\n".join(texts)
    if not isinstance(raw, str):
        raise _Invalid(field, f"expected a string, got {type(raw).__name__}")
    if not raw.strip():
        raise _Invalid(field, "empty")
    return raw.strip()


def _cut(text: str, max_chars: int) -> str:
    """The text cut to `max_chars`, at the last whitespace when there is one in its second half."""
    head = text[:max_chars]
    space = head.rfind(" ")
    return (head[:space] if space > max_chars // 2 else head).rstrip()


def _turns(obj: dict, max_chars: int, too_long: str) -> tuple[tuple[Turn, ...], int, int, int]:
    messages = obj.get("messages")
    if messages is None:
        raise _Invalid("messages", "missing; expected a list of {role, content} messages")
    if not isinstance(messages, list) or not messages:
        raise _Invalid("messages", "expected a non-empty list of {role, content} messages")
    turns: list[Turn] = []
    merged = dropped = truncated = 0
    for i, m in enumerate(messages):
        field = f"messages[{i}]"
        if not isinstance(m, dict):
            raise _Invalid(field, f"expected an object with role and content, got {type(m).__name__}")
        role = _role(m.get("role"), f"{field}.role")
        content = _content(m.get("content"), f"{field}.content")
        if role == "system":
            dropped += 1
            continue
        if len(content) > max_chars:
            if too_long != "truncate":
                raise _Invalid(f"{field}.content", f"{len(content)} characters, over transcripts.max_chars "
                                                   f"({max_chars}); raise it, or set transcripts.too_long=truncate")
            content, truncated = _cut(content, max_chars), truncated + 1
        if turns and turns[-1].role == role:
            turns[-1] = Turn(role, f"{turns[-1].content}\n\n{content}")
            merged += 1
        else:
            turns.append(Turn(role, content))
    roles = {t.role for t in turns}
    for role, name in (("student", "user"), ("teacher", "assistant")):
        if role not in roles:
            raise _Invalid("messages", f"no {name} ({role}) message; a dialogue needs at least one of each")
    return tuple(turns), merged, dropped, truncated


def _field(obj: dict, key: str) -> Any:
    """`key` on the row, else in its `metadata` object; an error when both give different values."""
    meta = obj.get("metadata")
    if isinstance(meta, list):  # a Parquet map column reads as (key, value) pairs
        meta = dict(meta)
    if meta is not None and not isinstance(meta, dict):
        raise _Invalid("metadata", f"expected an object, got {type(meta).__name__}")
    top, nested = obj.get(key), (meta or {}).get(key)
    if top is not None and nested is not None and top != nested:
        raise _Invalid(key, f"{top!r} on the row but {nested!r} in its metadata")
    return top if top is not None else nested


def _trait(name: Any, field: str) -> str:
    if not isinstance(name, str):
        raise _Invalid(field, f"expected a trait name, got {type(name).__name__}")
    try:
        return trait_name(name)
    except ValueError as e:
        raise _Invalid(field, str(e)) from None


def _traits(obj: dict) -> tuple[str, ...] | None:
    """The given profile's traits (neurodivergent added for its sub-traits); None when the row gives none."""
    traits, profile = _field(obj, "traits"), _field(obj, "profile")
    if traits is not None and profile is not None:
        raise _Invalid("traits", "the row gives both `traits` and `profile`; give one")
    flags: dict[str, bool] = {}
    if traits is not None:
        names = [n.strip() for n in traits.split(",") if n.strip()] if isinstance(traits, str) else traits
        if not isinstance(names, list):
            raise _Invalid("traits", f"expected a list of trait names ({', '.join(TRAITS)}), "
                                     f"got {type(traits).__name__}")
        flags = {_trait(n, f"traits[{j}]"): True for j, n in enumerate(names)}
    elif profile is not None:
        if not isinstance(profile, dict):
            raise _Invalid("profile", f"expected an object of trait flags ({', '.join(TRAITS)}), "
                                      f"got {type(profile).__name__}")
        for key, value in profile.items():
            name = _trait(key, f"profile.{key}")
            if value is not None and not isinstance(value, bool):
                raise _Invalid(f"profile.{key}", f"expected true or false, got {value!r}")
            flags[name] = flags.get(name, False) or bool(value)
    else:
        return None
    return tuple(StudentProfileConfig(**flags).traits)


def _metadata(obj: dict) -> dict[str, str]:
    out = {}
    for key in METADATA_FIELDS:
        value = _field(obj, key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise _Invalid(key, f"expected a string, got {type(value).__name__}")
        value = str(value).strip()
        if not value:
            continue
        if key in CHOICES and value not in CHOICES[key]:
            raise _Invalid(key, f"unknown {key} {value!r}; expected one of {', '.join(CHOICES[key])}")
        out[key] = value
    return out
