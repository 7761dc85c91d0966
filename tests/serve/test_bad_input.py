"""Every bad input of issue 5 §4 gets a 4xx with an OpenAI-style error naming the problem, never a 5xx, and the
server keeps serving after each."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.serve.support import TOKEN

pytestmark = pytest.mark.slow

GOOD = {"model": "parallel-r1", "messages": [{"role": "user", "content": "What is a loop?"}]}
LONG = "please explain recursion to me again " * 40  # far over the tiny model's 64-token context

# name -> (raw body or JSON object, expected status, a phrase the message must contain, the `param` or None)
CASES = {
    "malformed JSON": (b'{"model": "parallel-r1", "messages": [', 400, "not valid JSON", None),
    "body not an object": (b"[1, 2]", 400, "JSON object", None),
    "missing messages": ({"model": "parallel-r1"}, 400, "messages: Field required", "messages"),
    "empty messages": ({**GOOD, "messages": []}, 400, "at least 1 item", "messages"),
    "wrong role": ({**GOOD, "messages": [{"role": "teacher", "content": "hi"}]}, 400, "role", "messages.0.role"),
    "last message not the student's": ({**GOOD, "messages": [*GOOD["messages"],
                                                             {"role": "assistant", "content": "ok"}]},
                                       400, "last message must have role 'user'", "messages"),
    "empty student message": ({**GOOD, "messages": [{"role": "user", "content": "  "}]}, 400, "non-empty", "messages"),
    "missing model": ({"messages": GOOD["messages"]}, 400, "model: Field required", "model"),
    "unknown model": ({**GOOD, "model": "gpt-17"}, 404, "model 'gpt-17' does not exist", "model"),
    "unknown profile field": ({**GOOD, "student_profile": {"likes_cats": True}}, 400, "unknown field",
                              "student_profile.likes_cats"),
    "unknown profile field in metadata": ({**GOOD, "metadata": {"student_profile": '{"sleepy": true}'}}, 400,
                                          "unknown field", "metadata.student_profile.sleepy"),
    "profile metadata not JSON": ({**GOOD, "metadata": {"student_profile": "{nope"}}, 400, "JSON object",
                                  "metadata.student_profile"),
    "ill-typed profile flag": ({**GOOD, "student_profile": {"hyperfocus_trait": "very"}}, 400, "boolean",
                               "student_profile.hyperfocus_trait"),
    "prompt over the context limit": ({**GOOD, "messages": [{"role": "user", "content": LONG}]}, 400,
                                      "context length", "messages"),
    "n zero": ({**GOOD, "n": 0}, 400, "n: Input should be greater than or equal to 1", "n"),
    "n over the limit": ({**GOOD, "n": 3}, 400, "above this server's limit of 2", "n"),
    "max_tokens zero": ({**GOOD, "max_tokens": 0}, 400, "greater than or equal to 1", "max_tokens"),
    "max_tokens over the limit": ({**GOOD, "max_tokens": 65}, 400, "limit of 64", "max_tokens"),
    "max_completion_tokens over the limit": ({**GOOD, "max_completion_tokens": 10_000}, 400, "limit of 64",
                                             "max_completion_tokens"),
    "temperature out of range": ({**GOOD, "temperature": 3}, 400, "less than or equal to 2", "temperature"),
    "non-text content part": ({**GOOD, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://x"}}]}]}, 400, "only text content parts",
        "messages.0.content"),
    # issue 26: inputs that used to end in a plain-text 500, a wrong blame or a silent 200
    "deeply nested JSON": (b'{"model": "parallel-r1", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400,
                           "nested too deeply", None),
    "integer of 5,000 digits": (b'{"model": "parallel-r1", "n": ' + b"9" * 5000 + b"}", 400, "not valid JSON", None),
    "NaN temperature": (b'{"model": "parallel-r1", "temperature": NaN, "messages": []}', 400, "NaN", None),
    "seed over int64": ({**GOOD, "seed": 2 ** 64}, 400, "less than or equal to", "seed"),
    "tools": ({**GOOD, "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required"}, 400,
              "not supported", "tools"),
    "response_format": ({**GOOD, "response_format": {"type": "json_object"}}, 400, "not supported",
                        "response_format"),
    "logprobs": ({**GOOD, "logprobs": True}, 400, "not supported", "logprobs"),
    "five stop strings": ({**GOOD, "stop": ["a", "b", "c", "d", "e"]}, 400, "at most 4", "stop"),
    "an empty stop string": ({**GOOD, "stop": ""}, 400, "must not be empty", "stop"),
    "too many messages": ({**GOOD, "messages": [{"role": "user", "content": "hi"}] * 300}, 400,
                          "above this server's limit of 256", "messages"),
    "a 2 MB body": ({**GOOD, "messages": [{"role": "user", "content": "x" * 2_000_000}]}, 413,
                    "above this server's limit", None),
    "a 40,000-character message": ({**GOOD, "messages": [{"role": "user", "content": "x" * 40_000}]}, 400,
                                   "limit of 32000", "messages.0.content"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_a_4xx_with_an_openai_error(name, served):
    body, status, phrase, param = CASES[name]
    url = f"{served[1]}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
    response = httpx.post(url, headers=headers, timeout=60, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["x-request-id"]
    error = response.json()["error"]
    assert phrase in error["message"] and error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param
    assert httpx.post(url, headers=headers, json=GOOD, timeout=60).status_code == 200  # still serving


def test_the_openai_client_sees_typed_errors(client):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=GOOD["messages"])
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="parallel-r1", messages=[{"role": "user", "content": LONG}])
    assert err.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as err:  # streamed: still a 400, not a stream that breaks off
        client.chat.completions.create(model="parallel-r1", messages=[{"role": "user", "content": LONG}], stream=True)
    assert err.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="parallel-r1", messages=[])


def test_unknown_route_is_an_openai_style_404(served):
    response = httpx.get(f"{served[1]}/v1/nothing-here")
    assert response.status_code == 404 and "error" in response.json()


@pytest.mark.parametrize("authorization", ["Bearer t\u00e9st", "Bearer \u2603", "bearer wrong", "Basic abc", ""])
def test_a_wrong_or_non_ascii_token_is_a_401_never_a_500(served, authorization):
    url = f"{served[1]}/v1/chat/completions"
    headers = {"Authorization": authorization.encode("utf-8")} if authorization else {}
    response = httpx.post(url, headers=headers, json=GOOD, timeout=60)
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"


def test_the_scheme_is_case_insensitive_and_the_request_id_is_echoed(served):
    response = httpx.post(f"{served[1]}/v1/chat/completions", json=GOOD, timeout=60,
                          headers={"Authorization": f"bearer {TOKEN}", "x-request-id": "trace-42"})
    assert response.status_code == 200 and response.headers["x-request-id"] == "trace-42"
