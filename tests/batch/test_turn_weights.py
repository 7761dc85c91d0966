"""Per-turn weights: with `batch.turn_floor`, weak teacher turns stay as context but carry no loss."""

from __future__ import annotations

from parallel_r1.batch.batches import Batch
from parallel_r1.batch.report import sft_records, trained_turns, training_messages
from parallel_r1.config import BatchSpec
from parallel_r1.data import Turn
from parallel_r1.grade.records import profile_of, scenario_of
from parallel_r1.grade.rubric import grade_turn

GOOD = "What do you notice about the two numbers? Try adding the tens first, then tell me what you get."
WEAK = "The answer is 42."


def _dialogue(make):
    d = make(1, length="medium")
    d.turns = [Turn("student", "How do I add 23 and 19?"), Turn("teacher", WEAK),
               Turn("student", "ok but why?"), Turn("teacher", GOOD)]
    return d


def test_turns_below_the_floor_get_weight_zero_and_the_best_turn_is_always_trained(make):
    d = _dialogue(make)
    turns = d.messages()
    scores = [grade_turn(turns[:i], m["content"], profile_of(d), scenario_of(d)).score
              for i, m in enumerate(turns) if m["role"] == "assistant"]
    assert scores[0] < scores[1]
    floor = (scores[0] + scores[1]) / 2
    msgs = training_messages(d, "S", floor)
    assert msgs[0] == {"role": "system", "content": "S"}
    assert [m.get("weight") for m in msgs if m["role"] == "assistant"] == [0, 1]
    assert all("weight" not in m for m in msgs if m["role"] != "assistant")
    everything_weak = training_messages(d, "S", 1.0)
    assert [m["weight"] for m in everything_weak if m["role"] == "assistant"] == [0, 1]
    assert training_messages(d, "S", None) == d.messages(system="S")


def test_trained_turns_counts_weighted_targets(make):
    batch = Batch(spec=BatchSpec(name="b", size=2), dialogues=[_dialogue(make), _dialogue(make)], eligible=2,
                  cap_removed=0)
    assert trained_turns(sft_records(batch)) == (4, 4)
    assert trained_turns(sft_records(batch, 1.0)) == (2, 4)
