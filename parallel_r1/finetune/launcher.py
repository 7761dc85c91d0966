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
from parallel_r1.config.workers import JOB_KEY, SFTJob
from parallel_r1.data.io import folder_build
from parallel_r1.finetune.manifest import FinetuneManifest
from parallel_r1.finetune.sft import ADAPTER_SUBDIR, sft_train_loop


def fit_job(job: SFTJob, ft: FinetuneConfig, run_name: str, storage_path: str, adapter_dir: str,
            callbacks: list | None = None) -> dict:
    """Build and fit one TorchTrainer; copy the final adapter into `adapter_dir` atomically.

    `callbacks`: Ray Train user callbacks (e.g. Tune's report callback when the fit runs in a Tune trial)."""
    import json

    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig

    resources = {"CPU": ft.cpus_per_worker}
    if ft.use_gpu:
        resources["GPU"] = ft.gpus_per_worker
    trainer = torch_trainer(
        sft_train_loop, train_loop_config={JOB_KEY: job},
        scaling_config=ScalingConfig(num_workers=job.num_workers, use_gpu=ft.use_gpu,
                                     resources_per_worker=resources),
        run_config=RunConfig(name=run_name, storage_path=storage_path,
                             failure_config=FailureConfig(max_failures=ft.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=2), callbacks=callbacks),
    )
    started = time.perf_counter()
    result = trainer.fit()
    out = Path(adapter_dir)
    with result.checkpoint.as_directory() as ckpt, folder_build(out) as tmp:
        shutil.copytree(Path(ckpt) / ADAPTER_SUBDIR, tmp, dirs_exist_ok=True)
        metrics = json.loads((Path(ckpt) / "metrics.json").read_text())
    metrics["fit_wall_time_s"] = time.perf_counter() - started
    return {"metrics": metrics, "adapter": str(out), "checkpoint": result.checkpoint.path}


def launch_all(jobs: dict[str, SFTJob], ft: FinetuneConfig, manifest: FinetuneManifest, storage_path: Path,
               adapters_dir: Path, on_event=None) -> dict[str, str]:
    """Run the given jobs concurrently; returns {name: final status}."""
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
