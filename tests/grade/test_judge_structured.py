"""The LLM judge against the local fake OpenAI server acting as vLLM or an older server: the JSON schema it
sends, the fallback when `response_format` is refused, prompts fitted to a small context (and shrunk after a
context-length 400), and grading single tutor replies with per-item failures."""

from __future__ import annotations

import json
import math

import pytest

from parallel_r1.config import OpenAIEndpointConfig
from parallel_r1.data import StudentProfileConfig, get_card
from parallel_r1.grade import CombinedGrader, Grade, HeuristicRubricGrader, LLMJudgeGrader, applicable_criteria
from parallel_r1.grade.judge import JudgeFailure
from parallel_r1.grade.judge_prompt import TARGET, prompt_tokens
from tests.fakes.openai_server import FakeHTTPError, FakeOpenAIServer

CARD = get_card("linear-equations")
NAMES = applicable_criteria(None, CARD)
SHORT = [{"role": "user", "content": CARD.opening},
         {"role": "assistant", "content": "What is being done to x, and what would undo it?"}]
# ~13,000 characters: far more than a 1,536-token context holds.
LONG = [{"role": "user", "content": "OPENING: " + CARD.opening}] + [
    {"role": ("assistant", "user")[i % 2], "content": f"turn {i}: " + "let us look at both sides again " * 6}
    for i in range(1, 61)] + [{"role": "assistant", "content": "LAST: so what do you get for x?"}]


def endpoint(server: FakeOpenAIServer, **kw) -> OpenAIEndpointConfig:
    return OpenAIEndpointConfig(base_url=server.base_url, model="fake-judge", api_key_env="PR1_TEST_NO_KEY",
                                timeout_s=5, max_retries=1, backoff_s=0.01, max_backoff_s=0.02, **kw)


def schema_names(request: dict) -> list[str]:
    return request["response_format"]["json_schema"]["schema"]["properties"]["criteria"]["required"]


def structured(request: dict, value: float = 0.75) -> str:
    """What a schema-enforcing server answers: exactly the criteria the request's schema asks for."""
    if "response_format" in request:
        names = schema_names(request)
    else:
        names = [line[2:].split(":")[0] for line in request["messages"][0]["content"].splitlines()
                 if line.startswith("- ")]
    return json.dumps({"criteria": {n: value for n in names}, "confidence": 0.7, "notes": "clear next step"})


def user_text(request: dict) -> str:
    return request["messages"][1]["content"]


