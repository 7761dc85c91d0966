"""Run artifacts read through pydantic models: a record that is truncated, not JSON or of the wrong shape is a
one-line error naming the file, the field and the command that writes it again, never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from parallel_r1.errors import UserFacingError


class ArtifactError(UserFacingError):
    """A run artifact that cannot be read (truncated, corrupt, or not the record it should be)."""


class Record(BaseModel):
    """The base of every artifact's model: keys written by another version of the package are ignored."""

    model_config = ConfigDict(extra="ignore")


R = TypeVar("R", bound=BaseModel)


def problem(error: ValidationError) -> str:
    """The first thing wrong with a record, in a few words: where (the field's dotted path) and what."""
    first = error.errors()[0]
    if first["type"] == "json_invalid":
        return f"truncated or not JSON ({first['msg'].removeprefix('Invalid JSON: ')})"
    where = ".".join(str(p) for p in first["loc"]) or "the record"
    more = f" (and {error.error_count() - 1} more problem(s))" if error.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def unreadable(path: Path, what: str, remedy: str) -> ArtifactError:
    """The one-line error of an artifact that cannot be read: the file, what is wrong, what to do."""
    return ArtifactError(f"{path} is unreadable ({what}): {remedy}")


def read_record(path: Path, model: type[R], remedy: str) -> R:
    """The record in a JSON artifact, validated by `model`; `remedy` says what rewrites the file (e.g. "re-run
    `parallel-r1 batch`")."""
    path = Path(path)
    try:
        return model.model_validate_json(path.read_bytes())
    except ValidationError as e:
        raise unreadable(path, problem(e), remedy) from None
