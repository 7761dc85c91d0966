"""Launch every LoRA SFT job at once on Ray Train, the manifest updated as each job starts and ends.

Jobs of one worker each share one Ray Train run (`finetune.pack_jobs`): one controller for all, a worker per job
that trains it alone and checkpoints to the job's folder under the storage path. A job of several workers, or any
job when packing is off or the storage path is a URI, gets a `TorchTrainer` of its own. Each run's `fit()` is
driven from its own (daemon) thread of this process: a driver task per run would be one more worker process to
start, and Ray starts only as many processes at a time as the node has CPUs.

A job that was killed resumes from its last checkpoint: it runs again under the same job id, and its folder (packed)
or Ray Train run (its own) holds the checkpoint it restores.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import socket
import threading
import time
from pathlib import Path

from parallel_r1.base_model.torch_trainer import solo_trainer, torch_trainer
from parallel_r1.config import FinetuneConfig
from parallel_r1.config.groups import is_uri, train_storage
from parallel_r1.config.workers import JOB_KEY, SFTJob, SFTPack
from parallel_r1.data.io import folder_build
from parallel_r1.finetune.manifest import FinetuneManifest
from parallel_r1.finetune.sft import ADAPTER_SUBDIR, ERROR_FILE, FINAL_SUBDIR, packed_train_loop, sft_train_loop


def fit_job(job: SFTJob, ft: FinetuneConfig, run_name: str, storage_path: str, adapter_dir: str,
            callbacks: list | None = None) -> dict:
    """Build and fit one TorchTrainer; copy the final adapter into `adapter_dir` atomically.

    `callbacks`: Ray Train user callbacks (e.g. Tune's report callback when the fit runs in a Tune trial)."""
    from ray.train import CheckpointConfig, ScalingConfig

    trainer = torch_trainer(
        sft_train_loop, train_loop_config={JOB_KEY: job},
        scaling_config=ScalingConfig(num_workers=job.num_workers, use_gpu=ft.use_gpu,
                                     resources_per_worker=_resources(ft)),
        run_config=_run_config(ft, run_name, storage_path, callbacks=callbacks,
                               checkpoint_config=CheckpointConfig(num_to_keep=2)),
    )
    started = time.perf_counter()
    result = trainer.fit()
    with result.checkpoint.as_directory() as ckpt:
        out = _finished(Path(ckpt), Path(adapter_dir), started)
    return {**out, "checkpoint": result.checkpoint.path}


def fit_pack(pack: SFTPack, ft: FinetuneConfig, run_name: str, storage_path: str) -> None:
    """Fit one run whose worker of rank r trains `pack.jobs[r]` alone (`packed_train_loop`); each job's outcome is
    left in its folder, `pack.dirs[r]`."""
    from ray.train import ScalingConfig

    solo_trainer(packed_train_loop, train_loop_config={JOB_KEY: pack},
                 scaling_config=ScalingConfig(num_workers=len(pack.jobs), use_gpu=ft.use_gpu,
                                              resources_per_worker=_resources(ft)),
                 run_config=_run_config(ft, run_name, storage_path)).fit()


def _resources(ft: FinetuneConfig) -> dict:
    return {"CPU": ft.cpus_per_worker, **({"GPU": ft.gpus_per_worker} if ft.use_gpu else {})}


def _run_config(ft: FinetuneConfig, run_name: str, storage_path: str, **kwargs):
    from ray.train import FailureConfig, RunConfig

    return RunConfig(name=run_name, storage_path=storage_path,
                     failure_config=FailureConfig(max_failures=ft.max_failures), **kwargs)


def _finished(folder: Path, adapter_dir: Path, started: float) -> dict:
    """Copy the adapter of a finished job's folder (`adapter/`, `metrics.json`) into `adapter_dir` atomically."""
    with folder_build(adapter_dir) as tmp:
        shutil.copytree(folder / ADAPTER_SUBDIR, tmp, dirs_exist_ok=True)
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["fit_wall_time_s"] = time.perf_counter() - started
    return {"metrics": metrics, "adapter": str(adapter_dir)}


def launch_units(jobs: dict[str, SFTJob], ft: FinetuneConfig, storage: str,
                 capacity: int | None = None) -> list[tuple[list[str], bool]]:
    """The jobs grouped as they launch, (names, packed): one-worker jobs in packs (one Ray Train run each) when
    `ft.pack_jobs` and the storage is a path, then every other job in a run of its own. A pack holds at most
    `ft.max_concurrent_jobs` jobs and `capacity` workers, what the cluster has room for at launch: a run's workers
    are placed together, so a bigger pack would wait for room that other work may never give back."""
    size = max(1, min(ft.max_concurrent_jobs or len(jobs), capacity or len(jobs)))
    packed = [n for n, job in jobs.items() if job.num_workers == 1] if ft.pack_jobs and not is_uri(storage) else []
    return ([(packed[i:i + size], True) for i in range(0, len(packed), size)]
            + [([n], False) for n in jobs if n not in packed])


def worker_capacity(ft: FinetuneConfig, free: dict[str, float]) -> int:
    """How many workers of `ft`'s size fit in `free` (Ray's available resources: CPUs, and GPUs with use_gpu); at
    least one, which waits for room like a job of its own would."""
    fits = [free.get("CPU", 0.0) / ft.cpus_per_worker]
    if ft.use_gpu:
        fits.append(free.get("GPU", 0.0) / ft.gpus_per_worker)
    return max(1, int(min(fits) + 1e-9))


def launch_all(jobs: dict[str, SFTJob], ft: FinetuneConfig, manifest: FinetuneManifest, storage_path: str | Path,
               adapters_dir: Path, on_event=None) -> dict[str, str]:
    """Run the given jobs concurrently (at most `ft.max_concurrent_jobs` at a time); returns {name: final status}."""
    import ray

    storage, limit = train_storage(storage_path), ft.max_concurrent_jobs or len(jobs)
    units = launch_units(jobs, ft, storage, worker_capacity(ft, ray.available_resources()) if ft.pack_jobs else None)
    finished: queue.Queue = queue.Queue()  # (name, result or None, error text or None)
    running, final, threads = 0, {}, []

    def run_own(name: str, run_name: str) -> None:
        try:
            finished.put((name, fit_job(jobs[name], ft, run_name, storage, str(adapters_dir / name)), None))
        except Exception as e:  # noqa: BLE001 - a failed job is recorded, the others go on
            finished.put((name, None, f"{type(e).__name__}: {_root_cause(e)}"))

    def run_pack(names: list[str], ids: list[str]) -> None:
        folders = {n: Path(storage) / job_id for n, job_id in zip(names, ids, strict=True)}
        pack = SFTPack(jobs=tuple(jobs[n] for n in names), dirs=tuple(str(folders[n]) for n in names))
        run_name = "sft-pack-" + hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:12]
        outcome: dict = {}
        done = threading.Event()

        def fit() -> None:
            try:
                fit_pack(pack, ft, run_name, storage)
            except Exception as e:  # noqa: BLE001 - the jobs without an outcome of their own fail with it
                outcome["error"] = f"{type(e).__name__}: {_root_cause(e)}"
            finally:
                done.set()

        for folder in folders.values():  # an earlier attempt's failure is not this one's
            (folder / ERROR_FILE).unlink(missing_ok=True)
        started, left = time.perf_counter(), list(names)
        threading.Thread(target=fit, name=f"fit-{run_name}", daemon=True).start()
        while left:
            ended = done.wait(1.0)
            for name in list(left):
                if ended or (folders[name] / FINAL_SUBDIR).exists() or (folders[name] / ERROR_FILE).exists():
                    finished.put(_pack_outcome(name, folders[name], adapters_dir / name, started,
                                               outcome.get("error", "the run ended without finishing this job")))
                    left.remove(name)
        done.wait()  # the run's teardown too, before the caller moves on

    while units or running:
        while units and (running == 0 or running + len(units[0][0]) <= limit):
            names, packed = units.pop(0)
            ids = []
            for name in names:
                job = manifest.read()[name]
                manifest.update(name, status="running", attempts=job.attempts + 1,
                                checkpoint=f"{storage}/{job.job_id}", owner=f"{socket.gethostname()}:{os.getpid()}")
                ids.append(job.job_id)
                if on_event:
                    on_event(name, "running")
            target, args = (run_pack, (names, ids)) if packed else (run_own, (names[0], ids[0]))
            threads.append(threading.Thread(target=target, args=args, name=f"fit-{names[0]}", daemon=True))
            threads[-1].start()
            running += len(names)
        name, out, error = finished.get()
        running -= 1
        if error is None:
            manifest.update(name, status="succeeded", result=out["adapter"], metrics=out["metrics"],
                            checkpoint=out["checkpoint"], error=None)
            final[name] = "succeeded"
            _drop_trainer_checkpoints(Path(out["checkpoint"]))
        else:
            manifest.update(name, status="failed", error=error)
            final[name] = "failed"
        if on_event:
            on_event(name, final[name])
    for thread in threads:
        thread.join()
    return final


def _pack_outcome(name: str, folder: Path, adapter_dir: Path, started: float, otherwise: str) -> tuple:
    """(name, result, None) for a packed job whose folder holds its adapter, else (name, None, why it failed)."""
    try:
        if (folder / FINAL_SUBDIR / "metrics.json").exists():
            return name, {**_finished(folder / FINAL_SUBDIR, adapter_dir, started), "checkpoint": str(folder)}, None
        if (folder / ERROR_FILE).exists():
            return name, None, json.loads((folder / ERROR_FILE).read_text())["error"]
    except (OSError, ValueError, KeyError) as e:
        return name, None, f"{type(e).__name__}: {_root_cause(e)} (reading {folder})"
    return name, None, otherwise


def _drop_trainer_checkpoints(folder: Path) -> None:
    """Once a packed job's success is recorded, the Trainer's checkpoints in its folder (kept for resuming) go;
    `final/` stays. Anything else (a run of its own, a URI) is left to Ray Train's storage."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    if (folder / FINAL_SUBDIR).is_dir():
        for checkpoint in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
            shutil.rmtree(checkpoint, ignore_errors=True)


def _root_cause(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[-1][:500] if text else type(e).__name__
