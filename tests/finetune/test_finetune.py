"""`finetune` on Ray Train: six LoRA SFT jobs at once, the manifest, resuming a killed run, errors."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from parallel_r1.config import FinetuneConfig, load_config
from parallel_r1.config.groups import train_storage
from parallel_r1.config.workers import SFTJob
from parallel_r1.data.prompts import TUTOR_SYSTEM_PROMPT
from parallel_r1.finetune.manifest import FinetuneManifest
from parallel_r1.finetune.stage import run_finetune
from tests.support.batches import BATCHES, write_batches


def _cfg(workdir: Path, base: Path, **finetune):
    overrides = {"workdir": str(workdir), "base_model.path": str(base), "finetune.epochs": 1,
                 "finetune.cpus_per_worker": 0.25, "finetune.per_device_batch_size": 4,
                 "finetune.max_length": 512, "finetune.lora.r": 4, "finetune.lora.alpha": 8}
    overrides.update({f"finetune.{k}": v for k, v in finetune.items()})
    return load_config(overrides=overrides)


@pytest.mark.slow
def test_six_specialists_train_concurrently_and_load_with_peft(ray_session, tmp_path, tiny_base_model):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    write_batches(tmp_path)
    jobs = run_finetune(_cfg(tmp_path, tiny_base_model))
    assert sorted(jobs) == sorted(BATCHES)
    assert {j.status for j in jobs.values()} == {"succeeded"}, {n: j.error for n, j in jobs.items()}
    # All six ran at once: every job started before the first one finished.
    first_end = min(j.finished_at for j in jobs.values())
    assert all(j.started_at <= first_end for j in jobs.values())
    base = AutoModelForCausalLM.from_pretrained(tiny_base_model, dtype=torch.float32)
    ids = torch.tensor([[1, 2, 3]])
    base_logits = base(ids).logits
    for name, job in jobs.items():
        m = job.metrics
        assert job.result == str(tmp_path / "adapters" / name) and job.job_id == f"sft-{name}-0"
        assert m["train_loss"] > 0 and m["tokens_per_s"] > 0 and 0 < m["train_time_s"] <= m["wall_time_s"]
        assert 0 < m["assistant_tokens_per_epoch"] < m["tokens_per_epoch"]  # loss on teacher turns only
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base_model), job.result)
        assert not torch.allclose(model(ids).logits, base_logits)  # the adapter changes the model
    # A second run re-runs nothing.
    again = run_finetune(_cfg(tmp_path, tiny_base_model))
    assert {n: j.finished_at for n, j in again.items()} == {n: j.finished_at for n, j in jobs.items()}


@pytest.mark.slow
def test_monolithic_trains_one_adapter_on_the_union(ray_session, tmp_path, tiny_base_model):
    write_batches(tmp_path, names=BATCHES[:2], per_batch=4)
    jobs = run_finetune(_cfg(tmp_path, tiny_base_model), monolithic=True)
    job = jobs["monolithic"]
    assert job.status == "succeeded" and sorted(job.batches) == sorted(BATCHES[:2])
    # finetune.monolithic_workers (2) share its global batch of 4: the optimizer steps of one worker.
    assert job.metrics["workers"] == 2 and job.metrics["global_step"] == math.ceil(job.metrics["examples"] / 4)
    assert job.metrics["records"] == 8 and job.metrics["examples"] >= 8  # long dialogues add training windows
    assert (tmp_path / "adapters" / "monolithic" / "adapter_config.json").exists()
    union = [json.loads(line) for line in (tmp_path / "finetune" / "monolithic.jsonl").read_text().splitlines()]
    assert len(union) == 8 and {r["messages"][0]["content"] for r in union} == {TUTOR_SYSTEM_PROMPT}


@pytest.mark.slow
@pytest.mark.parametrize("packed, checkpoints", [(True, "checkpoint-*/trainer_state.json"),
                                                 (False, "checkpoint_*/checkpoint/trainer_state.json")])
def test_killed_finetune_resumes_from_its_checkpoint(tmp_path, tiny_base_model, packed, checkpoints):
    """Kill the whole `parallel-r1 finetune` process group once a checkpoint exists; run it again. Packed, the job
    checkpoints into its own folder; otherwise into its own Ray Train run."""
    write_batches(tmp_path, names=["neurodivergent"], per_batch=16)
    args = [f"--workdir={tmp_path}", "--set", f"base_model.path={tiny_base_model}", "--set", "finetune.epochs=12",
            "--set", "finetune.per_device_batch_size=2", "--set", "finetune.max_length=512",
            "--set", "ray.num_cpus=2", "--set", f"finetune.pack_jobs={str(packed).lower()}"]
    cli = [sys.executable, "-m", "parallel_r1.cli", "finetune", *args]
    # torchrun's variables in the caller's environment (TRL's colocated GRPO leaves them in its process), pointing at
    # a port something else holds: a worker must not set up a torch process group from them
    held = socket.create_server(("127.0.0.1", 0))
    torchrun = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1",
                "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(held.getsockname()[1])}
    env = {**os.environ, **torchrun, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen(cli, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = tmp_path / "ray_results" / "sft-neurodivergent-0"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not list(run_dir.glob(checkpoints)):
        assert proc.poll() is None, "finetune ended before it wrote a checkpoint"
        time.sleep(0.5)
    assert list(run_dir.glob(checkpoints)), "no checkpoint within the deadline"
    time.sleep(1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = FinetuneManifest(tmp_path / "finetune_manifest.json").read()["neurodivergent"]
    assert killed.status == "running" and killed.owner.endswith(f":{proc.pid}")  # what a killed owner leaves
    check = subprocess.run([sys.executable, "-m", "parallel_r1.cli", "check", f"--workdir={tmp_path}"],
                           env=env, capture_output=True, text=True, timeout=120)
    assert check.returncode == 1  # `check` / `watch` notice the owner is gone instead of waiting forever
    orphan = FinetuneManifest(tmp_path / "finetune_manifest.json").read()["neurodivergent"]
    assert orphan.status == "failed" and "resume" in orphan.error

    done = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    job = FinetuneManifest(tmp_path / "finetune_manifest.json").read()["neurodivergent"]
    assert job.status == "succeeded" and job.attempts == 2
    assert job.metrics["resumed_from_step"] > 0
    # every example (16 dialogues and their training windows) / 2 per step x 12 epochs: none lost or repeated
    assert job.metrics["global_step"] == math.ceil(job.metrics["examples"] / 2) * 12
    held.close()


def test_missing_inputs_are_clear_errors(tmp_path, tiny_base_model):
    from parallel_r1.errors import UserFacingError

    with pytest.raises(FileNotFoundError, match="parallel-r1 batch"):
        run_finetune(_cfg(tmp_path, tiny_base_model))
    write_batches(tmp_path, names=BATCHES[:1], per_batch=2)
    with pytest.raises(UserFacingError, match="finetune.batches"):
        run_finetune(_cfg(tmp_path, tiny_base_model, batches=["nope"]))
    cfg = load_config(overrides={"workdir": str(tmp_path)})
    with pytest.raises(FileNotFoundError, match="init-model"):
        run_finetune(cfg)
    shutil.rmtree(tmp_path / "batches")


def test_a_job_given_more_workers_keeps_its_global_batch_and_checkpoints(tmp_path):
    ft = FinetuneConfig(per_device_batch_size=4, epochs=3)
    one = SFTJob.for_batch("a", tmp_path / "a.jsonl", "base", ft, 40)
    two = SFTJob.for_batch("a", tmp_path / "a.jsonl", "base", ft, 40, num_workers=2)
    assert (one.num_workers, one.per_device_batch_size) == (1, 4)
    assert (two.num_workers, two.per_device_batch_size) == (2, 2)
    assert one.save_steps == two.save_steps == 10  # 30 optimizer steps either way


@pytest.mark.slow
def test_two_workers_train_one_job_data_parallel(ray_session, tmp_path, tiny_base_model):
    write_batches(tmp_path, names=BATCHES[:1], per_batch=8)
    jobs = run_finetune(_cfg(tmp_path, tiny_base_model, num_workers=2, per_device_batch_size=2))
    job = jobs[BATCHES[0]]
    assert job.status == "succeeded", job.error
    # 2 per device, 2 workers: a quarter of the examples' steps per epoch (one worker alone would take half).
    assert job.metrics["global_step"] == math.ceil(job.metrics["examples"] / 4)


@pytest.mark.slow
def test_specialists_continue_from_the_monolithic_adapter(ray_session, tmp_path, tiny_base_model):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    write_batches(tmp_path, names=BATCHES[:2], per_batch=4)
    jobs = dict(run_finetune(_cfg(tmp_path, tiny_base_model, specialise_from="monolithic")))
    assert sorted(jobs) == sorted([*BATCHES[:2], "monolithic"])
    assert {j.status for j in jobs.values()} == {"succeeded"}, {n: j.error for n, j in jobs.items()}
    start = jobs.pop("monolithic")
    assert start.init_adapter is None
    for job in jobs.values():  # the specialists start once the adapter they continue from is written
        assert job.started_at >= start.finished_at and job.init_adapter == start.result
    ids = torch.tensor([[1, 2, 3]])
    logits = {"base": AutoModelForCausalLM.from_pretrained(tiny_base_model)(ids).logits}
    for name in [*jobs, "monolithic"]:
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base_model),
                                          tmp_path / "adapters" / name)
        logits[name] = model(ids).logits
    for name in jobs:
        assert not torch.allclose(logits[name], logits["monolithic"]) and not torch.allclose(logits[name],
                                                                                             logits["base"])
    again = run_finetune(_cfg(tmp_path, tiny_base_model, specialise_from="monolithic"))
    assert {n: again[n].finished_at for n in jobs} == {n: j.finished_at for n, j in jobs.items()}


def _stage_todo(tmp_path, base, **finetune) -> list[str]:
    from parallel_r1.finetune.stage import FinetuneStage

    stage = FinetuneStage(_cfg(tmp_path, base, **finetune))
    stage.setup()
    return sorted(stage.todo)


def test_what_a_change_of_starting_adapter_re_runs(tmp_path, tiny_base_model):
    """Without training: which jobs setup() queues when the manifest says what succeeded, from which adapter."""
    from parallel_r1.finetune.manifest import FinetuneJob

    names = BATCHES[:2]
    write_batches(tmp_path, names=names, per_batch=2)
    manifest = FinetuneManifest(tmp_path / "finetune_manifest.json")
    adapter = str(tmp_path / "adapters" / "monolithic")

    def succeeded(init: str | None, with_monolithic: bool) -> None:
        for name in [*names, "monolithic"] if with_monolithic else names:
            manifest.put(FinetuneJob(name=name, backend="ray", batches=[name], status="succeeded",
                                     job_id=f"sft-{name}-0", init_adapter=None if name == "monolithic" else init))

    succeeded(None, with_monolithic=False)
    assert _stage_todo(tmp_path, tiny_base_model) == []
    # the monolithic never trained: it does, and so does every specialist, which trained from the base
    assert _stage_todo(tmp_path, tiny_base_model, specialise_from="monolithic") == sorted([*names, "monolithic"])
    succeeded(adapter, with_monolithic=True)  # but its adapter files are gone: all of them again
    assert _stage_todo(tmp_path, tiny_base_model, specialise_from="monolithic") == sorted([*names, "monolithic"])
    (tmp_path / "adapters" / "monolithic").mkdir(parents=True)
    (tmp_path / "adapters" / "monolithic" / "adapter_config.json").write_text("{}")
    succeeded(adapter, with_monolithic=True)
    assert _stage_todo(tmp_path, tiny_base_model, specialise_from="monolithic") == []
    assert _stage_todo(tmp_path, tiny_base_model) == sorted(names)  # back to the base: the specialists re-run
    queued = manifest.read()
    assert all(queued[n].status == "queued" and queued[n].init_adapter is None for n in names)
    assert queued["monolithic"].status == "succeeded"  # not a job of this run: left as it is


def test_a_changed_training_file_trains_afresh(tmp_path, tiny_base_model):
    """Without training: a job that succeeded, or was killed, on another version of its batch is not kept or
    resumed but queued as a new run; the manifest records each job's training-file digest."""
    from parallel_r1.data.io import atomic_write_jsonl, file_digest, read_jsonl

    names = BATCHES[:2]
    write_batches(tmp_path, names=names, per_batch=2)
    manifest = FinetuneManifest(tmp_path / "finetune_manifest.json")
    assert _stage_todo(tmp_path, tiny_base_model) == sorted(names)
    first = manifest.read()
    assert all(first[n].training_digest == file_digest(tmp_path / "batches" / f"{n}.jsonl") for n in names)
    manifest.update(names[0], status="succeeded", attempts=1)
    manifest.update(names[1], status="failed", attempts=1, error="killed")
    assert _stage_todo(tmp_path, tiny_base_model) == [names[1]]
    assert manifest.read()[names[1]].job_id == first[names[1]].job_id  # same data: resumes its run

    for name in names:
        path = tmp_path / "batches" / f"{name}.jsonl"
        atomic_write_jsonl(path, read_jsonl(path)[:1])
    assert _stage_todo(tmp_path, tiny_base_model) == sorted(names)
    again = manifest.read()
    for name in names:
        assert again[name].status == "queued" and again[name].job_id != first[name].job_id
        assert again[name].training_digest == file_digest(tmp_path / "batches" / f"{name}.jsonl")


