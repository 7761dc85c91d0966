"""A real local HTTP server that speaks the OpenAI files + fine-tuning API, with injectable failures.

Tests point the real `openai` client at `FakeFineTuningServer(...).base_url`. Each job walks
validating_files -> queued -> running -> succeeded, one state per `GET /fine_tuning/jobs/{id}`, so
tests are deterministic without sleeping. FastAPI + uvicorn run in a daemon thread on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Collection

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.fakes.threaded_server import ThreadedServer

INJECTED_STATUSES = (429, 500, 502, 503)
ROLES = {"system", "developer", "user", "assistant", "tool"}
FILE_PURPOSES = {"assistants", "batch", "fine-tune", "vision", "user_data"}
TERMINAL = {"succeeded", "failed", "cancelled"}
FAIL_MARKER = "FAKE_FT_FAIL"
MODERATION_MESSAGE = ("The job failed due to an invalid training file. This training file was blocked by our "
                      "moderation system because it contains too many examples that violate usage policies.")


def _error(status: int, message: str, code: str | None = None, param: str | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    kind = {401: "invalid_request_error", 429: "requests", 400: "invalid_request_error",
            404: "invalid_request_error"}.get(status, "server_error")
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}},
                        status_code=status, headers=headers)


class _Rejected(Exception):  # noqa: N818 - carries an HTTP answer, like a FastAPI HTTPException
    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.response = _error(status, message, code, param)


def _check_jsonl(text: str) -> int:
    """Examples in a chat fine-tuning file, or `_Rejected` naming the first bad line (the API's check)."""
    n = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            example = json.loads(line)
        except json.JSONDecodeError:
            raise _Rejected(400, f"Invalid file format for Fine-Tuning API. Line {lineno} is not valid JSON.",
                            "invalid_file_format", "file") from None
        messages = example.get("messages") if isinstance(example, dict) else None
        ok = (isinstance(messages, list) and messages
              and all(isinstance(m, dict) and m.get("role") in ROLES and m.get("content") for m in messages)
              and any(m["role"] == "assistant" for m in messages))
        if not ok:
            raise _Rejected(400, f"Invalid file format for Fine-Tuning API. Line {lineno}: each example needs a "
                                 "'messages' list of {role, content} with at least one assistant message.",
                            "invalid_file_format", "file")
        n += 1
    if n == 0:
        raise _Rejected(400, "Invalid file format for Fine-Tuning API. The file is empty.", "invalid_file_format",
                        "file")
    return n


class FakeFineTuningServer(ThreadedServer):
    """`/v1/files` and `/v1/fine_tuning/jobs[...]` on 127.0.0.1, as a context manager.

    Failures: a job whose training file contains `fail_marker`, or was uploaded under a name in
    `fail_files`, or has fewer than `min_examples` examples, ends `failed` (with an `error` {code,
    message, param}) when it leaves validating_files. Uploads named in `reject_uploads` and job creation
    on files named in `reject_jobs` answer 400. With probability `error_rate` (drawn from a `seed`ed RNG,
    before any state changes) a request answers 429/500/502/503 with `retry-after-ms: retry_after_ms`
    (None: no header). `api_key`, when set, is required (401 otherwise). A job spends `running_polls`
    GETs running, one metrics event each. Each upload takes at least `upload_delay_s` (without blocking other
    requests), so that concurrent uploads show as overlapping `spans`. State for assertions: `files`, `jobs`,
    `events`, `n_requests`, `injected` (the injected statuses, in order), `spans` ((method, path, start, end) of each
    answered request, monotonic seconds); the knobs are plain attributes that tests may change while it runs.
    """

    def __init__(self, *, fail_marker: str = FAIL_MARKER, fail_files: Collection[str] = (),
                 reject_uploads: Collection[str] = (), reject_jobs: Collection[str] = (), min_examples: int = 10,
                 error_rate: float = 0.0, retry_after_ms: int | None = 1, seed: int = 0, running_polls: int = 1,
                 api_key: str | None = None, upload_delay_s: float = 0.0, port: int = 0):
        if not 0 <= error_rate <= 1:
            raise ValueError("error_rate must be in [0, 1]")
        self.fail_marker = fail_marker
        self.fail_files = set(fail_files)
        self.reject_uploads = set(reject_uploads)
        self.reject_jobs = set(reject_jobs)
        self.min_examples = min_examples
        self.error_rate = error_rate
        self.retry_after_ms = retry_after_ms
        self.running_polls = running_polls
        self.api_key = api_key
        self.upload_delay_s = upload_delay_s
        self.port = port
        self._rng = random.Random(seed)
        self.files: dict[str, dict] = {}
        self.contents: dict[str, str] = {}
        self.jobs: dict[str, dict] = {}
        self.events: dict[str, list[dict]] = {}  # oldest first
        self._runs: dict[str, int] = {}  # GETs spent running, per job
        self.n_requests = 0
        self.injected: list[int] = []
        self.spans: list[tuple[str, str, float, float]] = []

    # -- the job state machine ----------------------------------------------------------------------------

    def _event(self, job_id: str, message: str, level: str = "info", data: dict | None = None) -> None:
        self.events[job_id].append({"id": f"ftevent-{uuid.uuid4().hex[:16]}", "object": "fine_tuning.job.event",
                                    "created_at": int(time.time()), "level": level, "message": message,
                                    "data": data or {}, "type": "metrics" if data else "message"})

    def _failure(self, job: dict) -> dict | None:
        file = self.files[job["training_file"]]
        text = self.contents[file["id"]]
        if self.fail_marker and self.fail_marker in text or file["filename"] in self.fail_files:
            return {"code": "invalid_training_file", "message": MODERATION_MESSAGE, "param": "training_file"}
        n = _check_jsonl(text)
        if n < self.min_examples:
            return {"code": "invalid_training_file", "param": "training_file",
                    "message": f"Training file has {n} example(s), but must have at least {self.min_examples}"}
        return None

    def _advance(self, job: dict) -> None:
        """One step of validating_files -> queued -> running (x running_polls) -> succeeded."""
        jid, status = job["id"], job["status"]
        if status == "validating_files":
            error = self._failure(job)
            if error:
                job.update(status="failed", error=error, finished_at=int(time.time()))
                self._event(jid, error["message"], "error")
                return
            job["status"] = "queued"
            self._event(jid, "Files validated, moving job to queued state")
        elif status == "queued":
            job.update(status="running", estimated_finish=int(time.time()) + 60)
            self._event(jid, "Fine-tuning job started")
        elif status == "running" and self._runs.get(jid, 0) < self.running_polls:
            self._runs[jid] = step = self._runs.get(jid, 0) + 1
            self._event(jid, f"Step {step}/{self.running_polls}: training loss={1.0 / (step + 1):.4f}",
                        data={"step": step, "total_steps": self.running_polls, "train_loss": 1.0 / (step + 1),
                              "train_mean_token_accuracy": step / (step + 1)})
        elif status == "running":
            words = len(self.contents[job["training_file"]].split())
            epochs = job["method"]["supervised"]["hyperparameters"]["n_epochs"]
            suffix = job["user_provided_suffix"] or "model"
            job.update(status="succeeded", fine_tuned_model=f"ft:{job['model']}:parallel-r1:{suffix}:{jid[-8:]}",
                       trained_tokens=words * epochs, finished_at=int(time.time()), estimated_finish=None,
                       result_files=[f"file-{uuid.uuid4().hex[:24]}"])
            self._event(jid, f"New fine-tuned model created: {job['fine_tuned_model']}")
            self._event(jid, "The job has successfully completed")

    def _create_job(self, body: dict) -> dict:
        model, file_id, suffix = body.get("model"), body.get("training_file"), body.get("suffix")
        if not isinstance(model, str) or not model:
            raise _Rejected(400, "Missing required parameter: 'model'.", "missing_required_parameter", "model")
        file = self.files.get(file_id)
        if file is None:
            raise _Rejected(400, f"invalid training_file: {file_id}", "invalid_training_file", "training_file")
        if file["purpose"] != "fine-tune":
            raise _Rejected(400, f"File {file_id} does not have purpose 'fine-tune'", "invalid_training_file",
                            "training_file")
        if file["filename"] in self.reject_jobs:
            raise _Rejected(400, f"File {file_id} cannot be used for fine-tuning {model}",
                            "invalid_training_file", "training_file")
        if suffix is not None and (not isinstance(suffix, str) or len(suffix) > 64):
            raise _Rejected(400, "suffix must be a string of at most 64 characters", "invalid_value", "suffix")
        method = body.get("method") or {"type": "supervised", "supervised": {
            "hyperparameters": (body.get("hyperparameters") or {})}}
        hp = dict(method.get("supervised", {}).get("hyperparameters") or {})
        epochs = hp.get("n_epochs", "auto")
        if epochs != "auto" and (not isinstance(epochs, int) or epochs < 1):
            raise _Rejected(400, "n_epochs must be a positive integer or 'auto'", "invalid_value",
                            "hyperparameters.n_epochs")
        hp = {"batch_size": hp.get("batch_size", 1), "n_epochs": 3 if epochs == "auto" else epochs,
              "learning_rate_multiplier": hp.get("learning_rate_multiplier", 1.8)}  # "auto" resolved as the API does
        jid = f"ftjob-{uuid.uuid4().hex[:24]}"
        job = {"id": jid, "object": "fine_tuning.job", "created_at": int(time.time()), "error": None,
               "fine_tuned_model": None, "finished_at": None, "hyperparameters": hp, "model": model,
               "organization_id": "org-parallel-r1", "result_files": [], "seed": body.get("seed") or 42,
               "status": "validating_files", "trained_tokens": None, "training_file": file_id,
               "validation_file": body.get("validation_file"), "estimated_finish": None, "integrations": [],
               "metadata": body.get("metadata"), "user_provided_suffix": suffix,
               "method": {"type": "supervised", "supervised": {"hyperparameters": hp}}}
        self.jobs[jid] = job
        self.events[jid] = []
        self._event(jid, f"Created fine-tuning job: {jid}")
        self._event(jid, f"Validating training file: {file_id}")
        return job

    # -- HTTP ---------------------------------------------------------------------------------------------

    def _app(self) -> FastAPI:
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

        @app.middleware("http")
        async def gate(request: Request, call_next):
            self.n_requests += 1
            if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
                return _error(401, "Incorrect API key provided.", "invalid_api_key")
            if self._rng.random() < self.error_rate:
                status = self._rng.choice(INJECTED_STATUSES)
                self.injected.append(status)
                headers = {} if self.retry_after_ms is None else {"retry-after-ms": str(self.retry_after_ms)}
                message = "Rate limit reached" if status == 429 else "The server had an error"
                return _error(status, f"{message} (injected)", None, None, headers)
            start = time.monotonic()
            response = await call_next(request)
            self.spans.append((request.method, request.url.path, start, time.monotonic()))
            return response

        @app.exception_handler(_Rejected)
        async def rejected(request: Request, exc: _Rejected) -> JSONResponse:
            return exc.response

        def job_or_404(job_id: str) -> dict:
            if job_id not in self.jobs:
                raise _Rejected(404, f"Could not find fine-tune: {job_id}", "fine_tune_not_found", "fine_tune_id")
            return self.jobs[job_id]

        def page(items: list[dict], request: Request) -> dict:
            """Newest first, cursor `after` (an id), `limit` (default 20)."""
            after = request.query_params.get("after")
            if after is not None:
                ids = [i["id"] for i in items]
                items = items[ids.index(after) + 1:] if after in ids else []
            limit = int(request.query_params.get("limit", 20))
            return {"object": "list", "data": items[:limit], "has_more": len(items) > limit}

        @app.post("/v1/files")
        async def upload(request: Request):
            form = await request.form()
            file, purpose = form.get("file"), form.get("purpose")
            if file is None or isinstance(file, str):
                raise _Rejected(400, "Missing required parameter: 'file'.", "missing_required_parameter", "file")
            if purpose not in FILE_PURPOSES:
                raise _Rejected(400, f"Invalid purpose: {purpose!r}", "invalid_value", "purpose")
            raw = await file.read()
            await asyncio.sleep(self.upload_delay_s)
            if file.filename in self.reject_uploads:
                raise _Rejected(400, f"File {file.filename} was rejected: it violates the usage policies.",
                                "invalid_file", "file")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise _Rejected(400, "Invalid file format: not UTF-8 text.", "invalid_file_format", "file") from None
            if purpose == "fine-tune":
                _check_jsonl(text)
            fid = f"file-{uuid.uuid4().hex[:24]}"
            self.files[fid] = {"id": fid, "object": "file", "bytes": len(raw), "created_at": int(time.time()),
                               "filename": file.filename, "purpose": purpose, "status": "processed",
                               "expires_at": None, "status_details": None}
            self.contents[fid] = text
            return self.files[fid]

        @app.get("/v1/files/{file_id}")
        async def get_file(file_id: str):
            if file_id not in self.files:
                raise _Rejected(404, f"No such File object: {file_id}", None, "id")
            return self.files[file_id]

        @app.post("/v1/fine_tuning/jobs")
        async def create(request: Request):
            body = await request.json()
            return self._create_job(body if isinstance(body, dict) else {})

        @app.get("/v1/fine_tuning/jobs")
        async def list_jobs(request: Request):
            wanted = {k[len("metadata["):-1]: v for k, v in request.query_params.items()
                      if k.startswith("metadata[") and k.endswith("]")}
            jobs = [j for j in reversed(self.jobs.values())
                    if all((j["metadata"] or {}).get(k) == v for k, v in wanted.items())]
            return page(jobs, request)

        @app.get("/v1/fine_tuning/jobs/{job_id}")
        async def retrieve(job_id: str):
            job = job_or_404(job_id)
            self._advance(job)
            return job

        @app.get("/v1/fine_tuning/jobs/{job_id}/events")
        async def events(job_id: str, request: Request):
            job_or_404(job_id)
            return page(list(reversed(self.events[job_id])), request)

        @app.post("/v1/fine_tuning/jobs/{job_id}/cancel")
        async def cancel(job_id: str):
            job = job_or_404(job_id)
            if job["status"] in TERMINAL:
                raise _Rejected(400, f"Job {job_id} has already {job['status']}.", "invalid_request", None)
            job.update(status="cancelled", finished_at=int(time.time()), estimated_finish=None)
            self._event(job_id, "Fine-tuning job cancelled")
            return job

        return app
