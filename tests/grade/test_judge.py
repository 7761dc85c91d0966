"""The LLM judge through the real `openai` client against the local fake OpenAI server: the tolerant parser for
free-text replies, malformed replies, and the combined grader's confidence when judge and rubric disagree."""

from __future__ import annotations

import asyncio
import json

import pytest

from parallel_r1.config import GradeConfig, OpenAIEndpointConfig
from parallel_r1.data import Dialogue, Turn, get_card
from parallel_r1.grade import (
    CombinedGrader,
    HeuristicRubricGrader,
    JudgeError,
    LLMJudgeGrader,
    agrade_dialogues,
    applicable_criteria,
    build_grader,
    grade_dialogues,
    parse_judge_reply,
)
from tests.fakes.openai_server import FakeOpenAIServer

CARD = get_card("linear-equations")
DIALOGUE = [
    {"role": "user", "content": CARD.opening},
    {"role": "assistant", "content": "What is being done to x on the left side, and what would undo it?"},
    {"role": "user", "content": "times 3 and plus 5, so take away 5 first?"},
    {"role": "assistant", "content": "Good. Do that to both sides: what do you get?"},
]
NAMES = applicable_criteria(None, CARD)


def endpoint(server: FakeOpenAIServer) -> OpenAIEndpointConfig:
    return OpenAIEndpointConfig(base_url=server.base_url, model="fake-judge", api_key_env="PR1_TEST_NO_KEY",
                                timeout_s=5, max_retries=1, backoff_s=0.01, max_backoff_s=0.02)


def judge_reply(criteria: dict[str, float], confidence: float | None = 0.9) -> str:
    body = {"criteria": criteria, "notes": "guides well"}
    if confidence is not None:
        body["confidence"] = confidence
    return "Here is my grade:\n```json\n" + json.dumps(body) + "\n```"


def test_judge_grade_is_parsed_from_the_reply():
    scores = {n: 0.8 for n in NAMES} | {"tone": 0.6}
    with FakeOpenAIServer(lambda req: judge_reply(scores)) as server:
        judge = LLMJudgeGrader(endpoint(server))
        grade = judge.grade_dialogue(DIALOGUE, None, CARD)
        request = server.requests[0]
    # The schema was asked for, but the reply is JSON inside prose: the tolerant parser reads it.
    assert "response_format" in request and judge.counts == {"tolerant": 1}
    assert grade.criteria == pytest.approx(scores)
    assert grade.confidence == 0.9 and grade.grader == "llm-judge:fake-judge"
    assert 0.6 < grade.score < 0.8 and grade.notes == ["guides well"]
    assert request["temperature"] == 0.0 and request["model"] == "fake-judge"
    prompt = request["messages"][0]["content"] + request["messages"][1]["content"]
    assert all(n in prompt for n in NAMES) and CARD.answer in prompt and "TUTOR: Good." in prompt


def test_malformed_reply_is_asked_again_then_fails_clearly():
    replies = iter(["I think the tutor did well overall!", judge_reply({n: 0.7 for n in NAMES}, None)])
    with FakeOpenAIServer(lambda req: next(replies)) as server:
        grade = LLMJudgeGrader(endpoint(server)).grade_dialogue(DIALOGUE, None, CARD)
        retry = server.requests[1]["messages"]
    assert grade.criteria == pytest.approx({n: 0.7 for n in NAMES})
    assert grade.confidence == pytest.approx(0.4)  # no self-report: how decisive its scores are
    assert retry[-2]["content"] == "I think the tutor did well overall!" and "JSON" in retry[-1]["content"]

    with FakeOpenAIServer(lambda req: '{"criteria": {"tone": "great"}}') as server:
        with pytest.raises(JudgeError, match=r"fake-judge.*3 attempts.*not a number"):
            LLMJudgeGrader(endpoint(server)).grade_dialogue(DIALOGUE, None, CARD)
        assert server.n_requests == 3


@pytest.mark.parametrize(("reply", "expected"), [
    ('{"guidance": 8, "tone": "6", "coherence": 10}', {"guidance": 0.8, "tone": 0.6, "coherence": 1.0}),
    ('prose {"criteria": {"guidance": 0.5, "tone": 1, "coherence": 0}, "confidence": 80}',
     {"guidance": 0.5, "tone": 1.0, "coherence": 0.0}),
    ('{"criteria": {"guidance": 50, "tone": 100, "coherence": 75}}', {"guidance": 0.5, "tone": 1.0, "coherence": 0.75}),
])
def test_parse_judge_reply_scales_and_shapes(reply, expected):
    criteria, _, _ = parse_judge_reply(reply, ("guidance", "tone", "coherence"))
    assert criteria == pytest.approx(expected)


