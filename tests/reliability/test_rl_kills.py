"""`parallel-r1 rl` (GRPO on Ray Train) SIGKILLed (its whole process tree) a step past a checkpoint and run again: the
run reaches rl.max_steps, the step after the checkpoint is trained again but logged once, nothing is written after the
kill, and metrics.jsonl is whole (every line a complete record, steps 1..N once each)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.reliability import procs

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

MAX_STEPS, SAVE_STEPS = 6, 2
KILL_AFTER = 3  # logged steps at the kill: one past the checkpoint of step 2, so the resume drops and redoes one
SETTINGS = {"rl.prompts_per_step": 2, "rl.num_generations": 4, "rl.explore.max_tokens": 24,
            "rl.verify.max_tokens": 24, "rl.prompt_pool": 6, "rl.learning_rate": 1e-4, "rl.cpus_per_worker": 1,
            "rl.save_steps": SAVE_STEPS, "rl.max_steps": MAX_STEPS, "rl.rollout_backend": "hf", "ray.num_cpus": 2}


def _logged_steps(metrics: Path) -> list[int]:
    """The steps of metrics.jsonl's whole lines (a line being written when polled is left out)."""
    if not metrics.exists():
        return []
    return [json.loads(line)["step"] for line in metrics.read_text().splitlines(keepends=True) if line.endswith("\n")]


def _checkpoint_steps(rl: Path) -> list[int]:
    steps = []
    for state in (rl / "checkpoints").glob("grpo/checkpoint_*/checkpoint/trainer_state.json"):
        try:
            steps.append(json.loads(state.read_text())["global_step"])
        except (ValueError, KeyError):  # being written
            continue
    return sorted(steps)


def test_rl_killed_past_a_checkpoint_resumes_to_max_steps_with_every_step_logged_once(tmp_path, tagged_model,
                                                                                     reliability):
    from safetensors.torch import load_file

    from parallel_r1.rl.metrics import ADHERENCE, REWARD_NAMES, TIMINGS

    rl = tmp_path / "parallel" / "rl"
    metrics = rl / "metrics.jsonl"
    sets = [a for k, v in SETTINGS.items() for a in ("--set", f"{k}={v}")]
    # --force: the tiny policy has no parallel-SFT validation; with unchanged settings the run still resumes.
    args = procs.cli("rl", f"--workdir={tmp_path}", f"--model={tagged_model}", "--force", *sets)
    log = tmp_path / "rl.log"
    started = time.perf_counter()
    at_kill = procs.kill_when(procs.start(args, log), lambda: len(_logged_steps(metrics)) >= KILL_AFTER,
                              240, f"step {KILL_AFTER} in metrics.jsonl")
    kill_s = time.perf_counter() - started
    logged, checkpoints = _logged_steps(metrics), _checkpoint_steps(rl)
    left = metrics.read_bytes()
    time.sleep(2)
    assert metrics.read_bytes() == left, "metrics.jsonl still written after the kill"
    resumed = time.perf_counter()
    procs.finish(args, log, timeout_s=300)
    resume_s = time.perf_counter() - resumed

    text = metrics.read_text()
    records = [json.loads(line) for line in text.splitlines()]  # a torn or glued line fails here
    steps = [r["step"] for r in records]
    expected = list(range(1, MAX_STEPS + 1))
    redone = len(logged) - max(checkpoints, default=0)
    reliability.record(
        name="rl (GRPO) killed and resumed",
        load=f"GRPO, {MAX_STEPS} steps x {SETTINGS['rl.prompts_per_step']} prompts x "
             f"{SETTINGS['rl.num_generations']} rollouts, checkpoint every {SAVE_STEPS}",
        faults=f"process tree SIGKILLed after step {len(logged)} (checkpoint: step {max(checkpoints, default=0)}), "
               "resumed",
        items=len(set(steps)), unit="GRPO steps", lost=len(set(expected) - set(steps)),
        duplicated=len(steps) - len(set(steps)), steps_trained_again=redone,
        to_kill_s=round(kill_s, 1), resume_to_end_s=round(resume_s, 1))

    assert at_kill and len(logged) < MAX_STEPS and redone >= 1  # killed mid-run, a step past its checkpoint
    assert text.endswith("\n") and steps == expected
    for r in records:
        for key in (*REWARD_NAMES, "reward", ADHERENCE, *TIMINGS):
            assert r.get(key) is not None, (key, r)
    state = json.loads((rl / "state.json").read_text())
    assert state["step"] == MAX_STEPS and state["curriculum"]["last_step"] == MAX_STEPS
    tensors = load_file(rl / "model" / "model.safetensors")
    assert tensors and all(t.isfinite().all() for t in tensors.values())
    assert not [p.name for p in rl.iterdir() if p.name.endswith(".tmp")]
