"""The fitted grader on a small labelled file written here: labels that follow clear signals are learnt (under
cross-validation by conversation), unlabelled criteria stay the rubric's, the saved model loads back to the same
grades, and a missing or broken model is a one-line error naming what to do."""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from parallel_r1.config import GradeConfig, load_config
from parallel_r1.data import StudentProfileConfig
from parallel_r1.data.io import file_digest
from parallel_r1.errors import UserFacingError
from parallel_r1.grade.fitted import (
    FittedGraderError,
    TrainingData,
    conversation_folds,
    cross_validate,
    fit,
    load_fitted_grader,
    prepare,
)
from parallel_r1.grade.fitted_features import Turn, extract, feature_names
from parallel_r1.grade.fitted_linear import DEFAULT_ALPHA, choose, fit_linear
from parallel_r1.grade.fitted_stage import run_grader_fit
from parallel_r1.grade.grade import weighted_score
from parallel_r1.grade.labels import read_labelled
from parallel_r1.grade.records import build_grader
from parallel_r1.grade.rubric import HeuristicRubricGrader
from parallel_r1.grade.validate import validate
from parallel_r1.paths import RunPaths

LOCATE = ("Not quite. Check the {word} again: {a} {op} {b} is not {wrong}. Can you redo that step and tell me what "
          "you get?",
          "Close, but there is a slip in your {word}. Look at {a} {op} {b} once more: what do you get this time?",
          "Hmm, {wrong} isn't right. Go back to the {word} of {a} and {b}, try it again, then tell me your answer.")
EXPLAIN = ("{a} {op} {b} equals {right}, because {reason}. So the answer is {right}.",
           "The answer is {right}: {reason}, which gives {right}.",
           "Here is how it works: {reason}. That makes {right}.")
PRAISE = ("Great job! Let's move on to the next topic.", "Well done, that's fine. We can stop here for today.",
          "Nice work! Anyway, let's talk about something else.")
QUESTION = ("What do you think the first step should be?", "How would you start a problem like this one?",
            "Which part of the problem do you want to work on first?")
# (Mistake_Identification, Mistake_Location, Providing_Guidance, Actionability) of each kind of reply.
KINDS = {"locate": (LOCATE, ("Yes", "Yes", "Yes", "Yes")),
         "explain": (EXPLAIN, ("To some extent", "To some extent", "Yes", "No")),
         "praise": (PRAISE, ("No", "No", "No", "No")),
         "question": (QUESTION, ("No", "No", "To some extent", "Yes"))}
DIMS = ("Mistake_Identification", "Mistake_Location", "Providing_Guidance", "Actionability")
OPS = {"+": ("addition", lambda a, b: a + b, "{a} plus {b} adds {b} more to {a}"),
       "x": ("multiplication", lambda a, b: a * b, "{a} groups of {b} make {right}"),
       "-": ("subtraction", lambda a, b: a - b, "taking {b} away from {a} leaves {right}")}


def _rows() -> list[dict]:
    """16 conversations x 4 replies; phrasings rotate so that a fold must generalise across them."""
    rows = []
    for c in range(16):
        op = "+x-"[c % 3]
        a, b = 12 + 3 * c, 4 + c % 5
        word, compute, reason = OPS[op]
        right = compute(a, b)
        wrong = right + (1, 2, 10, -1)[c % 4]
        history = [{"role": "teacher", "content": f"What is {a} {op} {b}?"},
                   {"role": "student", "content": f"I think it is {wrong}."}]
        values = {"a": a, "b": b, "op": op, "word": word, "right": right, "wrong": wrong,
                  "reason": reason.format(a=a, b=b, right=right)}
        for k, (kind, (phrasings, labels)) in enumerate(KINDS.items()):
            rows.append({"id": f"c{c}:{kind}", "conversation_id": f"c{c}", "history": history,
                         "response": phrasings[(c + k) % 3].format(**values), "tutor": kind,
                         "labels": {**dict(zip(DIMS, labels, strict=True)), "Humanlikeness": "Yes"}})
    return rows


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("labels") / "labelled.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    return path


