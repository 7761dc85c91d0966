"""The monitor queues retraining on a real Ray job server (a private `ray start --head`): one live job per model
and action, a cooldown, every submission and outcome in the trigger log; an unreachable cluster is a one-line
error that writes nothing."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from parallel_r1.cli import app
from parallel_r1.jobs import wait
from parallel_r1.monitor.queue import TriggerLog
from tests.monitor.support import write_scores
from tests.support.adapters import promote
from tests.support.ray_head import RayHead, free_ports


@pytest.fixture()
def low_run(tmp_path):
    """A run directory whose promoted neuro@v1 scored low six times in a row (and an older v0-like history)."""
    promote(tmp_path, "neuro", "ft:gpt-4o-mini:neuro", kind="openai")
    write_scores(tmp_path / "serve" / "scores.jsonl", "neuro", "neuro@v1", [0.6] * 6)
    write_scores(tmp_path / "serve" / "scores.jsonl", "other", "other@v3", [0.2] * 6)  # not promoted: history
    return tmp_path


def _monitor(workdir, *extra):
    args = ["monitor", "--workdir", str(workdir), "--set", "monitor.commands={parallel_sft: [models]}",
            "--set", "monitor.max_std=1", "--set", "monitor.max_failure_rate=1", *extra]
    return CliRunner().invoke(app, args)


def test_dry_run_says_what_it_would_queue_and_writes_nothing(low_run):
    out = _monitor(low_run, "--dry-run")
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    assert "neuro neuro@v1 → parallel_sft: 6 evaluations in a row under 0.82; would queue (dry run)" in text
    assert "other" in text and "other@v3 →" not in text
    assert not TriggerLog(low_run).path.exists()


def test_an_unreachable_cluster_is_a_one_line_error_and_nothing_is_written(low_run):
    out = _monitor(low_run, "--job-address", f"http://127.0.0.1:{free_ports(1)[0]}")
    assert out.exit_code == 2 and out.output.count("error:") == 1 and "unreachable" in out.output
    assert not TriggerLog(low_run).path.exists()
    none = CliRunner().invoke(app, ["monitor", "--workdir", str(low_run)], env={"RAY_ADDRESS": ""})
    assert none.exit_code == 2 and "monitor.job_address" in none.output


@pytest.mark.slow
def test_a_trigger_runs_as_a_ray_job_once_per_cooldown(low_run):
    with RayHead(num_cpus=2) as head:
        first = _monitor(low_run, "--job-address", head.dashboard_url)
        assert first.exit_code == 0, first.output
        log = TriggerLog(low_run)
        [entry] = log.entries()
        assert entry.status == "SUBMITTED" and entry.action == "parallel_sft" and entry.version == "neuro@v1"
        assert entry.signals["consecutive_low"] == 6 and entry.job_id in first.output.replace("\n", "")

        again = _monitor(low_run, "--job-address", head.dashboard_url)
        assert again.exit_code == 0 and "not queued" in again.output  # still running, or cooling down
        assert [e.status for e in log.entries()].count("SUBMITTED") == 1

        from ray.job_submission import JobSubmissionClient

        client = JobSubmissionClient(head.dashboard_url)
        assert wait(client, entry.job_id, timeout_s=240) == "SUCCEEDED", client.get_job_logs(entry.job_id)[-2000:]
        assert "neuro@v1" in client.get_job_logs(entry.job_id)  # `parallel-r1 models` on this run directory
        metadata = client.get_job_info(entry.job_id).metadata
        assert metadata["model"] == "neuro" and metadata["action"] == "parallel_sft"

        third = _monitor(low_run, "--job-address", head.dashboard_url)
        assert "cooling down" in third.output
        assert log.latest_jobs()[entry.job_id].status == "SUCCEEDED"

        after = _monitor(low_run, "--job-address", head.dashboard_url, "--set", "monitor.cooldown_s=0")
        assert after.exit_code == 0 and [e.status for e in log.entries()].count("SUBMITTED") == 2
    lines = TriggerLog(low_run).path.read_text().splitlines()
    assert all(json.loads(line)["model"] == "neuro" for line in lines)
