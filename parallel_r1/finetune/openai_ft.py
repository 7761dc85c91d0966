"""The OpenAI fine-tuning backend: the specialist jobs go to the OpenAI (or a compatible) fine-tuning API,
and each is one entry of the shared `finetune_manifest.json`.

`submit` is idempotent: an entry that already holds a live OpenAI job is left alone, a failed one is
submitted again, and one interrupted between upload and job creation is resumed (the uploaded file is
reused, and a job already created on it, found by its metadata, is adopted instead of duplicated).
Retries are the `openai` client's own (`max_retries=cfg.max_retries`): it retries 408, 409, 429, 5xx,
timeouts and connection errors with jittered exponential backoff, honours `Retry-After`, and replays a
POST under the same `Idempotency-Key`. What still fails is recorded on its entry, never lost.
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import openai

from parallel_r1.config import OpenAIFinetuneConfig, PipelineConfig
from parallel_r1.data.io import file_digest
from parallel_r1.errors import UserFacingError
from parallel_r1.finetune.manifest import FinetuneJob, FinetuneManifest
from parallel_r1.llm_client import RETRYABLE_STATUS
from parallel_r1.paths import RunPaths

MIN_EXAMPLES = 10  # the API refuses training files with fewer examples
SUFFIX_MAX_CHARS = 64  # the API's limit on `suffix`
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
STATUS_MAP = {"validating_files": "queued", "queued": "queued", "running": "running",
              "succeeded": "succeeded", "failed": "failed", "cancelled": "cancelled"}
METADATA_KEY = "parallel_r1_job"  # job metadata naming the manifest entry, to adopt a job after a crash
EVENTS_LIMIT = 20


class OpenAIFinetuneError(UserFacingError, RuntimeError):
    """The API cannot be used as configured (wrong key, no such job); the message says what to change."""


class InvalidTrainingFile(UserFacingError, ValueError):
    """A training JSONL the API would reject; the message names the file and the line."""


def validate_training_file(path: Path, min_examples: int = MIN_EXAMPLES) -> int:
    """The number of examples in a chat fine-tuning JSONL; raises `InvalidTrainingFile` at the first problem.

    Each non-blank line must be a JSON object whose `messages` is a non-empty list of `{role, content}`
    with a known role and non-empty content, and at least one assistant message (what is trained on).
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidTrainingFile(f"training file {path} not found")
    n = 0
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"training file {path}, line {lineno}"
            try:
                example = json.loads(line)
            except json.JSONDecodeError as e:
                raise InvalidTrainingFile(f"{where}: not valid JSON ({e.msg})") from None
            messages = example.get("messages") if isinstance(example, dict) else None
            if not isinstance(messages, list) or not messages:
                raise InvalidTrainingFile(f"{where}: expected an object with a non-empty 'messages' list")
            for i, m in enumerate(messages):
                if not isinstance(m, dict) or m.get("role") not in ROLES:
                    role = m.get("role") if isinstance(m, dict) else m
                    raise InvalidTrainingFile(f"{where}: message {i} has role {role!r}; "
                                              f"expected one of {sorted(ROLES)}")
                content = m.get("content")
                if not content or not isinstance(content, (str, list)):
                    raise InvalidTrainingFile(f"{where}: message {i} ({m['role']}) has no content")
                if "weight" in m and (m["role"] != "assistant" or m["weight"] not in (0, 1)):
                    raise InvalidTrainingFile(f"{where}: message {i} ({m['role']}) has weight {m['weight']!r}; "
                                              "only assistant messages carry a weight, 0 or 1")
            if not any(m["role"] == "assistant" and m.get("weight", 1) for m in messages):
                raise InvalidTrainingFile(f"{where}: no assistant message to train on")
            n += 1
    if n < min_examples:
        raise InvalidTrainingFile(f"training file {path} has {n} example(s); the API needs at least {min_examples}")
    return n


def model_suffix(prefix: str, name: str) -> str:
    """`<prefix>-<job name>`, cut to the API's limit on suffixes."""
    return (f"{prefix}-{name}" if prefix else name)[:SUFFIX_MAX_CHARS]


def _api_message(err: openai.APIError) -> str:
    body = err.body if isinstance(err.body, dict) else {}
    message = body.get("message") or err.message
    status = f"HTTP {err.status_code}" if isinstance(err, openai.APIStatusError) else type(err).__name__
    code = f", {err.code}" if err.code else ""
    return f"{status}{code}: {message}"


