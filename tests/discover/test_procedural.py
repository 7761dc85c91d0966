"""The procedural chat backend: determinism, dialogue shape, behaviour variety and in-character reactions."""

from __future__ import annotations

import asyncio
import collections
import re
from dataclasses import replace

import pytest

from parallel_r1.data import Turn, discovery_plan, get_card
from parallel_r1.discover.procedural import ProceduralBackend
from parallel_r1.discover.procedural_behaviours import FAILURE_BEHAVIOURS, GOOD_BEHAVIOURS, PROFILE_FAILURE
from parallel_r1.discover.procedural_text import STOCK_EMPATHY, STUDENT
from parallel_r1.discover.simulator import context_for, simulate_dialogue

PLAN = discovery_plan(200, include_special=True)
NUMBERED = re.compile(r"^\d+\. \S", re.MULTILINE)


def simulate(backend: ProceduralBackend, tasks=PLAN):
    async def run():
        out = [await simulate_dialogue(backend, t) for t in tasks]
        await backend.close()
        return out

    return asyncio.run(run())


def transcript(dialogue) -> list[tuple[str, str]]:
    return [(t.role, t.content) for t in dialogue.turns]


def teacher_turns(dialogue) -> list[str]:
    return [t.content for t in dialogue.turns if t.role == "teacher"]


def student_replies(dialogue) -> list[str]:
    """Student messages that answer a teacher turn (every student turn but the opening)."""
    return [t.content for t in dialogue.turns[2::2]]


@pytest.fixture(scope="module")
def sampled():
    return simulate(ProceduralBackend(seed=0))


def test_backend_interface_and_determinism():
    backend = ProceduralBackend(seed=3)
    assert (backend.name, backend.model) == ("procedural", "procedural-v1")
    tasks = PLAN[:40]
    first, again = simulate(backend, tasks), simulate(ProceduralBackend(seed=3), tasks)
    assert [transcript(d) for d in first] == [transcript(d) for d in again]
    assert [d.behaviours for d in first] == [d.behaviours for d in again]
    other = simulate(ProceduralBackend(seed=4), tasks)
    assert [transcript(d) for d in first] != [transcript(d) for d in other]


def test_dialogue_shape_and_topic(sampled):
    for task, d in zip(PLAN, sampled, strict=True):
        card = get_card(task.card_id)
        assert d.n_turns == task.target_turns
        assert [t.role for t in d.turns] == [("student", "teacher")[i % 2] for i in range(d.n_turns)]
        assert all(t.content.strip() for t in d.turns)
        first_sentence = re.split(r"(?<=[.?!])\s", card.opening)[0]
        assert first_sentence[1:].rstrip(".?!") in d.turns[0].content  # the opening, maybe in the persona's voice
        assert card.topic.lower() in " ".join(t.content for t in d.turns).lower()
        assert (d.backend, d.model) == ("procedural", "procedural-v1")


def test_behaviours_vary_across_dialogues(sampled):
    seen = collections.Counter(b for d in sampled for b in d.behaviours)
    assert set(seen) == set(GOOD_BEHAVIOURS) | set(FAILURE_BEHAVIOURS)
    assert all(len(d.behaviours) == len(set(d.behaviours)) for d in sampled)
    assert len({tuple(d.behaviours) for d in sampled}) > 100
    assert any(not set(d.behaviours) & set(FAILURE_BEHAVIOURS) for d in sampled)  # some flawless teachers


def test_profile_failures_are_likelier_for_their_profile():
    dialogues = simulate(ProceduralBackend(seed=1), discovery_plan(900, include_special=True, seed=1))
    for kind, failure in PROFILE_FAILURE.items():
        own = [failure in d.behaviours for d in dialogues if d.profile_kind == kind]
        rest = [failure in d.behaviours for d in dialogues if d.profile_kind != kind]
        assert sum(own) / len(own) > 2 * sum(rest) / len(rest) > 0, kind


def test_good_teachers_use_the_profile_appropriate_move(sampled):
    fits = {"rejects_metaphor": "line_by_line", "executive_function_gap": "structured_steps",
            "hyperfocus": "stays_on_topic", "bad_prior_teacher": "validation"}
    for kind, move in fits.items():
        own = [move in d.behaviours for d in sampled if d.profile_kind == kind]
        rest = [move in d.behaviours for d in sampled if d.profile_kind not in (kind, "neurodivergent")]
        assert sum(own) / len(own) > sum(rest) / len(rest), kind


def test_teacher_openers_are_diverse(sampled):
    openers = {" ".join(teacher_turns(d)[0].lower().split()[:6]) for d in sampled}
    assert len(openers) > 120


def test_stock_empathy_is_the_same_phrase_over_and_over():
    d = simulate(ProceduralBackend(seed=0, force_behaviours=["stock_empathy", "next_step"]),
                 [t for t in PLAN if t.target_turns >= 8][:20])
    for dialogue in d:
        turns = teacher_turns(dialogue)
        used = [p for p in STOCK_EMPATHY if p in turns[0]]
        assert len(used) == 1
        assert all(used[0] in t for t in turns)


