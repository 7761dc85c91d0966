"""The finetune stage: one LoRA SFT job per specialist batch (or one monolithic job on their union),
on Ray Train or the OpenAI fine-tuning API, all tracked in `finetune_manifest.json`.

Run it with `parallel-r1 finetune [--backend ray|openai] [--batches a,b] [--monolithic]`; follow it
with `parallel-r1 watch`. Jobs that succeeded on the same training file (its digest is in the manifest) and the same
starting adapter are not re-run; killed or failed ones resume; a changed training file trains afresh.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from parallel_r1.config import PipelineConfig
from parallel_r1.config.workers import SFTJob
from parallel_r1.console import console, summary_table
from parallel_r1.data.io import atomic_write_jsonl, file_digest, read_jsonl, remove_stale_temps
from parallel_r1.data.prompts import TUTOR_SYSTEM_PROMPT
from parallel_r1.data.run_lock import run_lock
from parallel_r1.errors import UserFacingError
from parallel_r1.finetune.manifest import FinetuneJob, FinetuneManifest
from parallel_r1.finetune.register import register_trained
from parallel_r1.paths import RunPaths, resolve_base_model
from parallel_r1.recipe import run_recipe

MONOLITHIC = "monolithic"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneResult(Mapping[str, FinetuneJob]):
    """Every job of the manifest after this run, by name (a read-only mapping of them)."""

    jobs: dict[str, FinetuneJob]

    def __getitem__(self, name: str) -> FinetuneJob:
        return self.jobs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.jobs)

    def __len__(self) -> int:
        return len(self.jobs)

    @property
    def failed(self) -> dict[str, FinetuneJob]:
        return {n: j for n, j in self.jobs.items() if j.status != "succeeded"}


class FinetuneStage:
    """setup() → run() → cleanup() over one PipelineConfig."""

    def __init__(self, cfg: PipelineConfig, *, monolithic: bool = False, with_baseline: bool = False,
                 force: bool = False):
        """monolithic: only the one job on the union of the batches; with_baseline: that job as well as one
        per batch, all launched together."""
        self.cfg = cfg
        self.paths = RunPaths(cfg.workdir)
        self.monolithic = monolithic
        self.with_baseline = with_baseline
        self.force = force
        self.manifest = FinetuneManifest(self.paths.finetune_manifest)
        self.files: dict[str, Path] = {}
        self.batches_of: dict[str, list[str]] = {}
        self.todo: list[str] = []

    def _batch_files(self) -> dict[str, Path]:
        self.paths.require(self.paths.batches, "batch")
        available = {p.stem: p for p in sorted(self.paths.batches.glob("*.jsonl"))}
        if not available:
            raise FileNotFoundError(f"no <batch>.jsonl in {self.paths.batches}: run `parallel-r1 batch` first")
        wanted = self.cfg.finetune.batches or list(available)
        missing = [b for b in wanted if b not in available]
        if missing:
            raise UserFacingError(f"finetune.batches: no training file for {missing} in {self.paths.batches} "
                                  f"(available: {', '.join(available)})")
        empty = [b for b in wanted if not read_jsonl(available[b])]
        if empty and (self.cfg.finetune.batches or len(empty) == len(wanted)):
            raise UserFacingError(f"finetune: batch(es) {', '.join(empty)} hold no dialogues: "
                                  f"{self.paths.batch_report} says why (discover more, or lower the batch's filters)")
        if empty:
            console.print(f"finetune: skipped, no dialogues in the batch: {', '.join(empty)} "
                          f"(see {self.paths.batch_report}); the other batches train")
        return {b: available[b] for b in wanted if b not in empty}

    def _with_guardrail(self, name: str, batch: Path) -> Path:
        """The batch's training file, or, when `guardrail` wrote corrected replies for this specialist, the batch
        with them appended (finetune/<name>.jsonl)."""
        extra = self.paths.guardrail / f"{name}.jsonl"
        rows = read_jsonl(extra) if extra.exists() else []
        if not rows:
            return batch
        console.print(f"finetune: {name} also trains on {len(rows)} corrected replies from {extra}")
        return atomic_write_jsonl(self.paths.workdir / "finetune" / f"{name}.jsonl", read_jsonl(batch) + rows)

    def setup(self) -> None:
        stale = remove_stale_temps(self.paths.adapters)
        if stale:
            log.info("finetune: removed what killed jobs left in %s: %s", self.paths.adapters, ", ".join(stale))
        files = {name: self._with_guardrail(name, path) for name, path in self._batch_files().items()}
        self.files, self.batches_of = ({}, {}) if self.monolithic else (dict(files), {b: [b] for b in files})
        if self.monolithic or self.with_baseline or self.specialised:
            union = [_generic_prompt(row) for p in files.values() for row in read_jsonl(p)]
            self.files[MONOLITHIC] = atomic_write_jsonl(self.paths.workdir / "finetune" / f"{MONOLITHIC}.jsonl", union)
            self.batches_of[MONOLITHIC] = list(files)
        backend = self.cfg.finetune.backend
        existing = self.manifest.read()
        digests = {name: file_digest(path) for name, path in self.files.items()}

        def same_data(job: FinetuneJob) -> bool:
            return job.training_digest in (None, digests[job.name])  # None: an entry from before digests

        def current(name: str) -> bool:
            job = existing.get(name)
            return (job is not None and job.status == "succeeded" and not self.force and same_data(job)
                    and job.init_adapter == self.init_adapter(name)
                    and (name != MONOLITHIC or (self.paths.adapters / name / "adapter_config.json").exists()))

        retrains_start = self.specialised and not current(MONOLITHIC)
        for name, path in self.files.items():
            job = existing.get(name)
            if current(name) and not (retrains_start and name != MONOLITHIC):
                continue
            self.todo.append(name)
            if backend == "openai":
                if job is not None and (self.force or job.backend != "openai" or not same_data(job)):
                    self.manifest.put(FinetuneJob(name=name, backend="openai", batches=self.batches_of[name],
                                                  training_file_path=str(path), status="failed",
                                                  error="re-submitted", attempts=job.attempts))
                continue  # the OpenAI backend records (or adopts) its own entries
            init = self.init_adapter(name)
            if (job is None or job.backend != "ray" or job.status == "succeeded" or job.init_adapter != init
                    or not same_data(job)):
                attempt = job.attempts if job else 0
                self.manifest.put(FinetuneJob(name=name, backend="ray", batches=self.batches_of[name],
                                              training_file=str(path), training_file_path=str(path),
                                              training_digest=digests[name], job_id=f"sft-{name}-{attempt}",
                                              attempts=attempt, init_adapter=init))
            else:  # killed or failed on the same data: relaunch under the same run name, which resumes its checkpoint
                self.manifest.update(name, status="queued", error=None)

    @property
    def specialised(self) -> bool:
        """Specialists continue from the monolithic adapter (`finetune.specialise_from: monolithic`)."""
        return self.cfg.finetune.specialise_from == MONOLITHIC and not self.monolithic

    def init_adapter(self, name: str) -> str | None:
        return str(self.paths.adapters / MONOLITHIC) if self.specialised and name != MONOLITHIC else None

    def run(self) -> FinetuneResult:
        skipped = [n for n in self.files if n not in self.todo]
        if skipped:
            console.print(f"finetune: already succeeded, not re-run: {', '.join(skipped)}")
        if self.todo:
            if self.cfg.finetune.backend == "ray":
                self._run_ray()
            else:
                self._run_openai()
        result = FinetuneResult(self.manifest.read())
        console.print(manifest_table(result.jobs))
        for version in register_trained(self.paths, result.jobs, self.cfg.finetune):
            console.print(f"finetune: {version.name} is registered as {version.ref}")
        return result

    def cleanup(self) -> None:
        """Nothing to release: Ray Train owns its workers."""

    def _run_ray(self) -> None:
        from parallel_r1.finetune.launcher import launch_all
        from parallel_r1.ray_runtime import ensure_ray

        base = resolve_base_model(self.cfg.base_model, self.paths)
        ft = self.cfg.finetune
        console.print(ensure_ray(self.cfg.ray))
        jobs = {n: SFTJob.for_batch(n, self.files[n], base, ft, len(read_jsonl(self.files[n])),
                                    ft.monolithic_workers if n == MONOLITHIC else None, self.init_adapter(n))
                for n in self.todo}
        storage = ft.storage_path or self.paths.ray_results
        phases = [jobs]
        if self.specialised and MONOLITHIC in jobs and len(jobs) > 1:
            phases = [{MONOLITHIC: jobs.pop(MONOLITHIC)}, jobs]
            console.print("finetune: specialise_from monolithic: the monolithic baseline first, then the specialists "
                          "from its adapter")
        for phase in phases:
            if self.specialised and MONOLITHIC not in phase and self.manifest.read()[MONOLITHIC].status != "succeeded":
                for name in phase:
                    self.manifest.update(name, status="failed", error="not started: the monolithic adapter it "
                                         "continues from did not train (see its entry)")
                break
            workers = sum(job.num_workers for job in phase.values())
            console.print(f"finetune: launching {len(phase)} LoRA SFT job(s) on Ray Train at once ({workers} "
                          f"worker(s) × {ft.cpus_per_worker} CPU each); base model {base}")
            launch_all(phase, ft, self.manifest, storage, self.paths.adapters,
                       on_event=lambda name, status: console.print(f"  {name}: {status}"))

    def _run_openai(self) -> None:
        from parallel_r1.finetune.openai_ft import OpenAIFinetuneBackend

        backend = OpenAIFinetuneBackend(self.cfg.finetune.openai, self.manifest)
        backend.submit({n: self.files[n] for n in self.todo}, self.batches_of)
        console.print("finetune: submitted to the OpenAI fine-tuning API; follow with `parallel-r1 watch`")


def _generic_prompt(record: dict) -> dict:
    """A batch's training record with the generic tutor prompt: the monolithic baseline is one model for every
    student, trained (and evaluated, and served) without a specialism in its prompt."""
    turns = [m for m in record["messages"] if m["role"] != "system"]
    return {**record, "messages": [{"role": "system", "content": TUTOR_SYSTEM_PROMPT}, *turns]}


def manifest_table(jobs: dict[str, FinetuneJob]):
    rows = []
    for job in jobs.values():
        m = job.metrics or {}
        rows.append((job.name, job.backend, job.status, job.job_id or "-", m.get("train_loss"),
                     m.get("tokens_per_s"), m.get("wall_time_s"), job.result or job.error or "-"))
    return summary_table("finetune jobs", ["job", "backend", "status", "job id", "train loss", "tokens/s",
                                           "wall s", "result / error"], rows)


def run_finetune(cfg: PipelineConfig, *, monolithic: bool = False, with_baseline: bool = False,
                 force: bool = False) -> FinetuneResult:
    with run_lock(cfg.workdir, "finetune"):
        return run_recipe(FinetuneStage(cfg, monolithic=monolithic, with_baseline=with_baseline, force=force))
