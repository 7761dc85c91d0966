"""The grade stage over a run directory: columns written back atomically chunk by chunk, the pattern report,
judge failures recorded per dialogue and retried by a rerun, and the error when nothing could be graded."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from parallel_r1 import cli
from parallel_r1.config import load_config
from parallel_r1.data import discovery_plan, get_card, read_dialogues, write_dialogues
from parallel_r1.data.io import read_jsonl
from parallel_r1.discover.procedural import ProceduralBackend
from parallel_r1.discover.simulator import simulate_dialogue
from parallel_r1.grade import stage
from parallel_r1.grade.stage import GradeFailedError, run_grade
from tests.fakes.openai_server import FakeHTTPError, FakeOpenAIServer


@pytest.fixture
def workdir(tmp_path):
    backend = ProceduralBackend(seed=1)

    async def run():
        return [await simulate_dialogue(backend, t) for t in discovery_plan(40, include_special=True, seed=1)]

    write_dialogues(tmp_path / "dialogues.parquet", asyncio.run(run()))
    return tmp_path


def test_run_grade_writes_columns_and_pattern_report(workdir):
    result = run_grade(load_config(None, {"workdir": str(workdir)}), show_progress=False)
    dialogues = read_dialogues(workdir / "dialogues.parquet")
    assert result.graded == len(dialogues) == 40 and result.failed == result.skipped == 0
    assert all(d.score is not None and d.grader == "heuristic-rubric-v2" and d.criteria for d in dialogues)
    assert result.high_confidence + result.medium_confidence + result.low_confidence == 40
    assert "## Teacher pattern density" in (workdir / "pattern_report.md").read_text()
    assert not (workdir / "grade_failures.jsonl").exists()

    again = run_grade(load_config(None, {"workdir": str(workdir)}), show_progress=False)
    assert again.graded == 0 and again.skipped == 40
    regraded = run_grade(load_config(None, {"workdir": str(workdir)}), show_progress=False, reuse_grades=False)
    assert regraded.graded == 40 and regraded.skipped == 0


def test_run_grade_with_the_llm_judge(workdir):
    def responder(request: dict) -> str:
        names = [line[2:].split(":")[0] for line in request["messages"][0]["content"].splitlines()
                 if line.startswith("- ")]
        return json.dumps({"criteria": {n: 0.75 for n in names}, "confidence": 0.6})

    with FakeOpenAIServer(responder) as server:
        cfg = load_config(None, {"workdir": str(workdir), "grade.grader": "llm",
                                 "grade.judge.base_url": server.base_url, "grade.judge.model": "judge",
                                 "grade.judge.api_key_env": "PR1_TEST_NO_KEY"})
        result = run_grade(cfg, show_progress=False)
        assert server.n_requests == 40
    assert result.grader == "llm-judge:judge"
    assert {d.confidence for d in read_dialogues(workdir / "dialogues.parquet")} == {0.6}


def test_run_grade_needs_discovered_dialogues(tmp_path):
    with pytest.raises(FileNotFoundError, match="parallel-r1 discover"):
        run_grade(load_config(None, {"workdir": str(tmp_path)}), show_progress=False)


FAILING = {get_card(c).goal for c in ("linear-equations", "recursion-koan")}  # 6 of the 40 dialogues


def judge_cfg(workdir, server: FakeOpenAIServer):
    return load_config(None, {"workdir": str(workdir), "grade.grader": "llm", "grade.judge.base_url": server.base_url,
                              "grade.judge.model": "judge", "grade.judge.api_key_env": "PR1_TEST_NO_KEY",
                              "grade.judge.max_retries": 1, "grade.judge.backoff_s": 0.01})


def names_of(request: dict) -> list[str]:
    return request["response_format"]["json_schema"]["schema"]["properties"]["criteria"]["required"]


def flaky_judge(request: dict) -> str:
    """A judge that fails (HTTP 500) on the dialogues about two topics and grades the others."""
    if any(f"Learning goal: {goal}." in request["messages"][1]["content"] for goal in FAILING):
        raise FakeHTTPError(500, "judge overloaded")
    return json.dumps({"criteria": {n: 0.8 for n in names_of(request)}, "confidence": 0.9, "notes": ""})


def test_judge_failures_are_recorded_and_the_rest_written_chunk_by_chunk(workdir, monkeypatch):
    monkeypatch.setattr(stage, "CHUNK", 10)
    written = []
    real_write = stage.write_dialogues

    def write(path, dialogues):
        written.append(sum(d.grader == "llm-judge:judge" for d in dialogues))
        return real_write(path, dialogues)

    monkeypatch.setattr(stage, "write_dialogues", write)
    failing = {d.dialogue_id for d in read_dialogues(workdir / "dialogues.parquet")
               if get_card(d.scenario_id).goal in FAILING}
    with FakeOpenAIServer(flaky_judge) as server:
        result = run_grade(judge_cfg(workdir, server), show_progress=False)
    assert len(failing) == 6 and result.failed == 6 and result.graded == 34 and result.skipped == 0
    assert len(written) == 4 and written == sorted(written) and written[-1] == 34  # persisted after each chunk
    rows = read_jsonl(workdir / "grade_failures.jsonl")
    assert {r["dialogue_id"] for r in rows} == failing
    assert all(r["grader"] == "llm-judge:judge" and "judge overloaded" in r["error"] for r in rows)
    on_disk = {d.dialogue_id: d for d in read_dialogues(workdir / "dialogues.parquet")}
    assert all(on_disk[i].score is None for i in failing)
    assert all(d.score is not None and d.grader == "llm-judge:judge" for i, d in on_disk.items() if i not in failing)

    monkeypatch.setattr(stage, "write_dialogues", real_write)
    asked = []

    def healthy(request: dict) -> str:
        asked.append(request["messages"][1]["content"])
        return json.dumps({"criteria": {n: 0.6 for n in names_of(request)}, "confidence": 0.5, "notes": ""})

    with FakeOpenAIServer(healthy) as server:
        rerun = run_grade(judge_cfg(workdir, server), show_progress=False)
    assert rerun.graded == 6 and rerun.skipped == 34 and rerun.failed == 0 and len(asked) == 6
    assert all(any(f"Learning goal: {g}." in text for g in FAILING) for text in asked)  # only the failed ones
    assert read_jsonl(workdir / "grade_failures.jsonl") == []
    assert all(d.grader == "llm-judge:judge" for d in read_dialogues(workdir / "dialogues.parquet"))


def test_a_judge_that_fails_everywhere_stops_after_a_chunk_and_exits_2(workdir, monkeypatch):
    monkeypatch.setattr(stage, "CHUNK", 10)

    def down(request: dict) -> str:
        raise FakeHTTPError(503, "judge is down")

    with FakeOpenAIServer(down) as server:
        with pytest.raises(GradeFailedError, match=r"failed on all 10 dialogue\(s\).*30 left untried.*judge is down"):
            run_grade(judge_cfg(workdir, server), show_progress=False)
        assert server.n_requests == 20  # 10 dialogues, 2 attempts each; the other 30 are not tried
        assert len(read_jsonl(workdir / "grade_failures.jsonl")) == 10

        runner = CliRunner()
        out = runner.invoke(cli.app, ["grade", "--workdir", str(workdir), "--grader", "llm",
                                      "--set", f"grade.judge.base_url={server.base_url}",
                                      "--set", "grade.judge.model=judge", "--set", "grade.judge.max_retries=0",
                                      "--set", "grade.judge.api_key_env=PR1_TEST_NO_KEY"])
    assert out.exit_code == 2 and "grade_failures.jsonl" in out.output