def test_force_behaviours_validation():
    with pytest.raises(ValueError, match="unknown behaviours"):
        ProceduralBackend(force_behaviours=["socratic_question", "be_nice"])
    with pytest.raises(ValueError):
        ProceduralBackend(force_behaviours=[])
    session = ProceduralBackend().open(context_for(PLAN[0]))
    with pytest.raises(ValueError, match="role"):
        asyncio.run(session.reply("narrator", []))


@pytest.mark.parametrize("forced", [
    ["socratic_question", "checks_understanding", "next_step"],
    ["answer_reveal", "stock_empathy", "wall_of_text"],
])
def test_forced_behaviours_are_exactly_what_every_dialogue_shows(forced):
    dialogues = simulate(ProceduralBackend(seed=2, force_behaviours=forced), PLAN[:60])
    assert all(d.behaviours == forced for d in dialogues)


def test_forced_failures_show_in_the_text():
    tasks = PLAN[:60]
    for d in simulate(ProceduralBackend(force_behaviours=["metaphor"]), tasks):
        assert all(get_card(d.scenario_id).metaphor in t for t in teacher_turns(d))
    for d in simulate(ProceduralBackend(force_behaviours=["wall_of_text"]), tasks):
        assert all(len(t.split()) > 120 and "\n" not in t for t in teacher_turns(d))
    for d in simulate(ProceduralBackend(force_behaviours=["answer_reveal"]), tasks):
        assert all(get_card(d.scenario_id).answer in t for t in teacher_turns(d))
    for d in simulate(ProceduralBackend(force_behaviours=["topic_switch"]), tasks):
        assert all(re.search(r"move on|moving on|switch topics|next topic", t, re.I) for t in teacher_turns(d))
    for d in simulate(ProceduralBackend(force_behaviours=["dismissive"]), tasks):
        assert all(re.search(r"basic|memorise|overthink|easy", t, re.I) for t in teacher_turns(d))


def test_forced_good_moves_show_in_the_text():
    tasks = PLAN[:60]
    for d in simulate(ProceduralBackend(force_behaviours=["structured_steps"]), tasks):
        assert all(len(NUMBERED.findall(t)) >= 2 for t in teacher_turns(d))
    for d in simulate(ProceduralBackend(force_behaviours=["socratic_question"]), tasks):
        assert all("?" in t for t in teacher_turns(d))
    for d in simulate(ProceduralBackend(force_behaviours=["line_by_line"]), tasks):
        card = get_card(d.scenario_id)
        assert not any(card.metaphor in t or "analogy:" in t for t in teacher_turns(d))
    for d in simulate(ProceduralBackend(force_behaviours=["concise"]), tasks):
        assert all(len(t.split()) <= 30 for t in teacher_turns(d))


def test_plain_replies_are_tutor_sized(sampled):
    plain = [t for d in sampled for t in teacher_turns(d) if len(t.split()) <= 120]
    assert len(plain) > 0.8 * sum(len(teacher_turns(d)) for d in sampled)
    assert sum(len(t.split()) for t in plain) / len(plain) < 45


def _with_kind(kind: str, n: int = 30):
    return [replace(t, profile_kind=kind) for t in PLAN if get_card(t.card_id).special is None][:n]


@pytest.mark.parametrize("kind, failure, markers", [
    ("rejects_metaphor", "metaphor", r"analog|metaphor|comparison"),
    ("executive_function_gap", "wall_of_text", r"first|lost|start"),
    ("hyperfocus", "topic_switch", r"leaving|moving on|switch|stay on"),
])
def test_students_protest_their_profile_failure(kind, failure, markers):
    for d in simulate(ProceduralBackend(force_behaviours=[failure]), _with_kind(kind)):
        assert all(re.search(markers, s, re.I) for s in student_replies(d)), transcript(d)


def test_bad_prior_teacher_student_withdraws_then_opens_up_after_validation():
    ctx = context_for(_with_kind("bad_prior_teacher", 1)[0])
    session = ProceduralBackend(force_behaviours=["dismissive"]).open(ctx)
    turns: list[Turn] = []

    def step(role: str) -> str:
        turns.append(Turn(role, asyncio.run(session.reply(role, turns))))
        return turns[-1].content

    step("student"), step("teacher")
    withdrawn = step("student")
    assert len(withdrawn.split()) <= 12 and "?" not in withdrawn
    session.forced = ("validation", "next_step")
    step("teacher")
    opened = step("student")
    assert any(p in opened for p in STUDENT["opened_up"])
    assert session.behaviours == ["dismissive", "validation", "next_step"]


def test_students_progress_further_when_taught_well():
    tasks = [replace(t, target_turns=12) for t in PLAN[:80]]

    def solved_share(forced):
        backend = ProceduralBackend(seed=5, force_behaviours=forced)
        done = 0
        for task in tasks:
            session = backend.open(context_for(task))
            turns: list[Turn] = []
            for i in range(task.target_turns):
                role = ("student", "teacher")[i % 2]
                turns.append(Turn(role, asyncio.run(session.reply(role, turns))))
            done += session.solved
        return done / len(tasks)

    good = solved_share(["socratic_question", "checks_understanding", "next_step"])
    bad = solved_share(["answer_reveal", "stock_empathy", "lecture"])
    assert good > 0.6 and bad < 0.1
