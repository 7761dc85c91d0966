"""The rubric ranks dialogues of the procedural backend by the teacher moves they are known to contain.

The generator's phrasing is not what the rubric is built on (its cues are generic); this checks that
the cues, on a second writer's text, still rank known good moves above known bad ones, per criterion
and overall, and that on the natural mix the score falls as failure moves rise.
"""

from __future__ import annotations

import asyncio
import random
import statistics

import pytest

from parallel_r1.data import ORDINARY_CARDS, Dialogue, DialogueTask, discovery_plan
from parallel_r1.discover.procedural import ProceduralBackend
from parallel_r1.discover.procedural_behaviours import FAILURE_BEHAVIOURS
from parallel_r1.discover.simulator import simulate_dialogue
from parallel_r1.grade import grade_dialogues

ORIGINAL = [c.id for c in ORDINARY_CARDS if c.question_type == "original"]
KOANS = [c.id for c in ORDINARY_CARDS if c.question_type == "koan"]
N = 16


def simulate(tasks: list[DialogueTask], force: list[str] | None = None, seed: int = 0) -> list[Dialogue]:
    backend = ProceduralBackend(seed=seed, force_behaviours=force)

    async def run() -> list[Dialogue]:
        return [await simulate_dialogue(backend, t) for t in tasks]

    return grade_dialogues(asyncio.run(run()))


def forced(force: list[str], kind: str, cards: list[str], n: int = N) -> list[Dialogue]:
    rng = random.Random(f"{kind}:{cards[0]}")
    tasks = [DialogueTask(iteration=i, dialogue_id=f"r{i}", card_id=cards[i % len(cards)], profile_kind=kind,
                          target_turns=rng.randint(4, 9), seed=rng.getrandbits(31)) for i in range(n)]
    return simulate(tasks, force)


def mean(dialogues: list[Dialogue], criterion: str) -> float:
    return statistics.fmean(d.score if criterion == "score" else d.criteria[criterion] for d in dialogues)


@pytest.mark.parametrize(("criterion", "kind", "cards", "good", "bad"), [
    ("no_answer_reveal", "standard", ORIGINAL, "socratic_question", "answer_reveal"),
    ("guidance", "standard", ORIGINAL, "socratic_question", "topic_switch"),
    ("checks_understanding", "standard", ORIGINAL, "checks_understanding", "lecture"),
    ("actionability", "standard", ORIGINAL, "next_step", "topic_switch"),
    ("concision", "standard", ORIGINAL, "concise", "wall_of_text"),
    ("coherence", "standard", ORIGINAL, "stays_on_topic", "topic_switch"),
    ("pattern_penalty", "standard", ORIGINAL, "socratic_question", "stock_empathy"),
    ("tone", "standard", ORIGINAL, "socratic_question", "dismissive"),
    ("concrete_not_metaphor", "rejects_metaphor", ORIGINAL + ["neurodivergent_reject"], "line_by_line", "metaphor"),
    ("structured_steps", "executive_function_gap", ORIGINAL + ["neurodivergent_exec"], "structured_steps",
     "wall_of_text"),
    ("stays_on_topic", "hyperfocus", ORIGINAL + ["neurodivergent_hyperfocus"], "stays_on_topic", "topic_switch"),
    ("tone", "bad_prior_teacher", ORIGINAL + ["bad_prior_teacher"], "validation", "dismissive"),
    ("validation", "bad_prior_teacher", ORIGINAL + ["bad_prior_teacher"], "validation", "dismissive"),
    ("validation", "bad_prior_teacher", ORIGINAL + ["bad_prior_teacher"], "validation", "stock_empathy"),
    ("reflective_openness", "standard", KOANS, "reflective", "answer_reveal"),
])
def test_known_good_move_outranks_known_bad_move(criterion, kind, cards, good, bad):
    good_mean, bad_mean = mean(forced([good], kind, cards), criterion), mean(forced([bad], kind, cards), criterion)
    assert good_mean - bad_mean >= 0.3, (criterion, good_mean, bad_mean)


@pytest.mark.parametrize(("kind", "cards", "good", "bad"), [
    ("standard", ORIGINAL + KOANS, ["socratic_question", "checks_understanding", "next_step", "concise"],
     ["answer_reveal", "lecture", "stock_empathy"]),
    ("rejects_metaphor", ORIGINAL + ["neurodivergent_reject"], ["line_by_line", "checks_understanding"],
     ["metaphor", "lecture"]),
    ("executive_function_gap", ORIGINAL + ["neurodivergent_exec"], ["structured_steps", "next_step"],
     ["wall_of_text", "answer_reveal"]),
    ("hyperfocus", ORIGINAL + ["neurodivergent_hyperfocus"], ["stays_on_topic", "socratic_question"],
     ["topic_switch", "lecture"]),
    ("bad_prior_teacher", ORIGINAL + ["bad_prior_teacher"], ["validation", "socratic_question", "next_step"],
     ["dismissive", "stock_empathy", "answer_reveal"]),
])
def test_all_good_dialogues_score_above_all_bad(kind, cards, good, bad):
    good_scores = [d.score for d in forced(good, kind, cards)]
    bad_scores = [d.score for d in forced(bad, kind, cards)]
    assert statistics.fmean(good_scores) - statistics.fmean(bad_scores) >= 0.3
    assert min(good_scores) > max(bad_scores)


def ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2
        i = j + 1
    return out


def spearman(x: list[float], y: list[float]) -> float:
    rx, ry = ranks(x), ranks(y)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    return cov / (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5


@pytest.fixture(scope="module")
def natural() -> list[Dialogue]:
    return simulate(discovery_plan(300, include_special=True, seed=3), seed=3)


def test_score_falls_with_the_share_of_failure_moves(natural):
    failure_share = [sum(b in FAILURE_BEHAVIOURS for b in d.behaviours) / max(1, len(d.behaviours)) for d in natural]
    assert spearman([d.score for d in natural], failure_share) < -0.5


def test_confidence_spreads_over_high_medium_and_low(natural):
    confidence = [d.confidence for d in natural]
    high = sum(c >= 0.7 for c in confidence) / len(confidence)
    medium = sum(0.5 <= c < 0.7 for c in confidence) / len(confidence)
    assert 0.15 <= high <= 0.6 and 0.15 <= medium <= 0.6, (high, medium)
    for bucket in ("short", "medium", "long"):  # every length can be sorted into high and medium batches
        sub = [d.confidence for d in natural if d.length_bucket == bucket]
        assert any(c >= 0.7 for c in sub) and any(0.5 <= c < 0.7 for c in sub), bucket
