"""Run a `parallel-r1` command as its own process group and SIGKILL its whole process tree (the CLI, the local Ray it
started, the Ray Train workers) at once, at a chosen moment: what a crashed machine leaves behind. Killing the CLI's
group alone is not enough: Ray's worker processes outlive their driver for a few seconds and go on training."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def cli_env() -> dict[str, str]:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)  # its own local Ray, never one found on the machine
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "parallel_r1.cli", *args]


def start(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(args, env=cli_env(), start_new_session=True, stdout=out, stderr=subprocess.STDOUT)


def kill_tree(proc: subprocess.Popen, wait_s: float = 30.0) -> None:
    """SIGKILL `proc`, its process group and every descendant at once; return when all of them are gone."""
    import psutil

    try:
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    for p in tree:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    _, alive = psutil.wait_procs(tree, timeout=wait_s)
    assert not alive, f"still running {wait_s:.0f} s after SIGKILL: {alive}"


def kill_when(proc: subprocess.Popen, ready: Callable[[], object], deadline_s: float, what: str) -> object:
    """Poll `ready()` until it returns something truthy, then SIGKILL `proc`'s process tree (`kill_tree`); returns
    that value. Fails when the process ends first or `deadline_s` passes."""
    deadline = time.monotonic() + deadline_s
    try:
        while True:
            found = ready()
            if found:
                kill_tree(proc)
                return found
            if proc.poll() is not None:
                raise AssertionError(f"the process ended (exit {proc.returncode}) before {what}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {deadline_s:.0f} s")
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            kill_tree(proc)


def finish(args: list[str], log: Path, timeout_s: float) -> subprocess.CompletedProcess:
    """Run to the end (bounded); the output goes to `log`, whose tail is in the assertion message on failure."""
    proc = start(args, log)
    try:
        proc.wait(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            kill_tree(proc)
    assert proc.returncode == 0, log.read_text(errors="replace")[-4000:]
    return subprocess.CompletedProcess(args, proc.returncode)
