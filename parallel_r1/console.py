"""Terminal output shared by the stages: one console, progress bars and summary tables."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

# Piped output (CI logs, `ray job logs`) gets a readable width instead of rich's 80-column default.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console, transient=False,
    )


def summary_table(title: str, columns: Sequence[str], rows: Iterable[Sequence]) -> Table:
    rows = [[_fmt(v) for v in row] for row in rows]
    table = Table(title=title, title_justify="left")
    first = max([len(columns[0]), *(len(r[0]) for r in rows)])
    for col in columns:
        if col == columns[0]:  # the row's name is never truncated
            table.add_column(col, justify="left", no_wrap=True, min_width=first)
        else:
            table.add_column(col, justify="right")
    for row in rows:
        table.add_row(*row)
    return table


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 100 else f"{v:,.0f}"
    return str(v)
