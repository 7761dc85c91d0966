"""The registry's promotion record, <workdir>/promotion.json: per model name the version that may be served, with
the score it was promoted on, and every gate decision, promotion and rollback (who, when, why). Serve serves exactly
the promoted versions (and the base model)."""

from __future__ import annotations

import getpass
import socket
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, ValidationError

from parallel_r1.data.io import atomic_write_json
from parallel_r1.data.records import Record, problem
from parallel_r1.paths import RunPaths
from parallel_r1.registry.versions import ModelRegistry, ModelVersion, RegistryError, now


def actor() -> str:
    """Who made a change: user@host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


class Promotion(Record):
    """The promoted version of one model name."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    ref: str = Field(description="The promoted registry version, name@vN.")
    digest: str = Field(description="The digest of its weights.")
    score: float = Field(description="The score it was promoted on (the bar a rollback keeps).")
    at: str = Field(default_factory=now, description="When (UTC, ISO 8601).")
    by: str = Field(default_factory=actor, description="Who: user@host.")
    reason: str = Field("", description="Why: the gate's reasons, or the rollback's.")
    previous: tuple[str, ...] = Field((), description="The refs it replaced, latest last (what rollback returns "
                                                      "to).")


class PromotionFile(Record):
    """The shape of promotion.json."""

    promoted: dict[str, Promotion] | None = Field(description="Per model name, the version that may be served.")
    decisions: list[dict[str, Any]] = Field(default_factory=list, description="Every gate decision, in order.")
    events: list[dict[str, Any]] = Field(default_factory=list, description="Every promotion and rollback.")


class PromotionRecord:
    """Reads and changes promotion.json; every change is one atomic rewrite of the file."""

    def __init__(self, workdir: Path | str):
        self.registry = ModelRegistry(workdir)
        self.file = RunPaths(Path(workdir)).promotion

    def read(self) -> dict:
        """The record as plain JSON data (what the methods below change and write back), validated by
        `PromotionFile`: a torn or malformed file is a one-line error naming the file and the field."""
        if not self.file.exists():
            return {"promoted": {}, "decisions": [], "events": []}
        try:
            record = PromotionFile.model_validate_json(self.file.read_bytes())
        except ValidationError as e:
            raise RegistryError(f"{self.file} is not a promotion record ({problem(e)}); restore it from a backup or "
                                "move it aside to start over (nothing was changed)") from None
        data = record.model_dump(mode="json")
        return {**data, "promoted": data["promoted"] or {}}

    def promoted(self) -> dict[str, Promotion]:
        return {name: Promotion.model_validate(p) for name, p in self.read()["promoted"].items()}

    def served(self) -> dict[str, ModelVersion]:
        """The promoted version of every model name, checked against the registry."""
        return {name: self.registry.get(p.ref) for name, p in self.promoted().items()}

    def decide(self, decision: dict, version: ModelVersion | None, score: float) -> None:
        """Record a gate decision; when `version` is given it becomes the promoted version of its name."""
        record = self.read()
        record["decisions"].append(decision)
        if version is not None:
            current = record["promoted"].get(version.name)
            previous = [*current.get("previous", []), current["ref"]] if current else []
            promotion = Promotion(ref=version.ref, digest=version.digest, score=score,
                                  reason="; ".join(decision.get("reasons", [])), previous=tuple(previous))
            record["promoted"][version.name] = promotion.model_dump(mode="json")
            record["events"].append({"event": "promote", "name": version.name, "ref": version.ref, "score": score,
                                     "from": current["ref"] if current else None, "at": promotion.at,
                                     "by": promotion.by, "reason": promotion.reason})
        atomic_write_json(self.file, record)

    def rollback(self, name: str | None = None, to: str | None = None, reason: str = "") -> tuple[str, str]:
        """Serve the previous promoted version of `name` (default: the model promoted last), or the version `to`
        (one the gate promoted before). Returns (from ref, to ref)."""
        record = self.read()
        promoted = record["promoted"]
        if not promoted:
            raise RegistryError(f"nothing is promoted in {self.file}: there is nothing to roll back")
        if name is None:
            name = next((e["name"] for e in reversed(record["events"]) if e["event"] == "promote"),
                        next(iter(promoted)))
        if name not in promoted:
            raise RegistryError(f"{name!r} has no promoted version; promoted: {', '.join(sorted(promoted))}")
        current = promoted[name]
        previous = list(current.get("previous", []))
        if to is None:
            if not previous:
                raise RegistryError(f"{current['ref']} is the first promoted version of {name}: there is no earlier "
                                    "version to roll back to")
            target = previous.pop()
        else:
            target = self.registry.get(to if "@" in to else f"{name}@{to}").ref
            ever = {e["ref"] for e in record["events"] if e["event"] == "promote"}
            if target not in ever:
                before = sorted(r for r in ever if r.startswith(name + "@"))
                raise RegistryError(f"{target} was never promoted by the gate: only a promoted version may be served "
                                    f"(promoted before: {', '.join(before)})")
            if target == current["ref"]:
                raise RegistryError(f"{target} is already the served version of {name}")
            previous = [r for r in previous if r != target]
        version = self.registry.get(target)
        score = next((e["score"] for e in reversed(record["events"]) if e["ref"] == target and "score" in e), None)
        rolled = Promotion(ref=version.ref, digest=version.digest,
                           score=score if score is not None else current["score"],
                           reason=f"rollback from {current['ref']}" + (f": {reason}" if reason else ""),
                           previous=tuple(previous))
        promoted[name] = rolled.model_dump(mode="json")
        record["events"].append({"event": "rollback", "name": name, "ref": target, "from": current["ref"],
                                 "at": rolled.at, "by": rolled.by, "reason": reason})
        atomic_write_json(self.file, record)
        return current["ref"], target
