"""`parallel-r1 cards`: the scenario cards discovery draws from, built in and from card files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from parallel_r1.cli.common import ConfigOpt, SetOpt, WorkdirOpt, _config, app, user_errors
from parallel_r1.console import notice, summary_table

log = logging.getLogger(__name__)


@app.command("cards")
@user_errors
def cards_cmd(
    card_dir: Annotated[Path | None, typer.Option("--card-dir", help="Folder of card files (*.yaml) to check and "
                                                                     "list (default: discover.card_dir).")] = None,
    config: ConfigOpt = None, workdir: WorkdirOpt = None, set_: SetOpt = None,
) -> None:
    """List the scenario cards (built in, then those of the card files), after checking every card file."""
    from parallel_r1.data.card_files import CARD_COLUMNS, card_rows, use_card_dir

    cfg = _config(config, workdir, set_, log_file=False,
                  **{"discover.card_dir": str(card_dir) if card_dir is not None else None})
    rows = card_rows(use_card_dir(cfg.discover.card_dir))
    notice(summary_table(f"scenario cards ({len(rows)})", CARD_COLUMNS, rows), log)
