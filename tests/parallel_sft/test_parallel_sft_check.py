"""The validation before RL (`parallel-sft`): an uplift carried by format adherence alone, while the rubric of what the
student sees falls, fails; both checks and the reason land in the eval.json record; the rubric check is paired per
held-out prefix and honest about noise."""

from __future__ import annotations

import pytest

from parallel_r1.compare.parallel_replies import ModelEval, ParallelEvaluation
from parallel_r1.compare.replies import Reply
from parallel_r1.config import load_config
from parallel_r1.data.parallel_format import format_block
from parallel_r1.parallel_sft.check import SFT, START, check_uplift, evaluation_record, heldout_items

QUESTION = "What do you notice about the first step? Try it on your own and tell me what you get."
NEXT_STEP = "Which part would you check first? Walk me through your thinking, one step at a time."
TELLING = "The answer is simply what I said before. Great job, let's move on to the next topic now."


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory) -> ParallelEvaluation:
    cfg = load_config(overrides={"parallel.sft.eval_prompts_per_slice": 2, "parallel.sft.samples_per_prompt": 2})
    items, _ = heldout_items(cfg, set())
    return ParallelEvaluation(cfg, items, tmp_path_factory.mktemp("replies"))


def replies(evaluation: ParallelEvaluation, name: str, texts: tuple[str, str]) -> list[Reply]:
    return [Reply(name, item.item_id, k, text, 40, "stop") for item in evaluation.items for k, text in enumerate(texts)]


def test_a_format_only_uplift_while_the_rubric_falls_fails_and_eval_json_says_why(evaluation):
    start = evaluation.score(START, replies(evaluation, START, (QUESTION, NEXT_STEP)))
    # the SFT'd model writes the format every time, its paths are fine, but what the student sees is worse
    sft = evaluation.score(SFT, replies(evaluation, SFT, (format_block([QUESTION, NEXT_STEP], TELLING),) * 2))
    assert (start.format_adherence, sft.format_adherence) == (0.0, 1.0) and sft.rubric < start.rubric
    assert set(sft.item_rubric) == {i.item_id for i in evaluation.items}

    check = check_uplift(start, sft, min_uplift=0.05)
    assert check.uplift > 0.05 and check.uplift_passed  # the old verdict: ready for RL
    assert not check.passed and not check.rubric.passed
    assert check.rubric.prefixes == len(evaluation.items) and check.rubric.ci_high < 0
    assert "the rubric score may have fallen" in check.reason and "parallel.sft.max_rubric_drop" in check.reason
    assert "not ready for `parallel-r1 rl`" in check.message

    record = evaluation_record({START: start, SFT: sft}, check, evaluation.meta())
    assert record["passed"] is False and record["reason"] == check.reason
    assert record["checks"]["uplift"] == {"passed": True, "before": start.score, "after": sft.score,
                                          "uplift": check.uplift, "min_uplift": 0.05}
    assert record["checks"]["rubric"]["passed"] is False
    assert record["checks"]["rubric"]["delta"] == pytest.approx(sft.rubric - start.rubric)


def test_an_uplift_with_a_rubric_that_holds_passes(evaluation):
    start = evaluation.score(START, replies(evaluation, START, (TELLING, TELLING)))
    sft = evaluation.score(SFT, replies(evaluation, SFT, (format_block([QUESTION, TELLING], QUESTION),
                                                          format_block([NEXT_STEP, TELLING], NEXT_STEP))))
    check = check_uplift(start, sft, min_uplift=0.05)
    assert check.passed and check.reason is None and check.rubric.ci_low > 0
    assert "the rubric does not fall: ready for `parallel-r1 rl`" in check.message
    tolerant = check_uplift(start, sft, min_uplift=0.05, max_rubric_drop=0.02)
    assert "the rubric does not fall by more than 0.020 (parallel.sft.max_rubric_drop): ready for" in tolerant.message


def model(rubric: dict[str, float], adherence: float) -> ModelEval:
    mean = sum(rubric.values()) / len(rubric) if rubric else 0.0
    return ModelEval("m", len(rubric), adherence, mean, 0.5 * adherence + 0.5 * mean, 0.0, 0.0, {},
                     item_rubric=rubric)


def test_a_rubric_change_within_noise_is_not_shown_to_hold_unless_a_drop_is_tolerated():
    start = model({f"p{i}": 0.5 for i in range(8)}, 0.0)
    noisy = model({f"p{i}": 0.5 + (0.1 if i % 2 else -0.1) for i in range(8)}, 1.0)
    strict = check_uplift(start, noisy, 0.05)
    assert strict.uplift_passed and strict.rubric.ci_low < 0 < strict.rubric.ci_high and not strict.passed
    assert check_uplift(start, noisy, 0.05, max_rubric_drop=0.1).passed
    both = check_uplift(start, model({}, 0.0), 0.05)
    assert not both.passed and both.rubric.prefixes == 0 and "does not reach the required uplift" in both.reason
    assert "no held-out prefix to compare" in both.reason
