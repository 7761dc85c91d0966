"""The cold start of the Parallel-R1 stage (`parallel-r1 parallel-sft`, or `parallel-r1 finetune --parallel-format`).

1. Build the parallel dataset from the graded dialogues (`parallel/sft_data.jsonl`, `parallel.branches` paths per
   block).
2. SFT the base model on it through the specialists' Ray Train launcher (one job in `parallel/sft/manifest.json`):
   the tags become atomic tokens, the embeddings are resized, and their new rows train with the LoRA.
3. Merge the adapter into a full model folder with its tokenizer, `parallel/sft/model`: what `parallel-r1 rl` loads.
4. Validate before RL: the starting point (base + tags, `parallel/sft/start_model`) and the SFT'd model answer
   held-out prefixes; below `parallel.sft.min_uplift` the stage fails, saying so. `parallel/sft/eval.json` is
   written either way.

Each step is skipped when its artifact is current (the settings it was made with are part of its key); a killed
training job resumes from its checkpoint; `--force` redoes everything.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from parallel_r1.compare.models import PARALLEL_SFT
from parallel_r1.config import FinetuneConfig, PipelineConfig
from parallel_r1.config.workers import SFTJob
from parallel_r1.console import notice, progress_bar, summary_table
from parallel_r1.data.io import atomic_write_json, cached_json, file_digest
from parallel_r1.data.run_lock import run_lock
from parallel_r1.errors import UserFacingError
from parallel_r1.finetune.manifest import FinetuneJob, FinetuneManifest
from parallel_r1.paths import RunPaths, resolve_base_model
from parallel_r1.recipe import run_recipe
from parallel_r1.registry.versions import ModelRegistry

log = logging.getLogger(__name__)

JOB = "parallel_sft"
EXPORT_INFO = "parallel_sft.json"  # in an exported model folder: what it was made from


class UpliftTooLowError(UserFacingError):
    """The SFT'd model does not beat its starting point by `parallel.sft.min_uplift` on the parallel evaluation."""


