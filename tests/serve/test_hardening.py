"""The router under faults and the rest of the OpenAI surface: replies typed as the `openai` package's own
`ChatCompletion` / `ChatCompletionChunk`, `stop` on streamed and whole replies, `GET /v1/models/{id}`, `/ready` that
tells an unauthenticated caller nothing more than its status, a 503 with `Retry-After` when the model deployment's
queue is full and a 504 when a reply takes longer than `serve.request_timeout_s`."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tests.serve.support import SPECIALISTS, TOKEN, serve_config

pytestmark = pytest.mark.slow

QUESTION = [{"role": "user", "content": "Why does my loop skip the first item?"}]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _post(url: str, body: dict, **kw) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=AUTH, timeout=60, **kw)


def _stream_events(url: str, body: dict) -> list[dict]:
    import json

    with httpx.stream("POST", f"{url}/v1/chat/completions", json={**body, "stream": True}, headers=AUTH,
                      timeout=60) as response:
        assert response.status_code == 200
        lines = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


def test_replies_are_openai_chat_completions_and_chunks(served):
    url = served[1]
    whole = _post(url, {"model": "neurodivergent", "messages": QUESTION, "n": 2, "max_tokens": 8, "seed": 3,
                        "temperature": 0.7}).json()
    parsed = ChatCompletion.model_validate(whole)
    assert [c.index for c in parsed.choices] == [0, 1] and parsed.usage.completion_tokens > 0
    events = _stream_events(url, {"model": "parallel-r1", "messages": QUESTION, "max_tokens": 8,
                                  "stream_options": {"include_usage": True}})
    chunks = [ChatCompletionChunk.model_validate(e) for e in events]
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[-1].usage is not None


def test_stop_ends_whole_and_streamed_replies_before_the_stop_string(served):
    url = served[1]
    body = {"model": "neurodivergent", "messages": QUESTION, "max_tokens": 40, "temperature": 0}
    reply = _post(url, body).json()["choices"][0]["message"]["content"]
    words = reply.split()
    assert len(words) >= 4, reply
    stop = words[len(words) // 2]
    expected = reply[:reply.index(stop)].strip()
    cut = _post(url, {**body, "stop": [stop, "never-there"]}).json()["choices"][0]
    assert (cut["message"]["content"], cut["finish_reason"]) == (expected, "stop")
    events = _stream_events(url, {**body, "stop": stop})
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    assert text == expected and [e["choices"][0]["finish_reason"] for e in events if e["choices"]][-1] == "stop"


def test_a_model_is_retrieved_by_id(client):
    model = client.models.retrieve("neurodivergent")
    assert model.id == "neurodivergent" and model.model_dump()["version"].startswith("neurodivergent@v")
    assert client.models.retrieve("parallel-r1").id == "parallel-r1"
    with pytest.raises(openai.NotFoundError) as err:
        client.models.retrieve("gpt-17")
    assert err.value.body["code"] == "model_not_found"


def test_ready_tells_only_an_authorized_caller_what_is_served(served):
    anonymous = httpx.get(f"{served[1]}/ready", timeout=60)
    assert anonymous.status_code == 200 and anonymous.json() == {"status": "ready"}
    full = httpx.get(f"{served[1]}/ready", headers=AUTH, timeout=60).json()
    assert set(full["models"]) == {"base", *SPECIALISTS}


def test_every_response_carries_a_request_id(served):
    url = served[1]
    for response in (_post(url, {"model": "base", "messages": QUESTION, "max_tokens": 2}),
                     _post(url, {"model": "nope", "messages": QUESTION}),
                     httpx.get(f"{url}/v1/models", timeout=60), httpx.get(f"{url}/v1/models/x", headers=AUTH),
                     httpx.get(f"{url}/ready", timeout=60)):
        assert response.headers.get("x-request-id"), (response.status_code, response.headers)


def _app(serve_port, serve_workdir, tiny_base_model, name: str, **serve_fields) -> str:
    from parallel_r1.serve.stage import start_local

    cfg = serve_config(serve_workdir, tiny_base_model, serve_port, app_name=name, route_prefix=f"/{name}",
                       grading_fraction=0.0, **serve_fields)
    return start_local(cfg)


def _server_errors(responses: list[httpx.Response]) -> None:
    for r in responses:
        error = r.json()["error"]
        assert error["type"] == "server_error" and r.headers.get("x-request-id")
        if r.status_code == 503:
            assert r.headers["retry-after"] == "1" and error["code"] == "model_unavailable"
        else:
            assert error["code"] == "timeout" and "request_timeout_s" in error["message"]


def test_a_full_queue_is_a_503_with_retry_after(serve_port, serve_workdir, tiny_base_model):
    """The model deployment takes one request and queues one: of 24 at once, the rest get 503 + Retry-After."""
    from ray import serve

    url = _app(serve_port, serve_workdir, tiny_base_model, "queued", max_ongoing_requests=1, max_queued_requests=1)
    try:
        body = {"model": "neurodivergent", "messages": QUESTION, "max_tokens": 60, "n": 2}
        with ThreadPoolExecutor(max_workers=12) as pool:
            responses = list(pool.map(lambda _: httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60),
                                      range(24)))
        statuses = sorted({r.status_code for r in responses})
        assert statuses == [200, 503], statuses
        _server_errors([r for r in responses if r.status_code != 200])
        retried = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=5)
        with ThreadPoolExecutor(max_workers=6) as pool:  # the client's own retries honour Retry-After
            done = list(pool.map(lambda _: retried.chat.completions.create(**body), range(6)))
        assert all(d.choices for d in done)
    finally:
        serve.delete("queued")


def test_a_reply_slower_than_the_timeout_is_a_504(serve_port, serve_workdir, tiny_base_model):
    from ray import serve

    url = _app(serve_port, serve_workdir, tiny_base_model, "hasty", request_timeout_s=0.005)
    try:
        body = {"model": "neurodivergent", "messages": QUESTION, "max_tokens": 60, "n": 2}
        responses = [httpx.post(f"{url}/v1/chat/completions", json=b, timeout=60)
                     for b in (body, {**body, "stream": True})]
        assert [r.status_code for r in responses] == [504, 504]
        _server_errors(responses)
    finally:
        serve.delete("hasty")


def test_a_model_deployment_that_is_not_up_yet_is_a_503_with_retry_after(serve_port, serve_workdir, tiny_base_model):
    """The model replica cannot be placed (it asks for a resource no node has), so the deployment stays starting: the
    router answers 503 + Retry-After within its probe, instead of holding the request until its timeout."""
    import threading

    from ray import serve

    from parallel_r1.serve.app import build_app

    cfg = serve_config(serve_workdir, tiny_base_model, serve_port, app_name="unplaced", route_prefix="/unplaced",
                       grading_fraction=0.0, model_resources={"no-such-node": 1.0})
    threading.Thread(target=serve.run, args=(build_app(cfg),), kwargs={"name": "unplaced", "route_prefix": "/unplaced"},
                     daemon=True).start()  # it would return only once the app is up: never
    body = {"model": "neurodivergent", "messages": QUESTION, "max_tokens": 4}
    try:
        deadline, answer = time.monotonic() + 120, None
        while answer is None and time.monotonic() < deadline:  # until the proxy routes the prefix to the router
            r = httpx.post(f"http://127.0.0.1:{serve_port}/unplaced/v1/chat/completions", json=body, timeout=60)
            answer = r if r.status_code != 404 and r.headers.get("content-type") == "application/json" else None
            time.sleep(0.2)
        assert answer is not None, "the router never came up"
        assert answer.status_code == 503, answer.text[:300]
        _server_errors([answer])
        assert "starting" in answer.json()["error"]["message"]
    finally:
        serve.delete("unplaced", _blocking=False)
