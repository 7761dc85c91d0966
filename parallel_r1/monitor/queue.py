"""Queueing the triggered actions as Ray jobs: one live job per model and action, a cooldown after each, and every
submission and outcome appended to the trigger log (`monitor/triggers.jsonl`: the signal values, the reason, the
job id, its status)."""

from __future__ import annotations

import json
import logging
import os
import shlex
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from parallel_r1.config import PipelineConfig
from parallel_r1.data.io import append_line
from parallel_r1.errors import UserFacingError
from parallel_r1.jobs import TERMINAL, JobSpec
from parallel_r1.monitor.triggers import Trigger
from parallel_r1.paths import RunPaths

log = logging.getLogger(__name__)

SUBMITTED = "SUBMITTED"
SUBMIT_FAILED = "SUBMIT_FAILED"


def trigger_log_path(workdir: Path | str) -> Path:
    return RunPaths(Path(workdir)).workdir / "monitor" / "triggers.jsonl"


def job_address(cfg: PipelineConfig) -> str | None:
    """The Ray job server the actions go to: `monitor.job_address`, else $RAY_API_SERVER_ADDRESS, else $RAY_ADDRESS."""
    return (cfg.monitor.job_address or os.environ.get("RAY_API_SERVER_ADDRESS")
            or os.environ.get("RAY_ADDRESS") or None)


def connect(address: str | None):
    """A job submission client for `address`; a one-line error when none is set or it cannot be reached."""
    if not address:
        raise UserFacingError("no Ray job server to queue retraining on: set monitor.job_address "
                              "(http://HEAD:8265) or RAY_ADDRESS, or use --dry-run")
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except Exception as e:  # Ray raises ConnectionError, ValueError or RuntimeError for a bad or dead address
        raise UserFacingError(f"Ray job server {address} unreachable ({type(e).__name__}: "
                              f"{' '.join(str(e).split())[:160]})") from None


@dataclass(frozen=True)
class Entry:
    """One line of the trigger log: a submission (with its trigger) or a later status of its job."""

    ts: float
    model: str
    version: str
    action: str
    status: str
    job_id: str | None = None
    reason: str = ""
    signals: dict | None = None
    error: str | None = None


class TriggerLog:
    """The append-only trigger log; the latest entry of a job is its status."""

    def __init__(self, workdir: Path | str) -> None:
        self.path = trigger_log_path(workdir)

    def entries(self) -> list[Entry]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(Entry(**json.loads(line)))
            except (ValueError, TypeError):
                continue  # a torn line from a killed writer: the other entries stand
        return out

    def append(self, entry: Entry) -> None:
        append_line(self.path, {k: v for k, v in asdict(entry).items() if v is not None})

    def latest_jobs(self) -> dict[str, Entry]:
        return latest_jobs(self.entries())


def latest_jobs(entries: list[Entry]) -> dict[str, Entry]:
    """job id -> its latest entry (its status)."""
    return {e.job_id: e for e in entries if e.job_id}


def entrypoint(cfg: PipelineConfig, trigger: Trigger, config_file: Path) -> str:
    """The shell command of an action: its parallel-r1 commands in order, each on the run's config and workdir."""
    workdir = RunPaths(cfg.workdir).workdir
    tail = f"--config {shlex.quote(str(config_file))} --workdir {shlex.quote(str(workdir))}"
    commands = [c.format(model=shlex.quote(trigger.model)) for c in cfg.monitor.commands[trigger.action]]
    return " && ".join(f"parallel-r1 {c} {tail}" for c in commands)


class JobQueue:
    """Submits triggers as Ray jobs through `client` (a JobSubmissionClient), skipping a model and action that
    has a live job or fired within the cooldown."""

    def __init__(self, cfg: PipelineConfig, client, config_file: Path) -> None:
        self.cfg, self.client, self.config_file = cfg, client, config_file
        self.log = TriggerLog(cfg.workdir)
        self.entries = self.log.entries()  # read once per pass; kept in step with what this queue appends

    def _record(self, entry: Entry) -> Entry:
        log.info("monitor: %s %s %s: job %s %s%s", entry.model, entry.version, entry.action, entry.job_id or "-",
                 entry.status, f" ({entry.error})" if entry.error else "")
        self.log.append(entry)
        self.entries.append(entry)
        return entry

    def refresh(self) -> None:
        """Ask the cluster for the status of every job not known to have ended; log each change."""
        for job_id, entry in latest_jobs(self.entries).items():
            if entry.status in TERMINAL:
                continue
            try:
                status = str(self.client.get_job_status(job_id).value)
            except Exception:  # a job the cluster forgot (a restarted head): it is not live any more
                status = "LOST"
            if status != entry.status:
                self._record(Entry(time.time(), entry.model, entry.version, entry.action, status, job_id))

    def blocked(self, trigger: Trigger, now: float) -> str | None:
        """Why this trigger is not submitted now, or None."""
        for job_id, entry in latest_jobs(self.entries).items():
            if (entry.model, entry.action) == (trigger.model, trigger.action) and \
                    entry.status not in (*TERMINAL, "LOST", SUBMIT_FAILED):
                return f"job {job_id} still {entry.status}"
        fired = [e.ts for e in self.entries
                 if (e.model, e.action, e.status) == (trigger.model, trigger.action, SUBMITTED)]
        if fired and now - max(fired) < self.cfg.monitor.cooldown_s:
            return f"cooling down ({self.cfg.monitor.cooldown_s - (now - max(fired)):.0f} s left)"
        return None

    def submit(self, trigger: Trigger) -> Entry:
        """Submit one trigger's action; the entry logged (a failed submission is logged, not raised)."""
        spec = JobSpec(entrypoint=entrypoint(self.cfg, trigger, self.config_file),
                       runtime_env=dict(self.cfg.monitor.runtime_env),
                       metadata={"model": trigger.model, "version": trigger.version, "action": trigger.action})
        base = dict(ts=time.time(), model=trigger.model, version=trigger.version, action=trigger.action,
                    reason=trigger.reason, signals=trigger.signals.to_dict())
        try:
            job_id = self.client.submit_job(entrypoint=spec.entrypoint, runtime_env=spec.runtime_env,
                                            metadata=spec.metadata)
            entry = Entry(**base, status=SUBMITTED, job_id=job_id)
        except Exception as e:
            entry = Entry(**base, status=SUBMIT_FAILED, error=" ".join(f"{type(e).__name__}: {e}".split())[:300])
        return self._record(entry)
