"""One training command per run directory at a time: `<workdir>/.run.lock` names its holder (host, pid, command) and
is refreshed by a heartbeat. A second `run`, `finetune`, `parallel-sft` or `rl` on the directory is refused naming
the holder; the lock is taken over only when its holder is gone: its process has ended (same host), or its
heartbeat is older than `STALE_S` (a holder on another machine sharing the directory)."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from parallel_r1.data.io import pid_running
from parallel_r1.errors import UserFacingError

LOCK_FILE = ".run.lock"
HEARTBEAT_S = 10.0
STALE_S = 60.0
_held: dict[Path, int] = {}  # lock path -> nesting depth in this process (`run` calls `finetune`)
_guard = threading.Lock()


def _holder(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # torn or unreadable: judged by the file's age alone


def _gone(holder: dict, path: Path) -> bool:
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return True
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
        return not pid_running(holder["pid"])
    return age > STALE_S


def _claim(path: Path, command: str) -> None:
    """Create the lock file only if none exists (O_EXCL), so two claimants cannot both win."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w") as f:
        json.dump({"host": socket.gethostname(), "pid": os.getpid(), "command": command,
                   "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, f)


@contextmanager
def run_lock(workdir: Path | str, command: str) -> Iterator[None]:
    """Hold the run directory's lock while the block runs (re-entrant within one process)."""
    path = Path(workdir).resolve() / LOCK_FILE
    with _guard:
        if path in _held:
            _held[path] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield
        finally:
            with _guard:
                _held[path] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            _claim(path, command)
            break
        except FileExistsError:
            holder = _holder(path)
            if holder is None:
                continue
            if not _gone(holder, path):
                raise UserFacingError(
                    f"{path.parent} is in use by `{holder.get('command', '?')}` on {holder.get('host', '?')} pid "
                    f"{holder.get('pid', '?')} since {holder.get('since', '?')}: wait for it to end, or stop it "
                    f"(a holder that is gone is taken over)") from None
            path.unlink(missing_ok=True)  # its holder is gone: take it over
    else:
        raise UserFacingError(f"{path}: could not take the run directory's lock; try again")
    with _guard:
        _held[path] = 1
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(path, stop), daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        with _guard:
            del _held[path]
        holder = _holder(path) or {}
        if holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
            path.unlink(missing_ok=True)


def _heartbeat(path: Path, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_S):
        try:
            os.utime(path)
        except FileNotFoundError:
            return


