"""clusters/aws-gpu.yaml as `ray up` reads it: filled with Ray's provider defaults and validated against the
cluster-config schema Ray ships (ray/autoscaler/ray-schema.json, through Ray's own `validate_config`), then the
project's rules: the rayproject image of the installed Ray on Python 3.11, our install script, the head started with
the autoscaling config and no CPUs, GPU workers autoscaled from 0, nothing heavy shipped by rsync, the shared run
directory mounted into every container."""

from __future__ import annotations

import copy
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((ROOT / "clusters" / "aws-gpu.yaml").read_text())


def _prepared(config: dict) -> dict:
    """What `ray up` validates: the config merged with the provider's defaults."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def _ray_start(commands: list[str]) -> list[str]:
    (start,) = [c for c in commands if "ray start" in c]
    argv = shlex.split(start.split(";")[-1])
    return argv[argv.index("ray"):]


def test_ray_accepts_the_config():
    prepared = _prepared(CONFIG)
    assert prepared["head_node_type"] == "head" and prepared["provider"]["type"] == "aws"


@pytest.mark.parametrize("broken", [
    {"file_mount": {"~/x": "."}},                                           # misspelled top-level key
    {"docker": {**CONFIG["docker"], "pull_before": True}},               # unknown docker key
    {"max_workers": "ten"},
])
def test_ray_rejects_a_broken_config(broken):
    with pytest.raises((jsonschema.ValidationError, ValueError)):
        _prepared({**CONFIG, **broken})


def test_every_node_runs_the_pinned_ray_image_with_our_install():
    import ray

    assert CONFIG["docker"]["image"] == f"rayproject/ray:{ray.__version__}-py311-cu128"
    assert not any("image" in t.get("docker", {}) for t in CONFIG["available_node_types"].values())
    (install,) = CONFIG["setup_commands"]
    argv = shlex.split(install)
    assert argv[:2] == ["bash", "~/parallel-r1/scripts/install.sh"] and argv[argv.index("--extra") + 1] == "gpu"
    assert "--system" in argv  # into the image's Python: the `ray` the start commands run imports parallel_r1
    assert CONFIG["file_mounts"] == {"~/parallel-r1": "."}


def test_the_head_launches_workers_and_does_no_work():
    head = _ray_start(CONFIG["head_start_ray_commands"])
    assert "--head" in head and "--autoscaling-config=~/ray_bootstrap_config.yaml" in head
    assert "--num-cpus=0" in head and CONFIG["available_node_types"]["head"]["resources"] == {"CPU": 0}
    assert "--address=$RAY_HEAD_IP:6379" in _ray_start(CONFIG["worker_start_ray_commands"])
    assert all(c == "ray stop" or "ray start" in c
               for c in CONFIG["head_start_ray_commands"] + CONFIG["worker_start_ray_commands"])


def test_gpu_workers_autoscale_from_zero():
    workers = {n: t for n, t in CONFIG["available_node_types"].items() if n != CONFIG["head_node_type"]}
    gpu = workers["gpu_worker"]
    assert gpu["node_config"]["InstanceType"].startswith(("g", "p"))
    assert all(t["min_workers"] == 0 < t["max_workers"] for t in workers.values())
    assert sum(t["max_workers"] for t in workers.values()) <= CONFIG["max_workers"]


def test_rsync_ships_no_environment_data_or_results():
    excluded = set(CONFIG["rsync_exclude"])
    assert {"/.venv", "/data", "/benchmarks/results", "/.git"} <= excluded
    assert CONFIG["rsync_filter"] == [".gitignore"]
    gitignore = (ROOT / ".gitignore").read_text().split()
    assert {".venv/", "/data/", "benchmarks/results/"} <= set(gitignore)


def test_the_shared_run_directory_is_in_every_container():
    workdir = yaml.safe_load((ROOT / "configs" / "cluster.yaml").read_text())["workdir"]
    assert workdir.startswith("/shared/")
    assert "-v /shared:/shared" in CONFIG["docker"]["run_options"]
    assert any("mkdir -p /shared" in c for c in CONFIG["initialization_commands"])
