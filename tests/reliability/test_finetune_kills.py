"""`parallel-r1 finetune` with two LoRA jobs at once, its whole process tree SIGKILLed twice (after the first
checkpoint, then after the first new one of the resumed run) and run a third time: both jobs reach their step
count with every step trained once in the lineage of the final weights, and the adapters are whole."""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import pytest

from parallel_r1.finetune.manifest import FinetuneManifest
from tests.reliability import procs
from tests.support.batches import write_batches

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

JOBS = ["neurodivergent", "short_original_high"]
PER_BATCH, EPOCHS, BATCH_SIZE = 10, 6, 2
KILLS = 2


def _checkpoint_steps(tmp_path: Path) -> dict[str, list[int]]:
    """Per job, the steps of the checkpoints in its folder whose trainer state is written (whole)."""
    steps = {}
    for name in JOBS:
        found = []
        for state in (tmp_path / "ray_results" / f"sft-{name}-0").glob("checkpoint-*/trainer_state.json"):
            try:
                found.append(json.loads(state.read_text())["global_step"])
            except (ValueError, KeyError):  # being written
                continue
        steps[name] = sorted(found)
    return steps


def _final_log_steps(tmp_path: Path, name: str) -> list[int]:
    """The steps of the loss log in the newest checkpoint's trainer state: the lineage of the final weights."""
    states = [json.loads(p.read_text()) for p in
              (tmp_path / "ray_results" / f"sft-{name}-0").glob("checkpoint-*/trainer_state.json")]
    newest = max(states, key=lambda s: s["global_step"])
    return [h["step"] for h in newest["log_history"] if "loss" in h]


def test_finetune_killed_twice_resumes_every_job_to_its_step_count_with_whole_adapters(tmp_path, tiny_base_model,
                                                                                     reliability):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    # The same dialogues in both batches: the jobs keep in step, so each kill finds both mid-run.
    write_batches(tmp_path, names=JOBS[:1], per_batch=PER_BATCH)
    for name in JOBS[1:]:
        shutil.copy(tmp_path / "batches" / f"{JOBS[0]}.jsonl", tmp_path / "batches" / f"{name}.jsonl")
    args = procs.cli("finetune", f"--workdir={tmp_path}", "--set", f"base_model.path={tiny_base_model}",
                     "--set", f"finetune.epochs={EPOCHS}", "--set", f"finetune.per_device_batch_size={BATCH_SIZE}",
                     "--set", "finetune.max_length=512", "--set", "finetune.cpus_per_worker=1",
                     "--set", "ray.num_cpus=2", "--set", "finetune.pack_jobs=true")
    log = tmp_path / "finetune.log"
    killed_at: list[dict[str, list[int]]] = []  # checkpoint steps on disk when each kill came
    started = time.perf_counter()
    for _ in range(KILLS):
        before = _checkpoint_steps(tmp_path)

        def every_job_has_a_new_checkpoint(before=before):
            now = _checkpoint_steps(tmp_path)
            return now if all(set(now[n]) - set(before[n]) for n in JOBS) else None

        killed_at.append(procs.kill_when(procs.start(args, log), every_job_has_a_new_checkpoint, 240,
                                         "a new checkpoint of every job"))
        running = FinetuneManifest(tmp_path / "finetune_manifest.json").read()
        assert {running[n].status for n in JOBS} == {"running"}  # killed mid-run: nothing finished
    kills_s = time.perf_counter() - started
    resumed = time.perf_counter()
    procs.finish(args, log, timeout_s=300)
    resume_s = time.perf_counter() - resumed

    jobs = FinetuneManifest(tmp_path / "finetune_manifest.json").read()
    base = AutoModelForCausalLM.from_pretrained(tiny_base_model, dtype=torch.float32)
    ids = torch.tensor([[1, 2, 3]])
    lost = duplicated = steps = 0
    for name in JOBS:
        job = jobs[name]
        assert job.status == "succeeded" and job.attempts == KILLS + 1, (name, job.error)
        m = job.metrics
        expected = math.ceil(m["examples"] / BATCH_SIZE) * EPOCHS  # every example once per epoch
        # The last run resumed from one of the two newest checkpoints there were when it was killed.
        assert m["resumed_from_step"] in killed_at[-1][name][-2:], (m["resumed_from_step"], killed_at)
        logged = _final_log_steps(tmp_path, name)
        steps += expected
        lost += len(set(range(1, expected + 1)) - set(logged))
        duplicated += len(logged) - len(set(logged))
        assert m["global_step"] == expected and sorted(logged) == list(range(1, expected + 1)), (name, logged)
        # The adapter is whole: no temp folder left, every tensor finite, it loads and changes the model.
        adapter = tmp_path / "adapters" / name
        assert job.result == str(adapter) and not (tmp_path / "adapters" / f".{name}.tmp").exists()
        tensors = load_file(adapter / "adapter_model.safetensors")
        assert tensors and all(torch.isfinite(t).all() for t in tensors.values())
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base_model), adapter)
        assert not torch.allclose(model(ids).logits, base(ids).logits)
    reliability.record(
        name="finetune killed twice and resumed",
        load=f"{len(JOBS)} LoRA jobs at once, {EPOCHS} epochs of {PER_BATCH} dialogues",
        faults=f"process tree SIGKILLed {KILLS}x (at checkpoint steps "
               + ", ".join("/".join(str(k[n][-1]) for n in JOBS) for k in killed_at) + "), resumed",
        items=steps, unit="optimizer steps", lost=lost, duplicated=duplicated,
        until_kills_s=round(kills_s, 1), resume_to_end_s=round(resume_s, 1))


def test_finetune_killed_after_its_final_report_finishes_on_the_rerun(tmp_path, tiny_base_model, reliability):
    """Killed in the window after a job left its finished adapter in its folder and before the manifest says
    succeeded: the rerun records that adapter instead of resuming a training that has ended."""
    write_batches(tmp_path, names=JOBS[:1], per_batch=6)
    args = procs.cli("finetune", f"--workdir={tmp_path}", "--set", f"base_model.path={tiny_base_model}",
                     "--set", "finetune.epochs=2", "--set", f"finetune.per_device_batch_size={BATCH_SIZE}",
                     "--set", "finetune.max_length=512", "--set", "ray.num_cpus=2", "--set", "finetune.pack_jobs=true")
    final = tmp_path / "ray_results" / f"sft-{JOBS[0]}-0" / "final" / "metrics.json"

    def final_recorded():
        return final.exists() or None

    reliability.record(load="1 LoRA job, 2 epochs of 6 dialogues", faults="process tree SIGKILLed after the final "
                       "checkpoint, before the manifest", items=1, unit="job")
    procs.kill_when(procs.start(args, tmp_path / "first.log"), final_recorded, 300, "the finished adapter")
    killed = FinetuneManifest(tmp_path / "finetune_manifest.json").read()[JOBS[0]].status
    done = procs.finish(args, tmp_path / "rerun.log", 300)
    job = FinetuneManifest(tmp_path / "finetune_manifest.json").read()[JOBS[0]]
    reliability.record(lost=int(job.status != "succeeded"), duplicated=0)
    assert killed == "running" and done.returncode == 0, (tmp_path / "rerun.log").read_text()[-3000:]
    assert job.status == "succeeded" and (tmp_path / "adapters" / JOBS[0] / "adapter_config.json").is_file()
