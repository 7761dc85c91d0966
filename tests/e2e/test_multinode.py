"""The pipeline as Ray jobs on a cluster of two network hosts (`tests/support/two_nodes.py`): discover → batch →
finetune → compare submitted with the stages' job specs; discovery actors and fine-tuning workers run on both nodes
(Ray's state API), and the artifacts land in the shared run directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from parallel_r1 import jobs
from parallel_r1.data import read_dialogues
from tests.support.batches import BATCHES
from tests.support.two_nodes import TwoNodes

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def _run(cluster: TwoNodes, stage: str, run: Path, extra: list[str]) -> None:
    spec = jobs.stage_job(stage, str(run), "configs/smoke.yaml", extra)
    client, job_id = jobs.submit(spec, cluster.head.dashboard_url)
    out: list[str] = []
    status = jobs.follow(client, job_id, out.append)
    assert status == "SUCCEEDED", f"{stage}: {''.join(out)[-4000:]}"


def test_stages_as_jobs_use_both_nodes_of_a_two_host_cluster(tmp_path, tiny_base_model, capsys):
    from ray.util.state import list_actors

    run = tmp_path / "run"
    model = ["--set", f"base_model.path={tiny_base_model}"]
    with TwoNodes() as cluster:
        with capsys.disabled():
            print(f"\ntwo-node cluster: {cluster.mode} (head {cluster.head_ip}, worker {cluster.worker_ip})")
        nodes = cluster.nodes()
        assert sorted(nodes.values()) == sorted([cluster.head_ip, cluster.worker_ip]) and len(nodes) == 2
        _run(cluster, "discover", run, ["--set", "discover.num_actors=4", "--set", "discover.actor_num_cpus=1"])
        _run(cluster, "batch", run, [])
        _run(cluster, "finetune", run, ["--set", "finetune.cpus_per_worker=1", *model])
        _run(cluster, "compare", run, model)
        actors = list_actors(address=cluster.head.dashboard_url, detail=True, limit=10_000)
    placed: dict[str, set[str]] = {}
    for actor in actors:
        placed.setdefault(actor.class_name, set()).add(actor.node_id)
    assert placed.get("DiscoveryWorker") == set(nodes), placed
    train = set().union(*(ids for name, ids in placed.items() if "TrainWorker" in name))
    assert train == set(nodes), placed
    assert len(read_dialogues(run / "dialogues.parquet")) > 0
    assert {p.name for p in (run / "adapters").iterdir() if not p.name.startswith(".")} >= set(BATCHES)
    assert (run / "eval" / "results.parquet").is_file()
