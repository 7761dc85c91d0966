"""The registry's promotion record, <workdir>/promotion.json: per model name the version that may be served, with
the score it was promoted on, and every gate decision, promotion and rollback (who, when, why). Serve serves exactly
the promoted versions (and the base model)."""

from __future__ import annotations

import getpass
import json
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path

from parallel_r1.data.io import atomic_write_json
from parallel_r1.paths import RunPaths
from parallel_r1.registry.versions import ModelRegistry, ModelVersion, RegistryError, now


def actor() -> str:
    """Who made a change: user@host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True)
class Promotion:
    """The promoted version of one model name; `previous`: the refs it replaced, latest last (what rollback
    returns to)."""

    ref: str
    digest: str
    score: float
    at: str = field(default_factory=now)
    by: str = field(default_factory=actor)
    reason: str = ""
    previous: tuple[str, ...] = ()


class PromotionRecord:
    """Reads and changes promotion.json; every change is one atomic rewrite of the file."""

    def __init__(self, workdir: Path | str):
        self.registry = ModelRegistry(workdir)
        self.file = RunPaths(Path(workdir)).promotion

    def read(self) -> dict:
        if not self.file.exists():
            return {"promoted": {}, "decisions": [], "events": []}
        try:
            record = json.loads(self.file.read_text())
            promoted = record["promoted"]
            if promoted is not None and not all(isinstance(p, dict) and "ref" in p for p in promoted.values()):
                raise ValueError("'promoted' is not a map of model name to promoted version")
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise RegistryError(f"{self.file} is not a promotion record ({type(e).__name__}: {e}); restore it from a "
                                "backup or move it aside to start over (nothing was changed)") from None
        return {"promoted": promoted or {}, "decisions": record.get("decisions", []),
                "events": record.get("events", [])}

    def promoted(self) -> dict[str, Promotion]:
        return {name: Promotion(**{**p, "previous": tuple(p.get("previous", ()))})
                for name, p in self.read()["promoted"].items()}

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
            promotion = Promotion(version.ref, version.digest, score, reason="; ".join(decision.get("reasons", [])),
                                  previous=tuple(previous))
            record["promoted"][version.name] = asdict(promotion)
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
        rolled = Promotion(version.ref, version.digest, score if score is not None else current["score"],
                           reason=f"rollback from {current['ref']}" + (f": {reason}" if reason else ""),
                           previous=tuple(previous))
        promoted[name] = asdict(rolled)
        record["events"].append({"event": "rollback", "name": name, "ref": target, "from": current["ref"],
                                 "at": rolled.at, "by": rolled.by, "reason": reason})
        atomic_write_json(self.file, record)
        return current["ref"], target
