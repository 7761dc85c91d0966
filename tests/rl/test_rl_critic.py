"""The critic of the verification-consistency reward: a real fitted grader (fitted here on hand-written labels that
disagree with the rubric) and the LLM judge (against the local fake OpenAI server) grade every path, and the reward
follows whether the summary sides with the critic's best path, not the rubric's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parallel_r1.config import GradeConfig
from parallel_r1.grade import HeuristicRubricGrader
from parallel_r1.grade.fitted import FittedGrader, fit
from parallel_r1.grade.judge_prompt import TARGET
from parallel_r1.grade.labels import read_labelled
from parallel_r1.rl.critic import CriticError, PathCritic, build_critic
from parallel_r1.rl.rewards import ConsistencyReward
from tests.fakes.openai_server import FakeHTTPError, FakeOpenAIServer
from tests.grade.test_judge_structured import endpoint, schema_names

HISTORY = [{"role": "user", "content": "What is 14 + 9?"}, {"role": "assistant", "content": "Try it."},
           {"role": "user", "content": "I think it is 25."}]
EXPLAIN = "14 plus 9 equals 23, because 14 plus 9 adds 9 more to 14. So the answer is 23."
QUESTION = "What do you think the first step should be when you add 9 to 14?"
UNRELATED = "Let us talk about the weather on Saturday instead of sums."

# A team that wants the answer explained and labels open questions as unhelpful: the rubric thinks the opposite.
EXPLANATIONS = ("{a} {op} {b} equals {right}, because {reason}. So the answer is {right}.",
                "The answer is {right}: {reason}, which gives {right}.",
                "Here is how it works: {reason}. That makes {right}.")
QUESTIONS = ("What do you think the first step should be?", "How would you start a problem like this one?",
             "Which part of the problem do you want to work on first?")
OPS = {"+": (lambda a, b: a + b, "{a} plus {b} adds {b} more to {a}"),
       "x": (lambda a, b: a * b, "{a} groups of {b} make {right}"),
       "-": (lambda a, b: a - b, "taking {b} away from {a} leaves {right}")}
DIMENSIONS = ("Mistake_Identification", "Providing_Guidance", "Actionability")


def labelled_rows() -> list[dict]:
    """8 conversations x 2 replies: explanations labelled Yes on every dimension, questions No."""
    rows = []
    for c in range(8):
        op = "+x-"[c % 3]
        a, b = 12 + 3 * c, 4 + c % 5
        compute, reason = OPS[op]
        right = compute(a, b)
        history = [{"role": "teacher", "content": f"What is {a} {op} {b}?"},
                   {"role": "student", "content": f"I think it is {right + (1, 2, 10, -1)[c % 4]}."}]
        values = {"a": a, "b": b, "op": op, "right": right, "reason": reason.format(a=a, b=b, right=right)}
        for kind, phrasings, label in (("explain", EXPLANATIONS, "Yes"), ("question", QUESTIONS, "No")):
            rows.append({"id": f"c{c}:{kind}", "conversation_id": f"c{c}", "history": history,
                         "response": phrasings[c % 3].format(**values), "labels": dict.fromkeys(DIMENSIONS, label)})
    return rows


def fit_critic(folder: Path) -> FittedGrader:
    """A fitted grader trained on `labelled_rows`, saved to `folder`."""
    path = folder.parent / "labelled.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in labelled_rows()))
    grader = fit(read_labelled(path), source=path)
    grader.save(folder)
    return grader


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> FittedGrader:
    return fit_critic(tmp_path_factory.mktemp("critic") / "fitted")


def block(paths: list[str], summary: str) -> str:
    return "<Parallel>" + "".join(f"<Path>{p}</Path>" for p in paths) + f"</Parallel><Summary>{summary}</Summary>"


def consistency(reward: ConsistencyReward, summaries: list[str], paths: list[str]) -> list[float]:
    return reward([HISTORY] * len(summaries), [block(paths, s) for s in summaries])


def test_the_fitted_critic_picks_the_path_its_labels_prefer_and_the_reward_follows_it(fitted):
    rubric = HeuristicRubricGrader()
    assert fitted.grade_turn(HISTORY, EXPLAIN).score > fitted.grade_turn(HISTORY, QUESTION).score
    assert rubric.grade_turn(HISTORY, EXPLAIN).score < rubric.grade_turn(HISTORY, QUESTION).score - 0.1

    summaries = [EXPLAIN, QUESTION, UNRELATED]
    critic = consistency(ConsistencyReward(critic=PathCritic(fitted), critic_weight=1.0), summaries,
                         [QUESTION, EXPLAIN])
    own = consistency(ConsistencyReward(), summaries, [QUESTION, EXPLAIN])
    assert critic[0] == pytest.approx(1.0) and critic[1] < critic[0] and critic[2] < 0.2
    assert own[1] == pytest.approx(1.0) and own[0] == pytest.approx(0.0)  # the rubric's pick is the other path
    half = consistency(ConsistencyReward(critic=PathCritic(fitted), critic_weight=0.5), summaries,
                       [QUESTION, EXPLAIN])
    assert half == pytest.approx([(c + o) / 2 for c, o in zip(critic, own, strict=True)])


def test_the_critic_grades_each_path_after_the_dialogue(fitted):
    grades = PathCritic(fitted).grade([(HISTORY, [EXPLAIN, QUESTION], None, None), (HISTORY, [], None, None)])
    assert grades == [[pytest.approx(fitted.grade_turn(HISTORY, p).score) for p in (EXPLAIN, QUESTION)], []]


def graded_reply(request: dict) -> str:
    return request["messages"][-1]["content"].split(TARGET, 1)[1]


def judge_by_topic(request: dict) -> str:
    """The judge prefers replies about the tens; it cannot grade replies that mention the ones."""
    reply = graded_reply(request)
    if "ones" in reply:
        raise FakeHTTPError(500, "the judge fell over")
    value = 0.9 if "tens" in reply else 0.2
    return json.dumps({"criteria": dict.fromkeys(schema_names(request), value), "confidence": 0.9, "notes": ""})


TENS = "Ask what they notice about the tens when they add 14 and 9 in their head."
STEPS = "Have them write the sum in a column and say what they carry to the next place."
ONES = "Count on from 14 by ones until nine more have been added."


def test_the_llm_judge_critic_grades_every_path_at_once_and_the_reward_follows_its_pick(tmp_path):
    with FakeOpenAIServer(judge_by_topic, latency_s=0.05) as server:
        critic = build_critic(GradeConfig(grader="llm", judge=endpoint(server)))
        reward = ConsistencyReward(critic=critic, critic_weight=1.0)
        scores = consistency(reward, [TENS, STEPS, TENS + " Then check what they carry."], [STEPS, TENS])
        assert server.n_requests == 6  # every path of every reply, once
    assert scores[0] == pytest.approx(1.0) and scores[1] == pytest.approx(0.0)
    assert 0.5 < scores[2] < scores[0]  # a summary that strays from the critic's pick earns less: a graded signal


def test_a_reply_the_judge_cannot_grade_keeps_the_grader_part_and_a_dead_judge_is_one_clear_error():
    with FakeOpenAIServer(judge_by_topic) as server:
        critic = build_critic(GradeConfig(grader="llm", judge=endpoint(server)))
        reward = ConsistencyReward(critic=critic, critic_weight=1.0)
        mixed = reward([HISTORY] * 2, [block([STEPS, TENS], TENS), block([STEPS, ONES], ONES)])
        alone = consistency(ConsistencyReward(), [ONES], [STEPS, ONES])
        assert mixed[0] == pytest.approx(1.0) and mixed[1] == pytest.approx(alone[0])
        with pytest.raises(CriticError, match="could not grade any of 2 paths"):
            consistency(reward, [ONES], [ONES, ONES + " Again."])
