"""The Parallel-R1 dataset builder on real procedural dialogues: threshold, distinct paths, summary, determinism."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
from itertools import combinations

import pytest

from parallel_r1.config import load_config
from parallel_r1.data import Turn, discovery_plan
from parallel_r1.data.parallel_format import overlap, parse_reply
from parallel_r1.discover.procedural import ProceduralBackend
from parallel_r1.discover.simulator import simulate_dialogue
from parallel_r1.errors import UserFacingError
from parallel_r1.grade import grade_dialogues
from parallel_r1.parallel_sft.dataset import ORIGINAL, ParallelDatasetBuilder, TooFewDialoguesError

THRESHOLD = 0.7


@pytest.fixture(scope="module")
def dialogues():
    """60 graded procedural dialogues (discover seed 0); about a quarter score >= THRESHOLD."""
    async def simulate():
        backend = ProceduralBackend(seed=0)
        return [await simulate_dialogue(backend, task) for task in discovery_plan(60, include_special=True, seed=3)]
    return grade_dialogues(asyncio.run(simulate()))


def builder(**kw) -> ParallelDatasetBuilder:
    return ParallelDatasetBuilder(**{"threshold": THRESHOLD, "min_dialogues": 5, **kw})


@pytest.fixture(scope="module")
def dataset(dialogues):
    return builder().build(dialogues)


def test_only_dialogues_at_or_above_the_threshold_are_used(dialogues, dataset):
    above = {d.dialogue_id for d in dialogues if d.score >= THRESHOLD}
    assert 5 <= dataset.eligible_dialogues == len(above) < len(dialogues)
    assert {r.dialogue_id for r in dataset.records} <= above
    assert len(dataset.records) + len(dataset.skipped) == len(above)  # one teacher turn each, none lost


def test_paths_are_distinct_moves_at_the_same_student_turn(dialogues, dataset):
    by_id = {d.dialogue_id: d for d in dialogues}
    for r in dataset.records:
        d = by_id[r.dialogue_id]
        assert d.turns[r.turn_index].role == "teacher"
        assert 2 <= len(r.paths) <= 3 and len(r.path_moves) == len(r.path_grades) == len(r.paths)
        assert len({tuple(m) for m in r.path_moves}) == len(r.paths)
        assert all(overlap(a, b) < 0.5 for a, b in combinations(r.paths, 2))
        assert all(g >= 0.6 for g in r.path_grades)
        assert r.path_context == [[] for _ in r.paths]
    assert any(ORIGINAL in m for r in dataset.records for m in r.path_moves)


def test_target_is_valid_and_the_student_sees_the_summary(dialogues, dataset):
    by_id = {d.dialogue_id: d for d in dialogues}
    for r in dataset.records:
        parsed = parse_reply(r.target)
        assert parsed.uses_parallel and parsed.blocks[0].paths == r.paths
        assert parsed.student_view() == r.summary.strip()
        system, *history, last = r.messages
        assert system["role"] == "system" and "<Parallel>" in system["content"]
        assert history == by_id[r.dialogue_id].messages()[:r.turn_index]
        assert history[-1]["role"] == "user" and last == {"role": "assistant", "content": r.target}


def test_choose_mode_picks_the_best_graded_path(dataset):
    for r in dataset.records:
        assert r.summary_mode == "choose"
        assert r.summary == r.paths[r.chosen_path]
        assert r.summary_grade == max(r.path_grades) == r.path_grades[r.chosen_path]


def test_the_best_path_is_not_always_first(dataset):
    assert len({r.chosen_path for r in dataset.records}) > 1


def test_merge_mode_only_keeps_merges_that_grade_at_least_as_well(dialogues):
    records = builder(summary_mode="merge").build(dialogues).records
    merged = [r for r in records if r.summary_mode == "merge"]
    assert merged
    for r in merged:
        assert r.summary.startswith(r.paths[r.chosen_path].rstrip()) and r.summary != r.paths[r.chosen_path]
        assert r.summary_grade >= r.path_grades[r.chosen_path]


def test_deterministic_in_the_seed(dialogues, dataset):
    again = builder().build(dialogues)
    assert [r.to_dict() for r in again.records] == [r.to_dict() for r in dataset.records]
    other = builder(seed=1, turns_per_dialogue=2).build(dialogues)
    assert [r.to_dict() for r in other.records] != [r.to_dict() for r in dataset.records]


def test_too_few_dialogues_says_how_many_and_which_threshold_would_do(dialogues):
    with pytest.raises(TooFewDialoguesError) as err:
        builder(threshold=0.95, min_dialogues=10).build(dialogues)
    message = str(err.value)
    assert isinstance(err.value, UserFacingError)
    assert "of 60 dialogues score >= 0.95" in message and "at least 10" in message
    assert ">= 0.85:" in message and "a threshold of 0." in message and "would give 10" in message
    scores = sorted((d.score for d in dialogues), reverse=True)
    assert f"a threshold of {scores[9]:.3f} would give 10" in message


def test_ungraded_dialogues_are_named_in_the_error(dialogues):
    ungraded = [dataclasses.replace(d, score=None) for d in dialogues[:3]]
    with pytest.raises(TooFewDialoguesError, match="3 dialogues are ungraded"):
        builder().build(ungraded)


def test_a_dialogue_the_backend_cannot_replay_is_reported_not_dropped(dialogues):
    eligible = [d for d in dialogues if d.score >= THRESHOLD]
    edited = dataclasses.replace(eligible[0], turns=[Turn("student", "something else entirely"),
                                                     *eligible[0].turns[1:]])
    result = builder(min_dialogues=1, turns_per_dialogue=5).build([edited, eligible[1]])
    assert {s["reason"] for s in result.skipped if s["dialogue_id"] == edited.dialogue_id} == {"replay_mismatch"}
    assert all(r.dialogue_id == eligible[1].dialogue_id for r in result.records)


def test_records_write_as_jsonl(tmp_path, dataset):
    path = dataset.write_jsonl(tmp_path / "parallel" / "sft.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows == [r.to_dict() for r in dataset.records]


def test_builder_from_the_parallel_config_section(dialogues):
    cfg = load_config(None, [f"parallel.dataset_threshold={THRESHOLD}", "parallel.min_dialogues=5",
                             "parallel.branches=2"]).parallel
    records = ParallelDatasetBuilder.from_config(cfg).build(dialogues).records
    assert records and all(len(r.paths) == 2 for r in records)
    with pytest.raises(TooFewDialoguesError):
        ParallelDatasetBuilder.from_config(load_config(None).parallel).build(dialogues)


def test_bad_settings_are_rejected():
    for kw in (dict(branches=1), dict(summary_mode="vote"), dict(moves=["lecture"])):
        with pytest.raises(ValueError):
            ParallelDatasetBuilder(**kw)


def test_curate_modules_import_without_ray_or_torch():
    code = ("import sys, parallel_r1.parallel_sft.dataset, parallel_r1.rl.rewards, parallel_r1.rl.curriculum;"
            "print(sorted(m for m in ('ray', 'torch', 'vllm', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
