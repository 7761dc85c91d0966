"""clusters/aws-gpu.yaml and clusters/gcp-gpu.yaml as `ray up` reads them: filled with Ray's provider defaults and
validated against the cluster-config schema Ray ships (ray/autoscaler/ray-schema.json, through Ray's own
`validate_config`), then the project's rules: the rayproject image of the installed Ray on Python 3.11, our install
script, the head started with the autoscaling config and no CPUs, GPU workers autoscaled from 0, nothing heavy shipped
by rsync, the shared run directory mounted into every container."""

from __future__ import annotations

import copy
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {p: yaml.safe_load((ROOT / "clusters" / f"{p}-gpu.yaml").read_text()) for p in ("aws", "gcp")}
CONFIG = CONFIGS["aws"]
every_config = pytest.mark.parametrize("provider", list(CONFIGS))


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


@every_config
def test_ray_accepts_the_config(provider):
    prepared = _prepared(CONFIGS[provider])
    assert prepared["head_node_type"] == "head" and prepared["provider"]["type"] == provider


@pytest.mark.parametrize("broken", [
    {"file_mount": {"~/x": "."}},                                           # misspelled top-level key
    {"docker": {**CONFIG["docker"], "pull_before": True}},               # unknown docker key
    {"max_workers": "ten"},
])
def test_ray_rejects_a_broken_config(broken):
    with pytest.raises((jsonschema.ValidationError, ValueError)):
        _prepared({**CONFIG, **broken})


@every_config
def test_every_node_runs_the_pinned_ray_image_with_our_install(provider):
    config = CONFIGS[provider]
    import ray

    assert config["docker"]["image"] == f"rayproject/ray:{ray.__version__}-py311-cu128"
    assert not any("image" in t.get("docker", {}) for t in config["available_node_types"].values())
    (install,) = config["setup_commands"]
    argv = shlex.split(install)
    assert argv[:2] == ["bash", "~/parallel-r1/scripts/install.sh"] and argv[argv.index("--extra") + 1] == "gpu"
    assert "--system" in argv  # into the image's Python: the `ray` the start commands run imports parallel_r1
    assert config["file_mounts"] == {"~/parallel-r1": "."}


@every_config
def test_the_head_launches_workers_and_does_no_work(provider):
    config = CONFIGS[provider]
    head = _ray_start(config["head_start_ray_commands"])
    assert "--head" in head and "--autoscaling-config=~/ray_bootstrap_config.yaml" in head
    assert "--num-cpus=0" in head and config["available_node_types"]["head"]["resources"] == {"CPU": 0}
    assert "--address=$RAY_HEAD_IP:6379" in _ray_start(config["worker_start_ray_commands"])
    assert all(c == "ray stop" or "ray start" in c
               for c in config["head_start_ray_commands"] + config["worker_start_ray_commands"])


@every_config
def test_gpu_workers_autoscale_from_zero(provider):
    config = CONFIGS[provider]
    workers = {n: t for n, t in config["available_node_types"].items() if n != config["head_node_type"]}
    gpu = workers["gpu_worker"]["node_config"]
    assert gpu.get("InstanceType", "").startswith(("g", "p")) or gpu.get("machineType", "").startswith(("g2-", "a2-"))
    assert all(t["min_workers"] == 0 < t["max_workers"] for t in workers.values())
    assert sum(t["max_workers"] for t in workers.values()) <= config["max_workers"]


@every_config
def test_rsync_ships_no_environment_data_or_results(provider):
    config = CONFIGS[provider]
    excluded = set(config["rsync_exclude"])
    assert {"/.venv", "/data", "/benchmarks/results", "/.git"} <= excluded
    assert config["rsync_filter"] == [".gitignore"]
    gitignore = (ROOT / ".gitignore").read_text().split()
    assert {".venv/", "/data/", "benchmarks/results/*"} <= set(gitignore)  # all but summary.json


@every_config
def test_the_shared_run_directory_is_in_every_container(provider):
    config = CONFIGS[provider]
    workdir = yaml.safe_load((ROOT / "configs" / "cluster.yaml").read_text())["workdir"]
    assert workdir.startswith("/shared/")
    assert "-v /shared:/shared" in config["docker"]["run_options"]
    assert any("mkdir -p /shared" in c for c in config["initialization_commands"])
