"""`watch` and `check`: the manifest's jobs as a table, live until every job has ended.

OpenAI jobs are polled through the API on each refresh; Ray jobs are updated by the process that
runs them, so watching is a read of the manifest, except that a running job whose process on this
host is gone (killed) is marked failed with how to resume it, instead of being watched forever.
"""

from __future__ import annotations

import time

from rich.live import Live

from parallel_r1.config import PipelineConfig
from parallel_r1.console import console
from parallel_r1.finetune.manifest import FinetuneJob, FinetuneManifest
from parallel_r1.finetune.register import register_trained
from parallel_r1.finetune.stage import manifest_table
from parallel_r1.paths import RunPaths


def refresh(cfg: PipelineConfig, manifest: FinetuneManifest) -> dict[str, FinetuneJob]:
    jobs = manifest.require()
    if any(j.owner_gone() for j in jobs.values()):
        manifest.mark_orphans()
        jobs = manifest.read()
    if any(j.backend == "openai" and not j.done for j in jobs.values()):
        from parallel_r1.finetune.openai_ft import OpenAIFinetuneBackend

        OpenAIFinetuneBackend(cfg.finetune.openai, manifest).poll()
        jobs = manifest.read()
        register_trained(RunPaths(cfg.workdir), jobs, cfg.finetune)
    return jobs


def check(cfg: PipelineConfig) -> dict[str, FinetuneJob]:
    jobs = refresh(cfg, FinetuneManifest(RunPaths(cfg.workdir).finetune_manifest))
    console.print(manifest_table(jobs))
    return jobs


def watch(cfg: PipelineConfig, interval_s: float | None = None,
          timeout_s: float | None = None) -> dict[str, FinetuneJob]:
    """Refresh the table until every job is succeeded, failed or cancelled (or the timeout passes)."""
    manifest = FinetuneManifest(RunPaths(cfg.workdir).finetune_manifest)
    interval = interval_s or cfg.finetune.openai.poll_interval_s
    deadline = time.monotonic() + timeout_s if timeout_s else None
    jobs = refresh(cfg, manifest)
    with Live(manifest_table(jobs), console=console, refresh_per_second=2) as live:
        while not all(j.done for j in jobs.values()):
            if deadline and time.monotonic() > deadline:
                break
            time.sleep(interval)
            jobs = refresh(cfg, manifest)
            live.update(manifest_table(jobs))
    return jobs


def exit_code(jobs: dict[str, FinetuneJob]) -> int:
    """0 when every job succeeded; 1 when any failed or was cancelled; 3 when some are still running."""
    if any(j.status in ("failed", "cancelled") for j in jobs.values()):
        return 1
    return 0 if all(j.done for j in jobs.values()) else 3
