"""The curriculum: promotion over the tiers, explore / verify phases, each stop criterion with its reason, resume."""

from __future__ import annotations

import pytest

from parallel_r1.config import load_config
from parallel_r1.rl.curriculum import (
    EXPLORE,
    LOW_VARIANCE,
    PLATEAU,
    VERIFY,
    Curriculum,
    CurriculumSettings,
    CurriculumState,
    collapsed,
    plateaued,
    tier_cards,
)

SPREAD = [0.0, 1.0]  # two samples per step: variance 0.25, far above the collapse threshold


def settings(**kw) -> CurriculumSettings:
    base = dict(promote_threshold=0.7, promote_window=4, explore_steps=None, verify_from_reward=None,
                eval_window=2, patience=3, min_variance=0.02, min_improvement=0.01)
    return CurriculumSettings(**{**base, **kw})


def feed(cur: Curriculum, means: list[float], start: int = 0):
    """One step per mean, each with a high-variance pair of samples around it."""
    return [cur.update(start + i, [m - 0.3, m + 0.3]) for i, m in enumerate(means)]


def test_tiers_come_from_the_scenario_cards():
    for tier in ("easy", "medium", "hard"):
        assert tier_cards(tier) and all(c.difficulty == tier for c in tier_cards(tier))


def test_promotes_only_when_the_windowed_mean_passes_the_threshold():
    cur = Curriculum(settings(eval_window=100))
    assert cur.tier == "easy"
    feed(cur, [0.9, 0.9, 0.9])  # window not full yet
    assert cur.tier == "easy"
    outcomes = feed(cur, [0.9], start=3)
    assert outcomes[-1].promoted_to == "medium" and cur.tier == "medium"
    assert cur.state.promotions == [{"step": 3, "from": "easy", "to": "medium", "mean": pytest.approx(0.9)}]
    feed(cur, [0.5] * 8, start=4)  # below the threshold: stays
    assert cur.tier == "medium"
    feed(cur, [0.8] * 4, start=12)
    assert cur.tier == "hard"
    feed(cur, [0.95] * 4, start=16)  # nothing above hard
    assert cur.tier == "hard"


def test_explore_then_verify_by_steps_or_by_reward_with_their_own_settings():
    cur = Curriculum(settings(explore_steps=3, eval_window=100))
    assert cur.phase.name == EXPLORE and cur.phase.temperature > cur.settings.verify.temperature
    assert cur.phase.branches > cur.settings.verify.branches
    outcomes = feed(cur, [0.1, 0.1, 0.1])
    assert [o.phase_changed_to for o in outcomes] == [None, None, VERIFY] and cur.phase.name == VERIFY
    by_reward = Curriculum(settings(verify_from_reward=0.5, promote_threshold=0.9, eval_window=100))
    feed(by_reward, [0.6] * 3)
    assert by_reward.phase.name == EXPLORE  # window not full
    feed(by_reward, [0.6], start=3)
    assert by_reward.phase.name == VERIFY
    feed(by_reward, [0.95] * 4, start=4)
    assert by_reward.tier == "medium" and by_reward.phase.name == EXPLORE  # a new tier explores again


def test_stops_on_a_plateau_with_the_reason():
    cur = Curriculum(settings(promote_threshold=2.0))
    feed(cur, [0.2, 0.2, 0.4, 0.4])  # windows 0.2, 0.4: improving
    assert cur.stopped is None
    outcomes = feed(cur, [0.401] * 6, start=4)  # three windows within 1 % of 0.4
    assert cur.stopped is not None and cur.stopped.code == PLATEAU and cur.stopped.step == 9
    assert outcomes[-1].stop == cur.stopped and "1%" in cur.stopped.message and "easy" in cur.stopped.message
    assert feed(cur, [0.9] * 4, start=10) == [outcomes[0]] * 4 and cur.state.last_step == 9  # stopped: ignored


def test_a_real_improvement_keeps_the_run_going():
    cur = Curriculum(settings(promote_threshold=2.0))
    feed(cur, [0.2, 0.2, 0.4, 0.4, 0.401, 0.401, 0.401, 0.401, 0.5, 0.5])
    assert cur.stopped is None


def test_stops_when_the_reward_variance_collapses():
    cur = Curriculum(settings(promote_threshold=2.0))
    cur.update(0, [0.5, 0.5, 0.52])
    outcome = cur.update(1, [0.51, 0.5])
    assert outcome.stop is not None and outcome.stop.code == LOW_VARIANCE and "0.02" in outcome.stop.message


def test_stop_criteria_thresholds_are_configurable():
    assert plateaued([0.4, 0.401, 0.401, 0.401])
    assert not plateaued([0.4, 0.401, 0.401, 0.401], min_improvement=0.001)
    assert not plateaued([0.4, 0.401, 0.401, 0.401], patience=4)
    assert not plateaued([0.4, 0.401, 0.401, 0.5])
    assert collapsed([0.5, 0.6]) and not collapsed([0.5, 0.6], min_variance=0.001)
    assert not collapsed([0.5])


def test_state_round_trips_through_json_and_resume_does_not_replay():
    cur = Curriculum(settings(explore_steps=2, promote_threshold=0.7))
    feed(cur, [0.9] * 5)
    state = CurriculumState.from_json(cur.state.to_json())
    assert state == cur.state and state.tier_index == 1
    resumed = Curriculum(cur.settings, state)
    replay = feed(resumed, [0.0] * 5)  # steps 0..4 again, e.g. a restarted worker re-sending them
    assert all(o.promoted_to is None and o.stop is None for o in replay) and resumed.state == state
    feed(resumed, [0.9] * 4, start=5)
    assert resumed.tier == "hard"


def test_a_stopped_state_round_trips_with_its_reason():
    cur = Curriculum(settings(promote_threshold=2.0))
    cur.update(0, [0.5, 0.5])
    cur.update(1, [0.5, 0.5])
    restored = CurriculumState.from_json(cur.state.to_json())
    assert restored.stopped == cur.stopped and restored.stopped.code == LOW_VARIANCE


@pytest.mark.parametrize("kw", [dict(tiers=()), dict(tiers=("easy", "expert")), dict(eval_window=0)])
def test_bad_settings_are_rejected(kw):
    with pytest.raises(ValueError):
        settings(**kw)


def test_a_state_beyond_the_configured_tiers_is_rejected():
    with pytest.raises(ValueError):
        Curriculum(settings(tiers=("easy",)), CurriculumState(tier_index=2))


def test_curriculum_from_the_rl_config_section():
    cfg = load_config(None, ["rl.curriculum.tiers=[medium, hard]", "rl.stop.min_variance=0.05",
                             "rl.explore.temperature=1.2", "rl.verify.branches=3"])
    cur = Curriculum.from_config(cfg.rl)
    assert cur.tier == "medium" and cur.settings.min_variance == 0.05 and cur.settings.patience == 3
    assert cur.phase.temperature == 1.2 and cur.settings.verify.branches == 3