@pytest.fixture(scope="module")
def data(labelled) -> TrainingData:
    return prepare(read_labelled(labelled))


@pytest.fixture(scope="module")
def report(data, labelled):
    return cross_validate(data, source=str(labelled))


@pytest.fixture(scope="module")
def grader(data, labelled):
    return fit(data, source=labelled)


@pytest.fixture(scope="module")
def saved(grader, report, tmp_path_factory) -> Path:
    return grader.save(tmp_path_factory.mktemp("run") / "grader" / "fitted", report)


PAIRS = [([{"role": "teacher", "content": "What is 7 x 8?"}, {"role": "student", "content": "I got 54."}],
          "Not quite: check 7 x 8 again. What do you get when you add 7 eight times?"),
         ([{"role": "assistant", "content": "What is 30 - 12?"}, {"role": "user", "content": "It's 22."}],
          "Great job! Let's move on."),
         ([{"role": "teacher", "content": "What is 9 + 6?"}, {"role": "student", "content": "16"}],
          "9 plus 6 equals 15, because 9 + 1 is 10 and 5 more make 15.")]


def test_cross_validated_rho_is_positive_on_the_clear_dimensions(report):
    assert report.n_conversations == 16 and report.n_replies == 64 and report.failed == 0
    assert report.method == "cross-validated, 5 folds by conversation"
    assert report.skipped == {"Humanlikeness": 64}
    for dimension in ("Mistake_Identification", "Providing_Guidance", "Actionability", "overall"):
        assert report.row(dimension).rho.value > 0.4, (dimension, report.row(dimension))


def test_it_learns_what_the_labels_say_even_against_the_rubric(data):
    """A team whose Actionability labels are the reverse of the rubric's idea of it: the rubric disagrees with
    them, the fitted grader (cross-validated) follows them."""
    flipped = TrainingData([replace(r, labels={"Actionability": 1 - r.labels["Actionability"]}) for r in data.replies],
                           data.X, data.grades, data.groups)
    fitted = cross_validate(flipped)
    rubric = validate(flipped.replies, flipped.grades, grader="rubric", source="flipped")
    assert [r.dimension for r in fitted.rows] == ["Actionability", "overall"]
    assert rubric.row("Actionability").rho.value < 0 < 0.4 < fitted.row("Actionability").rho.value


def test_folds_never_split_a_conversation(data):
    for seed in (0, 1):
        splits = conversation_folds(data.groups, folds=5, seed=seed)
        assert len(splits) == 5
        assert sorted(np.concatenate([test for _, test in splits])) == list(range(len(data.groups)))
        for train, test in splits:
            assert not set(data.groups[train]) & set(data.groups[test])
    assert len(conversation_folds(np.array(["a", "a", "b"]), folds=5)) == 2


def test_a_single_conversation_cannot_be_cross_validated(data):
    one = TrainingData(data.replies[:4], data.X[:4], data.grades[:4], data.groups[:4])
    with pytest.raises(FittedGraderError, match="at least 2 conversations, got 1"):
        cross_validate(one)


def test_only_the_labelled_criteria_leave_the_rubric(grader):
    targets = {t.criterion: t for t in grader.targets}
    assert set(targets) == {"mistake_identification", "guidance", "actionability"}
    assert targets["mistake_identification"].dimensions == ("Mistake_Identification", "Mistake_Location")
    assert targets["actionability"].n == 64
    rubric = HeuristicRubricGrader()
    fitted = grader.grade_turns(PAIRS)
    for (history, response), g in zip(PAIRS, fitted, strict=True):
        r = rubric.grade_turn(history, response)
        assert set(g.criteria) == set(r.criteria)
        assert {k: v for k, v in g.criteria.items() if k not in targets} == \
               {k: v for k, v in r.criteria.items() if k not in targets}
        assert g.score == pytest.approx(weighted_score(g.criteria))
        assert g.confidence == r.confidence and g.grader == grader.name and grader.name.startswith("fitted:")
        single = grader.grade_turn(history, response)
        assert single.criteria == pytest.approx(g.criteria, abs=1e-5)  # batch padding moves float32 noise
    locate, praise, _ = fitted
    assert locate.criteria["actionability"] > praise.criteria["actionability"]
    assert locate.criteria["mistake_identification"] > praise.criteria["mistake_identification"]


