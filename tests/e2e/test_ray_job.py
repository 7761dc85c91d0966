"""Discovery as a Ray job: a private `ray start --head`, the job spec in jobs/, Ray's submission client."""

from pathlib import Path

import pytest

from parallel_r1.data import read_dialogues
from parallel_r1.jobs import JobSpec, submit, wait
from tests.support.ray_head import RayHead

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_discover_job_spec_runs_on_a_ray_cluster(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    spec = JobSpec.load(ROOT / "jobs" / "discover.yaml").with_overrides(
        env={"PARALLEL_R1_WORKDIR": str(tmp_path / "run")},
        extra_args=["--set", "discover.n=24", "--set", "discover.num_actors=2"],
    )
    assert spec.runtime_env["working_dir"] == str(ROOT)
    with RayHead(num_cpus=4) as head:
        client, job_id = submit(spec, head.dashboard_url)
        status = wait(client, job_id, timeout_s=300)
        logs = client.get_job_logs(job_id)
        gcs = head.gcs_address
    assert status == "SUCCEEDED", logs[-3000:]
    dialogues = read_dialogues(tmp_path / "run" / "dialogues.parquet")
    assert len(dialogues) == 24 and len({d.dialogue_id for d in dialogues}) == 24
    assert all(d.score is not None for d in dialogues)
    # It joined the cluster it was submitted to rather than starting a Ray of its own.
    assert "Started a local Ray instance" not in logs and f":{gcs.rsplit(':', 1)[1]} (" in logs


def test_job_spec_errors_are_clear(tmp_path):
    from parallel_r1.errors import UserFacingError

    with pytest.raises(UserFacingError, match="not found"):
        JobSpec.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("entry: x\n")
    with pytest.raises(UserFacingError, match="entrypoint"):
        JobSpec.load(bad)
