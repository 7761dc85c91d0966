"""Ray jobs of the stages: `jobs/<stage>.yaml` is each stage's runtime env, a file `ray job submit --runtime-env`
reads as it is; `stage_job` adds the entrypoint (`parallel-r1 <stage> --workdir ...`), `submit` sends it to a
cluster's job server and `follow` streams its logs while it runs."""

from __future__ import annotations

import asyncio
import os
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from parallel_r1.config import read_yaml_mapping
from parallel_r1.config.groups import is_uri
from parallel_r1.errors import UserFacingError

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
REPO = Path(__file__).resolve().parents[1]
JOBS_DIR = REPO / "jobs"
STAGES = ("discover", "import", "grade", "batch", "init-model", "finetune", "compare", "gate", "tune", "parallel-sft",
          "rl", "monitor", "run", "serve")


@dataclass
class JobSpec:
    """What `ray job submit` needs: the command and its runtime env."""

    entrypoint: str
    runtime_env: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)


def runtime_env(stage: str, jobs_dir: Path = JOBS_DIR) -> dict:
    """The runtime env of `stage` from its file, a relative working_dir resolved against the repository (the
    folder holding `jobs/`), not the caller's directory."""
    path = jobs_dir / f"{stage}.yaml"
    if stage not in STAGES or not path.is_file():
        raise UserFacingError(f"no job spec for {stage!r} ({path}); stages: {', '.join(STAGES)}")
    env = read_yaml_mapping(path, "job spec", UserFacingError)
    wd = env.get("working_dir")
    if wd and not is_uri(wd):
        env["working_dir"] = str((jobs_dir.parent / wd).resolve())
    return env


def stage_job(stage: str, workdir: str, config: str | None = None, extra: list[str] | None = None,
              env: dict[str, str] | None = None, jobs_dir: Path = JOBS_DIR) -> JobSpec:
    """The job running `stage` on the run directory `workdir` (absolute: storage every node sees) with `config`
    (a file inside the repository, which the job gets as its working directory)."""
    if not workdir or not os.path.isabs(workdir):
        raise UserFacingError(f"--workdir must be an absolute path on storage every node sees (got {workdir!r}): a "
                              "job's own directory is a temporary copy of the repository on one node")
    argv = ["parallel-r1", stage, "--workdir", workdir]
    if config:
        inside = Path(config) if not Path(config).is_absolute() else _relative_to(Path(config), jobs_dir.parent)
        if inside is None or not (jobs_dir.parent / inside).is_file():
            raise UserFacingError(f"--config {config}: not a file inside the repository {jobs_dir.parent}, which the "
                                  "job is shipped as its working directory (give a path relative to it)")
        argv += ["--config", str(inside)]
    renv = runtime_env(stage, jobs_dir)
    renv["env_vars"] = {**renv.get("env_vars", {}), **(env or {})}
    return JobSpec(shlex.join([*argv, *(extra or [])]), renv, {"stage": stage, "workdir": workdir})


def env_vars(pairs: list[str]) -> dict[str, str]:
    """`KEY=VALUE` strings as a mapping."""
    bad = [p for p in pairs if "=" not in p or p.startswith("=")]
    if bad:
        raise UserFacingError(f"--env {bad[0]!r}: expected KEY=VALUE")
    return dict(p.split("=", 1) for p in pairs)


def _relative_to(path: Path, root: Path) -> Path | None:
    try:
        return path.resolve().relative_to(root.resolve())
    except ValueError:
        return None


def submit(spec: JobSpec, address: str) -> tuple[object, str]:
    """Submit to the job server at `address` (the dashboard URL); returns (client, job id)."""
    from ray.job_submission import JobSubmissionClient

    try:
        client = JobSubmissionClient(address)
    except (ConnectionError, RuntimeError) as e:
        raise UserFacingError(f"no Ray job server at {address}: {e}") from None
    job_id = client.submit_job(entrypoint=spec.entrypoint, runtime_env=spec.runtime_env, metadata=spec.metadata)
    return client, job_id


def follow(client, job_id: str, write: Callable[[str], None]) -> str:
    """Stream the job's logs to `write` as they come, until it ends, then Ray's reason when it did not succeed (a
    runtime env that failed to set up has no logs); returns its final status name."""
    async def tail() -> None:
        async for lines in client.tail_job_logs(job_id):
            write(lines)

    asyncio.run(tail())
    status = wait(client, job_id, timeout_s=60)
    reason = client.get_job_info(job_id).message if status != "SUCCEEDED" else None
    if reason:  # without the copy of the logs Ray appends to an entrypoint's failure
        write(f"\n{reason.split(', last available logs')[0]}\n")
    return status


def wait(client, job_id: str, timeout_s: float = 600, poll_s: float = 1.0) -> str:
    """Block until the job ends; returns its final status name."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = str(client.get_job_status(job_id).value)
        if status in TERMINAL:
            return status
        time.sleep(poll_s)
    raise TimeoutError(f"job {job_id} still running after {timeout_s} s")
