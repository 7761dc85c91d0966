"""The commands over the model registry: `gate` (promote), `rollback`, `models` (list)."""

from __future__ import annotations

from typing import Annotated

import typer

from parallel_r1.cli.common import ConfigOpt, SetOpt, WorkdirOpt, _config, app, user_errors
from parallel_r1.console import notice


@app.command()
@user_errors
def gate(
    candidate: Annotated[str | None, typer.Argument(help="Model to consider (default: the best compared).")] = None,
    strict: Annotated[bool, typer.Option(help="Exit 1 when no version is promoted.")] = False,
    config: ConfigOpt = None, workdir: WorkdirOpt = None, set_: SetOpt = None,
) -> None:
    """Promote each compared model's version that beats its promoted version (or the base) by the configured margin
    and passes compliance; Serve serves only promoted versions."""
    from parallel_r1.gate.stage import run_gate

    result = run_gate(_config(config, workdir, set_), candidate)
    if strict and not result.promoted:
        raise typer.Exit(1)


@app.command()
@user_errors
def rollback(
    model: Annotated[str | None, typer.Argument(help="Model name (default: the one promoted last).")] = None,
    to: Annotated[str | None, typer.Option(help="Version to serve, e.g. v2 (default: the previous promoted one).")
                  ] = None,
    reason: Annotated[str, typer.Option(help="Why, recorded in promotion.json.")] = "",
    config: ConfigOpt = None, workdir: WorkdirOpt = None, set_: SetOpt = None,
) -> None:
    """Serve the previous promoted version of a model again (a running `parallel-r1 serve` picks it up)."""
    from parallel_r1.registry.promotion import PromotionRecord

    record = PromotionRecord(_config(config, workdir, set_).workdir)
    old, new = record.rollback(model, to, reason)
    notice(f"rollback: {old} -> {new} ({record.file})")


@app.command()
@user_errors
def models(config: ConfigOpt = None, workdir: WorkdirOpt = None, set_: SetOpt = None) -> None:
    """The registry: every model version, which one is promoted (served), and the promotion history."""
    from parallel_r1.registry.report import print_registry

    print_registry(_config(config, workdir, set_, log_file=False).workdir)
