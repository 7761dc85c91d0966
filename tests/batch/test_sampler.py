from __future__ import annotations

import random
from collections import Counter

import pytest

from parallel_r1.batch import StratifiedSampler, mean_density, teacher_openers
from parallel_r1.config import BatchSpec


def test_round_robin_balances_strata_and_takes_best_scores_first(make):
    kinds = ("standard", "hyperfocus", "bad_prior_teacher")
    pool = [make(i, profile_kind=kinds[i % 3], score=0.6 + i / 1000) for i in range(60)]
    picks = StratifiedSampler(BatchSpec(name="b", size=12, stratify_by=["profile_kind"])).draw(pool)
    assert Counter(d.profile_kind for d in picks) == {k: 4 for k in kinds}
    for kind in kinds:
        scores = sorted((d.score for d in pool if d.profile_kind == kind), reverse=True)[:4]
        assert sorted((d.score for d in picks if d.profile_kind == kind), reverse=True) == scores


def test_nested_columns_balance_each_margin(make):
    pool = [make(i, profile_kind=("standard", "hyperfocus")[i % 2], scenario_id=f"card-{i % 3}",
                 score=0.6 + (i * 7 % 11) / 100) for i in range(60)]
    picks = StratifiedSampler(BatchSpec(name="b", size=12)).draw(pool)  # profile_kind, scenario_id
    assert set(Counter(d.profile_kind for d in picks).values()) == {6}
    assert set(Counter(d.scenario_id for d in picks).values()) == {4}


def test_scarce_stratum_is_exhausted_and_the_rest_spread_evenly(make):
    pool = [make(0, profile_kind="hyperfocus")] + [
        make(i, profile_kind=("standard", "neurodivergent")[i % 2]) for i in range(1, 30)]
    picks = StratifiedSampler(BatchSpec(name="b", size=9, stratify_by=["profile_kind"])).draw(pool)
    assert Counter(d.profile_kind for d in picks) == {"hyperfocus": 1, "standard": 4, "neurodivergent": 4}


def test_draw_returns_fewer_when_candidates_run_out(make):
    pool = [make(i) for i in range(3)]
    assert len(StratifiedSampler(BatchSpec(name="b", size=10)).draw(pool)) == 3


def test_draw_is_deterministic_and_independent_of_input_order(make):
    pool = [make(i, profile_kind=("standard", "hyperfocus")[i % 2], score=0.8) for i in range(40)]
    spec = BatchSpec(name="b", size=10)
    first = [d.dialogue_id for d in StratifiedSampler(spec, seed=3).draw(pool)]
    shuffled = pool[:]
    random.Random(1).shuffle(shuffled)
    assert [d.dialogue_id for d in StratifiedSampler(spec, seed=3).draw(shuffled)] == first
    others = {tuple(d.dialogue_id for d in StratifiedSampler(spec, seed=s).draw(pool)) for s in range(5)}
    assert len(others) > 1  # equal scores: the seed breaks ties


def test_diverse_patterns_avoid_common_teacher_openers(make):
    stock = [make(i, score=0.95, openers=["I completely understand your frustration"]) for i in range(10)]
    varied = [make(100 + i, score=0.7) for i in range(10)]
    plain = StratifiedSampler(BatchSpec(name="b", size=5, stratify_by=["domain"])).draw(stock + varied)
    diverse = StratifiedSampler(BatchSpec(name="b", size=5, stratify_by=["domain"], diverse_patterns=True))
    picks = diverse.draw(stock + varied)
    assert all(d in stock for d in plain)
    assert picks[0] in stock and sum(d in stock for d in picks) == 1  # the best once, then distinct openers


def test_selected_counts_toward_balance_and_is_not_repicked(make):
    pool = [make(i, profile_kind=("standard", "hyperfocus")[i % 2]) for i in range(20)]
    sampler = StratifiedSampler(BatchSpec(name="b", size=4, stratify_by=["profile_kind"]))
    already = [d for d in pool if d.profile_kind == "standard"][:2]
    picks = sampler.draw(pool, selected=already)
    assert [d.profile_kind for d in picks] == ["hyperfocus", "hyperfocus"]
    assert not {d.dialogue_id for d in picks} & {d.dialogue_id for d in already}


def test_cap_density_replaces_densest_with_lighter_spares(make):
    picks = [make(i, density=0.5 if i < 2 else 0.0) for i in range(6)]
    spares = [make(10 + i, density=0.01, score=0.7) for i in range(3)]
    kept, removed = StratifiedSampler(BatchSpec(name="b", size=6)).cap_density(picks, spares, cap=0.05)
    assert len(kept) == 6 and {d.dialogue_id for d in removed} == {"d00000", "d00001"}
    assert mean_density(kept) <= 0.05


def test_cap_density_drops_when_no_spare_is_lighter(make):
    picks = [make(i, density=0.5 if i < 2 else 0.0) for i in range(6)]
    kept, removed = StratifiedSampler(BatchSpec(name="b", size=6)).cap_density(picks, [], cap=0.05)
    assert len(kept) == 4 and len(removed) == 2 and mean_density(kept) == 0.0


def test_unknown_stratify_column_is_named():
    with pytest.raises(ValueError, match="stratify_by.*'colour'"):
        StratifiedSampler(BatchSpec(name="b", size=1, stratify_by=["colour"]))


def test_rank_by_prefers_the_niche_criterion_over_a_slightly_higher_score(make):
    pool = [make(i, profile_kind="bad_prior_teacher", score=0.9 - i / 100) for i in range(10)]
    for i, d in enumerate(pool):
        d.criteria = {"validation": i / 10}
    by_score = StratifiedSampler(BatchSpec(name="b", size=3)).draw(pool)
    by_niche = StratifiedSampler(BatchSpec(name="b", size=3, rank_by=["validation"])).draw(pool)
    assert [d.dialogue_id for d in by_score] == ["d00000", "d00001", "d00002"]
    assert [d.dialogue_id for d in by_niche] == ["d00009", "d00008", "d00007"]


def test_rank_by_uses_only_the_criteria_a_dialogue_is_graded_on(make):
    graded, ungraded = make(1, score=0.7), make(2, score=0.8)
    graded.criteria, ungraded.criteria = {"structured_steps": 1.0}, {"socratic": 0.5}
    sampler = StratifiedSampler(BatchSpec(name="b", size=2, rank_by=["structured_steps", "stays_on_topic"]))
    assert sampler.rank_value(graded) == pytest.approx(0.85)
    assert sampler.rank_value(ungraded) == pytest.approx(0.8)
    assert [d.dialogue_id for d in sampler.draw([ungraded, graded])] == ["d00001", "d00002"]


def test_unknown_rank_by_criterion_is_named():
    with pytest.raises(ValueError, match="rank_by.*'empathy'"):
        StratifiedSampler(BatchSpec(name="b", size=1, rank_by=["empathy"]))


def test_teacher_openers_are_first_words_of_teacher_turns(make):
    d = make(1, openers=["Great QUESTION! Let's", "So, what"])
    assert teacher_openers(d) == ["great question let's", "so what and"]
