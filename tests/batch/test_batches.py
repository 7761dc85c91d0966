from __future__ import annotations

import random

import pytest

from parallel_r1.batch import (
    BatchShortfallError,
    UngradedDialoguesError,
    build_batches,
    confidence_tier,
    describe,
)
from parallel_r1.config import BatchConfig, BatchSpec


def _ids(batch_set) -> dict[str, list[str]]:
    return {b.name: [d.dialogue_id for d in b.dialogues] for b in batch_set}


def test_confidence_tiers_follow_the_thresholds():
    cfg = BatchConfig(high_confidence=0.7, medium_confidence=0.5)
    assert [confidence_tier(c, cfg) for c in (0.7, 0.69, 0.5, 0.49, None)] == [
        "high", "medium", "medium", "low", "unknown"]


def test_default_batches_hold_only_eligible_dialogues(rich_pool):
    cfg = BatchConfig()
    result = build_batches(rich_pool, cfg)
    specs = {s.name: s for s in cfg.batches}
    for batch in result:
        spec = specs[batch.name]
        assert batch.dialogues, batch.name
        for d in batch.dialogues:
            assert d.score >= cfg.quality_floor
            assert spec.lengths is None or d.length_bucket in spec.lengths
            assert spec.question_types is None or d.question_type in spec.question_types
            assert spec.profile_kinds is None or d.profile_kind in spec.profile_kinds
            assert spec.confidence == "any" or confidence_tier(d.confidence, cfg) == spec.confidence


def test_every_batch_full_without_overlap_and_under_the_density_cap(rich_pool):
    cfg = BatchConfig()
    result = build_batches(rich_pool, cfg)
    assert result.shortfalls == [] and result.warnings == []
    assert all(b.size == b.target for b in result)
    ids = [i for batch in _ids(result).values() for i in batch]
    assert len(ids) == len(set(ids))
    assert all(b.mean_density <= cfg.max_stock_phrase_density for b in result)


def test_batches_are_balanced_over_their_strata(rich_pool):
    batch = build_batches(rich_pool, BatchConfig())["prior_trauma_recovery"]  # stratified by profile, scenario
    per_card = [sum(d.scenario_id == f"card-{k}" for d in batch.dialogues) for k in range(5)]
    assert max(per_card) - min(per_card) <= 1


def test_density_cap_excludes_the_densest_and_reports_the_shortfall(make):
    pool = [make(i, density=0.0) for i in range(6)] + [make(10 + i, density=0.5, score=0.95) for i in range(4)]
    cfg = BatchConfig(max_stock_phrase_density=0.1, batches=[BatchSpec(name="b", size=10)])
    batch = build_batches(pool, cfg)["b"]
    assert batch.mean_density <= 0.1
    assert batch.size == 7  # six clean ones and one dense one: 0.5 / 7 <= 0.1
    assert batch.shortfall.missing == 3 and batch.shortfall.capped == 3
    assert "3 eligible kept out by the stock-phrase cap" in batch.shortfall.message()


def test_quality_floor_and_ungraded_dialogues(make):
    cfg = BatchConfig(quality_floor=0.6, batches=[BatchSpec(name="b", size=2)])
    result = build_batches([make(0, score=0.59), make(1, score=0.6), make(2, score=0.9)], cfg)
    assert sorted(_ids(result)["b"]) == ["d00001", "d00002"]
    with pytest.raises(UngradedDialoguesError, match="parallel-r1 grade"):
        build_batches([make(0), make(1, score=None)], cfg)
    with pytest.raises(UngradedDialoguesError, match="parallel-r1 grade"):
        build_batches([make(0, density=None)], cfg)


def test_unknown_profile_kind_is_named(make):
    cfg = BatchConfig(batches=[BatchSpec(name="b", size=1, profile_kinds=["neurodivergant"])])
    with pytest.raises(ValueError, match="profile_kinds.*neurodivergant"):
        build_batches([make(0)], cfg)


def test_the_most_constrained_batch_is_filled_first(make):
    pool = [make(i, profile_kind="bad_prior_teacher", score=0.9) for i in range(5)]
    pool += [make(10 + i, score=0.7) for i in range(5)]
    cfg = BatchConfig(batches=[BatchSpec(name="any", size=5, stratify_by=["domain"]),
                               BatchSpec(name="trauma", size=5, profile_kinds=["bad_prior_teacher"])])
    result = build_batches(pool, cfg)
    assert result.allocation_order == ["trauma", "any"]
    assert result.shortfalls == []
    assert {d.profile_kind for d in result["trauma"].dialogues} == {"bad_prior_teacher"}


