"""`parallel-sft`: the parallel dataset, the SFT with the tags through Ray Train, the merged model, the uplift check
and its message, and the skip of a finished stage."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from parallel_r1.compare.parallel_replies import ModelEval, weights_digest
from parallel_r1.config import load_config
from parallel_r1.data import discovery_plan
from parallel_r1.data.parallel_format import validate_reply
from parallel_r1.data.schema import write_dialogues
from parallel_r1.discover.procedural import ProceduralBackend
from parallel_r1.discover.simulator import simulate_dialogue
from parallel_r1.finetune.manifest import FinetuneManifest
from parallel_r1.grade import grade_dialogues
from parallel_r1.parallel_sft.check import check_uplift
from parallel_r1.parallel_sft.stage import JOB, ParallelSFTStage, UpliftTooLowError, run_parallel_sft
from parallel_r1.paths import RunPaths

BRANCHES = 2  # not the default (3): the branch count is a parameter that reaches the data and the prompts


def _overrides(workdir: Path, base: Path, **sft) -> dict:
    overrides = {
        "workdir": str(workdir), "base_model.path": str(base), "inference.engine": "hf",
        "parallel.dataset_threshold": 0.7, "parallel.min_dialogues": 5, "parallel.branches": BRANCHES,
        "parallel.inference.max_tokens": 32, "finetune.cpus_per_worker": 0.25, "finetune.per_device_batch_size": 4,
        "finetune.lora.r": 4, "finetune.lora.alpha": 8, "parallel.sft.epochs": 2, "parallel.sft.learning_rate": 1e-2,
        "parallel.sft.max_length": 384, "parallel.sft.eval_prompts_per_slice": 2, "parallel.sft.samples_per_prompt": 1,
    }
    overrides.update({f"parallel.sft.{k}": v for k, v in sft.items()})
    return overrides


def _cfg(workdir: Path, base: Path, **sft):
    return load_config(overrides=_overrides(workdir, base, **sft))


def _write_dialogues(workdir: Path) -> None:
    """60 graded procedural dialogues; about a quarter score >= 0.75."""
    async def simulate():
        backend = ProceduralBackend(seed=0)  # discover.seed 0: the dataset builder replays these dialogues
        return [await simulate_dialogue(backend, t) for t in discovery_plan(60, include_special=True, seed=3)]

    write_dialogues(workdir / "dialogues.parquet", grade_dialogues(asyncio.run(simulate())))


@pytest.fixture(scope="module")
def first_run(ray_session, tmp_path_factory, tiny_base_model):
    """One stage run with an unreachable uplift bar: (workdir, the error, eval.json as it was written)."""
    workdir = tmp_path_factory.mktemp("parallel_sft")
    _write_dialogues(workdir)
    with pytest.raises(UpliftTooLowError) as failed:
        run_parallel_sft(_cfg(workdir, tiny_base_model, min_uplift=1000.0))
    return workdir, failed.value, json.loads(RunPaths(workdir).parallel_sft_eval.read_text())


@pytest.mark.slow
def test_dataset_is_written_with_the_branch_count(first_run):
    workdir, _, _ = first_run
    rows = [json.loads(line) for line in RunPaths(workdir).parallel_sft_data.read_text().splitlines()]
    assert len(rows) >= 5
    for row in rows:
        assert len(row["paths"]) == BRANCHES
        assert validate_reply(row["target"]).valid
        assert row["messages"][-1] == {"role": "assistant", "content": row["target"]}
        assert f"write {BRANCHES} different approaches" in row["messages"][0]["content"]


@pytest.mark.slow
def test_saved_model_has_the_tags_as_single_tokens_and_trained_embedding_rows(first_run, tiny_base_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from parallel_r1.finetune.parallel_tokens import PARALLEL_TAGS, parallel_token_ids

    workdir, _, _ = first_run
    paths = RunPaths(workdir)
    tok = AutoTokenizer.from_pretrained(paths.parallel_sft_model)
    model = AutoModelForCausalLM.from_pretrained(paths.parallel_sft_model)
    start = AutoModelForCausalLM.from_pretrained(paths.parallel_sft / "start_model")
    base = AutoModelForCausalLM.from_pretrained(tiny_base_model)
    ids = parallel_token_ids(tok)
    assert set(ids) == set(PARALLEL_TAGS)  # each tag encodes to exactly one token
    assert model.get_input_embeddings().num_embeddings == len(tok) == base.config.vocab_size + len(PARALLEL_TAGS)
    assert model.config.max_position_embeddings == 384  # raised from 64 to fit a parallel target
    rows = sorted(ids.values())
    trained, untrained = model.get_input_embeddings().weight[rows], start.get_input_embeddings().weight[rows]
    assert not torch.allclose(trained, untrained)  # the new rows were trained, not left at their init
    assert not any(n.startswith(("base_model", "lora")) or "lora_" in n for n, _ in model.named_parameters())


@pytest.mark.slow
def test_the_sft_ran_through_ray_train(first_run):
    workdir, _, _ = first_run
    job = FinetuneManifest(RunPaths(workdir).parallel_sft / "manifest.json").read()[JOB]
    assert job.backend == "ray" and job.status == "succeeded" and job.attempts == 1
    assert job.job_id.startswith("parallel-sft-") and Path(job.checkpoint).exists()
    assert str(workdir / "ray_results") in job.checkpoint
    assert job.metrics["examples"] >= 5 and job.metrics["train_loss"] > 0 and job.metrics["global_step"] > 0


@pytest.mark.slow
def test_uplift_below_the_threshold_fails_and_says_so_with_the_evaluation_written(first_run):
    _, error, evaluation = first_run
    assert "does not reach the required uplift" in str(error) and "parallel.sft.min_uplift" in str(error)
    assert evaluation["passed"] is False and evaluation["min_uplift"] == 1000.0
    assert set(evaluation["models"]) == {"start", "sft"}
    for m in evaluation["models"].values():
        assert m["n_replies"] == evaluation["items"] > 0
        assert 0 <= m["format_adherence"] <= 1 and 0 <= m["rubric"] <= 1
    assert f"write {BRANCHES} different approaches" in evaluation["system_prompt"]
    assert set(evaluation["checks"]) == {"uplift", "rubric"} and evaluation["reason"]
    assert evaluation["weights"]["sft"] == weights_digest(RunPaths(first_run[0]).parallel_sft_model)


@pytest.mark.slow
def test_reachable_threshold_passes_without_retraining_and_a_rerun_is_skipped(first_run, tiny_base_model, capsys):
    workdir, _, evaluation = first_run
    manifest = FinetuneManifest(RunPaths(workdir).parallel_sft / "manifest.json")
    trained_at = manifest.read()[JOB].finished_at
    replies = sorted((RunPaths(workdir).parallel_sft / "replies").glob("*.json"))
    stamps = [p.stat().st_mtime_ns for p in replies]
    bar = evaluation["uplift"] - 0.01
    # the tiny model's rubric moves within noise on a few prefixes: tolerate any fall to reach a passing verdict
    passed = run_parallel_sft(_cfg(workdir, tiny_base_model, min_uplift=bar, max_rubric_drop=1.0))
    assert passed.passed is True and passed.uplift == pytest.approx(evaluation["uplift"])
    assert manifest.read()[JOB].finished_at == trained_at  # not retrained
    assert [p.stat().st_mtime_ns for p in replies] == stamps  # the cached replies were reused
    capsys.readouterr()
    again = run_parallel_sft(_cfg(workdir, tiny_base_model, min_uplift=bar, max_rubric_drop=1.0))
    assert "is up to date and passed its validation" in capsys.readouterr().out
    assert again.record == json.loads(RunPaths(workdir).parallel_sft_eval.read_text())
    from typer.testing import CliRunner

    from parallel_r1.cli import app

    sets = [a for k, v in _overrides(workdir, tiny_base_model, min_uplift=bar, max_rubric_drop=1.0).items()
            for a in ("--set", f"{k}={v}")]
    for command in (["parallel-sft", f"--branches={BRANCHES}"], ["finetune", "--parallel-format"]):
        result = CliRunner().invoke(app, [*command, *sets])
        assert result.exit_code == 0 and "is up to date and passed its validation" in result.output, result.output
    assert manifest.read()[JOB].finished_at == trained_at


def test_uplift_check_is_relative_to_the_starting_point():
    def model(adherence: float, rubric: float) -> ModelEval:  # the same rubric on every held-out prefix
        return ModelEval("m", 10, adherence, rubric, 0.5 * adherence + 0.5 * rubric, 0.0, 0.0, {},
                         item_rubric={f"p{i}": rubric for i in range(10)})

    assert check_uplift(model(0.0, 0.5), model(0.0, 0.52), 0.05).passed is False  # +4 %
    ok = check_uplift(model(0.0, 0.5), model(0.1, 0.5), 0.05)  # 0.25 -> 0.30: +20 %
    assert ok.passed and ok.uplift == pytest.approx(0.2) and "ready for `parallel-r1 rl`" in ok.message
    worse = check_uplift(model(0.5, 0.5), model(0.4, 0.5), -0.5)
    assert worse.passed and worse.uplift < 0


def test_a_killed_job_resumes_under_its_run_name_and_new_settings_start_a_new_run(tmp_path, tiny_base_model):
    _write_dialogues(tmp_path)
    stage = ParallelSFTStage(_cfg(tmp_path, tiny_base_model))
    stage.setup()
    job = stage.manifest.read()[JOB]
    assert stage.train and job.status == "queued" and job.job_id.endswith("-0")
    stage.manifest.update(JOB, status="running", attempts=1, owner="elsewhere:1")  # what a killed run leaves
    resumed = ParallelSFTStage(_cfg(tmp_path, tiny_base_model))
    resumed.setup()
    again = resumed.manifest.read()[JOB]
    assert resumed.train and again.status == "queued" and again.job_id == job.job_id  # Ray Train restores it
    changed = ParallelSFTStage(_cfg(tmp_path, tiny_base_model, epochs=3))
    changed.setup()
    assert changed.train and changed.manifest.read()[JOB].job_id.split("-")[2] != job.job_id.split("-")[2]


def test_missing_artifacts_are_clear_errors(tmp_path, tiny_base_model):
    with pytest.raises(FileNotFoundError, match="parallel-r1 discover"):
        run_parallel_sft(_cfg(tmp_path, tiny_base_model))
    with pytest.raises(FileNotFoundError, match="init-model"):
        run_parallel_sft(load_config(overrides={"workdir": str(tmp_path)}))
