"""Ray job specs (`jobs/*.yaml`: entrypoint + runtime_env) and their submission to a cluster."""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from parallel_r1.errors import UserFacingError

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


@dataclass
class JobSpec:
    entrypoint: str
    runtime_env: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | str) -> JobSpec:
        path = Path(path)
        if not path.exists():
            raise UserFacingError(f"job spec {path} not found")
        data = yaml.safe_load(path.read_text()) or {}
        unknown = set(data) - {"entrypoint", "runtime_env", "metadata"}
        if unknown or "entrypoint" not in data:
            raise UserFacingError(f"job spec {path}: needs 'entrypoint'; unknown keys: {sorted(unknown)}")
        spec = cls(entrypoint=data["entrypoint"], runtime_env=data.get("runtime_env") or {},
                   metadata={str(k): str(v) for k, v in (data.get("metadata") or {}).items()})
        wd = spec.runtime_env.get("working_dir")
        if wd and "://" not in wd:  # like `ray job submit --working-dir`: relative to the current directory
            spec.runtime_env["working_dir"] = str(Path(wd).resolve())
        return spec

    def with_overrides(self, env: dict[str, str] | None = None, extra_args: list[str] | None = None) -> JobSpec:
        runtime_env = {**self.runtime_env, "env_vars": {**self.runtime_env.get("env_vars", {}), **(env or {})}}
        entrypoint = " ".join([self.entrypoint, *map(shlex.quote, extra_args or [])])
        return JobSpec(entrypoint=entrypoint, runtime_env=runtime_env, metadata=dict(self.metadata))


def submit(spec: JobSpec, address: str) -> tuple[object, str]:
    """Submit to the job server at `address` (the dashboard URL); returns (client, job id)."""
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(address)
    job_id = client.submit_job(entrypoint=spec.entrypoint, runtime_env=spec.runtime_env, metadata=spec.metadata)
    return client, job_id


def wait(client, job_id: str, timeout_s: float = 600, poll_s: float = 1.0) -> str:
    """Block until the job ends; returns its final status name."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = str(client.get_job_status(job_id).value)
        if status in TERMINAL:
            return status
        time.sleep(poll_s)
    raise TimeoutError(f"job {job_id} still running after {timeout_s} s")
