"""A guard process that stops another process's helpers (vLLM's engine processes, a managed server's process group)
when that process dies without stopping them: SIGKILL, the OOM killer, or SIGTERM under Python's default handler,
which skips every `finally`. The owner holds a pipe to the guard; the guard acts when the pipe closes without a
release, so it needs nothing from the owner at the moment it dies.

Run by `Watchdog`; by hand: `python -m parallel_r1.watchdog [--grace S] [--group PGID]... [PID]...`, then close
its stdin (write `release` first to leave the targets alone).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import suppress

import psutil

RELEASE = b"release\n"


class Watchdog:
    """Guards `pids` (each with the processes under it) and the process groups `groups` of this process: they get
    SIGTERM, then SIGKILL after `grace_s`, once this process is gone, unless `release()` was called first."""

    def __init__(self, pids: Sequence[int] = (), groups: Sequence[int] = (), grace_s: float = 10.0) -> None:
        command = [sys.executable, "-m", "parallel_r1.watchdog", "--grace", str(grace_s),
                   *(arg for pgid in groups for arg in ("--group", str(pgid))), *map(str, pids)]
        # its own session: Ctrl-C or a signal to this process group must not stop the guard before the owner
        self._proc: subprocess.Popen | None = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True)

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def release(self) -> None:
        """The owner stops its helpers itself (or already has): the guard exits and leaves them; idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with suppress(BrokenPipeError):  # the guard is gone already
            proc.stdin.write(RELEASE)
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def stop_processes(processes: list[psutil.Process], groups: list[int], grace_s: float) -> bool:
    """SIGTERM to the still-running `processes` and everything under them and to `groups`, SIGKILL to what is left
    after `grace_s`; whether all of it ended. A child of this process among `processes` is reaped."""
    alive = [p for p in processes if p.is_running()]  # is_running compares start times: a reused PID is not ours
    tree = {p.pid: p for p in alive}
    for p in alive:
        with suppress(psutil.Error):
            tree.update((c.pid, c) for c in p.children(recursive=True))
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        deadline = time.monotonic() + wait_s
        for p in tree.values():
            with suppress(psutil.Error):
                p.send_signal(sig)
        for pgid in groups:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
        _, still = psutil.wait_procs(list(tree.values()), timeout=wait_s)
        tree = {p.pid: p for p in still}
        groups = [g for g in groups if _group_alive(g, max(0.0, deadline - time.monotonic()))]
        if not tree and not groups:
            return True
    return False


def _group_alive(pgid: int, wait_s: float) -> bool:
    """Whether the process group still has a process of ours after waiting up to `wait_s` seconds for it to end."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pids", type=int, nargs="*", help="processes to stop, with the processes under them")
    parser.add_argument("--group", type=int, action="append", default=[], help="a process group to stop")
    parser.add_argument("--grace", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    processes = []
    for pid in args.pids:
        with suppress(psutil.NoSuchProcess):
            processes.append(psutil.Process(pid))  # remembers the start time, against PID reuse
    message = sys.stdin.buffer.read()  # until the owner closes the pipe, or dies
    if message != RELEASE:
        stop_processes(processes, args.group, args.grace)


if __name__ == "__main__":
    main()
