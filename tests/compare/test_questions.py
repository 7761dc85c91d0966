"""The open questions of compare's report, answered from synthetic graded replies with known effects."""

from __future__ import annotations

import random

from parallel_r1.compare.questions import LENGTH, SIZE, TRANSFER, PreviousRound, open_questions, render_answers
from parallel_r1.compare.scoring import ScoredReply
from parallel_r1.compare.stats import compare_cells
from parallel_r1.config import BatchSpec, EvalConfig
from parallel_r1.config.eval import EvalSliceSpec

SLICES = {"short_dialogues": ("short", "standard"), "long_dialogues": ("long", "standard"),
          "validation_heavy": ("medium", "bad_prior_teacher"), "general": ("medium", "standard")}
CFG = EvalConfig(slices=[EvalSliceSpec(name="short_dialogues", lengths=["short"]),
                         EvalSliceSpec(name="long_dialogues", lengths=["long"]),
                         EvalSliceSpec(name="validation_heavy", traits=["bad_prior_teacher"]),
                         EvalSliceSpec(name="general", profile_kinds=["standard"])],
                 niches={"trauma": ["validation_heavy"], "shorty": ["short_dialogues"]}, bootstrap_samples=500)
BATCHES = [BatchSpec(name="trauma", size=40, profile_kinds=["bad_prior_teacher"]),
           BatchSpec(name="shorty", size=40, lengths=["short"], stratify_by=["length_bucket", "question_type"])]


def rows_for(means: dict[str, dict[str, float]], n: int = 40, seed: int = 0) -> list[ScoredReply]:
    """Replies scoring `means[model][slice]` plus a per-prefix offset shared by every model, and noise."""
    rng = random.Random(seed)
    out = []
    for s, (_, kind) in SLICES.items():
        for i in range(n):
            offset = rng.uniform(-0.1, 0.1)
            for model, by_slice in means.items():
                out.append(ScoredReply(
                    model=model, item_id=f"{s}-{i}", sample=0, slices=[s], profile_kind=kind, scenario_id="x",
                    question_type="original", score=by_slice.get(s, 0.5) + offset + rng.gauss(0, 0.03), criteria={},
                    stock_phrases=0, dismissive=False, answer_dump=False, completion_tokens=10, reply="r"))
    return out


def answers(means, **kw):
    rows = rows_for(means)
    models = list(means)
    return {a.question: a for a in
            open_questions(rows, compare_cells(rows, models, list(SLICES), samples=500), models, CFG, BATCHES, **kw)}


def test_a_profile_specialist_that_hurts_standard_students_is_reported_as_such():
    got = answers({"base": {}, "trauma": {"validation_heavy": 0.7, "general": 0.4}, "shorty": {}})
    transfer = got[TRANSFER]
    assert transfer.noise == "significant" and "trauma -0.0" in transfer.answer and "(hurts)" in transfer.answer
    same = answers({"base": {}, "trauma": {"validation_heavy": 0.7}, "shorty": {}})[TRANSFER]
    assert same.noise == "within noise" and "no different from the base" in same.answer


def test_length_matters_only_where_the_gain_differs_between_short_and_long():
    got = answers({"base": {}, "trauma": {}, "shorty": {"short_dialogues": 0.7}})[LENGTH]
    assert got.noise == "significant" and "beyond noise for shorty" in got.answer
    flat = answers({"base": {}, "trauma": {}, "shorty": {"short_dialogues": 0.6, "long_dialogues": 0.6}})
    assert flat[LENGTH].noise == "within noise" and "for no model" in flat[LENGTH].answer


def test_batch_size_is_answered_from_tune_and_from_the_previous_round_or_says_what_would_answer_it():
    means = {"base": {}, "trauma": {"validation_heavy": 0.7, "general": 0.6, "short_dialogues": 0.6,
                                    "long_dialogues": 0.6}, "shorty": {}}
    assert answers(means)[SIZE].noise == "not answered" and "parallel-r1 tune" in answers(means)[SIZE].answer
    tune = {"specialist": "trauma", "base": {"mean": 0.5}, "trials": [
        {"batch_size": 8, "learning_rate": 1e-3, "lora_r": 8, "niche_score": 0.55},
        {"batch_size": 32, "learning_rate": 1e-3, "lora_r": 8, "niche_score": 0.62}]}
    got = answers(means, tune=tune)[SIZE]
    assert got.noise == "no interval" and "8 dialogues 0.550 against 32 dialogues 0.620" in got.answer
    smaller = [b.model_copy(update={"size": 20}) for b in BATCHES]
    before = PreviousRound("/runs/demo", rows_for({"base": {}, "trauma": {"validation_heavy": 0.7}, "shorty": {}},
                                                  seed=1), smaller)
    got = answers(means, previous=before)[SIZE]
    assert got.noise == "significant" and "trauma at 40 dialogues against 20 in /runs/demo" in got.answer


def test_a_round_that_dropped_a_length_split_is_compared_with_the_one_before():
    unsplit = [BATCHES[0], BATCHES[1].model_copy(update={"stratify_by": ["question_type"]})]
    before = PreviousRound("/runs/demo", rows_for({"base": {}, "trauma": {}, "shorty": {"short_dialogues": 0.7}},
                                                  seed=1), BATCHES)
    rows = rows_for({"base": {}, "trauma": {}, "shorty": {"short_dialogues": 0.7}})
    got = open_questions(rows, compare_cells(rows, ["base", "trauma", "shorty"], list(SLICES), samples=500),
                         ["base", "trauma", "shorty"], CFG, unsplit, previous=before)[1]
    assert "shorty without its length split against with it in /runs/demo: niche gain +0.0" in got.answer
    table = "\n".join(render_answers([got], 0.95))
    assert table.startswith("## Open questions") and "95%" in table and "| Is dialogue length" in table
