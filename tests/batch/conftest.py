"""Synthetic graded dialogues with chosen length, question type, confidence, profile, score and density."""

from __future__ import annotations

import itertools

import pytest

from parallel_r1.data.schema import Dialogue, Turn

_TURNS = {"short": 4, "medium": 6, "long": 10}


def make_dialogue(i: int, *, length: str = "short", question_type: str = "original", confidence: float = 0.8,
                  profile_kind: str = "standard", score: float | None = 0.8, density: float | None = 0.0,
                  scenario_id: str = "card-a", domain: str = "maths", openers: list[str] | None = None,
                  is_special: bool = False) -> Dialogue:
    turns = []
    for k in range(_TURNS[length]):
        if k % 2 == 0:
            turns.append(Turn("student", f"student message {k} of {i}"))
        else:
            opener = openers[(k // 2) % len(openers)] if openers else f"unique{i} opener{k} here"
            turns.append(Turn("teacher", f"{opener}, and then an explanation of step {k}."))
    return Dialogue(
        dialogue_id=f"d{i:05d}", iteration=i, scenario_id=scenario_id, topic="topic", domain=domain,
        question_type=question_type, difficulty="easy", is_special=is_special, profile_kind=profile_kind,
        persona={"name": "Ana", "age": 20, "level": "student", "background": "b", "voice": "v",
                 "struggles": "s", "kind": profile_kind, "traits": []},
        turns=turns, backend="procedural", model="sim", seed=i, score=score, confidence=confidence,
        criteria={"socratic": 0.5}, grader="heuristic", stock_phrase_density=density,
    )


@pytest.fixture
def make():
    return make_dialogue


@pytest.fixture
def rich_pool():
    """Every combination of length, question type, confidence tier and profile kind, several times over."""
    kinds = ("standard", "neurodivergent", "bad_prior_teacher", "rejects_metaphor",
             "executive_function_gap", "hyperfocus")
    combos = itertools.product(range(10), ("short", "medium", "long"), ("original", "koan"), (0.9, 0.6, 0.3),
                               kinds)
    return [
        make_dialogue(i, length=length, question_type=qt, confidence=conf, profile_kind=kind,
                      score=0.5 + (i * 37 % 50) / 100, density=(i * 13 % 10) / 100,
                      scenario_id=f"card-{i % 5}")
        for i, (_, length, qt, conf, kind) in enumerate(combos)
    ]
