"""Stages as Ray jobs on a private `ray start --head`: `parallel-r1 submit STAGE` with the stage's runtime env from
jobs/, its logs streamed while it runs, and its exit status returned; then every stage spec not submitted elsewhere
(import, grade, init-model, tune, parallel-sft, rl, monitor) on one run directory, each as `ray job submit` runs it.
discover and batch are submitted here, finetune, compare, gate and serve in test_multinode, run in test_pipeline."""

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from parallel_r1 import jobs
from parallel_r1.cli import app
from parallel_r1.data import discovery_plan, read_dialogues, write_dialogues
from parallel_r1.discover.procedural import ProceduralBackend
from parallel_r1.discover.simulator import simulate_dialogue
from parallel_r1.paths import RunPaths
from tests.support.ray_head import RayHead

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
TRANSCRIPTS = [  # two hand-written conversations for `import`
    {"messages": [{"role": "user", "content": "why does my while loop never stop"},
                  {"role": "assistant", "content": "Let's trace it. What is i after the first pass?"},
                  {"role": "user", "content": "still 0"},
                  {"role": "assistant", "content": "So which line should change i? Point to it."}],
     "traits": ["bad_prior_teacher"], "scenario_id": "loops-offbyone-x"},
    {"messages": [{"role": "user", "content": "How does factorial(n) stop calling itself?"},
                  {"role": "assistant", "content": "Trace factorial(3) by hand: what does it call, and what next?"}],
     "traits": [], "scenario_id": "recursion-factorial"},
]
PARALLEL_SFT = {"parallel.dataset_threshold": 0.7, "parallel.min_dialogues": 5, "parallel.branches": 2,
                "parallel.inference.max_tokens": 16, "finetune.cpus_per_worker": 0.25,
                "finetune.per_device_batch_size": 4, "finetune.lora.r": 4, "finetune.lora.alpha": 8,
                "parallel.sft.epochs": 1, "parallel.sft.max_length": 384,
                "parallel.sft.eval_prompts_per_slice": 2, "parallel.sft.samples_per_prompt": 1,
                "parallel.sft.min_uplift": -1, "parallel.sft.max_rubric_drop": 1.0, "inference.engine": "hf"}
TUNE = {"batch.quality_floor": 0.0, "tune.specialist": "neurodivergent", "tune.batch_sizes": "[4]",
        "tune.learning_rates": "[1e-2]", "tune.lora_ranks": "[4]", "tune.eval_prompts": 2, "tune.grace_epochs": 1,
        "finetune.epochs": 1, "finetune.per_device_batch_size": 2, "finetune.cpus_per_worker": 0.25,
        "eval.samples_per_prompt": 1, "eval.max_tokens": 8, "inference.engine": "hf"}
RL = {"rl.max_steps": 1, "rl.rollout_backend": "hf", "rl.prompts_per_step": 2, "rl.num_generations": 2,
      "rl.explore.max_tokens": 12, "rl.verify.max_tokens": 12, "rl.prompt_pool": 4, "rl.cpus_per_worker": 1}


@pytest.fixture(scope="module")
def head():
    with RayHead(num_cpus=4) as started:
        yield started


def test_submit_runs_a_stage_on_a_ray_cluster_and_returns_its_status(head, tmp_path):
    run = tmp_path / "run"
    ok = CliRunner().invoke(app, ["submit", "discover", "--workdir", str(run), "--address", head.dashboard_url,
                                  "--config", "configs/demo.yaml", "--", "24", "--set", "discover.num_actors=2"])
    failed = CliRunner().invoke(app, ["submit", "batch", "--workdir", str(tmp_path / "empty"),
                                      "--address", head.dashboard_url])
    assert ok.exit_code == 0, ok.output[-3000:]
    dialogues = read_dialogues(run / "dialogues.parquet")
    assert len(dialogues) == 24 and len({d.dialogue_id for d in dialogues}) == 24
    assert all(d.score is not None for d in dialogues)
    # the job's own output came through (streamed), and it joined the cluster rather than starting a Ray of its own
    assert "discover" in ok.output and "SUCCEEDED" in ok.output and "Started a local Ray instance" not in ok.output
    assert f":{head.gcs_address.rsplit(':', 1)[1]} (" in ok.output
    assert failed.exit_code == 1 and "FAILED" in failed.output and "dialogues" in failed.output


def _sets(overrides: dict) -> list[str]:
    return [a for k, v in overrides.items() for a in ("--set", f"{k}={v}")]


def _submit(head: RayHead, stage: str, run: Path, *extra: str) -> str:
    """`stage` as a job with its spec from jobs/ on configs/smoke.yaml; its logs once it has succeeded."""
    spec = jobs.stage_job(stage, str(run), "configs/smoke.yaml", list(extra), {"HF_HUB_OFFLINE": "1"})
    client, job_id = jobs.submit(spec, head.dashboard_url)
    out: list[str] = []
    status = jobs.follow(client, job_id, out.append)
    logs = "".join(out)
    assert status == "SUCCEEDED", f"{stage}: {logs[-4000:]}"
    return logs


def test_every_other_stage_spec_submits_and_succeeds(head, tmp_path):
    run = tmp_path / "run"

    async def simulate():  # graded dialogues as discover writes them (discover.seed 0: parallel-sft replays them)
        backend = ProceduralBackend(seed=0)
        return [await simulate_dialogue(backend, t) for t in discovery_plan(60, include_special=True, seed=3)]

    write_dialogues(run / "dialogues.parquet", asyncio.run(simulate()))
    transcripts = tmp_path / "transcripts.jsonl"
    transcripts.write_text("".join(json.dumps(r) + "\n" for r in TRANSCRIPTS))

    _submit(head, "grade", run)
    assert all(d.score is not None for d in read_dialogues(run / "dialogues.parquet"))
    _submit(head, "init-model", run)
    paths = RunPaths(run)
    assert (paths.base_model / "config.json").is_file()
    _submit(head, "tune", run, *_sets(TUNE))
    assert list((run / "tune").rglob("*.json"))
    _submit(head, "parallel-sft", run, *_sets(PARALLEL_SFT))
    assert (paths.parallel_sft_model / "config.json").is_file()
    _submit(head, "rl", run, *_sets(RL))
    assert (run / "parallel" / "rl" / "metrics.jsonl").read_text().count("\n") == 1
    _submit(head, "import", run, str(transcripts), "--set", "serve.profile_reader=cues")
    assert sum(d.backend == "import" for d in read_dialogues(run / "dialogues.parquet")) == 2
    monitored = _submit(head, "monitor", run, "--dry-run")
    assert "monitor" in monitored