def test_specialise_from_monolithic_needs_the_ray_backend(tmp_path):
    from parallel_r1.config.base import ConfigError

    with pytest.raises(ConfigError, match="specialise_from"):
        load_config(overrides={"workdir": str(tmp_path), "finetune.specialise_from": "monolithic",
                               "finetune.backend": "openai"})


def test_an_empty_batch_is_skipped_unless_asked_for(tmp_path, tiny_base_model):
    """Without training: a batch the sampler could not fill is left out with a message and the others train; asked
    for by name, or when every batch is empty, it is an error that names the batch report."""
    from parallel_r1.data.io import atomic_write_jsonl
    from parallel_r1.errors import UserFacingError

    names = BATCHES[:3]
    write_batches(tmp_path, names=names, per_batch=2)
    atomic_write_jsonl(tmp_path / "batches" / f"{names[0]}.jsonl", [])
    assert _stage_todo(tmp_path, tiny_base_model) == sorted(names[1:])
    with pytest.raises(UserFacingError, match=rf"{names[0]} hold no dialogues: .*report\.md"):
        _stage_todo(tmp_path, tiny_base_model, batches=[names[0], names[1]])
    for name in names[1:]:
        atomic_write_jsonl(tmp_path / "batches" / f"{name}.jsonl", [])
    with pytest.raises(UserFacingError, match="hold no dialogues"):
        _stage_todo(tmp_path, tiny_base_model)


