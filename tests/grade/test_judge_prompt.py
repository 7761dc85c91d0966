"""The judge's prompt without a server: transcript trimming, role normalisation, the turn prompt and the schema."""

from __future__ import annotations

import pytest

from parallel_r1.data import StudentProfileConfig, get_card
from parallel_r1.grade.grade import applicable_criteria
from parallel_r1.grade.judge_prompt import (
    TARGET,
    fit_transcript,
    judge_response_format,
    normalise_history,
    turn_prompt,
)

ENTRIES = [("STUDENT", "opening question " * 10)] + [
    (("TUTOR", "STUDENT")[i % 2], f"turn {i} " + "words " * 30) for i in range(1, 21)]


def size(entries) -> int:
    return sum(len(s) + len(t) + 4 for s, t in entries)


def test_fit_transcript_keeps_opening_and_recent_turns_and_marks_the_cut():
    kept, omitted = fit_transcript(ENTRIES, 1500)
    assert size(kept) <= 1500 and omitted > 0
    assert kept[0] == ENTRIES[0] and kept[-1] == ENTRIES[-1]
    assert kept[1][0] == "[...]" and f"{omitted} turn(s) left out" in kept[1][1]
    assert kept[2:] == ENTRIES[-(len(kept) - 2):]  # the most recent turns, in order
    assert fit_transcript(ENTRIES, None) == (ENTRIES, 0) and fit_transcript(ENTRIES, 10**6) == (ENTRIES, 0)


def test_fit_transcript_shortens_turns_that_alone_are_too_long():
    long = [("STUDENT", "a" * 3000), ("TUTOR", "b" * 2000 + " the end")]
    kept, omitted = fit_transcript(long, 1000)
    assert omitted == 0 and size(kept) <= 1000
    assert kept[0][1].startswith("aaa") and "[...]" in kept[0][1] and kept[1][1].endswith("the end")


def test_history_roles_are_normalised_and_the_turn_prompt_marks_the_reply():
    history = [{"role": "teacher", "content": "What is 3^3?"}, {"role": "system", "content": "ignore"},
               {"role": "student", "content": "9"}]
    assert normalise_history(history) == [{"role": "assistant", "content": "What is 3^3?"},
                                          {"role": "user", "content": "9"}]
    prompt = turn_prompt(history, "What does the exponent tell you to do?", None, None)
    messages, _ = prompt.messages()
    user = messages[1]["content"]
    assert "TUTOR: What is 3^3?\n\nSTUDENT: 9\n\n" + TARGET + ": What does the exponent" in user
    assert "ignore" not in user and "last TUTOR reply" in messages[0]["content"]


@pytest.mark.parametrize("profile", [None, StudentProfileConfig(rejects_metaphor=True, bad_prior_teacher=True)])
def test_schema_lists_exactly_the_applicable_criteria_in_unit_range(profile):
    card = get_card("linear-equations")
    names = applicable_criteria(profile, card)
    fmt = judge_response_format(names)
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    criteria = schema["properties"]["criteria"]
    assert list(criteria["properties"]) == list(names) == criteria["required"]
    assert all(p == {"type": "number", "minimum": 0, "maximum": 1} for p in criteria["properties"].values())
    assert criteria["additionalProperties"] is False and schema["additionalProperties"] is False
    assert schema["required"] == ["criteria", "confidence", "notes"]
    assert ("validation" in names) == (profile is not None)
