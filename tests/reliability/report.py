"""Print the reliability table from the rows the suite recorded (`make reliability` runs it after the tests).

    python tests/reliability/report.py [RESULTS.jsonl] [--markdown OUT.md]

RESULTS defaults to $PARALLEL_R1_RELIABILITY_RESULTS. Every number comes from the rows: what each test measured.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere

from rich.table import Table  # noqa: E402

from parallel_r1.console import console  # noqa: E402
from tests.reliability.recording import RESULTS_ENV, Row, read_rows  # noqa: E402

# (header, share of the width, justify): text columns wrap, counts stay right-aligned
COLUMNS = [("test", 3, "left"), ("load", 3, "left"), ("faults injected", 5, "left"), ("items", 2, "right"),
           ("lost", 0, "right"), ("duplicated", 0, "right"), ("time / latency", 3, "left"), ("result", 2, "left")]


def _number(value) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _name(row: Row) -> str:
    return row.name or row.test.removeprefix("test_").replace("_", " ")


def cells(row: Row) -> list[str]:
    """The row's cells as text: items with their unit, figures as `name value` joined by commas, the outcome with
    the test's duration."""
    items = f"{_number(row.items)} {row.unit}".strip() if row.items is not None else (row.unit or "-")
    figures = ", ".join(f"{name} {_number(value)}" for name, value in row.figures.items() if value is not None)
    result = row.outcome or "?"
    if row.duration_s is not None:
        result += f" ({_number(row.duration_s)} s)"
    return [_name(row), row.load or "-", row.faults or "-", items,
            "-" if row.lost is None else _number(row.lost),
            "-" if row.duplicated is None else _number(row.duplicated), figures or "-", result]


def markdown(rows: list[Row]) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(c[0] for c in COLUMNS) + " |",
             "|" + "".join("---:|" if c[2] == "right" else "---|" for c in COLUMNS)]
    lines += ["| " + " | ".join(esc(c) for c in cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def summary(rows: list[Row]) -> str:
    lost = sum(r.lost or 0 for r in rows)
    duplicated = sum(r.duplicated or 0 for r in rows)
    passed = sum(r.outcome == "passed" for r in rows)
    total_s = sum(r.duration_s or 0.0 for r in rows)
    return (f"{len(rows)} tests, {passed} passed; lost {lost}, duplicated {duplicated}; "
            f"{total_s:,.0f} s in the tests")


def table(rows: list[Row]) -> Table:
    """The rows as a rich table the width of the console, in the style of the stages' summary tables."""
    out = Table(title="reliability (every number measured in this run)", title_justify="left", expand=True,
                caption=summary(rows), caption_justify="left")
    for header, ratio, justify in COLUMNS:
        if ratio == 0:  # the lost / duplicated counts: as wide as their header, never wrapped
            out.add_column(header, justify=justify, no_wrap=True, width=max(len(header), 5))
        else:
            out.add_column(header, ratio=ratio, justify=justify, overflow="fold", min_width=9)
    for row in rows:
        out.add_row(*cells(row))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default=os.environ.get(RESULTS_ENV),
                        help=f"the rows (default: ${RESULTS_ENV})")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown to this file")
    args = parser.parse_args(argv)
    if not args.results or not Path(args.results).exists():
        print(f"reliability: no results at {args.results or '$' + RESULTS_ENV}: run the suite first "
              "(make reliability)", file=sys.stderr)
        return 1
    rows = read_rows(args.results)
    console.print(table(rows))
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(rows) + "\n" + summary(rows) + "\n", encoding="utf-8")
        console.print(f"reliability: Markdown table in {args.markdown}")
    return 0 if rows and all(r.outcome == "passed" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
