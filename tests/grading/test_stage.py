"""The grade stage over a run directory: columns written back atomically, the pattern report, errors."""

from __future__ import annotations

import asyncio
import json

import pytest

from parallel_r1.config import load_config
from parallel_r1.data import discovery_plan, read_dialogues, write_dialogues
from parallel_r1.discover.procedural import ProceduralBackend
from parallel_r1.discover.simulator import simulate_dialogue
from parallel_r1.grading.stage import run_grade
from tests.fakes.openai_server import FakeOpenAIServer


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
    assert result.graded == len(dialogues) == 40
    assert all(d.score is not None and d.grader == "heuristic-rubric-v1" and d.criteria for d in dialogues)
    assert result.high_confidence + result.medium_confidence + result.low_confidence == 40
    assert "## Teacher pattern density" in (workdir / "pattern_report.md").read_text()


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
