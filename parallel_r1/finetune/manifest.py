"""`finetune_manifest.json`: one entry per fine-tuning job, whatever its backend.

Every update is a locked read-modify-write followed by an atomic rename, so readers (`watch`,
`check`) always see a whole file while jobs run, and concurrent owners never lose each other's edits.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path

from parallel_r1.data.io import atomic_write_json
from parallel_r1.errors import UserFacingError

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL = {"succeeded", "failed", "cancelled"}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class FinetuneJob:
    name: str  # the batch name, or "monolithic"
    backend: str  # "ray" | "openai"
    batches: list[str]
    status: str = "queued"
    training_file: str = ""  # local JSONL path (ray) or uploaded file id (openai)
    training_file_path: str = ""
    training_digest: str | None = None  # the training file's content hash when the job was created (None: unknown)
    job_id: str | None = None
    result: str | None = None  # adapter folder (ray) or fine-tuned model id (openai)
    metrics: dict = field(default_factory=dict)
    error: str | None = None
    attempts: int = 0
    checkpoint: str | None = None  # last checkpoint to resume from
    init_adapter: str | None = None  # the adapter a specialist continued from (finetune.specialise_from), or None
    owner: str | None = None  # "host:pid" of the process running a Ray job, to notice when it is gone
    created_at: str = field(default_factory=now)
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: str = field(default_factory=now)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"job {self.name}: unknown status {self.status!r}; expected one of {STATUSES}")

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def owner_gone(self) -> bool:
        """A running job whose owning process on this host no longer exists (killed, crashed)."""
        if self.status != "running" or not self.owner:
            return False
        host, _, pid = self.owner.rpartition(":")
        if host != socket.gethostname():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


class FinetuneManifest:
    def __init__(self, path: Path):
        self.path = Path(path)

    def read(self) -> dict[str, FinetuneJob]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
            known = {f.name for f in fields(FinetuneJob)}
            return {name: FinetuneJob(**{k: v for k, v in job.items() if k in known})
                    for name, job in data["jobs"].items()}
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise UserFacingError(f"{self.path} is not a valid fine-tune manifest: {e}") from None

    def require(self) -> dict[str, FinetuneJob]:
        jobs = self.read()
        if not jobs:
            raise FileNotFoundError(f"{self.path} not found or empty: run `parallel-r1 finetune` first")
        return jobs

    @contextmanager
    def _locked(self) -> Iterator[dict[str, FinetuneJob]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            jobs = self.read()
            yield jobs
            atomic_write_json(self.path, {"jobs": {n: asdict(j) for n, j in sorted(jobs.items())}})

    def put(self, job: FinetuneJob) -> FinetuneJob:
        with self._locked() as jobs:
            job.updated_at = now()
            jobs[job.name] = job
        return job

    def mark_orphans(self) -> list[str]:
        """Running jobs whose owner process is gone become failed, with how to resume them."""
        orphans = {n: j.owner for n, j in self.read().items() if j.owner_gone()}
        for name, owner in orphans.items():
            self.update(name, status="failed", error=f"its process ({owner}) is gone; run `parallel-r1 "
                                                     "finetune` again to resume from the last checkpoint")
        return list(orphans)

    def update(self, name: str, **changes) -> FinetuneJob:
        """Change fields of one job; moving to running / a terminal status stamps the time."""
        with self._locked() as jobs:
            if name not in jobs:
                raise KeyError(f"no job {name!r} in {self.path}")
            job = jobs[name]
            for key, value in changes.items():
                if not hasattr(job, key):
                    raise AttributeError(f"FinetuneJob has no field {key!r}")
                setattr(job, key, value)
            if changes.get("status") == "running" and not job.started_at:
                job.started_at = now()
            if changes.get("status") in TERMINAL:
                job.finished_at = now()
            job.__post_init__()
            job.updated_at = now()
        return job
