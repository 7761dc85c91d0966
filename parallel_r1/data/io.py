"""Atomic artifact writes: write to a temporary name in the same folder, then rename over the target."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq

from parallel_r1.errors import UserFacingError

log = logging.getLogger(__name__)

def file_digest(*paths: Path) -> str:
    """A short content hash of one file, or of several in the given order: what an artifact records of the
    input it was built from, or a cache key that changes with a model's weights."""
    digest = hashlib.sha1()
    for path in paths:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it; done once, at import, before any thread writes files
    os.umask(mask)
    return mask


UMASK = _read_umask()


def _atomic(path: Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp's 0600 would lock other users (Serve replicas) out
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    return _atomic(path, write)


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_write_jsonl(path: Path, rows: Iterable[dict]) -> Path:
    return atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def append_line(path: Path, record: dict) -> None:
    """Append one JSON line atomically with respect to other writers of the same file."""
    data = (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, data)
    finally:
        os.close(fd)  # closing releases the lock


def cached_json(path: Path) -> dict | None:
    """A JSON record a stage only compares with what it would build (a key, a done marker): None when it is missing,
    and when it cannot be read (with a warning), so the stage rebuilds instead of failing."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        log.warning("%s is unreadable (%s): rebuilding what it records", path, e)
        return None
    return found if isinstance(found, dict) else None


def read_jsonl(path: Path) -> list[dict]:
    """The rows of one of our JSONL artifacts. A last line without its newline that is not JSON (a write cut short
    by a kill) is dropped with a warning; a bad line anywhere else is a one-line error naming the file and line."""
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            if number == len(lines):
                log.warning("%s: dropped a torn last line (%d characters)", path, len(line))
                break
            raise UserFacingError(f"{path}:{number}: not JSON ({e.msg}); the file is corrupt") from None
    return rows


def jsonl_objects(path: Path, error: type[Exception]) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line of a user's JSONL file; `error` with a one-line message for
    a missing file, a line that is not JSON or not an object."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such labelled file")
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise error(f"{path}:{number}: not JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise error(f"{path}:{number}: expected a JSON object, got {type(obj).__name__}")
            yield number, obj


def atomic_write_table(path: Path, table: pa.Table) -> Path:
    return _atomic(path, lambda tmp: pq.write_table(table, tmp))


def pid_running(pid: int) -> bool:
    """Whether process `pid` runs; a zombie (dead, not yet reaped by its parent) does not."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # running, under another user
        return True


def remove_stale_partials(out_dir: Path) -> None:
    """The hidden siblings of `out_dir` that killed processes left (`.<name>.partial-<pid>` and the like: the pid in
    their name is no longer running)."""
    for path in out_dir.parent.glob(f".{out_dir.name}.*-*"):
        pid = path.name.rsplit("-", 1)[1]
        if pid.isdigit() and not pid_running(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _stale(name: str) -> bool:
    """`.<name>.tmp`, or `.<name>.<what>-<pid>` (a partial or set-aside folder) of a process that is gone."""
    if not name.startswith("."):
        return False
    if name.endswith(".tmp"):
        return True
    pid = name.rsplit("-", 1)[-1]
    return "-" in name and pid.isdigit() and not pid_running(int(pid))


def remove_stale_temps(folder: Path) -> list[str]:
    """The hidden temporary entries a killed writer left in `folder`; returns their names. Only for a folder no
    other process is writing into (one the run lock guards)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = sorted(p for p in folder.iterdir() if _stale(p.name))
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    return [p.name for p in stale]


@contextmanager
def folder_build(out_dir: Path) -> Iterator[Path]:
    """A folder written in full under a temporary sibling name, then renamed over `out_dir` (the old one removed
    only once the new one is in place); on any failure the partial folder is removed and `out_dir` is untouched."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old)
        else:
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
