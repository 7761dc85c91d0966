"""Terminal output shared by the stages: one console, progress bars and summary tables, and `notice` for the
status lines that also belong in the stage's log file."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterable, Sequence

from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

# Piped output (CI logs, `ray job logs`) gets a readable width instead of rich's 80-column default.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)


def notice(message: RenderableType, logger: logging.Logger | None = None) -> None:
    """Print a stage's status line (its start, a resume decision, a summary table) and record it, as plain text, at
    INFO on `logger` (default: the package's), which the CLI writes to the stage's log file."""
    console.print(message)
    logger = logger or logging.getLogger("parallel_r1")
    if logger.isEnabledFor(logging.INFO):
        logger.info("%s", plain_text(message), stacklevel=2)


def plain_text(message: RenderableType) -> str:
    """A line with its markup removed, or a table rendered 120 columns wide without colours."""
    if isinstance(message, str):
        return Text.from_markup(message).plain
    out = Console(file=io.StringIO(), width=120, color_system=None, highlight=False)
    out.print(message)
    return "\n".join(line.rstrip() for line in out.file.getvalue().rstrip("\n").splitlines())


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