def test_what_a_killed_job_left_in_adapters_is_removed_by_the_next_run(tmp_path, tiny_base_model):
    """Without training: a job killed while copying its adapter leaves `adapters/.<name>.tmp/` (or a partial build
    of a process that is gone); the next finetune run removes it and keeps the adapters."""
    names = BATCHES[:1]
    write_batches(tmp_path, names=names, per_batch=2)
    adapters = tmp_path / "adapters"
    for folder in (names[0], f".{names[0]}.tmp", f".{names[0]}.partial-999999999"):
        (adapters / folder).mkdir(parents=True)
        (adapters / folder / "adapter_config.json").write_text("{}")
    assert _stage_todo(tmp_path, tiny_base_model) == names
    assert [p.name for p in adapters.iterdir()] == names


@pytest.mark.slow
def test_a_job_that_fails_in_a_pack_fails_alone(ray_session, tmp_path, tiny_base_model):
    """Two one-worker jobs share one Ray Train run; the one whose training file has no teacher turn to train fails
    with the reason, the other trains, and a rerun retries only the failed one."""
    from parallel_r1.data.io import atomic_write_jsonl

    write_batches(tmp_path, names=BATCHES[:2], per_batch=4)
    untrainable = [{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": f"q{i}"}]}
                   for i in range(4)]
    atomic_write_jsonl(tmp_path / "batches" / f"{BATCHES[1]}.jsonl", untrainable)
    jobs = run_finetune(_cfg(tmp_path, tiny_base_model, pack_jobs=True))
    good, bad = jobs[BATCHES[0]], jobs[BATCHES[1]]
    assert good.status == "succeeded" and (tmp_path / "adapters" / BATCHES[0] / "adapter_config.json").exists()
    assert bad.status == "failed" and "assistant token" in bad.error
    assert not (tmp_path / "adapters" / BATCHES[1]).exists()
    runs = sorted(p.name for p in (tmp_path / "ray_results").iterdir())
    assert [r for r in runs if r.startswith("sft-pack-")] and f"sft-{BATCHES[0]}-0" in runs  # one run, two folders
    # no run of its own (checkpoint_*), and once it succeeded the Trainer's checkpoints (checkpoint-*) went
    assert not list((tmp_path / "ray_results" / f"sft-{BATCHES[0]}-0").glob("checkpoint*"))
    assert (tmp_path / "ray_results" / f"sft-{BATCHES[0]}-0" / "final" / "metrics.json").exists()
    again = run_finetune(_cfg(tmp_path, tiny_base_model, pack_jobs=True))
    assert again[BATCHES[0]].finished_at == good.finished_at
    assert again[BATCHES[1]].status == "failed" and again[BATCHES[1]].attempts == 2


def test_one_worker_jobs_launch_in_packs_and_the_rest_alone(tmp_path):
    ft = FinetuneConfig(pack_jobs=True)
    jobs = {n: SFTJob.for_batch(n, tmp_path / f"{n}.jsonl", "base", ft, 8) for n in "abc"}
    jobs["mono"] = SFTJob.for_batch("mono", tmp_path / "m.jsonl", "base", ft, 8, num_workers=2)
    from parallel_r1.finetune.launcher import launch_units

    assert launch_units(jobs, ft, "/runs") == [(["a", "b", "c"], True), (["mono"], False)]
    two = ft.model_copy(update={"max_concurrent_jobs": 2})
    assert launch_units(jobs, two, "/runs") == [(["a", "b"], True), (["c"], True), (["mono"], False)]
    alone = [([n], False) for n in jobs]
    assert launch_units(jobs, ft.model_copy(update={"pack_jobs": False}), "/runs") == alone
    assert launch_units(jobs, ft, "s3://bucket/runs") == alone  # a job's folder must be a path the workers see
    assert train_storage("s3://bucket/runs") == "s3://bucket/runs"
    assert train_storage("runs") == str(Path("runs").resolve())
    # a cluster that holds two workers at once gets packs of two: a pack of three would never be placed
    assert launch_units(jobs, ft, "/runs", capacity=2) == [(["a", "b"], True), (["c"], True), (["mono"], False)]


def test_the_worker_capacity_is_what_is_free_at_launch():
    from parallel_r1.finetune.launcher import worker_capacity

    assert worker_capacity(FinetuneConfig(cpus_per_worker=0.25), {"CPU": 1.5}) == 6
    assert worker_capacity(FinetuneConfig(cpus_per_worker=0.3), {"CPU": 2.0}) == 6
    assert worker_capacity(FinetuneConfig(cpus_per_worker=1), {"CPU": 0.5}) == 1  # never none: it waits for room
    gpu = FinetuneConfig(cpus_per_worker=1, use_gpu=True, gpus_per_worker=1)
    assert worker_capacity(gpu, {"CPU": 16.0, "GPU": 2.0}) == 2


def test_resuming_takes_the_newest_checkpoint_the_trainer_finished_writing(tmp_path):
    from parallel_r1.finetune.sft import last_complete_checkpoint

    assert last_complete_checkpoint(tmp_path) is None
    for step, state in ((4, '{"global_step": 4}'), (8, '{"global_step": 8}'), (12, '{"global_st')):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    (tmp_path / "checkpoint-16").mkdir()  # killed before its trainer state
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-8"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-4", "checkpoint-8"]
