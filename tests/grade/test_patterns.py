"""Stock phrases, phrases repeated verbatim across turns, and the corpus pattern report."""

from __future__ import annotations

from parallel_r1.data import Dialogue, Turn
from parallel_r1.grade import opener, pattern_report, repeated_phrases, stock_phrase_density, stock_phrases


def test_stock_phrases_found_case_and_apostrophe_insensitively():
    text = "Great question! I completely understand your frustration. No worries at all, you’ve got this."
    assert stock_phrases(text) == ["great question", "i completely understand your frustration",
                                   "no worries at all", "you’ve got this".replace("’", "'")]
    assert stock_phrases("What does range(1, 3) produce? Don't worry about the sign yet.") == []


def test_density_counts_clichés_and_cross_turn_repeats_per_turn():
    turns = [
        "Let's slow down and look at this carefully together. What is 3 * 2?",
        "Good. Let's slow down and look at this carefully together. What is 6 + 1?",
        "Great question! What is 7 - 2?",
    ]
    assert repeated_phrases(turns) == ["let's slow down and look at this carefully together"]
    assert stock_phrase_density(turns) == 2 / 3
    assert stock_phrase_density([]) == 0.0
    assert stock_phrase_density(["What is 3 * 2?", "And 3 * 3?"]) == 0.0


def test_opener_normalises_the_first_words():
    assert opener("  Great — let's LOOK at the loop again.") == "great let's look at"


def record(i: int, teacher: list[str]) -> Dialogue:
    turns = [t for text in teacher for t in (Turn("student", "hmm?"), Turn("teacher", text))]
    return Dialogue(dialogue_id=f"d{i}", iteration=i, scenario_id="x", topic="t", domain="maths",
                    question_type="original", difficulty="easy", is_special=False, profile_kind="standard",
                    persona={"traits": []}, turns=turns, backend="test", model="m", seed=i)


def test_pattern_report_ranks_templated_openers_and_phrases():
    template = "I completely understand your frustration, so let's break this down into small pieces."
    dialogues = [record(i, [template, f"What is {i} + {i}? Try it on paper first."]) for i in range(5)]
    dialogues.append(record(9, ["Which loop bound do you think is off?"]))
    report = pattern_report(dialogues, top_k=5)
    assert report.n_dialogues == 6 and report.n_teacher_turns == 11
    assert report.top_openers[0] == ("i completely understand your", 5)
    assert report.top_phrases[0] == (
        "i completely understand your frustration so let's break this down into small pieces", 5)
    assert ("try it on paper first", 5) in report.top_phrases
    assert ("i completely understand your frustration", 5) in report.top_stock_phrases
    assert 0 < report.opener_diversity < 1 and report.mean_density > 0
    markdown = report.to_markdown()
    assert "| i completely understand your | 5 |" in markdown and "### Stock phrases" in markdown


def test_pattern_report_accepts_message_lists_and_empty_corpora():
    msgs = [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "What do you already know?"}]]
    assert pattern_report(msgs).n_teacher_turns == 1
    empty = pattern_report([])
    assert empty.mean_density == 0.0 and "(none)" in empty.to_markdown()
