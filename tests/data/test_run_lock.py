"""One training command per run directory: a second is refused naming the holder; a holder that is gone (its
process ended, or a stale heartbeat from another machine) is taken over; the same process may nest."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from parallel_r1.cli import app
from parallel_r1.data.run_lock import LOCK_FILE, STALE_S, run_lock
from parallel_r1.errors import UserFacingError

HOLD = "from parallel_r1.data.run_lock import run_lock; import sys, time\nwith run_lock(sys.argv[1], 'finetune'):\n" \
       "    print('held', flush=True); time.sleep(60)\n"


def test_a_second_command_is_refused_naming_the_holder_and_a_dead_holder_is_taken_over(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        out = CliRunner().invoke(app, ["finetune", "--workdir", str(tmp_path)])
        assert out.exit_code == 2 and out.output.count("error:") == 1
        assert f"in use by `finetune` on {socket.gethostname()} pid {holder.pid}" in " ".join(out.output.split())
    finally:
        holder.kill()
        holder.wait()
    with run_lock(tmp_path, "rl"):  # its holder was killed: taken over
        assert json.loads((tmp_path / LOCK_FILE).read_text())["command"] == "rl"
        with run_lock(tmp_path, "finetune"):  # nested in the same process (`run` calls `finetune`)
            pass
        assert (tmp_path / LOCK_FILE).exists()
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_holder_on_another_machine_counts_until_its_heartbeat_is_stale(tmp_path):
    lock = tmp_path / LOCK_FILE
    lock.write_text(json.dumps({"host": "elsewhere", "pid": 1, "command": "run", "since": "then"}))
    with pytest.raises(UserFacingError, match="in use by `run` on elsewhere pid 1"):
        with run_lock(tmp_path, "finetune"):
            pass
    old = time.time() - STALE_S - 5
    os.utime(lock, (old, old))
    with run_lock(tmp_path, "finetune"):
        assert json.loads(lock.read_text())["host"] == socket.gethostname()