def _digest(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class ParallelSFTResult:
    """The SFT'd model, whether it passed its validation before RL, and the whole record of `eval.json`."""

    model: Path
    passed: bool
    uplift: float
    record: dict


class ParallelSFTStage:
    """setup() → run() → cleanup() over one PipelineConfig."""

    def __init__(self, cfg: PipelineConfig, *, force: bool = False):
        self.cfg = cfg
        self.paths = RunPaths(cfg.workdir)
        self.force = force
        self.dir = self.paths.parallel_sft
        self.manifest = FinetuneManifest(self.dir / "manifest.json")
        self.evaluation = None
        self.base = ""
        self.key: dict = {}
        self.records: list[dict] = []
        self.dataset_info: dict = {}
        self.done: dict | None = None
        self.train = False

    # ------------------------------------------------------------------ settings and keys
    def finetune_config(self) -> FinetuneConfig:
        """`finetune` with the cold start's own epochs, learning rate and example length."""
        sft, ft = self.cfg.parallel.sft, self.cfg.finetune
        return ft.model_copy(update={"epochs": sft.epochs or ft.epochs, "max_length": sft.max_length,
                                     "learning_rate": sft.learning_rate or ft.learning_rate})

    def _dataset_key(self) -> dict:
        p = self.cfg.parallel
        fields = {"dataset_threshold", "branches", "max_blocks", "min_dialogues", "turns_per_dialogue",
                  "path_min_grade", "max_path_overlap", "summary_mode", "seed", "path_source"}
        writer = self._path_writer()
        model = {} if writer == "replay" else {"path_generation": p.path_generation.model_dump(mode="json")}
        if writer == "policy":
            model.update(policy=p.path_generation.model or self.base, engine=self.cfg.inference.model_dump(mode="json"))
        grounding = {}
        if "parallel_sft" in self.cfg.kb.ground:  # the store's contents are read at build time, not keyed here
            grounding = {"kb": self.cfg.kb.model_dump(mode="json", include={"table", "top_k", "min_score"})}
        return {"dialogues": file_digest(self.paths.dialogues), "discover_seed": self.cfg.discover.seed,
                **p.model_dump(mode="json", include=fields), **model, **grounding}

    def _path_writer(self) -> str:
        """Who writes any of the dataset's paths: "replay" when only the simulator does (`auto` with procedural
        dialogues only), else the model of `parallel.path_source`."""
        import pyarrow.parquet as pq

        from parallel_r1.parallel_sft.dataset import PROCEDURAL

        source = self.cfg.parallel.path_source
        if source != "auto":
            return source
        backends = pq.read_table(self.paths.dialogues, columns=["backend"]).column("backend").to_pylist()
        return "policy" if any(b != PROCEDURAL for b in backends) else "replay"

    def _train_key(self) -> dict:
        ft = self.finetune_config()
        fields = {"epochs", "learning_rate", "max_length", "per_device_batch_size", "gradient_accumulation_steps",
                  "seed", "lora", "num_workers"}
        return {"dataset": _digest(self.key["dataset"]), "base": self.base,
                **ft.model_dump(mode="json", include=fields)}

    def _eval_key(self) -> dict:
        s = self.cfg
        return {"train": _digest(self.key["train"]), "sft": s.parallel.sft.model_dump(mode="json"),
                "inference": s.parallel.inference.model_dump(mode="json"), "eval_seed": s.eval.seed,
                "sampling_seed": s.eval.sampling_seed, "slices": [x.model_dump(mode="json") for x in s.eval.slices],
                "ci_level": s.eval.ci_level, "bootstrap_samples": s.eval.bootstrap_samples,
                "engine": s.inference.model_dump(mode="json")}

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        self.base = resolve_base_model(self.cfg.base_model, self.paths)
        self.paths.require(self.paths.dialogues, "discover")
        self.key = {"dataset": self._dataset_key()}
        self.key["train"] = self._train_key()
        self.key["eval"] = self._eval_key()
        if not self.force and (done := cached_json(self.paths.parallel_sft_eval)) is not None:
            if done.get("passed") and done.get("key") == self.key and self.paths.parallel_sft_model.exists():
                self.done = done
                return
        self._dataset()
        self._prepare_job()

    def _dataset(self) -> None:
        """`parallel/sft_data.jsonl`, rebuilt unless it was built from the same dialogues and settings."""
        from parallel_r1.data import read_dialogues
        from parallel_r1.data.io import read_jsonl
        from parallel_r1.parallel_sft.dataset import ParallelDatasetBuilder

        meta_path = self.paths.parallel / "sft_data.meta.json"
        meta = cached_json(meta_path) or {}
        if not self.force and meta.get("key") == self.key["dataset"] and self.paths.parallel_sft_data.exists():
            self.records, self.dataset_info = read_jsonl(self.paths.parallel_sft_data), meta["info"]
            notice(f"parallel-sft: {self.paths.parallel_sft_data} is up to date ({len(self.records)} records)", log)
            return
        builder = ParallelDatasetBuilder.from_config(self.cfg.parallel, backend_seed=self.cfg.discover.seed,
                                                     inference=self.cfg.inference, base_model=self.base,
                                                     ray=self.cfg.ray, progress=True)
        with contextlib.ExitStack() as stack:
            if "parallel_sft" in self.cfg.kb.ground:
                from parallel_r1.kb import open_kb
                from parallel_r1.parallel_sft.grounding import Grounder

                kb = stack.enter_context(open_kb(self.cfg.kb, self.cfg.workdir))
                builder.grounder = Grounder(kb, self.cfg.kb.top_k, self.cfg.kb.min_score)
            dataset = builder.build(read_dialogues(self.paths.dialogues))
        dataset.write_jsonl(self.paths.parallel_sft_data)
        self.records = [r.to_dict() for r in dataset.records]
        self.dataset_info = {"records": len(dataset.records), "eligible_dialogues": dataset.eligible_dialogues,
                             "skipped": len(dataset.skipped), "threshold": self.cfg.parallel.dataset_threshold,
                             "branches": self.cfg.parallel.branches, "failed_requests": len(dataset.failures),
                             "path_sources": dict(Counter(f"{r.path_source}: {r.path_model}" for r in dataset.records)),
                             "grounded_records": sum(bool(r.grounding) for r in dataset.records)}
        atomic_write_json(meta_path, {"key": self.key["dataset"], "info": self.dataset_info,
                                      "skipped": dataset.skipped, "failures": dataset.failures})
        notice(f"parallel-sft: {len(dataset.records)} parallel targets from {dataset.eligible_dialogues} "
               f"dialogues scoring >= {self.cfg.parallel.dataset_threshold:g} -> {self.paths.parallel_sft_data} "
               f"(paths: {self.dataset_info['path_sources']}; {len(dataset.failures)} failed requests)", log)

    def _prepare_job(self) -> None:
        """The manifest entry of the training job: kept when it succeeded under the same key, resumed (same run
        name, so Ray Train restores its checkpoint) when it was killed or failed, new otherwise."""
        prefix = f"parallel-sft-{_digest(self.key['train'])}"
        job = self.manifest.read().get(JOB)
        same = job is not None and (job.job_id or "").startswith(f"{prefix}-")
        if same and job.status == "succeeded" and not self.force and job.result and Path(job.result).exists():
            return
        self.train = True
        if same and job.status != "succeeded" and not self.force:
            self.manifest.update(JOB, status="queued", error=None)
            return
        attempt = job.attempts if job else 0
        self.manifest.put(FinetuneJob(name=JOB, backend="ray", batches=["parallel"],
                                      training_file=str(self.paths.parallel_sft_data),
                                      training_file_path=str(self.paths.parallel_sft_data),
                                      job_id=f"{prefix}-{attempt}", attempts=attempt))

    # ------------------------------------------------------------------ run
    def run(self) -> ParallelSFTResult:
        """Train (if needed), export both models, evaluate, write `eval.json`; UpliftTooLowError below the bar."""
        from parallel_r1.parallel_sft.check import SFT, START, check_uplift, evaluation_record

        if self.done is not None:
            notice(f"parallel-sft: {self.paths.parallel_sft_model} is up to date and passed its validation "
                   "(--force redoes it)", log)
            print_summary(self.done)
            return _result(self.done)
        with progress_bar() as bar:
            task = bar.add_task("parallel-sft", total=4, status="training" if self.train else "trained earlier")
            if self.train:
                self._train()
            job = self.manifest.read()[JOB]
            bar.update(task, advance=1, status="exporting")
            context = self.finetune_config().max_length
            start = self._export(self.dir / "start_model", context, None)
            model = self._export(self.paths.parallel_sft_model, context, Path(job.result))
            bar.update(task, advance=1, status="evaluating the starting point")
            evaluation = self._evaluation()
            results = {}
            for name, folder, after in ((START, start, "evaluating the SFT'd model"), (SFT, model, "done")):
                results[name] = evaluation.evaluate(name, folder)
                bar.update(task, advance=1, status=after)
        sft, ecfg = self.cfg.parallel.sft, self.cfg.eval
        check = check_uplift(results[START], results[SFT], sft.min_uplift, sft.max_rubric_drop,
                             samples=ecfg.bootstrap_samples, level=ecfg.ci_level, seed=ecfg.seed)
        record = {**evaluation_record(results, check, evaluation.meta()), "key": self.key,
                  "dataset": self.dataset_info, "training": job.metrics, "model": str(model),
                  "start_model": str(start)}
        atomic_write_json(self.paths.parallel_sft_eval, record)
        print_summary(record)
        version = ModelRegistry(self.paths.workdir).register(
            PARALLEL_SFT, "model", model, training=self.cfg.parallel.sft.model_dump(mode="json"),
            data_digest=file_digest(self.paths.parallel_sft_data), metrics={"uplift_check": check.message,
                                                                            "passed": check.passed})
        notice(f"parallel-sft: registered as {version.ref}", log)
        if not check.passed:
            raise UpliftTooLowError(f"{check.message} (evaluation: {self.paths.parallel_sft_eval})")
        return _result(record)

    def _train(self) -> None:
        from parallel_r1.finetune.launcher import launch_all
        from parallel_r1.ray_runtime import ensure_ray

        ft = self.finetune_config()
        notice(ensure_ray(self.cfg.ray), log)
        job = replace(SFTJob.for_batch(JOB, self.paths.parallel_sft_data, self.base, ft, len(self.records)),
                      parallel_tokens=True)
        storage = ft.storage_path or self.paths.ray_results
        notice(f"parallel-sft: SFT of {self.base} on {len(self.records)} parallel targets on Ray Train "
               f"({ft.epochs:g} epochs, lr {ft.learning_rate:g}, max_length {ft.max_length})", log)
        final = launch_all({JOB: job}, ft, self.manifest, storage, self.dir / "adapters",
                           on_event=lambda name, status: notice(f"  {name}: {status}", log))
        if final[JOB] != "succeeded":
            raise UserFacingError(f"parallel-sft: the training job failed: {self.manifest.read()[JOB].error}; "
                                  f"run `parallel-r1 parallel-sft` again to resume it ({self.manifest.path})")

    def _export(self, out: Path, context: int, adapter: Path | None) -> Path:
        """A full model folder (skipped when it holds what it would be made from): base + tags, with `adapter`
        merged in when given."""
        from parallel_r1.finetune.parallel_tokens import export_parallel_model

        made_from = {"base": self.base, "context": context,
                     "adapter": file_digest(adapter / "adapter_model.safetensors") if adapter else None}
        info = out / EXPORT_INFO
        if out.exists() and cached_json(info) == made_from:
            return out
        export_parallel_model(self.base, out, context=context, adapter=adapter)
        atomic_write_json(info, made_from)
        return out

    def _evaluation(self):
        from parallel_r1.compare.heldout import training_prefixes
        from parallel_r1.compare.parallel_replies import ParallelEvaluation
        from parallel_r1.parallel_sft.check import heldout_items, training_prefix_keys

        exclude = training_prefix_keys(self.records)
        if self.paths.batches.exists():
            exclude |= training_prefixes(self.paths.batches)
        items, _ = heldout_items(self.cfg, exclude)
        self.evaluation = ParallelEvaluation(self.cfg, items, self.dir / "replies")
        return self.evaluation

    def cleanup(self) -> None:
        """Close the evaluation's inference engine if a failure left one open."""
        if self.evaluation is not None:
            self.evaluation.close()
            self.evaluation = None


def _result(record: dict) -> ParallelSFTResult:
    return ParallelSFTResult(Path(record["model"]), bool(record["passed"]), record["uplift"], record)


def print_summary(record: dict) -> None:
    """The validation table (both models, the deltas, the verdict) and the training figures."""
    models, deltas = record["models"], record["deltas"]
    rows = [[name, m["format_adherence"], m["rubric"], m["score"], m["mean_path_diversity"], m["consensus_rate"],
             m["n_replies"]] for name, m in models.items()]
    rows.append(["delta", deltas["format_adherence"], deltas["rubric"], deltas["score"], None, None, None])
    notice(summary_table(
        f"parallel-sft: validation before RL ({record['items']} held-out prefixes, {record['engine']} engine)",
        ["model", "format adherence", "rubric (student view)", "parallel score", "path diversity", "consensus",
         "replies"], rows), log)
    m = record.get("training") or {}
    notice(summary_table("parallel-sft: training", ["", "value"], [
        ("examples", m.get("examples")), ("steps", m.get("global_step")),
        ("loss", f"{m.get('train_loss_first') or 0:.3f} -> {m.get('train_loss') or 0:.3f}"),
        ("wall s", m.get("fit_wall_time_s")), ("model", record.get("model"))]), log)
    style = "green" if record["passed"] else "red"
    notice(f"[bold {style}]uplift {record['uplift']:+.1%} (needed {record['min_uplift']:+.1%})[/] — "
           f"{record['message']}", log)


def run_parallel_sft(cfg: PipelineConfig, *, force: bool = False) -> ParallelSFTResult:
    with run_lock(cfg.workdir, "parallel-sft"):
        return run_recipe(ParallelSFTStage(cfg, force=force))
