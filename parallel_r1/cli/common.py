"""What every `parallel-r1` command shares: the Typer app, the config options, the one-line errors and the logging."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Annotated

import typer

from parallel_r1.cli import logs
from parallel_r1.config import PipelineConfig, load_config
from parallel_r1.errors import UserFacingError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Turn one tutoring model into a team of specialists, on Ray.")

log = logging.getLogger(__name__)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config (default: embedded).")]
WorkdirOpt = Annotated[Path | None, typer.Option("--workdir", "-w", help="Run directory (default: data/).")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override: section.field=value (repeatable).")]
ProfileMixOpt = Annotated[str | None, typer.Option("--profile-mix", help="Discovery weight per student profile kind, "
                                                                        "e.g. standard=1,hyperfocus=3 "
                                                                        "(discover.profile_mix).")]


def profile_mix_flag(text: str | None) -> dict[str, float] | None:
    """The `--profile-mix` flag as `discover.profile_mix` (None when not given)."""
    from parallel_r1.data.plan import parse_profile_mix

    return None if text is None else parse_profile_mix(text)


def user_errors(fn):
    """Run a command with its logging (`cli.logs`): a UserFacingError or a missing file exits 2 with one line on the
    terminal and its traceback in the log file; an unexpected exception goes to the log file too, then up."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if logs.active():  # called by another command (finetune --parallel-format): that one's logging holds
            return fn(*args, **kwargs)
        with logs.command_log(fn.__name__.removesuffix("_cmd").replace("_", "-")):  # grade_cmd: grade.log
            try:
                return fn(*args, **kwargs)
            except (UserFacingError, FileNotFoundError) as e:
                log.error("%s", e, exc_info=True)
                raise typer.Exit(2) from None
            except typer.Exit:
                raise
            except Exception:  # Python prints the traceback on the terminal as before
                log.error("unexpected error", exc_info=True, extra={"terminal": False})
                raise

    return wrapper


def _config(config: Path | None, workdir: Path | None, sets: list[str] | None, *, log_file: bool = True,
            **flags) -> PipelineConfig:
    """YAML (or embedded defaults), then --set overrides, then the command's own flags; with `log_file`, the
    command logs to <workdir>/logs/<command>.log from here on. The cards of `discover.card_dir` become known to
    every stage that looks a card up by id."""
    from parallel_r1.data.card_files import use_card_dir

    flags["workdir"] = str(workdir) if workdir else None
    cfg = load_config(config, list(sets or []), flags)
    if log_file:
        logs.to_run_directory(cfg.workdir)
    use_card_dir(cfg.discover.card_dir)
    return cfg