def test_a_batch_that_cannot_be_filled_does_not_starve_one_that_can(make):
    pool = [make(i) for i in range(5)]
    cfg = BatchConfig(batches=[BatchSpec(name="small", size=2), BatchSpec(name="big", size=6)])
    result = build_batches(pool, cfg)
    assert result.allocation_order == ["small", "big"]
    assert (result["small"].size, result["big"].size) == (2, 3)


def test_short_batch_takes_a_dialogue_another_batch_can_replace(make):
    # "long" is filled first (4 eligible for 3 slots) and takes the best two, p and q; "trauma" then has
    # only r. An augmenting path fixes it: "trauma" takes p, "long" takes the spare t instead.
    p, q = (make(i, length="long", profile_kind="bad_prior_teacher", score=0.9) for i in range(2))
    r = make(2, length="short", profile_kind="bad_prior_teacher", score=0.65)
    s, t = (make(3 + i, length="long", score=0.7) for i in range(2))
    cfg = BatchConfig(batches=[
        BatchSpec(name="trauma", size=2, profile_kinds=["bad_prior_teacher"], stratify_by=["domain"]),
        BatchSpec(name="long", size=3, lengths=["long"], stratify_by=["domain"]),
    ])
    result = build_batches([p, q, r, s, t], cfg)
    assert result.allocation_order == ["long", "trauma"]
    assert result.shortfalls == []
    ids = _ids(result)
    assert "d00002" in ids["trauma"] and not set(ids["trauma"]) & set(ids["long"])


def test_overlap_only_when_allowed(make):
    pool = [make(i) for i in range(6)]
    specs = [BatchSpec(name="a", size=4), BatchSpec(name="b", size=4)]
    apart = build_batches(pool, BatchConfig(batches=specs))
    assert not set(_ids(apart)["a"]) & set(_ids(apart)["b"])
    assert apart["b"].shortfall.used_elsewhere == 4 and apart["b"].shortfall.missing == 2
    together = build_batches(pool, BatchConfig(batches=specs, allow_overlap=True))
    assert together.shortfalls == [] and set(_ids(together)["a"]) & set(_ids(together)["b"])


def test_shortfall_names_the_binding_constraint_and_estimates_iterations(make):
    pool = [make(i, length="long", confidence=0.6) for i in range(12)]
    pool += [make(100 + i, length="short", confidence=0.9) for i in range(88)]
    spec = BatchSpec(name="long_mixed_medium", size=35, lengths=["long"], confidence="medium")
    result = build_batches(pool, BatchConfig(batches=[spec]))
    short = result["long_mixed_medium"].shortfall
    assert describe(spec, result.config) == "long & medium confidence & score >= 0.6"
    assert (short.eligible, short.missing, short.iterations) == (12, 23, 192)  # 23 / (12 / 100)
    assert "long & medium confidence & score >= 0.6: 12 eligible, 23 missing" in short.message()
    assert "~192 more discover iterations" in short.message()
    assert result["long_mixed_medium"].status == "short 23"
    assert result.warnings == [short.message()]


def test_zero_rate_says_more_discovery_will_not_help(make):
    pool = [make(i) for i in range(20)]
    spec = BatchSpec(name="focus", size=5, profile_kinds=["hyperfocus"])
    short = build_batches(pool, BatchConfig(batches=[spec]))["focus"].shortfall
    assert short.rate == 0 and short.iterations is None
    msg = short.message()
    assert "eligible rate is 0" in msg and "no discovered dialogue matches hyperfocus" in msg
    assert "--include-special" in msg
    empty = build_batches([], BatchConfig(batches=[spec]))["focus"].shortfall
    assert "run `parallel-r1 discover`" in empty.message()


def test_strict_mode_raises_listing_every_short_batch(make):
    pool = [make(i, length="long") for i in range(2)] + [make(i, length="short") for i in range(2, 5)]
    cfg = BatchConfig(strict=True, batches=[BatchSpec(name="a", size=2, lengths=["long"]),
                                            BatchSpec(name="b", size=5, lengths=["short"]),
                                            BatchSpec(name="c", size=2, question_types=["koan"])])
    with pytest.raises(BatchShortfallError) as err:
        build_batches(pool, cfg)
    text = str(err.value)
    assert "2 batch(es)" in text and "b 3/5" in text and "c 0/2" in text and "a " not in text
    assert err.value.batch_set["a"].full


def test_deterministic_given_the_seed(rich_pool):
    shuffled = rich_pool[:]
    random.Random(7).shuffle(shuffled)
    assert _ids(build_batches(rich_pool, BatchConfig(seed=1))) == _ids(build_batches(shuffled, BatchConfig(seed=1)))