def test_structured_request_carries_the_schema_and_the_reply_is_read_strictly():
    profile = StudentProfileConfig(rejects_metaphor=True)
    with FakeOpenAIServer(structured) as server:
        judge = LLMJudgeGrader(endpoint(server))
        grade = judge.grade_dialogue(SHORT, profile, CARD)
        request = server.requests[0]
    fmt = request["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["name"] == "pedagogy_grade"
    assert schema_names(request) == list(applicable_criteria(profile, CARD))
    assert "concrete_not_metaphor" in schema_names(request) and request["temperature"] == 0.0
    assert grade.criteria == pytest.approx({n: 0.75 for n in applicable_criteria(profile, CARD)})
    assert grade.confidence == 0.7 and grade.notes == ["clear next step"]
    assert judge.counts["structured"] == 1 and judge.counts["tolerant"] == 0 and judge.structured


def test_a_server_that_refuses_response_format_is_asked_without_it_from_then_on():
    prose = "My grade:\n```json\n" + json.dumps({"criteria": {n: 0.5 for n in NAMES}, "confidence": 0.6}) + "\n```"
    with FakeOpenAIServer(lambda req: prose, reject_response_format=True) as server:
        judge = LLMJudgeGrader(endpoint(server), concurrency=1)
        grades = judge.grade_many([(SHORT, None, CARD)] * 3)
        sent = ["response_format" in r for r in server.requests]
        assert server.n_rejected == 1
    assert sent == [True, False, False, False]  # refused once, then remembered for this endpoint
    assert not judge.structured and judge.counts["response_format_refused"] == 1
    assert judge.counts["tolerant"] == 3 and all(g.criteria == pytest.approx({n: 0.5 for n in NAMES}) for g in grades)


def test_a_long_dialogue_is_trimmed_to_the_context_the_server_reports():
    # The server enforces its context with a tokenizer of ~4 characters a token, as a real one would.
    with FakeOpenAIServer(structured, max_model_len=1536, context_tokens=1536,
                          count_tokens=lambda t: math.ceil(len(t) / 4)) as server:
        judge = LLMJudgeGrader(endpoint(server))  # context_tokens None: asked of /v1/models
        grade = judge.grade_dialogue(LONG, None, CARD)
        assert server.n_rejected == 0 and server.n_requests == 1
        request = server.requests[0]
    assert judge.context_tokens == 1536 and request["max_tokens"] == 384
    assert prompt_tokens(request["messages"]) + request["max_tokens"] <= 1536
    text = user_text(request)
    assert "OPENING:" in text and "LAST: so what do you get for x?" in text and "turn(s) left out" in text
    assert "turn 1:" not in text and "turn 60:" in text
    assert "transcript trimmed to fit the judge's context" in grade.notes and judge.counts["trimmed"] == 1


@pytest.mark.parametrize("known_context", [True, False])
def test_a_context_length_400_shrinks_the_prompt_and_retries_once(known_context):
    # The server counts two characters a token: more than the judge's estimate, so the first prompt is refused.
    with FakeOpenAIServer(structured, context_tokens=2000, count_tokens=lambda t: len(t) // 2) as server:
        judge = LLMJudgeGrader(endpoint(server, context_tokens=2000 if known_context else None), concurrency=1)
        grades = judge.grade_many([(LONG, None, CARD), (LONG, None, CARD)])
        assert server.n_rejected == 1 and server.n_ok == 2  # the second dialogue fits at once
        first, retry = server.requests[0], server.requests[1]
    assert len(user_text(retry)) < len(user_text(first))
    assert "LAST: so what do you get for x?" in user_text(retry)
    assert judge.context_tokens == 2000 and judge.counts["shrunk"] == 1
    assert all(g.criteria == pytest.approx({n: 0.75 for n in NAMES}) for g in grades)


def test_a_prompt_still_too_long_after_shrinking_fails_that_item_clearly():
    with FakeOpenAIServer(structured, context_tokens=300, count_tokens=len) as server:
        results = LLMJudgeGrader(endpoint(server, context_tokens=300)).grade_many([(LONG, None, CARD)],
                                                                                  return_failures=True)
        assert server.n_rejected == 2  # the first prompt and the shrunk one; no third try
    assert isinstance(results[0], JudgeFailure) and "maximum context length is 300" in results[0].error


def turn_responder(request: dict) -> str:
    if "FAIL" in user_text(request):
        raise FakeHTTPError(500, "the judge crashed")
    value = 0.9 if "?" in user_text(request).rsplit(TARGET, 1)[1] else 0.2
    return structured(request, value)


HISTORY = [{"role": "teacher", "content": "What is the value of 3^3?"}, {"role": "student", "content": "9"}]
PAIRS = [(HISTORY, "What does the exponent 3 tell you to do with the base?"),
         (HISTORY, "FAIL this one"),
         (HISTORY, "It is 27.")]


def test_grade_turns_judges_the_last_reply_and_reports_failures_in_place():
    with FakeOpenAIServer(turn_responder) as server:
        judge = LLMJudgeGrader(endpoint(server))
        results = judge.grade_turns(PAIRS)
        request = next(r for r in server.requests if "exponent" in user_text(r))
    assert isinstance(results[0], Grade) and isinstance(results[2], Grade)
    assert isinstance(results[1], JudgeFailure) and "500" in results[1].error
    assert results[0].criteria["guidance"] == 0.9 and results[2].criteria["guidance"] == 0.2
    assert "TUTOR: What is the value of 3^3?\n\nSTUDENT: 9\n\n" + TARGET in user_text(request)
    assert "last TUTOR reply" in request["messages"][0]["content"]
    assert schema_names(request) == list(applicable_criteria(None, None))


def test_combined_grader_grades_turns_with_failures_in_place():
    with FakeOpenAIServer(turn_responder) as server:
        combined = CombinedGrader(HeuristicRubricGrader(), LLMJudgeGrader(endpoint(server)), 0.5)
        results = combined.grade_turns(PAIRS)
    assert [type(r) for r in results] == [Grade, JudgeFailure, Grade]
    rubric = HeuristicRubricGrader().grade_turn([{"role": "assistant", "content": HISTORY[0]["content"]},
                                                 {"role": "user", "content": "9"}], PAIRS[0][1])
    assert results[0].grader == combined.name
    assert results[0].criteria["guidance"] == pytest.approx(0.5 * rubric.criteria["guidance"] + 0.5 * 0.9)
