"""What every `parallel-r1` command shares: the Typer app, the config options, the one-line error handling."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from parallel_r1.config import PipelineConfig, load_config
from parallel_r1.console import console
from parallel_r1.errors import UserFacingError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Turn one tutoring model into a team of specialists, on Ray.")

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config (default: embedded).")]
WorkdirOpt = Annotated[Path | None, typer.Option("--workdir", "-w", help="Run directory (default: data/).")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override: section.field=value (repeatable).")]


def user_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (UserFacingError, FileNotFoundError) as e:
            console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def _config(config: Path | None, workdir: Path | None, sets: list[str] | None, **flags) -> PipelineConfig:
    """YAML (or embedded defaults), then --set overrides, then the command's own flags."""
    flags["workdir"] = str(workdir) if workdir else None
    return load_config(config, list(sets or []), flags)
