"""The cluster and job files name commands and configs that exist."""

import shlex
from pathlib import Path

import pytest
import yaml
from typer.main import get_command

from parallel_r1.cli import app
from parallel_r1.config import load_config

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = set(get_command(app).commands)


def _check_entrypoint(entrypoint: str) -> None:
    argv = shlex.split(entrypoint)
    assert argv[0] == "parallel-r1" and argv[1] in COMMANDS, entrypoint
    if "--config" in argv:
        load_config(ROOT / argv[argv.index("--config") + 1])


@pytest.mark.parametrize("spec", sorted((ROOT / "jobs").glob("*.yaml")), ids=lambda p: p.name)
def test_job_specs(spec):
    data = yaml.safe_load(spec.read_text())
    _check_entrypoint(data["entrypoint"])
    assert data["runtime_env"]["working_dir"] == "."


def test_kuberay_rayjob_and_ray_up_config():
    job = yaml.safe_load((ROOT / "clusters" / "kuberay-rayjob.yaml").read_text())
    assert job["kind"] == "RayJob"
    _check_entrypoint(job["spec"]["entrypoint"])
    up = yaml.safe_load((ROOT / "clusters" / "aws-gpu.yaml").read_text())
    assert up["head_node_type"] in up["available_node_types"]
    assert any("[gpu]" in c for c in up["setup_commands"])
