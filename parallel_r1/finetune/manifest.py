"""`finetune_manifest.json`: one entry per fine-tuning job, whatever its backend.

Every update is a locked read-modify-write followed by an atomic rename, so readers (`watch`,
`check`) always see a whole file while jobs run, and concurrent owners never lose each other's edits.
"""

from __future__ import annotations

import fcntl
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, ValidationError

from parallel_r1.data.io import atomic_write_json, pid_running
from parallel_r1.data.records import Record, problem, read_record

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL = {"succeeded", "failed", "cancelled"}
REMEDY = ("move it aside and re-run `parallel-r1 finetune` (jobs retrain; their checkpoints under ray_results/ "
          "are kept)")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class FinetuneJob(Record):
    """One fine-tuning job of the manifest; every change is validated (a bad status is an error where it is set)."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    name: str = Field(description='The batch name, or "monolithic".')
    backend: Literal["ray", "openai"] = Field(description="Where the job runs.")
    batches: list[str] = Field(description="The batches whose dialogues it trains on.")
    status: Literal[STATUSES] = Field("queued", description="queued, running, succeeded, failed or cancelled.")
    training_file: str = Field("", description="Local JSONL path (ray) or uploaded file id (openai).")
    training_file_path: str = Field("", description="The local training file.")
    training_digest: str | None = Field(None, description="The training file's content hash when the job was "
                                                          "created (None: unknown).")
    job_id: str | None = Field(None, description="The Ray Train run name or the OpenAI job id.")
    result: str | None = Field(None, description="Adapter folder (ray) or fine-tuned model id (openai).")
    metrics: dict = Field(default_factory=dict, description="Training metrics of the finished job.")
    error: str | None = Field(None, description="Why it failed, in one line.")
    attempts: int = Field(0, ge=0, description="How many times it was launched.")
    checkpoint: str | None = Field(None, description="Last checkpoint to resume from.")
    init_adapter: str | None = Field(None, description="The adapter a specialist continued from "
                                                       "(finetune.specialise_from), or None.")
    owner: str | None = Field(None, description='"host:pid" of the process running a Ray job, to notice when it '
                                                "is gone.")
    created_at: str = Field(default_factory=now, description="When the entry was made (UTC, ISO 8601).")
    started_at: str | None = Field(None, description="When it last started running.")
    finished_at: str | None = Field(None, description="When it last reached a terminal status.")
    updated_at: str = Field(default_factory=now, description="When the entry last changed.")

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
        return not pid_running(int(pid))


class ManifestFile(Record):
    """The shape of `finetune_manifest.json`."""

    jobs: dict[str, FinetuneJob] = Field(description="Every job, by name.")


class FinetuneManifest:
    def __init__(self, path: Path):
        self.path = Path(path)

    def read(self) -> dict[str, FinetuneJob]:
        """Every job by name; a truncated or malformed manifest is a one-line error naming the file and field."""
        if not self.path.exists():
            return {}
        return read_record(self.path, ManifestFile, REMEDY).jobs

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
            atomic_write_json(self.path, ManifestFile(jobs=dict(sorted(jobs.items()))).model_dump(mode="json"))

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
                if key not in FinetuneJob.model_fields:
                    raise AttributeError(f"FinetuneJob has no field {key!r}")
                try:
                    setattr(job, key, value)  # validated: nothing is written when a value is wrong
                except ValidationError as e:
                    raise ValueError(f"job {name}: {problem(e)}") from None
            if changes.get("status") == "running" and not job.started_at:
                job.started_at = now()
            if changes.get("status") in TERMINAL:
                job.finished_at = now()
            job.updated_at = now()
        return job
