"""The demo's whole chain on configs/smoke.yaml: init-model → discover → grade → batch → finetune (six at once,
then the monolithic baseline) → compare → gate, submitted as a Ray job with jobs/run.yaml (`parallel-r1 submit run`)
to a private `ray start --head`; then, through the CLI on a Ray of its own, a rerun that redoes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from parallel_r1.cli import app
from parallel_r1.data.io import file_digest
from parallel_r1.finetune.manifest import FinetuneManifest
from parallel_r1.registry.versions import ModelRegistry
from tests.support.batches import BATCHES
from tests.support.ray_head import RayHead

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_run_goes_from_nothing_to_a_gated_comparison_and_a_rerun_redoes_nothing(ray_session, tmp_path):
    args = ["run", "--config", str(ROOT / "configs" / "smoke.yaml"), "--workdir", str(tmp_path)]
    with RayHead(num_cpus=4) as head:
        first = CliRunner().invoke(app, ["submit", "run", "--workdir", str(tmp_path), "--config", "configs/smoke.yaml",
                                         "--address", head.dashboard_url])
    assert first.exit_code == 0, first.output[-4000:]
    assert "SUCCEEDED" in first.output and "Started a local Ray instance" not in first.output
    for stage in ("discover", "batch", "init-model", "finetune", "compare", "gate"):
        assert stage in first.output
    assert "success criteria" in first.output and "decision:" in first.output
    assert "stage wall times" in first.output
    assert str(tmp_path / "eval" / "report.md") in first.output.replace("\n", "")

    jobs = FinetuneManifest(tmp_path / "finetune_manifest.json").read()
    assert sorted(jobs) == sorted([*BATCHES, "monolithic"])
    assert {j.status for j in jobs.values()} == {"succeeded"}, {n: j.error for n, j in jobs.items()}
    assert all(j.started_at <= min(k.finished_at for k in jobs.values()) for j in jobs.values())  # seven at once
    models = {r["model"] for r in pq.read_table(tmp_path / "eval" / "results.parquet").to_pylist()}
    assert models == {"base", "monolithic", *BATCHES}
    routing = json.loads((tmp_path / "eval" / "routing.json").read_text())
    assert routing["default"] in models and routing["by_profile"]
    promotion = json.loads((tmp_path / "promotion.json").read_text())
    decided = sorted(d["candidate"] for d in promotion["decisions"])
    assert decided == sorted(f"{m}@v1" for m in models - {"base"})  # every trained model, as its registered version
    versions = {v.ref for v in ModelRegistry(tmp_path).versions()}
    assert set(decided) <= versions and {p["ref"] for p in promotion["promoted"].values()} <= set(decided)
    for png in ("heatmap.png", "deltas.png"):
        assert (tmp_path / "eval" / png).stat().st_size > 1000

    replies = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "eval" / "replies").iterdir()}
    finished = {n: j.finished_at for n, j in jobs.items()}
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output[-4000:]
    assert "decided on these results" in again.output and "replies in" not in again.output
    assert "batch:" in again.output and "is up to date" in again.output.replace("\n", " ")
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "eval" / "replies").iterdir()} == replies
    assert {n: j.finished_at for n, j in FinetuneManifest(tmp_path / "finetune_manifest.json").read().items()
            } == finished
    assert len(json.loads((tmp_path / "promotion.json").read_text())["decisions"]) == len(decided)

    # Another batch seed re-cuts the batches; finetune re-runs exactly the jobs whose training file changed.
    digests = {p.stem: file_digest(p) for p in [*(tmp_path / "batches").glob("*.jsonl"),
                                                 tmp_path / "finetune" / "monolithic.jsonl"]}
    recut = CliRunner().invoke(app, [*args, "--set", "batch.seed=1"])
    assert recut.exit_code == 0, recut.output[-4000:]
    changed = {n for n, d in digests.items()
               if file_digest(tmp_path / ("finetune" if n == "monolithic" else "batches") / f"{n}.jsonl") != d}
    after = FinetuneManifest(tmp_path / "finetune_manifest.json").read()
    assert {n for n, j in after.items() if j.finished_at != finished[n]} == changed
    assert {j.status for j in after.values()} == {"succeeded"}
    registry = ModelRegistry(tmp_path)
    for name in changed:  # retraining adds a version; the earlier one stays stored
        assert registry.get(name).version == 2 and Path(registry.get(f"{name}@v1").source).is_dir()
