"""validate-grader: the agreement table against labels people would give, and the one-line errors on bad files.

The labelled replies below are written for these tests (a student's wrong attempt, then tutor replies of
kinds annotators label differently); the default rubric must keep agreeing with them.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from parallel_r1.cli import app
from parallel_r1.grade.agreement import cluster_bootstrap, cut, macro_f1, spearman
from parallel_r1.grade.labels import LabelFileError, read_labelled
from parallel_r1.grade.rubric import HeuristicRubricGrader
from parallel_r1.grade.validate import grade_replies, validate

runner = CliRunner()

PROBLEMS = [
    ("What is 3^3?", "9"),
    ("A shirt costs $20 and is 25% off. What do you pay?", "I pay $5"),
    ("Tom has 12 apples and gives away a third. How many are left?", "12 - 3 = 9 left"),
    ("What is 7 x 8?", "54"),
    ("Round 4.67 to one decimal place.", "4.6"),
    ("How many minutes are in 2.5 hours?", "250 minutes"),
    ("What is 1/2 + 1/3?", "2/5"),
    ("A train goes 60 km in 45 minutes. What is its speed in km/h?", "60 km/h"),
]
# (reply template, Mistake_Identification, Providing_Guidance, Actionability); {q} the question, {a} the attempt.
REPLIES = [
    ("Not quite: look again at how you got {a}. Which step of the problem did you skip? Try that step again.",
     "Yes", "Yes", "Yes"),
    ("Close, but check your working for {q} once more: what do you get when you redo the last step?",
     "Yes", "Yes", "Yes"),
    ("Great job! Let's move on to the next problem.", "No", "No", "No"),
    ("Well done, that's correct!", "No", "No", "No"),
    ("There seems to be a mistake in {a}; remember to use every number in the question.", "Yes", "Yes",
     "To some extent"),
    ("Let's try a different problem now.", "No", "No", "No"),
    ("Nice work! Does that make sense?", "No", "No", "No"),
    ("You used the right numbers, but the last step is off: redo the last step and compare with {a}.", "Yes",
     "Yes", "Yes"),
]


def write_labels(path, extra: list[dict] | None = None) -> None:
    rows = []
    for c, (question, attempt) in enumerate(PROBLEMS):
        history = [{"role": "teacher", "content": question}, {"role": "student", "content": attempt}]
        for t, (template, mi, pg, ac) in enumerate(REPLIES):
            rows.append({"id": f"{c}:{t}", "conversation_id": str(c), "history": history,
                         "response": template.format(q=question.rstrip("?"), a=attempt),
                         "labels": {"Mistake_Identification": mi, "Providing_Guidance": pg, "Actionability": ac,
                                    "Humanlikeness": "Yes"}})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows + (extra or [])))


def test_the_rubric_agrees_with_the_labels_and_beats_the_question_mark(tmp_path):
    path = tmp_path / "labels.jsonl"
    write_labels(path)
    replies = read_labelled(path)
    grades, _ = grade_replies(replies, HeuristicRubricGrader())
    report = validate(replies, grades, grader="heuristic", source=str(path), n_boot=200)
    for dim in ("Mistake_Identification", "Providing_Guidance", "Actionability", "overall"):
        row = report.row(dim)
        assert row.rho.value >= 0.5, (dim, row.rho)
    for dim in ("Mistake_Identification", "Providing_Guidance"):
        assert report.row(dim).rho.value > report.row(dim).baseline_rho.value + 0.1, dim
    assert report.skipped == {"Humanlikeness": len(replies)}
    assert report.n_conversations == len(PROBLEMS)


def test_statistics():
    x, y = np.array([1, 2, 3, 4, 5.0]), np.array([2, 1, 4, 3, 5.0])
    assert spearman(x, y) == pytest.approx(0.8)
    assert math.isnan(spearman(np.ones(5), y))
    interval = cluster_bootstrap(x, y, np.array(["a", "a", "b", "c", "c"]), n_boot=200)
    assert interval.low <= interval.value <= interval.high
    assert list(cut(np.array([0.1, 0.4, 0.9]), [0.0, 0.5, 1.0])) == [0.0, 0.5, 1.0]
    truth = np.array([0.0, 0.5, 1.0, 1.0])
    assert macro_f1(truth, truth, [0.0, 0.5, 1.0]) == 1.0
    assert macro_f1(np.ones(4), truth, [0.0, 0.5, 1.0]) == pytest.approx((0 + 0 + 2 / 3) / 3)


def test_validate_grader_command_writes_the_table_json_and_png(tmp_path):
    path = tmp_path / "labels.jsonl"
    write_labels(path)
    result = runner.invoke(app, ["validate-grader", str(path), "--workdir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "Mistake_Identification" in result.output and "Humanlikeness" in result.output
    out = tmp_path / "run" / "validation" / "heuristic"
    table = json.loads((out / "validation.json").read_text())
    assert {r["dimension"] for r in table["rows"]} == {"Mistake_Identification", "Providing_Guidance",
                                                        "Actionability", "overall"}
    assert table["n_replies"] == len(PROBLEMS) * len(REPLIES)
    assert (out / "validation.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(("content", "message"), [
    ("", "no labelled replies"),
    ('{"history": [], "labels": {"Actionability": "Yes"}}\n', "field 'response' is missing"),
    ('{"history": [], "response": "hi", "labels": {"Actionability": "Maybe"}}\n', "Actionability='Maybe'"),
    ('{"history": [{"role": "narrator", "content": "x"}], "response": "hi", "labels": {}}\n', "history[0]"),
    ("not json\n", ":1: not JSON"),
    ('{"history": [], "response": "hi", "labels": {"Fluency": "Yes"}}\n', "no reply carries a known dimension"),
])
def test_bad_label_files_exit_2_with_one_line(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(LabelFileError, match=None):
        read_labelled(path)
    result = runner.invoke(app, ["validate-grader", str(path), "--workdir", str(tmp_path)])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "validation").exists()


def test_unknown_grader_and_missing_file_exit_2(tmp_path):
    path = tmp_path / "labels.jsonl"
    write_labels(path)
    result = runner.invoke(app, ["validate-grader", str(path), "--grader", "psychic", "--workdir", str(tmp_path)])
    assert result.exit_code == 2 and "grade.grader" in result.output
    result = runner.invoke(app, ["validate-grader", str(tmp_path / "none.jsonl"), "--workdir", str(tmp_path)])
    assert result.exit_code == 2 and "no such labelled file" in result.output


def test_validate_grader_with_the_llm_judge_on_a_local_server(tmp_path):
    """The judge behind a real local OpenAI-compatible server: a structured grade per reply, and a reply the
    judge cannot grade is counted as failed, not fatal."""
    from tests.fakes.openai_server import FakeOpenAIServer
    from tests.grade.test_judge_structured import schema_names

    def judge(request: dict) -> str:
        graded = request["messages"][1]["content"].split(">>>", 1)[1]
        if "Does that make sense" in graded:
            return "I cannot grade this."
        good = 1.0 if "?" in graded or "redo" in graded else 0.0
        return json.dumps({"criteria": {n: good for n in schema_names(request)}, "confidence": 0.8, "notes": ""})

    path = tmp_path / "labels.jsonl"
    write_labels(path)
    with FakeOpenAIServer(judge) as server:
        result = runner.invoke(app, [
            "validate-grader", str(path), "--grader", "llm", "--workdir", str(tmp_path),
            "--set", f"grade.judge.base_url={server.base_url}", "--set", "grade.judge.model=fake-judge",
            "--set", "grade.judge.api_key_env=PR1_TEST_NO_KEY", "--set", "grade.judge.max_retries=0"])
    assert result.exit_code == 0, result.output
    table = json.loads((tmp_path / "validation" / "llm" / "validation.json").read_text())
    assert table["grader"] == "llm-judge:fake-judge" and table["failed"] == len(PROBLEMS)
    rows = {r["dimension"]: r for r in table["rows"]}
    assert rows["Actionability"]["n"] == len(PROBLEMS) * (len(REPLIES) - 1)
    assert rows["Actionability"]["rho"]["value"] > 0.5
    assert f"{len(PROBLEMS)} of {len(PROBLEMS) * len(REPLIES)} replies could not be graded" in result.output


def test_a_judge_that_grades_nothing_is_one_line_and_exit_2(tmp_path):
    from tests.fakes.openai_server import FakeOpenAIServer

    path = tmp_path / "labels.jsonl"
    write_labels(path)
    with FakeOpenAIServer(lambda request: "no idea") as server:
        result = runner.invoke(app, [
            "validate-grader", str(path), "--grader", "llm", "--workdir", str(tmp_path),
            "--set", f"grade.judge.base_url={server.base_url}", "--set", "grade.judge.api_key_env=PR1_TEST_NO_KEY",
            "--set", "grade.judge.max_retries=0"])
    assert result.exit_code == 2 and "could not grade any of the" in result.output, result.output
    assert not (tmp_path / "validation").exists()


def test_grader_fit_then_validate_with_the_fitted_grader(tmp_path):
    path = tmp_path / "labels.jsonl"
    write_labels(path)
    run = ["--workdir", str(tmp_path / "run")]
    result = runner.invoke(app, ["grader", "fit", str(path), *run])
    assert result.exit_code == 0, result.output
    assert "cross-validated, 5 folds by conversation" in result.output
    assert (tmp_path / "run" / "grader" / "fitted" / "model.npz").exists()
    result = runner.invoke(app, ["validate-grader", str(path), "--grader", "fitted", *run])
    assert result.exit_code == 0, result.output
    table = json.loads((tmp_path / "run" / "validation" / "fitted" / "validation.json").read_text())
    assert table["grader"].startswith("fitted:")
    assert {r["dimension"]: r for r in table["rows"]}["Mistake_Identification"]["rho"]["value"] > 0.5
    missing = runner.invoke(app, ["validate-grader", str(path), "--grader", "fitted", "--workdir", str(tmp_path)])
    assert missing.exit_code == 2 and "parallel-r1 grader fit" in missing.output
