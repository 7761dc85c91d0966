"""Every stage has a Ray job spec that `ray job submit --runtime-env` reads as it is, and `parallel-r1 submit`
builds the stage's job from it: an absolute shared workdir required, a config inside the repository, the working
directory resolved against the repository wherever it is called from."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml
from typer.main import get_command

from parallel_r1 import jobs
from parallel_r1.cli import app
from parallel_r1.errors import UserFacingError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("stage", jobs.STAGES)
def test_every_stage_has_a_runtime_env_ray_accepts(stage):
    from ray.runtime_env import RuntimeEnv

    data = yaml.safe_load((ROOT / "jobs" / f"{stage}.yaml").read_text())
    assert set(data) <= RuntimeEnv.known_fields  # Ray ignores (and so would silently drop) any other key
    RuntimeEnv(**data)  # Ray's own validation of the fields' values
    assert data["working_dir"] == "." and "/.venv" in data["excludes"] and "/data" in data["excludes"]
    assert not {"data", "*/data", "**/data"} & set(data["excludes"])  # would drop package data (profiles/data)
    assert stage in get_command(app).commands
    assert f"--runtime-env jobs/{stage}.yaml" in (ROOT / "jobs" / f"{stage}.yaml").read_text()


def test_no_spec_file_names_a_stage_that_is_not_listed():
    assert sorted(p.stem for p in (ROOT / "jobs").glob("*.yaml")) == sorted(jobs.STAGES)


def test_a_stage_job_runs_the_stage_on_the_shared_workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the repository: the working_dir is still the repository
    spec = jobs.stage_job("finetune", "/shared/run 1", "configs/demo.yaml", ["--set", "finetune.epochs=1"],
                          {"HF_HUB_OFFLINE": "1"})
    assert shlex.split(spec.entrypoint) == ["parallel-r1", "finetune", "--workdir", "/shared/run 1", "--config",
                                            "configs/demo.yaml", "--set", "finetune.epochs=1"]
    assert spec.runtime_env["working_dir"] == str(ROOT)
    assert spec.runtime_env["env_vars"] == {"PYTHONUNBUFFERED": "1", "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
                                            "HF_HUB_OFFLINE": "1"}
    absolute = jobs.stage_job("batch", "/shared/run", str(ROOT / "configs" / "demo.yaml"))
    assert "--config configs/demo.yaml" in absolute.entrypoint


@pytest.mark.parametrize(("args", "message"), [
    (("finetune", ""), "--workdir must be an absolute path"),
    (("finetune", "data/run"), "--workdir must be an absolute path"),
    (("finetune", "/shared/run", "/etc/hostname"), "not a file inside the repository"),
    (("finetune", "/shared/run", "configs/nope.yaml"), "not a file inside the repository"),
    (("watch", "/shared/run"), "no job spec for 'watch'"),
])
def test_bad_submissions_are_clear_errors(args, message):
    with pytest.raises(UserFacingError, match=message):
        jobs.stage_job(*args)


def test_env_pairs():
    assert jobs.env_vars(["A=1", "B=x=y"]) == {"A": "1", "B": "x=y"}
    with pytest.raises(UserFacingError, match="KEY=VALUE"):
        jobs.env_vars(["A"])
