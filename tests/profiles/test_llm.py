"""The LLM reader through the real `openai` client against the local fake OpenAI server: the structured request,
tolerant parsing, the retry on an unreadable reply and its clear error, and servers without `response_format`."""

from __future__ import annotations

import json

import pytest

from parallel_r1.config import OpenAIEndpointConfig
from parallel_r1.profiles import read_profile
from parallel_r1.profiles.evaluate import evaluate_file
from parallel_r1.profiles.llm import ProfileReplyError, parse_reply
from tests.fakes.openai_server import FakeOpenAIServer
from tests.profiles.examples import BPT, EF, LONG_EXPLANATION, RM

CHAT = [{"role": "assistant", "content": LONG_EXPLANATION},
        {"role": "user", "content": "sorry, lost. where do I start?"}]


def endpoint(server: FakeOpenAIServer) -> OpenAIEndpointConfig:
    return OpenAIEndpointConfig(base_url=server.base_url, model="fake-judge", api_key_env="PR1_TEST_NO_KEY",
                                timeout_s=5, max_retries=1, backoff_s=0.01, max_backoff_s=0.02)


def traits_reply(**flags) -> str:
    body = {t: False for t in ("neurodivergent", "bad_prior_teacher", "rejects_metaphor", "executive_function_gap",
                               "hyperfocus_trait")} | flags
    body["evidence"] = [{"trait": "executive_function_gap", "quote": "where do I start"}]
    return json.dumps(body)


def test_traits_are_read_from_a_structured_reply():
    with FakeOpenAIServer(lambda req: traits_reply(executive_function_gap=True, bad_prior_teacher=True)) as server:
        reading = read_profile(CHAT, "llm", endpoint(server))
        request = server.requests[0]
    assert reading.method == "llm" and reading.traits == ["neurodivergent", BPT, EF]
    assert reading.specialist == "neurodivergent" and reading.scores[EF] == 1.0
    assert [(e.trait, e.message) for e in reading.evidence] == [(EF, 1)]
    schema = request["response_format"]["json_schema"]["schema"]
    assert request["response_format"]["type"] == "json_schema" and "hyperfocus_trait" in schema["required"]
    assert request["temperature"] == 0.0 and request["model"] == "fake-judge"
    prompt = request["messages"][1]["content"]
    assert "STUDENT (message 1): sorry, lost. where do I start?" in prompt and "TUTOR (" in prompt


@pytest.mark.parametrize("reply, traits", [
    ('Sure! ```json\n{"traits": ["rejects_metaphor", "hyperfocus"]}\n```', ["neurodivergent", RM, "hyperfocus_trait"]),
    ('{"traits": {"bad_prior_teacher": "yes", "rejects_metaphor": 0.2}}', [BPT]),
    ('{"neurodivergent": "true", "mood": "calm"}', ["neurodivergent"]),
    ('{"traits": []}', []),
])
def test_tolerant_parsing(reply, traits):
    assert parse_reply(reply)[0].traits == traits


def test_an_unreadable_reply_is_asked_again_then_a_clear_error():
    with FakeOpenAIServer(lambda req: "I think this student is lovely.") as server:
        with pytest.raises(ProfileReplyError, match="gave no readable trait JSON in 2 attempts.*lovely"):
            read_profile(["hello"], "llm", endpoint(server))
        assert server.n_requests == 2
        assert "could not be read" in server.requests[1]["messages"][-1]["content"]


def test_a_second_reply_that_reads_is_used():
    replies = iter(["no idea", traits_reply(rejects_metaphor=True)])
    with FakeOpenAIServer(lambda req: next(replies)) as server:
        assert read_profile(["stop with the pizza slices"], "llm", endpoint(server)).kind == RM


def test_a_server_without_response_format_is_asked_plainly():
    with FakeOpenAIServer(lambda req: traits_reply(hyperfocus_trait=True), reject_response_format=True) as server:
        reading = read_profile(["can we stay on this?"], "llm", endpoint(server))
        assert reading.kind == "hyperfocus" and "response_format" not in server.requests[-1]


def test_evaluating_a_file_with_the_llm_reader(tmp_path):
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"message": "stop with the pizza slices", "traits": ["rejects_metaphor"]},
        {"message": "what is a prime number?", "traits": []}]) + "\n")

    def responder(req):
        student = req["messages"][1]["content"]
        return traits_reply(rejects_metaphor="pizza" in student)

    with FakeOpenAIServer(responder) as server:
        result = evaluate_file(path, "llm", endpoint(server))
    assert result.n == 2 and result.exact_accuracy == 1.0 and result.method == "llm"
