"""Every GRPO reward high where it must be high and low where it must be low, in TRL's call signature; the schedule."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from parallel_r1.config import load_config
from parallel_r1.data import StudentProfileConfig, get_card
from parallel_r1.data.parallel_format import format_block
from parallel_r1.grade import HeuristicRubricGrader
from parallel_r1.rl.rewards import (
    CLEAR_GRADE_GAP,
    MIN_PATH_WORDS,
    CombinedReward,
    ConsistencyReward,
    DiversityReward,
    FormatReward,
    RewardSchedule,
    RubricReward,
    build_rewards,
    completion_text,
    rewards_from_config,
    sided_agreement,
)

CARD = "recursion-factorial"
PROMPT = [{"role": "system", "content": "You are a tutor."},
          {"role": "user", "content": "I don't get how factorial(n) can call itself. Doesn't that just loop forever?"}]
GOOD = ("Let's trace it together. Write down factorial(3) = 3 * factorial(2). What do you think factorial(2) "
        "expands to?")
GOOD_TOO = "Try this: find the call that does not call itself. Which value of n would that be, and why?"
BAD = ("I completely understand your frustration. It stops because factorial(0) returns 1 without calling itself, "
       "then the calls unwind. It is like a stack of plates.")


def call(reward, completions, **extra):
    n = len(completions)
    return reward([PROMPT] * n, completions, profile_kind=["standard"] * n, scenario_id=[CARD] * n, **extra)


def best_of(paths):
    grades = [HeuristicRubricGrader().grade_turn(PROMPT[1:], p, StudentProfileConfig(), get_card(CARD)).score
              for p in paths]
    return paths[grades.index(max(grades))]


def test_every_reward_has_a_distinct_loggable_name():
    rewards = build_rewards({"rubric": 1.0, "diversity": 1.0, "consistency": 1.0, "format": 1.0})
    names = [r.__name__ for r in rewards.components.values()]
    assert names == ["rubric", "path_diversity", "verification_consistency", "format"]
    assert rewards.__name__ == "parallel_r1_reward"


def test_completions_may_be_strings_or_chat_messages():
    text = format_block([GOOD, GOOD_TOO], GOOD)
    assert completion_text([{"role": "assistant", "content": text}]) == text
    for reward in (RubricReward(), DiversityReward(), ConsistencyReward(), FormatReward()):
        assert call(reward, [text]) == call(reward, [[{"role": "assistant", "content": text}]])
    assert RubricReward()([PROMPT[1]["content"]], [GOOD]) == RubricReward()([PROMPT[1:]], [GOOD])


def test_rubric_grades_what_the_student_sees():
    good, bad, hidden_bad = call(RubricReward(), [GOOD, BAD, format_block([BAD, BAD + " Again."], GOOD)])
    assert good > 0.7 and bad < 0.4
    assert hidden_bad == pytest.approx(good)  # the paths are not shown: the summary is graded
    assert call(RubricReward(), [format_block([GOOD, GOOD_TOO], BAD)])[0] == pytest.approx(bad)
    assert call(RubricReward(), ["<Parallel><Path>only hidden text"])[0] == 0.0


def test_rubric_uses_the_profile_and_card_columns():
    reply = "It's like a stack of plates you add to and take off. What do you think happens at n = 0?"
    standard, literal = RubricReward()([PROMPT] * 2, [reply] * 2, profile_kind=["standard", "rejects_metaphor"],
                                       scenario_id=[CARD] * 2)
    assert literal < standard
    with pytest.raises(KeyError):
        RubricReward()([PROMPT], [GOOD], scenario_id=["no-such-card"])


def test_diversity_is_high_for_different_paths_and_low_for_copies_or_no_block():
    different, copies, near_copies, plain = call(DiversityReward(), [
        format_block([GOOD, GOOD_TOO], GOOD), format_block([GOOD, GOOD], GOOD),
        format_block([GOOD, GOOD + " Go on."], GOOD), GOOD])
    assert different > 0.9 and copies == 0.0 and near_copies < 0.3 and plain == 0.0


# Blocks whose paths have no substance: each scored the maximum 1.0 when any two paths shared no word n-gram.
HOLLOW = {
    "empty": ["", ""],
    "blank": ["   ", "\n"],
    "one empty beside a real path": [GOOD, ""],
    "wordless and identical": ["?!", "?!"],
    "wordless and different": ["...", "!!!"],
    "numbers only": ["42", "7"],
    "one word each": ["Yes.", "No."],
    "near-empty": ["Try again.", "Think harder."],
}


def raw_block(paths: list[str], summary: str) -> str:
    """A block as a model may write it (`format_block` refuses empty paths)."""
    return "<Parallel>" + "".join(f"<Path>{p}</Path>" for p in paths) + f"</Parallel><Summary>{summary}</Summary>"


@pytest.mark.parametrize("paths", HOLLOW.values(), ids=HOLLOW.keys())
def test_diversity_is_zero_for_empty_wordless_or_near_empty_paths(paths):
    assert call(DiversityReward(), [raw_block(paths, GOOD)]) == [0.0]


def test_a_near_empty_path_adds_no_diversity_to_real_ones():
    real, padded = call(DiversityReward(), [format_block([GOOD, GOOD_TOO], GOOD),
                                            format_block([GOOD, GOOD_TOO, "Ok."], GOOD)])
    assert real > 0.9 and padded == pytest.approx(real / 3)  # only one of its three pairs counts
    assert MIN_PATH_WORDS > len("Think harder.".split())


def test_consistency_is_high_when_the_summary_is_the_best_path_and_low_otherwise():
    best = best_of([GOOD, GOOD_TOO])
    agrees, disagrees, no_block = call(ConsistencyReward(), [
        format_block([GOOD, GOOD_TOO], best), format_block([GOOD, GOOD_TOO], "Recursion is a loop, end of story."),
        GOOD])
    assert agrees == pytest.approx(1.0) and disagrees < 0.2 and no_block == 0.0


def test_the_summary_earns_the_standing_of_the_path_it_follows():
    paths = [GOOD, GOOD_TOO, BAD]
    assert sided_agreement(GOOD, paths, [0.9, 0.5, 0.1]) == pytest.approx(1.0)
    assert sided_agreement(GOOD_TOO, paths, [0.9, 0.5, 0.1]) == pytest.approx(0.5)  # halfway down the spread
    assert sided_agreement(BAD, paths, [0.9, 0.5, 0.1]) == pytest.approx(0.0)
    # a gap below CLEAR_GRADE_GAP is no clear preference: following the runner-up costs only part of the reward
    assert sided_agreement(GOOD_TOO, paths[:2], [0.80, 0.78]) == pytest.approx(1 - 0.02 / CLEAR_GRADE_GAP)
    assert 0.0 < sided_agreement(GOOD + " Then count the calls.", paths, [0.9, 0.5, 0.1]) < 1.0
    with pytest.raises(ValueError):
        ConsistencyReward(critic_weight=1.5)


def test_format_gives_full_partial_and_no_credit():
    valid = format_block(["a", "b"], "c")
    half_broken = valid + "<Parallel><Path>a</Path></Parallel><Summary>c</Summary>"
    scores = call(FormatReward(partial_credit=0.5), [valid, half_broken, "<Parallel><Path>a", "plain", "</Path>"])
    assert scores == [1.0, 0.25, 0.0, 0.0, 0.0]
    assert call(FormatReward(), [valid * 4])[0] < 1.0  # more blocks than allowed
    assert call(FormatReward(plain_score=0.2), ["plain"]) == [0.2]


def test_alternating_schedule_is_task_only_eight_of_ten_steps():
    schedule = RewardSchedule({"rubric": 1.0, "format": 0.5}, kind="alternating", period=10, bonus_steps=2)
    bonus = [s for s in range(30) if schedule.is_bonus_step(s)]
    assert bonus == [8, 9, 18, 19, 28, 29]
    assert schedule.weights_at(0) == {"rubric": 1.0, "format": 0.0}
    assert schedule.weights_at(9) == {"rubric": 1.0, "format": 0.5}
    constant = RewardSchedule({"rubric": 1.0, "format": 0.5})
    assert all(constant.weights_at(s) == {"rubric": 1.0, "format": 0.5} for s in range(12))


@pytest.mark.parametrize("kwargs", [dict(weights={"accuracy": 1.0}), dict(weights={}, kind="sometimes"),
                                    dict(weights={}, kind="alternating", bonus_steps=0)])
def test_bad_schedules_are_rejected(kwargs):
    with pytest.raises(ValueError):
        RewardSchedule(**kwargs)


def test_combined_reward_follows_the_schedule_by_trainer_step_and_logs_components():
    combined = build_rewards({"rubric": 1.0, "format": 1.0}, kind="alternating", period=10, bonus_steps=2)
    text = format_block([GOOD, GOOD_TOO], GOOD)
    rubric = call(RubricReward(), [text])[0]
    logged: dict[str, float] = {}
    task_step = call(combined, [text], trainer_state=SimpleNamespace(global_step=3),
                     log_metric=lambda k, v: logged.__setitem__(k, v))
    bonus_step = call(combined, [text], step=8)
    assert task_step == [pytest.approx(rubric)] and bonus_step == [pytest.approx(rubric + 1.0)]
    assert set(logged) == {"reward/rubric", "reward/path_diversity", "reward/verification_consistency",
                           "reward/format"}


def test_combined_reward_needs_every_weighted_component():
    with pytest.raises(ValueError):
        CombinedReward({"rubric": RubricReward()}, RewardSchedule({"rubric": 1.0, "format": 1.0}))


def test_rewards_from_the_rl_config_section():
    cfg = load_config(None, ["rl.schedule.kind=alternating", "rl.rewards.format=2.0", "rl.format_partial_credit=0.3"])
    combined = rewards_from_config(cfg.rl, max_blocks=cfg.parallel.max_blocks)
    assert combined.schedule.weights_at(0)["format"] == 0.0 and combined.schedule.weights_at(9)["format"] == 2.0
    assert combined.components["format"].partial_credit == 0.3
    with pytest.raises(ValueError):
        load_config(None, ["rl.schedule.bonus_steps=11"])
