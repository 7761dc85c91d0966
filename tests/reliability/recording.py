"""The rows of the reliability table: one JSON line per test in the file named by `PARALLEL_R1_RELIABILITY_RESULTS`
(`make reliability` sets it; otherwise a file in pytest's temporary folder).

A test takes the `reliability` fixture and calls `reliability.record(...)` with what it measured; the row is
written when the test ends, with its outcome and duration, so a failed test still has its row. Outside a test
(a script, a generated schemathesis case), `Row(...)` and `append_row(path, row)` write one directly.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULTS_ENV = "PARALLEL_R1_RELIABILITY_RESULTS"

Figure = int | float | str | None


@dataclass
class Row:
    """One test's line of the table. `items` counts what the test pushed through (`unit`: dialogues, steps,
    requests...); `lost` and `duplicated` count the items missing and the items present more than once at the
    end (the goal: 0 and 0); `figures` holds measured times and latencies, e.g. {"wall s": 41.2, "p99 ms": 80}."""

    test: str
    name: str = ""  # a short label for the table; the test's name when empty
    load: str = ""
    faults: str = ""
    items: int | None = None
    unit: str = ""
    lost: int | None = None
    duplicated: int | None = None
    figures: dict[str, Figure] = field(default_factory=dict)
    outcome: str = ""  # passed / failed / error, set when the test ends
    duration_s: float | None = None  # the test's own wall time (setup, call and teardown)

    @classmethod
    def from_json(cls, data: dict) -> Row:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def append_row(path: Path | str, row: Row) -> None:
    """Append `row` as one line (one write call: rows of concurrent writers never interleave within a line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(asdict(row), sort_keys=True) + "\n")


def read_rows(path: Path | str) -> list[Row]:
    """Every row of the file, the last one of each test only (a test run twice keeps its latest row); a torn last
    line is skipped."""
    latest: dict[str, Row] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            row = Row.from_json(json.loads(line))
        except json.JSONDecodeError:
            continue
        latest.pop(row.test, None)
        latest[row.test] = row
    return list(latest.values())


def results_path(default: Path) -> Path:
    return Path(os.environ.get(RESULTS_ENV) or default)


class Recorder:
    """What the `reliability` fixture hands a test: `record(...)` sets (or updates) its row; `figure(name, value)`
    adds one measured figure."""

    def __init__(self, test: str):
        self.row = Row(test=test)
        self.recorded = False

    def record(self, *, name: str | None = None, load: str | None = None, faults: str | None = None,
               items: int | None = None, unit: str | None = None, lost: int | None = None,
               duplicated: int | None = None,
               **figures: Figure) -> Row:
        """Set the given fields (`name`: a short label for the table); keyword arguments beyond them are figures
        (`wall_s=12.5` shows as "wall s")."""
        for field_name, value in (("name", name), ("load", load), ("faults", faults), ("items", items),
                                  ("unit", unit), ("lost", lost), ("duplicated", duplicated)):
            if value is not None:
                setattr(self.row, field_name, value)
        for figure, value in figures.items():
            self.figure(figure.replace("_", " "), value)
        self.recorded = True
        return self.row

    def figure(self, name: str, value: Figure) -> None:
        self.row.figures[name] = value
        self.recorded = True
