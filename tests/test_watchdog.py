"""The guard that stops a dead process's helpers: an owner process (a real child of the test) starts helpers and a
`Watchdog` over them, then is killed with SIGKILL, which runs none of its code; the helpers must stop all the same,
and stay when the owner released the guard first."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]

OWNER = textwrap.dedent("""
    import json, subprocess, sys, time
    from parallel_r1.watchdog import Watchdog

    spec = json.loads(sys.argv[1])
    helpers = [subprocess.Popen(["sh", "-c", command], start_new_session=spec["group"])
               for command in spec["commands"]]
    pids = [p.pid for p in helpers]
    guard = Watchdog(pids=[] if spec["group"] else pids, groups=pids if spec["group"] else [],
                     grace_s=spec["grace_s"])
    guard_pid = guard.pid
    if spec["release"]:
        guard.release()
    time.sleep(0.5)  # the sh helpers have started their own children by now
    tree = [c.pid for p in helpers for c in __import__("psutil").Process(p.pid).children(recursive=True)]
    print(json.dumps({"helpers": pids + tree, "guard": guard_pid}), flush=True)
    time.sleep(600)
""")


def start_owner(commands: list[str], *, group: bool = False, release: bool = False, grace_s: float = 5.0):
    spec = json.dumps({"commands": commands, "group": group, "release": release, "grace_s": grace_s})
    owner = subprocess.Popen([sys.executable, "-c", OWNER, spec], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = owner.stdout.readline()
    assert line, f"the owner exited with {owner.wait()}"
    return owner, json.loads(line)


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_gone(pids: list[int], timeout: float = 20.0) -> list[int]:
    """The pids still running after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while (left := [pid for pid in pids if running(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.fixture
def cleanup():
    pids: list[int] = []
    yield pids
    for pid in pids:
        if running(pid):
            os.kill(pid, signal.SIGKILL)


def test_the_helpers_and_what_they_started_stop_when_the_owner_is_killed(cleanup):
    owner, started = start_owner(["sleep 600 & sleep 600", "sleep 600"])
    cleanup.extend(started["helpers"])
    assert len(started["helpers"]) == 5 and all(map(running, started["helpers"]))
    assert os.getsid(started["guard"]) != os.getsid(owner.pid)  # Ctrl-C to the owner's group leaves the guard
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    assert wait_gone(started["helpers"]) == []
    assert wait_gone([started["guard"]]) == []


def test_a_helper_that_ignores_sigterm_gets_sigkill_after_the_grace(cleanup):
    owner, started = start_owner(["trap '' TERM; while true; do sleep 0.1; done"], grace_s=1.0)
    cleanup.extend(started["helpers"])
    owner.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    assert wait_gone(started["helpers"][:1]) == []
    assert 0.9 < time.monotonic() - killed < 15


def test_a_process_group_is_stopped_whole(cleanup):
    owner, started = start_owner(["sleep 600 & sleep 600 & wait"], group=True)
    cleanup.extend(started["helpers"])
    group = started["helpers"][0]
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    assert wait_gone(started["helpers"]) == []
    deadline = time.monotonic() + 20  # until init has reaped the group's zombies
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"process group {group} still exists")


def test_released_helpers_are_left_alone(cleanup):
    owner, started = start_owner(["sleep 600"], release=True)
    cleanup.extend(started["helpers"])
    assert not running(started["guard"])  # the guard exited at the release
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    time.sleep(1)
    assert all(map(running, started["helpers"]))
