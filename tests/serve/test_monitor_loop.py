"""The operational loop on a local Ray: Serve grades its replies online; the monitor sees a version scoring low
(the traffic is made to score low by a floor no reply of the tiny model reaches) and queues retraining as a Ray job
on a Ray head; the job trains a new version, compares it and gates it; the running router serves the promoted
version without a restart; the scoreboard at /dashboard shows all of it in headless Chromium."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from parallel_r1.jobs import wait
from parallel_r1.monitor.queue import TriggerLog
from parallel_r1.monitor.stage import run_monitor
from parallel_r1.registry.promotion import PromotionRecord
from parallel_r1.serve.schema import VERSION_HEADER
from tests.serve.support import serve_config
from tests.support.adapters import promote, random_adapter
from tests.support.batches import write_batches
from tests.support.browser import Elements, dump_dom, screenshot
from tests.support.ray_head import RayHead

pytestmark = pytest.mark.slow
NAME = "neurodivergent"
BODY = {"model": "parallel-r1", "student_profile": {"neurodivergent": True}, "max_tokens": 6,
        "messages": [{"role": "user", "content": "I lost track of the steps, where do I start?"}]}
RETRAIN = ["finetune --batches neurodivergent --force", "compare", f"gate {NAME}"]


def _loop_config(workdir, base, port, job_address):
    extra = {
        "finetune": {"epochs": 1, "per_device_batch_size": 4, "max_length": 512, "cpus_per_worker": 0.25,
                     "lora": {"r": 4, "alpha": 8}},
        "inference.max_model_len": 1024, "inference.num_engines": 1,
        "eval": {"prompts_per_slice": 2, "samples_per_prompt": 1, "max_tokens": 8, "bootstrap_samples": 100,
                 "system_prompt": "generic"},
        # the first version was promoted on a score of 0: any compliant retrained version beats it
        "gate": {"max_dismissive_rate": 1.0, "max_answer_dump_rate": 1.0, "max_pattern_density": 100.0},
        "monitor": {"score_floor": 0.99, "consecutive_low": 5, "window": 10, "max_std": 1.0, "max_failure_rate": 1.0,
                    "max_compliance_failures": 10, "job_address": job_address, "commands": {"parallel_sft": RETRAIN}},
    }
    return serve_config(workdir, base, port, app_name="loop", route_prefix="/loop", grading_fraction=1.0,
                        reload_interval_s=0.5, extra=extra)


def _wait_for_lines(path, n: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return
        time.sleep(0.2)
    raise AssertionError(f"{path} did not reach {n} lines")


def _metrics(ready, timeout_s: float = 90) -> str:
    """The Prometheus text of this session's Ray node once `ready(text)` (Ray exports every ~10 s)."""
    import ray

    url = f"http://127.0.0.1:{ray._private.worker.global_worker.node.metrics_export_port}/metrics"
    deadline, text = time.monotonic() + timeout_s, ""
    while time.monotonic() < deadline:
        text = httpx.get(url, timeout=10).text
        if ready(text):
            return text
        time.sleep(2)
    raise AssertionError(f"the router's metrics never reached {url}: "
                         f"{[line for line in text.splitlines() if 'parallel_r1' in line][:5]}")


def test_a_low_scoring_version_is_retrained_as_a_ray_job_gated_and_served(serve_port, tiny_base_model, tmp_path):
    from ray import serve
    from ray.job_submission import JobSubmissionClient

    from parallel_r1.serve.stage import start_local

    workdir = tmp_path / "run"
    write_batches(workdir, [NAME])
    promote(workdir, NAME, random_adapter(tiny_base_model, tmp_path / "v1", seed=21), score=0.0)
    with RayHead(num_cpus=2) as head:
        cfg = _loop_config(workdir, tiny_base_model, serve_port, head.dashboard_url)
        url = start_local(cfg)
        try:
            with httpx.Client(timeout=60) as http:
                for _ in range(6):
                    r = http.post(f"{url}/v1/chat/completions", json=BODY)
                    assert r.status_code == 200 and r.headers[VERSION_HEADER] == f"{NAME}@v1", r.text
            log = workdir / "serve" / "scores.jsonl"
            _wait_for_lines(log, 6)
            record = json.loads(log.read_text().splitlines()[0])
            assert record["version"] == f"{NAME}@v1" and record["history"] and record["reply"] is not None

            result = run_monitor(cfg)
            [entry] = result.queued
            assert (entry.model, entry.version, entry.action) == (NAME, f"{NAME}@v1", "parallel_sft")
            client = JobSubmissionClient(head.dashboard_url)
            status = wait(client, entry.job_id, timeout_s=540)
            assert status == "SUCCEEDED", client.get_job_logs(entry.job_id)[-4000:]

            promoted = PromotionRecord(workdir).promoted()[NAME]
            assert promoted.ref == f"{NAME}@v2"  # trained by the job, decided by the gate in it
            deadline, served = time.monotonic() + 60, None
            with httpx.Client(timeout=60) as http:
                while served != f"{NAME}@v2" and time.monotonic() < deadline:
                    r = http.post(f"{url}/v1/chat/completions", json=BODY)
                    assert r.status_code == 200, r.text
                    served = r.headers[VERSION_HEADER]
            assert served == f"{NAME}@v2"  # hot reload: the same app, no restart

            again = run_monitor(cfg)  # sees the job's end; v2 has no evaluations in a row yet
            assert not again.queued and TriggerLog(workdir).latest_jobs()[entry.job_id].status == "SUCCEEDED"
            dom = Elements(dump_dom(f"{url}/dashboard"))
            screenshot(f"{url}/dashboard", "dashboard_loop.png")
            assert dom.rows("served")[NAME][1] == f"{NAME}@v2"
            trigger = next(iter(dom.rows("triggers").values()))
            assert trigger[3] == "parallel_sft" and trigger[5:] == [entry.job_id, "SUCCEEDED"]
            assert {c["data-model"] for c in dom.find("svg", class_="chart")} == {NAME}
            assert [e[1] for e in dom.tables["events"][1:]][0] == "promote"
            exported = _metrics(lambda text: f'version="{NAME}@v2"' in text and "ray_parallel_r1_online_score" in text)
            requests = [line for line in exported.splitlines() if line.startswith("ray_parallel_r1_requests_total")]
            assert any(f'version="{NAME}@v1"' in line and 'route_source="static"' in line for line in requests)
        finally:
            serve.delete("loop")
