"""compare end to end on a tiny base model and two (untrained, non-identity) LoRA adapters, with the HF
engine: results, report, plots, routing table, reply cache, model/slice selection and bad input; plus an
OpenAI fine-tuned model from the manifest answered by a local server through the real `openai` client."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from parallel_r1.cli import app
from parallel_r1.compare import stage as compare_stage
from parallel_r1.compare.stage import run_compare
from parallel_r1.config import load_config
from parallel_r1.data import discovery_plan, write_dialogues
from parallel_r1.data.prompts import TUTOR_SYSTEM_PROMPT, system_prompt
from parallel_r1.discover.procedural import ProceduralBackend
from parallel_r1.discover.simulator import simulate_dialogue
from parallel_r1.errors import UserFacingError
from parallel_r1.finetune.manifest import FinetuneJob, FinetuneManifest
from tests.fakes.openai_server import FakeOpenAIServer
from tests.support.adapters import random_adapter

SETTINGS = {"eval.prompts_per_slice": 3, "eval.samples_per_prompt": 1, "eval.max_tokens": 12,
            "inference.max_model_len": 1024,  # beyond the 64 tokens the tiny model was trained on (RoPE): the
            # specialists' system prompts take ~700 of its tokens
            "eval.bootstrap_samples": 200, "inference.engine": "hf"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_base_model) -> Path:
    """A run directory with a base model (copied), a training batch and two adapters."""
    work = tmp_path_factory.mktemp("compare")
    shutil.copytree(tiny_base_model, work / "models" / "base")
    backend = ProceduralBackend(3)
    dialogues = [asyncio.run(simulate_dialogue(backend, t)) for t in discovery_plan(40, True, 3)]
    write_dialogues(work / "batches" / "neurodivergent.parquet", dialogues)
    for seed, name in enumerate(["neurodivergent", "prior_trauma_recovery"]):
        random_adapter(work / "models" / "base", work / "adapters" / name, seed, r=4)
    return work


def cfg_for(work: Path, **extra):
    return load_config(overrides={"workdir": str(work), **SETTINGS, **extra})


def test_compare_writes_results_report_plots_and_routing(run_dir):
    out = run_compare(cfg_for(run_dir))
    models = ["base", "neurodivergent", "prior_trauma_recovery"]
    table = pq.read_table(run_dir / "eval" / "results.parquet").to_pylist()
    assert {r["model"] for r in table} == set(models)
    n_items = len(json.loads((run_dir / "eval" / "heldout.json").read_text())["items"])
    assert len(table) == 3 * n_items and all(0 <= r["score"] <= 1 for r in table)
    replies = {m: [r["reply"] for r in table if r["model"] == m] for m in models}
    assert replies["neurodivergent"] != replies["base"]  # the adapter really answered
    report = (run_dir / "eval" / "report.md").read_text()
    for text in ["abstract_scenarios", "validation_heavy", "Success criteria", "Decision:", "stock phrases / reply",
                 "## Open questions", "| Do the profile specialists transfer to standard students? | on `general`"]:
        assert text in report
    for png in ["heatmap.png", "deltas.png"]:
        assert (run_dir / "eval" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    routing = json.loads((run_dir / "eval" / "routing.json").read_text())
    assert set(routing["by_slice"]) == {s.name for s in load_config().eval.slices}
    assert routing["by_profile"]["rejects_metaphor"]["model"] in models
    assert {c.verdict for c in out.criteria} <= {"pass", "fail", "n/a"}


def test_rerun_uses_cached_replies_and_a_changed_adapter_is_regenerated(run_dir, capsys):
    cache = run_dir / "eval" / "replies"
    before = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    run_compare(cfg_for(run_dir))
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == before
    assert "replies in" not in capsys.readouterr().out
    random_adapter(run_dir / "models" / "base", run_dir / "adapters" / "prior_trauma_recovery", seed=7, r=4)
    run_compare(cfg_for(run_dir))
    after = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    changed = {n for n in after if after[n] != before.get(n)}
    assert changed == {"prior_trauma_recovery.json"}


def test_each_model_answers_with_the_system_prompt_it_is_served_with(run_dir, monkeypatch):
    seen: dict[str, set[str]] = {}
    real = compare_stage.generate_local

    def spy(engine, specs, items, prompts, sampling):
        seen.update({name: {p[0]["content"] for p in ps} for name, ps in prompts.items()})
        return real(engine, specs, items, prompts, sampling)

    monkeypatch.setattr(compare_stage, "generate_local", spy)
    specs = {s.name: s for s in load_config().batch.batches}
    run_compare(cfg_for(run_dir, **{"eval.system_prompt": "generic"}))
    # the base is prompted generically either way, so its cached replies stand
    assert seen == {m: {TUTOR_SYSTEM_PROMPT} for m in ("neurodivergent", "prior_trauma_recovery")}
    seen.clear()
    run_compare(cfg_for(run_dir))  # served (the default): the prompt is in the cache key
    assert seen == {"neurodivergent": {system_prompt(specs["neurodivergent"])},
                    "prior_trauma_recovery": {system_prompt(specs["prior_trauma_recovery"])}}


def test_named_model_and_slice_like_the_seed(run_dir):
    result = CliRunner().invoke(app, ["compare", "neurodivergent", "--test-on", "abstract_scenarios",
                                      "--workdir", str(run_dir), *(f"--set={k}={v}" for k, v in SETTINGS.items())])
    assert result.exit_code == 0, result.output
    assert "abstract_scenarios" in result.output and "validation_heavy" not in result.output.split("success")[0]
    rows = pq.read_table(run_dir / "eval" / "results.parquet").to_pylist()
    assert {r["model"] for r in rows} == {"base", "neurodivergent"}
    assert all(r["slices"] == ["abstract_scenarios"] for r in rows)


def test_a_killed_finetune_jobs_hidden_folders_are_not_models(tmp_path):
    from parallel_r1.compare.models import available_models
    from parallel_r1.paths import RunPaths

    paths = RunPaths(tmp_path)
    for name in ("spec", ".spec.tmp", ".other.partial-4242"):  # a copy of an adapter cut short by a kill
        (paths.adapters / name).mkdir(parents=True)
        (paths.adapters / name / "adapter_config.json").write_text("{}")
    assert list(available_models(paths)) == ["base", "spec"]


def test_unknown_model_or_slice_is_a_clear_error(run_dir):
    with pytest.raises(UserFacingError, match="unknown model.*available: base"):
        run_compare(cfg_for(run_dir), ["batch_9"])
    with pytest.raises(UserFacingError, match="unknown slice"):
        run_compare(cfg_for(run_dir), None, ["martians"])
    result = CliRunner().invoke(app, ["compare", "nope", "--workdir", str(run_dir)])
    assert result.exit_code == 2 and "unknown model" in result.output


def test_openai_fine_tuned_model_from_the_manifest_is_compared(run_dir, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with FakeOpenAIServer() as server:
        FinetuneManifest(run_dir / "finetune_manifest.json").put(FinetuneJob(
            name="neurodivergent", backend="openai", batches=["neurodivergent"], status="succeeded",
            result="ft:gpt-4o-mini:org:parallel-r1:abc"))
        cfg = cfg_for(run_dir, **{"finetune.openai.base_url": server.base_url})
        out = run_compare(cfg, ["openai:neurodivergent"], ["general"])
        assert {r["model"] for r in server.requests} == {"ft:gpt-4o-mini:org:parallel-r1:abc"}
    rows = pq.read_table(run_dir / "eval" / "results.parquet").to_pylist()
    remote = [r for r in rows if r["model"] == "openai:neurodivergent"]
    assert remote and all(r["reply"].startswith("You said") for r in remote)
    assert any(c.model == "openai:neurodivergent" for c in out.cells)
    (run_dir / "finetune_manifest.json").unlink()


def test_parallel_models_are_backtested_against_the_plain_ones_and_never_routed_to(run_dir):
    folder = run_dir / "parallel" / "sft" / "model"
    shutil.copytree(run_dir / "models" / "base", folder)
    try:
        cfg = cfg_for(run_dir, **{"parallel.inference.max_tokens": 12, "parallel.sft.samples_per_prompt": 1})
        out = run_compare(cfg, ["parallel_sft", "neurodivergent"], ["general"])
        rows = pq.read_table(run_dir / "eval" / "results.parquet").to_pylist()
        assert {r["model"] for r in rows} == {"base", "parallel_sft", "neurodivergent"}
        cached = json.loads((run_dir / "eval" / "replies" / "parallel_sft.json").read_text())
        assert "<Parallel>" in cached["key"]["system"]  # prompted under the execution policy
        assert "| parallel_sft |" in (run_dir / "eval" / "report.md").read_text().split("## Parallel thinking")[1]
        mine = [r for r in rows if r["model"] == "parallel_sft"]
        assert out.summaries["parallel_sft"].parallel.n_replies == len(mine) > 0
        routing = json.loads((run_dir / "eval" / "routing.json").read_text())
        assert "parallel_sft" not in json.dumps(routing["by_profile"]) + json.dumps(routing["by_slice"])
    finally:
        shutil.rmtree(run_dir / "parallel")


def test_compare_on_an_engine_pool_gives_the_results_of_one_engine(run_dir, tmp_path, ray_session):
    tables = {}
    for engines in (1, 2):
        work = tmp_path / f"engines{engines}"
        shutil.copytree(run_dir, work, ignore=shutil.ignore_patterns("eval"))
        run_compare(cfg_for(work, **{"inference.num_engines": engines}))
        rows = pq.read_table(work / "eval" / "results.parquet").to_pylist()
        tables[engines] = sorted((r["model"], r["item_id"], r["sample"], r["reply"], r["score"]) for r in rows)
    assert {m for m, *_ in tables[2]} == {"base", "neurodivergent", "prior_trauma_recovery"}
    assert tables[2] == tables[1]