@pytest.mark.parametrize(("reply", "error"), [
    ("no json here", "no JSON object"),
    ('{"criteria": {"guidance": 0.5}}', "too few criteria"),
    ('{"criteria": {"guidance": -1, "tone": 0.5}}', "out of range"),
    ('{"criteria": [0.5, 0.5]}', "not an object"),
])
def test_parse_judge_reply_rejects_malformed(reply, error):
    with pytest.raises(JudgeError, match=error):
        parse_judge_reply(reply, ("guidance", "tone", "coherence"))


def test_combined_confidence_falls_when_the_judge_disagrees():
    heuristic = HeuristicRubricGrader().grade_dialogue(DIALOGUE, None, CARD)
    agree = {n: v for n, v in heuristic.criteria.items()}
    disagree = {n: 1 - v for n, v in heuristic.criteria.items()}
    grades = {}
    for label, scores in (("agree", agree), ("disagree", disagree)):
        with FakeOpenAIServer(lambda req, s=scores: judge_reply(s, 0.8)) as server:
            combined = CombinedGrader(HeuristicRubricGrader(), LLMJudgeGrader(endpoint(server)), 0.5)
            grades[label] = combined.grade_dialogue(DIALOGUE, None, CARD)
    assert grades["agree"].confidence > 0.6 > 0.3 > grades["disagree"].confidence
    assert grades["agree"].criteria == pytest.approx(heuristic.criteria)
    assert grades["disagree"].criteria == pytest.approx({n: 0.5 for n in heuristic.criteria})
    assert grades["agree"].grader == "combined(heuristic-rubric-v2+llm-judge:fake-judge,w=0.5)"


def record(i: int) -> Dialogue:
    turns = [Turn("student" if m["role"] == "user" else "teacher", m["content"]) for m in DIALOGUE]
    return Dialogue(dialogue_id=f"d{i}", iteration=i, scenario_id=CARD.id, topic=CARD.topic, domain=CARD.domain,
                    question_type=CARD.question_type, difficulty=CARD.difficulty, is_special=False,
                    profile_kind="rejects_metaphor", persona={"traits": ["neurodivergent", "rejects_metaphor"]},
                    turns=turns, backend="test", model="m", seed=i)


def test_build_grader_and_grade_dialogues_with_the_combined_grader():
    def responder(req: dict) -> str:
        names = [n for n in applicable_criteria(None, None) + ("concrete_not_metaphor",)
                 if f"- {n}:" in req["messages"][0]["content"]]
        return judge_reply({n: 0.9 for n in names})

    with FakeOpenAIServer(responder) as server:
        cfg = GradeConfig(grader="combined", judge=endpoint(server), llm_weight=0.25)
        grader = build_grader(cfg)
        graded = grade_dialogues([record(i) for i in range(6)], grader)
        assert server.n_requests == 6
    assert isinstance(grader, CombinedGrader) and grader.llm_weight == 0.25
    assert isinstance(build_grader(GradeConfig(grader="llm", judge=cfg.judge)), LLMJudgeGrader)
    assert isinstance(build_grader(GradeConfig()), HeuristicRubricGrader)
    for d in graded:
        assert d.grader == grader.name and "concrete_not_metaphor" in d.criteria
        assert 0 <= d.score <= 1 and 0 <= d.confidence <= 1 and d.stock_phrase_density == 0.0


def test_async_grading_inside_an_event_loop():
    """As in a Ray async actor: agrade_dialogues awaits the judge; the sync wrapper refuses clearly."""
    with FakeOpenAIServer(lambda req: judge_reply({n: 0.5 for n in NAMES + ("concrete_not_metaphor",)})) as server:
        judge = LLMJudgeGrader(endpoint(server))

        async def main() -> list[Dialogue]:
            graded = await agrade_dialogues([record(0), record(1)], judge)
            with pytest.raises(RuntimeError, match="await agrade_dialogue"):
                judge.grade_dialogue(DIALOGUE, None, CARD)
            await judge.aclose()
            return graded

        graded = asyncio.run(main())
    assert [d.grader for d in graded] == ["llm-judge:fake-judge"] * 2