def test_a_noisy_criterion_borrows_from_the_shared_labels():
    """Yes/no labels drawn around a signal that the shared labels state without noise: the blend learns from them."""
    rng = np.random.default_rng(0)
    groups, Z = np.repeat(np.arange(12), 5), rng.normal(size=(60, 30))
    shared = np.clip(0.5 + 0.25 * Z[:, 0], 0.0, 1.0)
    y = (rng.random(60) < shared).astype(float)
    model = fit_linear(Z, y, shared, groups, None)
    assert model.borrowed > 0 and model.coef[0] > 0
    assert choose(Z, y, shared, np.zeros(60), None) == (DEFAULT_ALPHA, 0.0)


def test_the_dialogue_block_reads_the_students_turns_too():
    """Two turns with the same tutor turns and reply but another student answer: the problem block is the same,
    the dialogue block is not, and each cosine is the product of its blocks."""
    names = feature_names()
    ask, reply = {"role": "assistant", "content": "What is 7 x 8?"}, "Check 7 x 8 again: what do you get?"
    X, _ = extract([Turn([ask, {"role": "user", "content": answer}], reply) for answer in ("54", "I got 56.")],
                   HeuristicRubricGrader())
    block = {b: X[:, names.index(f"embedding:{b}:0"):][:, :384] for b in ("response", "problem", "dialogue")}
    assert np.allclose(block["problem"][0], block["problem"][1])
    assert not np.allclose(block["dialogue"][0], block["dialogue"][1])
    cosine = X[:, names.index("cosine:response_dialogue")]
    assert np.allclose(cosine, (block["response"] * block["dialogue"]).sum(axis=1))


def test_a_dialogue_takes_the_mean_over_its_teacher_turns(grader):
    (h1, r1), (_, r2) = PAIRS[0], PAIRS[1]
    messages = [{"role": "system", "content": "tutor"}, {"role": "user", "content": h1[1]["content"]},
                {"role": "assistant", "content": r1}, {"role": "user", "content": "Is it 56?"},
                {"role": "assistant", "content": r2}]
    profile = StudentProfileConfig(rejects_metaphor=True)
    g = grader.grade_dialogue(messages, profile)
    turns = [grader.grade_turn(messages[1:2], r1, profile), grader.grade_turn(messages[1:4], r2, profile)]
    rubric = HeuristicRubricGrader().grade_dialogue(messages, profile)
    for criterion in grader.criteria:
        assert g.criteria[criterion] == pytest.approx(np.mean([t.criteria[criterion] for t in turns]), abs=1e-5)
    assert "concrete_not_metaphor" in g.criteria
    assert {k: v for k, v in g.criteria.items() if k not in grader.criteria} == \
           {k: v for k, v in rubric.criteria.items() if k not in grader.criteria}
    assert g.confidence == rubric.confidence and g.notes == rubric.notes
    empty = [{"role": "user", "content": "hello"}]
    items = [(messages, profile, None), (empty, None, None)]
    many = grader.grade_many(items)
    assert many[0].criteria == pytest.approx(g.criteria, abs=1e-5)
    assert many[1].notes == ["no teacher turns to grade"] and many[1].grader == grader.name
    assert [x.criteria for x in asyncio.run(grader.agrade_many(items))] == [x.criteria for x in many]
    asyncio.run(grader.aclose())


