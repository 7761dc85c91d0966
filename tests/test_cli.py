"""The CLI is thin: user errors exit 2 with one line; finetune → watch/check over the OpenAI backend."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from parallel_r1.cli import app
from parallel_r1.finetune.manifest import FinetuneManifest
from tests.fakes.openai_ft_server import FAIL_MARKER, FakeFineTuningServer
from tests.support.batches import BATCHES, write_batches

runner = CliRunner()


def test_bad_config_field_exits_2_naming_the_field(tmp_path):
    result = runner.invoke(app, ["config", "--set", "discover.num_actor=3"])
    assert result.exit_code == 2
    assert "discover.num_actor: unknown field" in result.output and "Traceback" not in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("batch:\n  quality_floor: high\n")
    result = runner.invoke(app, ["batch", "--config", str(bad)])
    assert result.exit_code == 2 and "batch.quality_floor" in result.output


def test_missing_artifacts_exit_2_naming_the_stage(tmp_path):
    for cmd, hint in (["batch"], "parallel-r1 discover"), (["grade"], "parallel-r1 discover"), \
            (["finetune"], "parallel-r1 batch"), (["check"], "parallel-r1 finetune"):
        result = runner.invoke(app, [*cmd, "--workdir", str(tmp_path)])
        assert result.exit_code == 2, (cmd, result.output)
        assert hint in result.output and "Traceback" not in result.output


def test_config_prints_the_resolved_yaml():
    result = runner.invoke(app, ["config", "--set", "discover.n=7"])
    assert result.exit_code == 0 and "n: 7" in result.output


def test_flags_are_named_after_the_fields_they_set_and_keep_their_old_names(tmp_path, monkeypatch):
    import parallel_r1.base_model.stage as base_model
    import parallel_r1.discover.stage as discover
    import parallel_r1.rl.stage as rl

    seen = []

    def stop(section):  # record the section the command set, then end it before any work
        seen.append(section)
        raise FileNotFoundError("stopped")

    monkeypatch.setattr(discover, "run_discover", lambda cfg: stop(cfg.discover))
    monkeypatch.setattr(rl, "run_rl", lambda cfg, model, force, restart: stop(cfg.rl))
    monkeypatch.setattr(base_model, "init_base_model", lambda cfg, out, force: stop(cfg))
    for new, old in ((["--num-actors", "3", "--max-in-flight", "5"], ["--actors", "3", "--in-flight", "5"]),
                     (["--max-steps", "7", "--rollout-backend", "hf"], ["--steps", "7", "--rollouts", "hf"]),
                     (["--source", "smollm2-135m-instruct"], ["--from", "smollm2-135m-instruct"])):
        command = {"--num-actors": "discover", "--max-steps": "rl", "--source": "init-model"}[new[0]]
        for flags in (new, old):
            assert runner.invoke(app, [command, "-w", str(tmp_path), *flags]).exit_code == 2
        assert seen[-2] == seen[-1]
    assert (seen[0].num_actors, seen[0].max_in_flight, seen[2].max_steps, seen[2].rollout_backend,
            seen[4].source) == (3, 5, 7, "hf", "smollm2-135m-instruct")


def test_openai_finetune_then_watch_and_check(tmp_path, monkeypatch):
    write_batches(tmp_path, per_batch=10)
    bad = tmp_path / "batches" / "prior_trauma_recovery.jsonl"
    rows = [json.loads(line) for line in bad.read_text().splitlines()]
    rows[0]["messages"][-1]["content"] += f" {FAIL_MARKER}"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with FakeFineTuningServer(running_polls=2) as server:
        common = ["--workdir", str(tmp_path), "--set", f"finetune.openai.base_url={server.base_url}",
                  "--set", "finetune.openai.poll_interval_s=0.01"]
        result = runner.invoke(app, ["finetune", "--backend", "openai", *common])
        assert result.exit_code == 0, result.output
        jobs = FinetuneManifest(tmp_path / "finetune_manifest.json").read()
        assert sorted(jobs) == sorted(BATCHES)
        assert all(j.backend == "openai" and j.job_id and j.training_file.startswith("file-") for j in jobs.values())

        result = runner.invoke(app, ["watch", *common])
        assert result.exit_code == 1, result.output  # one job failed
        jobs = FinetuneManifest(tmp_path / "finetune_manifest.json").read()
        failed = {n for n, j in jobs.items() if j.status == "failed"}
        assert failed == {"prior_trauma_recovery"} and "invalid_training_file" in jobs["prior_trauma_recovery"].error
        assert all(j.result.startswith("ft:") for n, j in jobs.items() if n not in failed)

        result = runner.invoke(app, ["check", *common])
        assert result.exit_code == 1 and "prior_trauma_recovery" in result.output

        # Fix the file and run finetune again: only the failed job is re-submitted.
        bad.write_text("".join(json.dumps(r).replace(f" {FAIL_MARKER}", "") + "\n" for r in rows))
        ids_before = {n: j.job_id for n, j in jobs.items()}
        assert runner.invoke(app, ["finetune", "--backend", "openai", *common]).exit_code == 0
        assert runner.invoke(app, ["watch", *common]).exit_code == 0
        jobs = FinetuneManifest(tmp_path / "finetune_manifest.json").read()
        assert {j.status for j in jobs.values()} == {"succeeded"}
        changed = {n for n, j in jobs.items() if j.job_id != ids_before[n]}
        assert changed == {"prior_trauma_recovery"}

        # A succeeded job whose batch changed since is submitted again, with the new file; the rest are kept.
        edited = tmp_path / "batches" / "short_original_high.jsonl"
        edited.write_text(edited.read_text() + edited.read_text().splitlines(keepends=True)[0])
        ids_before = {n: j.job_id for n, j in jobs.items()}
        assert runner.invoke(app, ["finetune", "--backend", "openai", *common]).exit_code == 0
        jobs = FinetuneManifest(tmp_path / "finetune_manifest.json").read()
        assert {n for n, j in jobs.items() if j.job_id != ids_before[n]} == {"short_original_high"}
        assert len(server.files) == len(BATCHES) + 2
