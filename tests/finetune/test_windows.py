"""Training windows: every trained teacher turn of a dialogue longer than the context is a target once, with
the latest context that fits before it."""

from __future__ import annotations

from parallel_r1.finetune.windows import training_windows


def words(messages):
    return sum(len(m["content"].split()) + 1 for m in messages)


SYSTEM = {"role": "system", "content": "be kind"}
DIALOGUE = [SYSTEM] + [m for k in range(4) for m in (
    {"role": "user", "content": f"question {k} " + "w " * 6},
    {"role": "assistant", "content": f"answer {k} " + "w " * 6})]


def _targets(examples):
    return [m["content"].split()[1] for ex in examples for m in ex
            if m["role"] == "assistant" and m.get("weight", 1)]


def test_a_dialogue_that_fits_is_one_example():
    assert training_windows(DIALOGUE, words, 1000) == [DIALOGUE]


def test_turns_past_the_limit_become_windows_and_each_turn_is_trained_once():
    limit = words(DIALOGUE[:5])  # answers 0 and 1 fit, 2 and 3 do not
    examples = training_windows(DIALOGUE, words, limit)
    assert len(examples) == 3
    assert sorted(_targets(examples)) == ["0", "1", "2", "3"]
    first = examples[0]
    assert first[:5] == DIALOGUE[:5] and [m.get("weight") for m in first[6::2]] == [0, 0]
    for window in examples[1:]:
        assert window[0] == SYSTEM and window[1]["role"] == "user"
        assert words(window) <= limit
        assert window[-1]["weight"] == 1 and all(m["weight"] == 0 for m in window[1:-1] if m["role"] == "assistant")
    assert examples[2][-2]["content"].startswith("question 3")


def test_untrained_turns_are_not_windowed():
    weak = [dict(m, weight=0) if m["role"] == "assistant" and "answer 3" in m["content"] else m for m in DIALOGUE]
    examples = training_windows(weak, words, words(DIALOGUE[:5]))
    assert sorted(_targets(examples)) == ["0", "1", "2"]
