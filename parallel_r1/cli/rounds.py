"""`parallel-r1 next`: the next round of the plan's decision tree, from a run directory's compare results."""

from __future__ import annotations

import logging

from parallel_r1.cli.common import ConfigOpt, SetOpt, WorkdirOpt, _config, app, user_errors
from parallel_r1.console import notice, summary_table

log = logging.getLogger(__name__)


@app.command("next")
@user_errors
def next_cmd(config: ConfigOpt = None, workdir: WorkdirOpt = None, set_: SetOpt = None) -> None:
    """Turn compare's results and decision into next/round-N.yaml: a config overlay for `run --overlay`, with the
    reason for each change (best case: scale the winners; medium: keep them, drop the losers; worst: merge)."""
    from parallel_r1.rounds.stage import write_next_round

    path, case, changes = write_next_round(_config(config, workdir, set_), config)
    notice(summary_table(f"next round ({case}): {path}", ["setting", "why"], [(c.key, c.reason) for c in changes]),
           log)
