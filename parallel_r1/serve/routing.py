"""Which specialist answers a student: the routing table `compare` wrote (<workdir>/eval/routing.json) where the
winner's margin over the runner-up is significant (its CI excludes 0), else the static mapping `serve.static_routes`
(profile kind -> specialist), else the table's default, else the base model.

Only models the server actually holds are ever picked, so a table naming a model that was not deployed falls
through to the next rule instead of failing the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from parallel_r1.compare.report import read_routing_table
from parallel_r1.data.profiles import PROFILE_KINDS
from parallel_r1.errors import UserFacingError

BASE = "base"  # the base model without an adapter (the name `compare` gives it too)


@dataclass(frozen=True)
class Route:
    specialist: str
    source: str  # "routing.json" | "static" | "default"


class Router:
    """Picks a model for a profile kind among `available` (adapter names plus "base")."""

    def __init__(self, available: list[str], table: dict | None, static_routes: dict[str, str]) -> None:
        unknown = sorted(set(static_routes) - set(PROFILE_KINDS))
        if unknown:
            raise UserFacingError(f"serve.static_routes: unknown profile kind(s) {unknown}; "
                                  f"expected some of {', '.join(PROFILE_KINDS)}")
        self.available = set(available) | {BASE}
        self.table = table or {}
        self.static_routes = dict(static_routes)

    @classmethod
    def from_file(cls, path: Path, available: list[str], static_routes: dict[str, str]) -> Router:
        """The router of `path` when it exists (an error naming the file when it is not a routing table)."""
        return cls(available, read_routing_table(path), static_routes)

    def route(self, kind: str) -> Route:
        entry = (self.table.get("by_profile") or {}).get(kind, {})
        learned = entry.get("model") if entry.get("significant") else None
        if learned in self.available:
            return Route(learned, "routing.json")
        static = self.static_routes.get(kind)
        if static in self.available:
            return Route(static, "static")
        default = self.table.get("default")
        return Route(default if default in self.available else BASE, "default")

    def describe(self) -> list[tuple[str, str, str]]:
        """(profile kind, specialist, source) for every kind: the routes as a table."""
        return [(kind, (r := self.route(kind)).specialist, r.source) for kind in PROFILE_KINDS]


