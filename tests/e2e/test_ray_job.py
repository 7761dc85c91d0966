"""Stages as Ray jobs on a private `ray start --head`: `parallel-r1 submit STAGE` with the stage's runtime env from
jobs/, its logs streamed while it runs, and its exit status returned."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from parallel_r1.cli import app
from parallel_r1.data import read_dialogues
from tests.support.ray_head import RayHead

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_submit_runs_a_stage_on_a_ray_cluster_and_returns_its_status(tmp_path):
    run = tmp_path / "run"
    with RayHead(num_cpus=4) as head:
        ok = CliRunner().invoke(app, ["submit", "discover", "--workdir", str(run), "--address", head.dashboard_url,
                                      "--config", "configs/demo.yaml", "--", "24", "--set", "discover.num_actors=2"])
        failed = CliRunner().invoke(app, ["submit", "batch", "--workdir", str(tmp_path / "empty"),
                                          "--address", head.dashboard_url])
        gcs = head.gcs_address
    assert ok.exit_code == 0, ok.output[-3000:]
    dialogues = read_dialogues(run / "dialogues.parquet")
    assert len(dialogues) == 24 and len({d.dialogue_id for d in dialogues}) == 24
    assert all(d.score is not None for d in dialogues)
    # the job's own output came through (streamed), and it joined the cluster rather than starting a Ray of its own
    assert "discover" in ok.output and "SUCCEEDED" in ok.output and "Started a local Ray instance" not in ok.output
    assert f":{gcs.rsplit(':', 1)[1]} (" in ok.output
    assert failed.exit_code == 1 and "FAILED" in failed.output and "dialogues" in failed.output
