"""The commands over served traffic: `monitor` (signals → triggers → Ray jobs) and `scoreboard` (the page)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from parallel_r1.cli.common import ConfigOpt, SetOpt, WorkdirOpt, _config, app, user_errors


@app.command()
@user_errors
def monitor(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be queued; submit nothing.")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Repeat every monitor.interval_s until interrupted.")
                     ] = False,
    job_address: Annotated[str | None, typer.Option(help="Ray job server, http://HEAD:8265 (= monitor.job_address).")
                           ] = None,
    config: ConfigOpt = None, workdir: WorkdirOpt = None, set_: SetOpt = None,
) -> None:
    """Compute each served version's signals from the online grading log and queue the retraining they call for
    as Ray jobs (deduplicated, with a cooldown; logged in monitor/triggers.jsonl)."""
    from parallel_r1.monitor.stage import run_monitor
    from parallel_r1.monitor.stage import watch as watch_loop

    cfg = _config(config, workdir, set_, **{"monitor.job_address": job_address})
    if watch:
        try:
            watch_loop(cfg, dry_run)
        except KeyboardInterrupt:
            raise typer.Exit(0) from None
    else:
        run_monitor(cfg, dry_run)


@app.command()
@user_errors
def scoreboard(
    out: Annotated[Path | None, typer.Option(help="HTML file to write (default: <workdir>/scoreboard.html).")] = None,
    config: ConfigOpt = None, workdir: WorkdirOpt = None, set_: SetOpt = None,
) -> None:
    """Write the ParallelScoreboard: online scores with the trigger thresholds, reliability, drift, compliance,
    parallel KPIs, routes, promoted versions, triggers and their jobs (Serve shows it live at /dashboard)."""
    from parallel_r1.scoreboard.stage import run_scoreboard

    run_scoreboard(_config(config, workdir, set_), out)


@app.command()
@user_errors
def guardrail(
    specialist: Annotated[str, typer.Argument(help="The specialist (batch name) whose failing replies to correct.")],
    config: ConfigOpt = None, workdir: WorkdirOpt = None, set_: SetOpt = None,
) -> None:
    """Correct the served replies of SPECIALIST that failed compliance (dismissive tone, answer dumped) and keep them
    in guardrail/SPECIALIST.jsonl, which its next fine-tune adds to its batch."""
    from parallel_r1.monitor.guardrail import build_guardrail

    build_guardrail(_config(config, workdir, set_), specialist)