def test_save_and_load_give_identical_grades(grader, saved, tmp_path):
    assert sorted(p.name for p in saved.iterdir()) == ["model.json", "model.npz", "validation.json",
                                                       "validation.png"]
    loaded = load_fitted_grader(saved)
    assert loaded.name == grader.name and loaded.targets == grader.targets
    assert [g.criteria for g in loaded.grade_turns(PAIRS)] == [g.criteria for g in grader.grade_turns(PAIRS)]
    meta = json.loads((saved / "model.json").read_text())
    assert meta["training"]["n_conversations"] == 16 and meta["cross_validation"]["n_replies"] == 64
    again = shutil.copytree(saved, tmp_path / "fitted")
    grader.save(again)  # over an existing folder: replaced whole, nothing left beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fitted"]
    assert not (again / "validation.json").exists()
    assert load_fitted_grader(again).name == grader.name


def test_build_grader_uses_the_fitted_folder(grader, saved, tmp_path):
    assert build_grader(GradeConfig(grader="fitted", fitted_path=str(saved))).name == grader.name
    shutil.copytree(saved, RunPaths(tmp_path).fitted_grader)
    assert build_grader(GradeConfig(grader="fitted"), RunPaths(tmp_path)).name == grader.name


def _one_line_error(folder: Path) -> str:
    with pytest.raises(FittedGraderError) as info:
        load_fitted_grader(folder)
    assert isinstance(info.value, UserFacingError) and "\n" not in str(info.value)
    return str(info.value)


def test_a_missing_folder_says_to_run_grader_fit(tmp_path):
    message = _one_line_error(tmp_path / "nowhere")
    assert "nowhere" in message and "run `parallel-r1 grader fit LABELLED.jsonl` first" in message


@pytest.mark.parametrize("damage, expected", [
    (lambda f: (f / "model.npz").unlink(), "model.npz: missing"),
    (lambda f: (f / "model.npz").write_bytes(b"not a zip"), "model.npz: corrupt"),
    (lambda f: (f / "model.json").write_text('{"features": ['), "model.json: corrupt"),
    (lambda f: (f / "model.json").write_text("{}"), "model.json: corrupt or incomplete (KeyError"),
    (lambda f: np.savez(f / "model.npz", mean=np.zeros(3), scale=np.ones(3), coef=np.zeros((1, 3)),
                        intercept=np.zeros(1)), "model.npz: corrupt"),
    (lambda f: _edit_meta(f, digest="0" * 12), "does not match model.json"),
    (lambda f: _edit_meta(f, rubric="heuristic-rubric-v0"), "fitted on the features of heuristic-rubric-v0"),
])
def test_a_broken_model_names_its_file(saved, tmp_path, damage, expected):
    folder = tmp_path / "fitted"
    shutil.copytree(saved, folder)
    damage(folder)
    message = _one_line_error(folder)
    assert expected in message and "parallel-r1 grader fit" in message


def _edit_meta(folder: Path, **changes) -> None:
    path = folder / "model.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_run_grader_fit_writes_the_model_and_its_report(labelled, tmp_path, capsys):
    cfg = load_config(None, {"workdir": str(tmp_path)})
    result = run_grader_fit(cfg, labelled)
    assert result.folder == RunPaths(tmp_path).fitted_grader
    assert {p.name for p in result.folder.iterdir()} == {"model.json", "model.npz", "validation.json",
                                                         "validation.png"}
    meta = json.loads((result.folder / "model.json").read_text())
    assert meta["training"]["source_digest"] == file_digest(labelled) and meta["grader"] == result.grader
    assert json.loads((result.folder / "validation.json").read_text())["method"].startswith("cross-validated")
    assert load_fitted_grader(result.folder).name == result.grader
    out = capsys.readouterr().out
    assert "cross-validated, 5 folds by conversation" in out and f"wrote {result.grader}" in out
    elsewhere = run_grader_fit(cfg, labelled, out=tmp_path / "mine")
    assert elsewhere.folder == tmp_path / "mine" and (elsewhere.folder / "model.npz").is_file()
