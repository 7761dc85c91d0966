"""The OpenAI fine-tuning backend, through the real `openai` client, against a local fake of the API."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest

from parallel_r1.config import OpenAIFinetuneConfig
from parallel_r1.finetune.manifest import FinetuneJob, FinetuneManifest
from parallel_r1.finetune.openai_ft import (
    METADATA_KEY,
    SUFFIX_MAX_CHARS,
    InvalidTrainingFile,
    OpenAIFinetuneBackend,
    OpenAIFinetuneError,
    model_suffix,
    validate_training_file,
)
from tests.fakes.openai_ft_server import FAIL_MARKER, FakeFineTuningServer

NAMES = ["short_original_high", "medium_koan_high", "long_mixed_medium", "varied_original_diverse",
         "neurodivergent", "prior_trauma_recovery"]
KEY_ENV = "PARALLEL_R1_TEST_FT_KEY"


def _example(i: int, extra: str = "") -> dict:
    return {"messages": [{"role": "system", "content": "You are a patient tutor."},
                         {"role": "user", "content": f"Why does ice float? ({i}) {extra}".strip()},
                         {"role": "assistant", "content": "What do you already know about density?"},
                         {"role": "user", "content": "Denser things sink."}]}  # a trailing user turn is legal


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture
def batches(tmp_path) -> dict[str, Path]:
    d = tmp_path / "batches"
    d.mkdir()
    return {n: _write(d / f"{n}.jsonl", [_example(i) for i in range(12)]) for n in NAMES}


@pytest.fixture
def manifest(tmp_path) -> FinetuneManifest:
    return FinetuneManifest(tmp_path / "finetune_manifest.json")


def _backend(server: FakeFineTuningServer, manifest: FinetuneManifest, **cfg) -> OpenAIFinetuneBackend:
    cfg = OpenAIFinetuneConfig(base_url=server.base_url, api_key_env=KEY_ENV, timeout_s=5, **cfg)
    return OpenAIFinetuneBackend(cfg, manifest)


def _poll_until_done(backend: OpenAIFinetuneBackend, max_polls: int = 12) -> list[list[FinetuneJob]]:
    history = []
    for _ in range(max_polls):
        jobs = backend.poll()
        history.append(jobs)
        if all(j.done for j in jobs):
            return history
    raise AssertionError(f"not done after {max_polls} polls: {[(j.name, j.status) for j in jobs]}")


def test_six_jobs_submitted_and_walked_to_succeeded(batches, manifest):
    with FakeFineTuningServer(running_polls=2) as server, _backend(server, manifest, n_epochs=2) as backend:
        submitted = backend.submit(batches, batches_of={n: [n] for n in NAMES})
        assert [j.name for j in submitted] == NAMES
        entries = manifest.read()
        assert set(entries) == set(NAMES) and len(server.jobs) == 6 and len(server.files) == 6
        for name, job in entries.items():
            assert job.backend == "openai" and job.status == "queued" and job.attempts == 1
            assert job.training_file in server.files and job.job_id in server.jobs
            assert job.training_file_path == str(batches[name])
            sent = server.jobs[job.job_id]
            assert sent["user_provided_suffix"] == model_suffix("parallel-r1", name)
            assert sent["method"]["supervised"]["hyperparameters"]["n_epochs"] == 2
            assert sent["metadata"] == {METADATA_KEY: name} and sent["model"] == "gpt-4o-mini-2024-07-18"

        history = _poll_until_done(backend)
        seen = {s for jobs in history for s in (j.metrics["openai_status"] for j in jobs)}
        assert {"queued", "running", "succeeded"} <= seen
        assert any(j.metrics.get("step") == 1 and "train_loss" in j.metrics for jobs in history for j in jobs)
        for job in manifest.read().values():
            ft = server.jobs[job.job_id]
            assert job.status == "succeeded" and job.error is None
            assert job.result == ft["fine_tuned_model"]
            assert job.result.startswith(f"ft:gpt-4o-mini-2024-07-18:parallel-r1:parallel-r1-{job.name}"[:60])
            assert job.metrics["trained_tokens"] == ft["trained_tokens"] > 0
            assert job.metrics["n_epochs"] == 2 and job.metrics["step"] == 2
            assert job.started_at and job.finished_at
            assert job.metrics["last_event"] == "The job has successfully completed"
        polls = server.n_requests
        backend.poll()  # nothing left to refresh
        assert server.n_requests == polls


def test_failed_job_records_the_api_error_while_others_succeed(batches, manifest):
    _write(batches["neurodivergent"], [_example(i, FAIL_MARKER if i == 3 else "") for i in range(12)])
    with FakeFineTuningServer(fail_files={"long_mixed_medium.jsonl"}) as server, \
            _backend(server, manifest) as backend:
        backend.submit(batches)
        _poll_until_done(backend)
        entries = manifest.read()
    failed = {n for n, j in entries.items() if j.status == "failed"}
    assert failed == {"neurodivergent", "long_mixed_medium"}
    for name in failed:
        assert entries[name].error.startswith("invalid_training_file: The job failed due to an invalid training file")
        assert "(param: training_file)" in entries[name].error and entries[name].result is None
    assert all(entries[n].status == "succeeded" and entries[n].result for n in set(NAMES) - failed)


def test_malformed_file_fails_its_entry_before_upload(batches, manifest):
    _write(batches["medium_koan_high"], [_example(0), "{not json", _example(2)])
    with FakeFineTuningServer() as server, _backend(server, manifest) as backend:
        by_name = {j.name: j for j in backend.submit(batches)}
        assert len(server.files) == 5 and len(server.jobs) == 5
    bad = by_name["medium_koan_high"]
    assert bad.status == "failed" and bad.job_id is None and bad.training_file == ""
    assert bad.error.startswith(f"training file {batches['medium_koan_high']}, line 2: not valid JSON")
    assert all(j.status == "queued" and j.job_id for n, j in by_name.items() if n != "medium_koan_high")


def test_server_rejections_fail_only_their_entries(batches, manifest):
    with FakeFineTuningServer(reject_uploads={"neurodivergent.jsonl"},
                              reject_jobs={"short_original_high.jsonl"}) as server, \
            _backend(server, manifest) as backend:
        by_name = {j.name: j for j in backend.submit(batches)}
        assert len(server.jobs) == 4
    upload = by_name["neurodivergent"]
    assert upload.status == "failed" and upload.training_file == ""
    assert upload.error.startswith("upload of neurodivergent.jsonl failed: HTTP 400, invalid_file: File ")
    create = by_name["short_original_high"]
    assert create.status == "failed" and create.training_file.startswith("file-") and create.job_id is None
    assert "job creation of short_original_high.jsonl failed: HTTP 400, invalid_training_file" in create.error
    assert sum(j.status == "queued" for j in by_name.values()) == 4


def test_fake_rejects_malformed_uploads_in_the_openai_error_shape():
    with FakeFineTuningServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        good = client.files.create(file=("ok.jsonl", b'{"messages": [{"role": "assistant", "content": "hi"}]}\n'),
                                   purpose="fine-tune")
        assert client.files.retrieve(good.id).filename == "ok.jsonl"
        for content in (b'{"messages": []}\n', b"not json\n", b'{"messages": [{"role": "user", "content": "x"}]}\n'):
            with pytest.raises(openai.BadRequestError) as info:
                client.files.create(file=("bad.jsonl", content), purpose="fine-tune")
            assert info.value.code == "invalid_file_format" and info.value.param == "file"
            assert "Invalid file format for Fine-Tuning API. Line 1" in info.value.body["message"]
        with pytest.raises(openai.NotFoundError):
            client.fine_tuning.jobs.retrieve("ftjob-missing")
        client.close()


def test_resubmit_skips_live_jobs_and_resubmits_failed_ones(batches, manifest):
    good = batches["prior_trauma_recovery"].read_text()
    _write(batches["prior_trauma_recovery"], [{"messages": [{"role": "narrator", "content": "x"}]}])
    with FakeFineTuningServer() as server, _backend(server, manifest) as backend:
        first = {j.name: j for j in backend.submit(batches)}
        assert "role 'narrator'" in first["prior_trauma_recovery"].error
        batches["prior_trauma_recovery"].write_text(good)  # fixed
        second = {j.name: j for j in backend.submit(batches)}
        assert len(server.jobs) == 6 and len(server.files) == 6  # only the failed one went again
        assert all(second[n].job_id == first[n].job_id for n in NAMES if n != "prior_trauma_recovery")
        assert second["prior_trauma_recovery"].status == "queued" and second["prior_trauma_recovery"].attempts == 2
        assert second["prior_trauma_recovery"].error is None
        backend.submit(batches)
        assert len(server.jobs) == 6 and len(server.files) == 6


def test_submit_adopts_a_job_created_before_a_crash(batches, manifest):
    with FakeFineTuningServer() as server, _backend(server, manifest) as backend:
        backend.submit(batches)
        lost = manifest.read()["neurodivergent"]
        manifest.update("neurodivergent", job_id=None)  # the run died before recording the job id
        backend.submit(batches)
        assert len(server.jobs) == 6 and len(server.files) == 6
        assert manifest.read()["neurodivergent"].job_id == lost.job_id


def test_injected_429_and_5xx_are_retried_and_the_run_completes(batches, manifest):
    # one submission at a time, so that the seeded failures fall on the same requests in every run
    with FakeFineTuningServer(error_rate=0.3, seed=7) as server, \
            _backend(server, manifest, max_concurrent_submissions=1) as backend:
        backend.submit(batches)
        _poll_until_done(backend)
        assert 429 in server.injected and {500, 502, 503} & set(server.injected)
        assert len(server.jobs) == 6 and len(server.files) == 6  # retried POSTs made no duplicates
    assert all(j.status == "succeeded" and j.result for j in manifest.read().values())


def test_unreachable_poll_is_noted_not_fatal(batches, manifest):
    with FakeFineTuningServer() as server, _backend(server, manifest, max_retries=1) as backend:
        backend.submit(batches)
        server.error_rate = 1.0
        jobs = backend.poll()
        assert all(j.status == "queued" and "poll_error" in j.metrics for j in jobs)
        server.error_rate = 0.0
        jobs = backend.poll()
        assert all("poll_error" not in j.metrics for j in jobs)
        server.error_rate = 1.0
        by_name = {j.name: j for j in backend.submit({"extra": batches["neurodivergent"]})}
    assert by_name["extra"].status == "failed" and "gave up after 1 retries" in by_name["extra"].error


def test_cancel(batches, manifest):
    with FakeFineTuningServer() as server, _backend(server, manifest) as backend:
        backend.submit(batches)
        job = backend.cancel("neurodivergent")
        assert job.status == "cancelled" and job.finished_at
        assert server.jobs[job.job_id]["status"] == "cancelled"
        assert backend.cancel("neurodivergent").status == "cancelled"  # already ended: no API call
        ended = server.jobs[manifest.read()["short_original_high"].job_id]
        ended.update(status="succeeded", fine_tuned_model="ft:m:parallel-r1:x:1")  # ended before the cancel
        job = backend.cancel("short_original_high")
        assert job.status == "succeeded" and job.result == "ft:m:parallel-r1:x:1"
        _poll_until_done(backend)
        assert manifest.read()["neurodivergent"].status == "cancelled"
        with pytest.raises(OpenAIFinetuneError, match="no submitted OpenAI job 'nope'"):
            backend.cancel("nope")


def test_wrong_key_raises_naming_the_env_var(batches, manifest, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-wrong")
    with FakeFineTuningServer(api_key="sk-right") as server, \
            _backend(server, manifest, max_concurrent_submissions=1) as backend:
        with pytest.raises(OpenAIFinetuneError, match=f"HTTP 401.*\\${KEY_ENV}"):
            backend.submit(batches)
        assert manifest.read()[NAMES[0]].status == "failed" and len(manifest.read()) == 1
    manifest.path.unlink()
    with FakeFineTuningServer(api_key="sk-right") as server, \
            _backend(server, manifest, max_concurrent_submissions=3) as backend:
        with pytest.raises(OpenAIFinetuneError, match="HTTP 401"):
            backend.submit(batches)
        tried = manifest.read()  # those in flight when the first 401 came; none started after it
        assert 1 <= len(tried) <= 3 and {j.status for j in tried.values()} == {"failed"}
        monkeypatch.setenv(KEY_ENV, "sk-right")
    with FakeFineTuningServer(api_key="sk-right") as server, _backend(server, manifest) as backend:
        assert all(j.status == "queued" for j in backend.submit(batches))


@pytest.mark.parametrize("rows, message", [
    ([{"prompt": "x"}], "expected an object with a non-empty 'messages' list"),
    ([{"messages": [{"role": "user", "content": ""}]}], "message 0 (user) has no content"),
    ([{"messages": [{"role": "user", "content": "hi"}]}], "no assistant message to train on"),
    (["[1, 2]"], "expected an object"),
])
def test_validate_training_file_names_the_line(tmp_path, rows, message):
    path = _write(tmp_path / "b.jsonl", [_example(0), *rows])
    with pytest.raises(InvalidTrainingFile, match="line 2: " + message.replace("(", r"\(").replace(")", r"\)")):
        validate_training_file(path)


def test_validate_training_file_counts_and_minimum(tmp_path):
    path = _write(tmp_path / "b.jsonl", [_example(i) for i in range(3)])
    assert validate_training_file(path, min_examples=1) == 3
    with pytest.raises(InvalidTrainingFile, match="has 3 example.*at least 10"):
        validate_training_file(path)
    with pytest.raises(InvalidTrainingFile, match="not found"):
        validate_training_file(tmp_path / "missing.jsonl")


def test_model_suffix_is_cut_to_the_api_limit():
    assert model_suffix("parallel-r1", "neurodivergent") == "parallel-r1-neurodivergent"
    assert len(model_suffix("p" * 40, "x" * 60)) == SUFFIX_MAX_CHARS
    assert model_suffix("", "solo") == "solo"


def _peak_overlap(spans: list[tuple[str, str, float, float]]) -> int:
    """The most requests of `spans` in progress at one moment."""
    edges = sorted([(start, 1) for _, _, start, _ in spans] + [(end, -1) for _, _, _, end in spans])
    peak = now = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


@pytest.mark.parametrize("bound", [1, 3])
def test_uploads_overlap_up_to_the_bound(batches, manifest, bound):
    with FakeFineTuningServer(upload_delay_s=0.3) as server, \
            _backend(server, manifest, max_concurrent_submissions=bound) as backend:
        submitted = backend.submit(batches)
        uploads = [s for s in server.spans if s[:2] == ("POST", "/v1/files")]
    assert [j.name for j in submitted] == NAMES and len(uploads) == 6
    assert _peak_overlap(uploads) == bound
    entries = manifest.read()  # concurrent manifest updates lost nothing
    assert all(entries[n].job_id in server.jobs and entries[n].training_file in server.files for n in NAMES)
    assert len({e.job_id for e in entries.values()}) == 6


def test_cancel_from_the_command_line_and_a_bad_name(batches, manifest):
    from typer.testing import CliRunner

    from parallel_r1.cli import app

    with FakeFineTuningServer() as server, _backend(server, manifest) as backend:
        backend.submit(batches)
        common = ["finetune", "--workdir", str(manifest.path.parent), "--set",
                  f"finetune.openai.base_url={server.base_url}", "--set", f"finetune.openai.api_key_env={KEY_ENV}"]
        result = CliRunner().invoke(app, [*common, "--cancel", "neurodivergent"])
        assert result.exit_code == 0, result.output
        job = manifest.read()["neurodivergent"]
        assert job.status == "cancelled" and job.finished_at and server.jobs[job.job_id]["status"] == "cancelled"
        assert f"neurodivergent ({job.job_id}) is cancelled" in result.output
        assert {j.status for n, j in manifest.read().items() if n != "neurodivergent"} == {"queued"}
        result = CliRunner().invoke(app, [*common, "--cancel", "neurodivergnet"])
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert "no submitted OpenAI job 'neurodivergnet'" in result.output and "submitted: long_mixed_medium" in \
            result.output.replace("\n", " ")
        assert len(result.output.strip().splitlines()) <= 2, result.output  # one line, wrapped at 120 characters
