"""Launch every LoRA SFT job at once on Ray Train: one `TorchTrainer` per batch, each `fit()` driven
from its own (daemon) thread of this process, the manifest updated as each job starts and ends.

Threads rather than Ray tasks: a driver task per job would be one more worker process to start per
job, and Ray starts only as many processes at a time as the node has CPUs.

A job that was killed resumes from its last checkpoint: it runs again under the same Ray Train run
name and storage path, and Train V2 restores the latest reported checkpoint.
"""

from __future__ import annotations

import os
import queue
import shutil
import socket
import threading
import time
from pathlib import Path

from parallel_r1.base_model.torch_trainer import torch_trainer
from parallel_r1.config import FinetuneConfig
from parallel_r1.finetune.manifest import FinetuneManifest
from parallel_r1.finetune.sft import ADAPTER_SUBDIR, sft_train_loop


def job_config(name: str, train_file: Path, base_model: str, ft: FinetuneConfig, n_examples: int,
               num_workers: int | None = None, init_adapter: str | None = None) -> dict:
    """The plain-dict config each Train worker receives. `num_workers` (default `ft.num_workers`) data-parallel
    workers share the job's global batch, `ft.per_device_batch_size` x `ft.num_workers` examples, so a job given
    more workers takes the same optimizer steps. `init_adapter`: a LoRA adapter to continue training instead of a
    new one."""
    workers = num_workers or ft.num_workers
    per_device = max(1, ft.per_device_batch_size * ft.num_workers // workers)
    steps_per_epoch = max(1, -(-n_examples // (per_device * workers * ft.gradient_accumulation_steps)))
    total_steps = max(1, int(steps_per_epoch * ft.epochs))
    return {
        "name": name, "train_file": str(Path(train_file).resolve()), "base_model": base_model,
        "learning_rate": ft.learning_rate, "epochs": ft.epochs, "max_length": ft.max_length,
        "per_device_batch_size": per_device, "num_workers": workers,
        "gradient_accumulation_steps": ft.gradient_accumulation_steps, "seed": ft.seed,
        "lora": ft.lora.model_dump(), "init_adapter": init_adapter, "use_gpu": ft.use_gpu,
        "save_steps": max(1, total_steps // 3),  # about three checkpoints per job to resume from
        "torch_threads": max(1, int(ft.cpus_per_worker)) if not ft.use_gpu else None,
    }


def fit_job(config: dict, ft: FinetuneConfig, run_name: str, storage_path: str, adapter_dir: str,
            callbacks: list | None = None) -> dict:
    """Build and fit one TorchTrainer; copy the final adapter into `adapter_dir` atomically.

    `callbacks`: Ray Train user callbacks (e.g. Tune's report callback when the fit runs in a Tune trial)."""
    import json

    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig

    resources = {"CPU": ft.cpus_per_worker}
    if ft.use_gpu:
        resources["GPU"] = ft.gpus_per_worker
    trainer = torch_trainer(
        sft_train_loop, train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=config["num_workers"], use_gpu=ft.use_gpu,
                                     resources_per_worker=resources),
        run_config=RunConfig(name=run_name, storage_path=storage_path,
                             failure_config=FailureConfig(max_failures=ft.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=2), callbacks=callbacks),
    )
    started = time.perf_counter()
    result = trainer.fit()
    out = Path(adapter_dir)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with result.checkpoint.as_directory() as ckpt:
        shutil.copytree(Path(ckpt) / ADAPTER_SUBDIR, tmp)
        metrics = json.loads((Path(ckpt) / "metrics.json").read_text())
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    metrics["fit_wall_time_s"] = time.perf_counter() - started
    return {"metrics": metrics, "adapter": str(out), "checkpoint": result.checkpoint.path}


def launch_all(jobs: dict[str, dict], ft: FinetuneConfig, manifest: FinetuneManifest, storage_path: Path,
               adapters_dir: Path, on_event=None) -> dict[str, str]:
    """Run the given jobs ({name: worker config}) concurrently; returns {name: final status}."""
    storage = str(Path(storage_path).resolve())
    pending = list(jobs)
    finished: queue.Queue = queue.Queue()
    running = 0
    final: dict[str, str] = {}
    limit = ft.max_concurrent_jobs or len(jobs)

    def run(name: str, run_name: str) -> None:
        try:
            finished.put((name, fit_job(jobs[name], ft, run_name, storage, str(adapters_dir / name)), None))
        except Exception as e:  # noqa: BLE001 - a failed job is recorded, the others go on
            finished.put((name, None, e))

    while pending or running:
        while pending and running < limit:
            name = pending.pop(0)
            job = manifest.read()[name]
            manifest.update(name, status="running", attempts=job.attempts + 1, checkpoint=f"{storage}/{job.job_id}",
                            owner=f"{socket.gethostname()}:{os.getpid()}")
            threading.Thread(target=run, args=(name, job.job_id), name=f"fit-{name}", daemon=True).start()
            running += 1
            if on_event:
                on_event(name, "running")
        name, out, error = finished.get()
        running -= 1
        if error is None:
            manifest.update(name, status="succeeded", result=out["adapter"], metrics=out["metrics"],
                            checkpoint=out["checkpoint"], error=None)
            final[name] = "succeeded"
        else:
            manifest.update(name, status="failed", error=f"{type(error).__name__}: {_root_cause(error)}")
            final[name] = "failed"
        if on_event:
            on_event(name, final[name])
    return final


def _root_cause(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[-1][:500] if text else type(e).__name__
