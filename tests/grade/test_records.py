"""Grading Dialogue records: the columns set, the profile and card each record implies, and purity."""

from __future__ import annotations

import subprocess
import sys

from parallel_r1.data import Dialogue, Turn
from parallel_r1.grade import HeuristicRubricGrader, grade_dialogues


def record(scenario_id: str, traits: list[str], teacher: str) -> Dialogue:
    turns = [Turn("student", "how do I solve 3x + 5 = 20?"), Turn("teacher", teacher)]
    return Dialogue(dialogue_id="d1", iteration=0, scenario_id=scenario_id, topic="linear equations",
                    domain="maths", question_type="original", difficulty="easy", is_special=False,
                    profile_kind="x", persona={"traits": traits}, turns=turns, backend="test", model="m", seed=0)


def test_grade_dialogues_sets_the_grading_columns():
    reveal = "Great question! Subtract 5 to get 3x = 15, then divide by 3, so x = 5. Hope this helps!"
    d = record("linear-equations", ["neurodivergent", "executive_function_gap"], reveal)
    (graded,) = grade_dialogues([d])
    assert graded is d and d.grader == HeuristicRubricGrader.name
    assert 0 <= d.score <= 0.4 and 0 <= d.confidence <= 1
    assert "structured_steps" in d.criteria and d.criteria["no_answer_reveal"] < 0.2
    assert d.stock_phrase_density == 2.0
    row = d.to_row()
    assert dict(row["criteria"]) == d.criteria


def test_unknown_card_grades_without_one():
    (d,) = grade_dialogues([record("not-a-card", [], "What is being done to x on the left?")])
    assert set(d.criteria) == set(HeuristicRubricGrader().grade_dialogue(d.messages()).criteria)
    assert d.criteria["no_answer_reveal"] == 1.0


def test_grading_imports_neither_ray_nor_torch():
    code = "import sys, parallel_r1.grade; print(sorted({'ray', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