def _transient(err: openai.APIError) -> bool:
    if isinstance(err, openai.APIConnectionError):  # timeouts included
        return True
    return isinstance(err, openai.APIStatusError) and (err.status_code in RETRYABLE_STATUS or err.status_code >= 500)


class OpenAIFinetuneBackend:
    """Submit, poll and cancel the OpenAI fine-tuning jobs recorded in `manifest`."""

    def __init__(self, cfg: OpenAIFinetuneConfig, manifest: FinetuneManifest):
        self.cfg = cfg
        self.manifest = manifest
        self._client = openai.OpenAI(base_url=cfg.base_url, api_key=os.environ.get(cfg.api_key_env) or "EMPTY",
                                     timeout=cfg.timeout_s, max_retries=cfg.max_retries)

    # -- submit -----------------------------------------------------------------------------------------

    def submit(self, jobs: dict[str, Path], batches_of: dict[str, list[str]] | None = None) -> list[FinetuneJob]:
        """Upload each job's JSONL and create its fine-tuning job; returns the entries of `jobs`.

        Up to `max_concurrent_submissions` jobs are uploaded and created at once (one thread each).
        A rejected file or job (a 4xx, a local validation error, or retries exhausted) marks only that
        entry `failed` with the reason; the others still go ahead. Raises `OpenAIFinetuneError` on an
        authentication or permission error, which no entry can get past.
        """
        batches_of = batches_of or {}
        known = self.manifest.read()
        fatal = threading.Event()  # set by the first fatal error: the jobs not started yet are left alone

        def one(name: str, path: Path, live: FinetuneJob | None, existing: FinetuneJob | None) -> FinetuneJob | None:
            if fatal.is_set():
                return None
            try:
                return self._submit_one(name, path, batches_of.get(name, [name]), live, existing)
            except OpenAIFinetuneError:
                fatal.set()
                raise

        out: list[FinetuneJob | Future] = []
        with ThreadPoolExecutor(max_workers=self.cfg.max_concurrent_submissions,
                                thread_name_prefix="openai-ft-submit") as pool:
            for name, path in jobs.items():
                existing = known.get(name)
                live = existing if existing and existing.backend == "openai" and existing.status != "failed" else None
                out.append(live if live and live.job_id else pool.submit(one, name, Path(path), live, existing))
            return [job.result() if isinstance(job, Future) else job for job in out]

    def _submit_one(self, name: str, path: Path, batches: list[str], live: FinetuneJob | None,
                    existing: FinetuneJob | None) -> FinetuneJob:
        resumable = bool(live and live.training_file and live.training_file_path == str(path))
        file_id = live.training_file if resumable else ""
        attempts = live.attempts if live else (existing.attempts + 1 if existing and existing.backend == "openai"
                                               else 1)
        self.manifest.put(FinetuneJob(name=name, backend="openai", batches=batches, training_file=file_id,
                                      training_file_path=str(path), training_digest=file_digest(path),
                                      attempts=attempts))
        stage = "upload"
        try:
            if not file_id:
                validate_training_file(path)
                with open(path, "rb") as f:  # bytes, so a retried upload can replay the body
                    uploaded = self._client.files.create(file=(path.name, f.read(), "application/jsonl"),
                                                         purpose="fine-tune")
                file_id = uploaded.id
                self.manifest.update(name, training_file=file_id)
            stage = "job creation"
            ft = self._find_job(name, file_id) if resumable else None
            if ft is None:
                ft = self._create_job(name, file_id)
        except InvalidTrainingFile as e:
            return self.manifest.update(name, status="failed", error=str(e))
        except openai.APIError as e:
            retried = f" (gave up after {self.cfg.max_retries} retries)" if _transient(e) else ""
            error = f"{stage} of {path.name} failed{retried}: {_api_message(e)}"
            self.manifest.update(name, status="failed", error=error)
            if isinstance(e, (openai.AuthenticationError, openai.PermissionDeniedError)):
                raise self._fatal(e) from None
            return self.manifest.read()[name]
        return self._apply(name, ft)

    def _create_job(self, name: str, file_id: str):
        kwargs = {}
        if self.cfg.n_epochs is not None:
            kwargs["method"] = {"type": "supervised",
                                "supervised": {"hyperparameters": {"n_epochs": self.cfg.n_epochs}}}
        return self._client.fine_tuning.jobs.create(
            model=self.cfg.model, training_file=file_id, suffix=model_suffix(self.cfg.suffix, name),
            metadata={METADATA_KEY: name}, **kwargs)

    def _find_job(self, name: str, file_id: str):
        """A job already created for this entry on this file (a run stopped before recording it), or None."""
        for ft in self._client.fine_tuning.jobs.list(metadata={METADATA_KEY: name}, limit=100):
            if ft.training_file == file_id:
                return ft
        return None

    # -- poll / cancel ----------------------------------------------------------------------------------

    def poll(self) -> list[FinetuneJob]:
        """Refresh every non-terminal OpenAI entry from the API; returns all OpenAI entries.

        A job that cannot be reached (out of retries, not found) keeps its status and gets
        `metrics["poll_error"]`, cleared by the next successful poll. Raises `OpenAIFinetuneError` on an
        authentication or permission error.
        """
        for name, job in self.manifest.read().items():
            if job.backend != "openai" or job.done or not job.job_id:
                continue
            try:
                ft = self._client.fine_tuning.jobs.retrieve(job.job_id)
                events = self._client.fine_tuning.jobs.list_events(job.job_id, limit=EVENTS_LIMIT).data
            except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
                raise self._fatal(e) from None
            except openai.APIError as e:
                self.manifest.update(name, metrics={**job.metrics, "poll_error": _api_message(e)})
                continue
            self._apply(name, ft, events)
        return [j for j in self.manifest.read().values() if j.backend == "openai"]

    def cancel(self, name: str) -> FinetuneJob:
        """Cancel one entry's OpenAI job; a job that has already ended is recorded as it ended."""
        job = self.manifest.read().get(name)
        if job is None or job.backend != "openai" or not job.job_id:
            names = sorted(n for n, j in self.manifest.read().items() if j.backend == "openai" and j.job_id)
            raise OpenAIFinetuneError(f"no submitted OpenAI job {name!r} in {self.manifest.path}; "
                                      f"submitted: {', '.join(names) or 'none'}")
        if job.done:
            return job
        try:
            try:
                ft = self._client.fine_tuning.jobs.cancel(job.job_id)
            except openai.BadRequestError:  # it ended meanwhile
                ft = self._client.fine_tuning.jobs.retrieve(job.job_id)
        except openai.APIError as e:
            raise OpenAIFinetuneError(f"cancel {name!r} ({job.job_id}): {_api_message(e)}") from None
        return self._apply(name, ft)

    # -- helpers ----------------------------------------------------------------------------------------

    def _apply(self, name: str, ft, events=()) -> FinetuneJob:
        """Record a fine-tuning job object (and its newest-first events) on the entry, if anything changed."""
        job = self.manifest.read()[name]
        metrics = {k: v for k, v in job.metrics.items() if k != "poll_error"}
        metrics["openai_status"] = ft.status
        if ft.trained_tokens is not None:
            metrics["trained_tokens"] = ft.trained_tokens
        if ft.estimated_finish is not None:
            metrics["estimated_finish"] = ft.estimated_finish
        hp = ft.method.supervised.hyperparameters if ft.method and ft.method.supervised else ft.hyperparameters
        for key in ("n_epochs", "batch_size", "learning_rate_multiplier"):
            value = getattr(hp, key, None) if hp else None
            if isinstance(value, (int, float)):
                metrics[key] = value
        if events:
            metrics["last_event"] = events[0].message
            latest = next((e.data for e in events if e.type == "metrics" and isinstance(e.data, dict)), {})
            metrics.update({k: v for k, v in latest.items() if isinstance(v, (int, float))})
        changes = {"job_id": ft.id, "status": STATUS_MAP.get(ft.status, job.status), "metrics": metrics}
        if ft.status == "succeeded":
            changes["result"] = ft.fine_tuned_model
        if ft.status == "failed":
            err = ft.error
            changes["error"] = (f"{err.code}: {err.message}" + (f" (param: {err.param})" if err.param else "")
                                if err else "failed (the API gave no reason)")
        changes = {k: v for k, v in changes.items() if getattr(job, k) != v}
        return self.manifest.update(name, **changes) if changes else job

    def _fatal(self, err: openai.APIError) -> OpenAIFinetuneError:
        return OpenAIFinetuneError(f"{self.cfg.base_url}: {_api_message(err)} "
                                   f"(check the API key in ${self.cfg.api_key_env})")

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OpenAIFinetuneBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def cancel_job(cfg: PipelineConfig, name: str) -> FinetuneJob:
    """`parallel-r1 finetune --cancel NAME`: cancel that entry's OpenAI job; its manifest entry records the outcome."""
    with OpenAIFinetuneBackend(cfg.finetune.openai, FinetuneManifest(RunPaths(cfg.workdir).finetune_manifest)) as b:
        return b.cancel(name)
