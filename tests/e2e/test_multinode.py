"""The pipeline as Ray jobs on a cluster of two network hosts (`tests/support/two_nodes.py`): discover → batch →
finetune → compare → gate submitted with the stages' job specs; discovery actors and fine-tuning workers run on both
nodes (Ray's state API) and the artifacts land in the shared run directory; then `serve` as a job places the model
replica on the worker (its custom resource) and answers through the head's proxy."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from parallel_r1 import jobs
from parallel_r1.data import read_dialogues
from parallel_r1.registry.promotion import PromotionRecord
from tests.serve.support import free_port
from tests.support.adapters import promote
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
        nodes, head = cluster.nodes(), _head(cluster)
        assert sorted(nodes.values()) == sorted([cluster.head_ip, cluster.worker_ip]) and len(nodes) == 2
        _run(cluster, "discover", run, ["--set", "discover.num_actors=4", "--set", "discover.actor_num_cpus=1"])
        _run(cluster, "batch", run, [])
        _run(cluster, "finetune", run, ["--set", "finetune.cpus_per_worker=1", *model])
        _run(cluster, "compare", run, model)
        _run(cluster, "gate", run, [])
        if not PromotionRecord(run).served():  # the smoke run's specialists rarely win: promote one as a win would
            promote(run, "neurodivergent", run / "adapters" / "neurodivergent")
        answer, replica_nodes = _serve(cluster, run, model)
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
    worker = next(n for n in nodes if n != head)
    assert replica_nodes == {worker} and answer.status_code == 200, answer.text[-2000:]
    assert answer.json()["choices"][0]["message"]["content"] is not None


def _head(cluster: TwoNodes) -> str:
    from ray.util.state import list_nodes

    return next(n.node_id for n in list_nodes(address=cluster.head.dashboard_url) if n.is_head_node)


def _serve(cluster: TwoNodes, run: Path, model: list[str]) -> tuple[httpx.Response, set[str]]:
    """`serve` as a job, its model replica asking for the worker's `specialist` resource; one chat request through
    the head's proxy; the job stopped. Returns the answer and the nodes of the model replicas."""
    from ray.util.state import list_actors

    port = free_port()
    spec = jobs.stage_job("serve", str(run), "configs/smoke.yaml", [
        *model, "--set", f"serve.port={port}", "--set", "serve.model_resources={specialist: 1}",
        "--set", "serve.add_system_prompt=false", "--set", "serve.grading_fraction=0"])
    client, job_id = jobs.submit(spec, cluster.head.dashboard_url)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert str(client.get_job_status(job_id).value) not in jobs.TERMINAL, client.get_job_logs(job_id)[-3000:]
            time.sleep(2)
        answer = httpx.post(f"{url}/v1/chat/completions", timeout=120, json={
            "model": "parallel-r1", "max_tokens": 8, "messages": [{"role": "user", "content": "What is a loop?"}]})
        replicas = list_actors(address=cluster.head.dashboard_url, detail=True, limit=10_000,
                               filters=[("state", "=", "ALIVE")])
        nodes = {a.node_id for a in replicas if "HFSpecialists" in a.class_name}
    finally:
        client.stop_job(job_id)
        jobs.wait(client, job_id, timeout_s=120)
    return answer, nodes
