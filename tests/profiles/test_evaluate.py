"""The evaluator: tolerant label formats, the numbers it reports, and a one-line error naming the line of a bad
labelled file."""

from __future__ import annotations

import json

import pytest

from parallel_r1.profiles.evaluate import evaluate_file, format_evaluation
from parallel_r1.profiles.labelled import LabelledFileError, load_labelled


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_label_formats(tmp_path):
    path = _write(tmp_path / "set.jsonl", [
        {"message": "stop with the pizza slices", "traits": ["rejects_metaphor"]},
        {"messages": ["hi", "can we stay on this? I don't want to move on"], "traits": ["hyperfocus"]},
        {"messages": [{"role": "assistant", "content": "Hello"}, {"role": "user", "content": "hey"}], "traits": []},
        {"message": "sorry for asking again", "profile": {"bad_prior_teacher": True, "neurodivergent": False}},
        {"message": "I'm autistic", "kind": "neurodivergent", "subject": "general"},
        "",
        {"message": "what's 2+2", "traits": "standard"},
    ])
    examples = load_labelled(path)
    assert [e.line for e in examples] == [1, 2, 3, 4, 5, 7]
    assert [e.profile.kind for e in examples] == ["rejects_metaphor", "hyperfocus", "standard", "bad_prior_teacher",
                                                  "neurodivergent", "standard"]
    assert examples[2].turns[0].role == "teacher"


def test_scores_of_a_small_set(tmp_path):
    path = _write(tmp_path / "set.jsonl", [
        {"message": "stop with the pizza slices", "traits": ["rejects_metaphor"]},
        {"message": "can we stay on this? I don't want to move on", "traits": ["hyperfocus"]},
        {"message": "what is a prime number?", "traits": []},
        {"message": "what is a prime number?", "traits": ["bad_prior_teacher"]},  # unreadable from the words
    ])
    result = evaluate_file(path, "cues")
    assert result.n == 4 and result.method == "cues"
    assert result.specialist_accuracy == result.exact_accuracy == 0.75
    assert result.per_trait["rejects_metaphor"].precision == result.per_trait["rejects_metaphor"].recall == 1.0
    assert result.per_trait["bad_prior_teacher"].recall == 0.0 and result.per_trait["bad_prior_teacher"].support == 1
    assert result.confusion["prior_trauma_recovery"] == {"varied_original_diverse": 1}
    assert result.confusion["neurodivergent"] == {"neurodivergent": 2}
    assert result.errors == [{"line": 4, "truth": ["bad_prior_teacher"], "read": []}]
    assert json.loads(json.dumps(result.to_dict()))["per_trait"]["hyperfocus_trait"]["f1"] == 1.0
    assert format_evaluation(result) is not None


@pytest.mark.parametrize("line, message", [
    ("{not json", ":2: not JSON"),
    ('["a list"]', ":2: expected a JSON object"),
    ('{"message": "hi"}', "line 2: no label"),
    ('{"message": "hi", "traits": ["curious"]}', "line 2: unknown trait 'curious'"),
    ('{"message": "hi", "kind": "sleepy"}', "line 2: unknown profile kind 'sleepy'"),
    ('{"traits": []}', "line 2: no 'message'"),
    ('{"messages": [], "traits": []}', "line 2: 'messages' must be a non-empty list"),
    ('{"messages": [{"role": "assistant", "content": "hi"}], "traits": []}', "line 2: no student message"),
    ('{"messages": [{"role": "robot", "content": "hi"}], "traits": []}', "line 2: unknown message role 'robot'"),
    ('{"message": "hi", "profile": ["rejects_metaphor"]}', "line 2: 'profile' must be an object"),
])
def test_bad_lines_name_the_line(tmp_path, line, message):
    path = _write(tmp_path / "bad.jsonl", ['{"message": "fine", "traits": []}', line])
    with pytest.raises(LabelledFileError, match=message) as err:
        load_labelled(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_missing_or_empty_file(tmp_path):
    with pytest.raises(LabelledFileError, match="no such labelled file"):
        load_labelled(tmp_path / "absent.jsonl")
    with pytest.raises(LabelledFileError, match="no labelled examples"):
        load_labelled(_write(tmp_path / "empty.jsonl", [""]))
