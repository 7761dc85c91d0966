"""The real `openai` client, through OpenAIChatClient, against the local fake server: retries, give-up,
non-retryable errors, bounded backoff; and the fake server itself (concurrency, clean shutdown)."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time

import openai
import pytest

from parallel_r1.config import OpenAIEndpointConfig
from parallel_r1.llm_client import EndpointError, OpenAIChatClient, backoff_delay
from tests.fakes.openai_server import FakeHTTPError, FakeOpenAIServer, FakeTimeout

MSGS = [{"role": "user", "content": "why does my loop skip the first item"}]


def endpoint(server: FakeOpenAIServer, **kw) -> OpenAIEndpointConfig:
    kw = {"timeout_s": 0.5, "max_retries": 3, "backoff_s": 0.01, "max_backoff_s": 0.05, **kw}
    return OpenAIEndpointConfig(base_url=server.base_url, model="fake-model", api_key_env="PR1_TEST_NO_KEY",
                                **kw)


async def complete(cfg: OpenAIEndpointConfig, messages=MSGS) -> tuple[str, int]:
    async with OpenAIChatClient(cfg, seed=0) as client:
        return await client.complete(messages), client.retries


def scripted(*outcomes):
    """A responder that plays `outcomes` in order (an exception is raised), then answers "ok"."""
    queue = list(outcomes)

    def responder(request: dict) -> str:
        if queue:
            raise queue.pop(0)
        return "ok"

    return responder


def test_default_responder_answers_in_openai_shape():
    with FakeOpenAIServer() as server:
        text, retries = asyncio.run(complete(endpoint(server)))
        assert "why does my loop skip the" in text and retries == 0
        assert server.n_requests == server.n_ok == 1 and server.n_failures == server.n_timeouts == 0
        sent = server.requests[0]
        assert sent["model"] == "fake-model" and sent["messages"] == MSGS and sent["max_tokens"] == 300


def test_retries_5xx_429_and_timeouts_then_succeeds():
    outcomes = [FakeHTTPError(500), FakeHTTPError(503), FakeTimeout(), FakeHTTPError(429), FakeHTTPError(502)]
    with FakeOpenAIServer(responder=scripted(*outcomes)) as server:
        text, retries = asyncio.run(complete(endpoint(server, timeout_s=0.3, max_retries=5)))
        assert text == "ok" and retries == 5
        assert server.n_requests == 6 and server.n_failures == 4 and server.n_timeouts == 1 and server.n_ok == 1


def test_gives_up_after_max_retries():
    with FakeOpenAIServer(failure_rate=1.0, timeout_rate=0.0) as server:
        with pytest.raises(EndpointError, match="gave up after 4 attempts"):
            asyncio.run(complete(endpoint(server, max_retries=3)))
        assert server.n_requests == server.n_failures == 4 and server.n_ok == 0


def test_timeouts_give_up_within_the_deadline():
    with FakeOpenAIServer(timeout_rate=1.0) as server:
        started = time.perf_counter()
        with pytest.raises(EndpointError, match="Timeout"):
            asyncio.run(complete(endpoint(server, timeout_s=0.3, max_retries=1)))
        assert time.perf_counter() - started < 0.6 + 0.05 + 1.0  # two attempts + one backoff + slack
        assert server.n_requests == server.n_timeouts == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(status):
    with FakeOpenAIServer(responder=scripted(FakeHTTPError(status, "nope"))) as server:
        with pytest.raises(EndpointError, match=f"HTTP {status}") as err:
            asyncio.run(complete(endpoint(server)))
        assert server.n_requests == 1
        assert isinstance(err.value.__cause__, openai.APIStatusError)
        if status == 401:
            assert "$PR1_TEST_NO_KEY" in str(err.value)


def test_empty_completion_is_an_error():
    with FakeOpenAIServer(responder=lambda request: "  ") as server:
        with pytest.raises(EndpointError, match="empty completion"):
            asyncio.run(complete(endpoint(server)))
        assert server.n_requests == 1


def test_connection_refused_is_retried_then_fails():
    with FakeOpenAIServer() as server:
        cfg = endpoint(server, max_retries=2)
    with pytest.raises(EndpointError, match="gave up after 3 attempts: APIConnectionError"):
        asyncio.run(complete(cfg))


def test_backoff_grows_and_is_bounded():
    rng = random.Random(0)
    delays = [backoff_delay(a, 0.1, 2.0, rng) for a in range(200)]
    assert all(0.05 * 2 ** min(a, 5) <= d <= 2.0 for a, d in enumerate(delays))
    assert delays[-1] == 2.0
    assert backoff_delay(0, 0.1, 2.0, rng, retry_after_s=1.5) == 1.5
    assert backoff_delay(0, 0.1, 2.0, rng, retry_after_s=3600) == 2.0


def test_retry_after_is_honoured_up_to_the_cap():
    slow = FakeHTTPError(429, "slow down", headers={"retry-after": "0.3"})
    huge = FakeHTTPError(429, "slow down", headers={"retry-after": "3600"})
    with FakeOpenAIServer(responder=scripted(slow, huge)) as server:
        started = time.perf_counter()
        text, retries = asyncio.run(complete(endpoint(server, max_backoff_s=0.4)))
        elapsed = time.perf_counter() - started
        assert text == "ok" and retries == 2
        assert 0.3 + 0.4 <= elapsed < 0.3 + 0.4 + 1.0


def test_backoff_is_bounded_end_to_end():
    with FakeOpenAIServer(failure_rate=1.0, timeout_rate=0.0) as server:
        started = time.perf_counter()
        with pytest.raises(EndpointError):
            asyncio.run(complete(endpoint(server, max_retries=8, backoff_s=0.05, max_backoff_s=0.1)))
        # Unbounded doubling would sleep 0.05 * (2**8 - 1) / 2 >= 6.4 s; the cap allows <= 0.8 s.
        assert time.perf_counter() - started < 0.8 + 1.5
        assert server.n_requests == 9


def test_server_serves_hundreds_of_concurrent_requests():
    async def many(cfg):
        async with OpenAIChatClient(cfg) as client:
            return await asyncio.gather(*(client.complete([{"role": "user", "content": f"q{i}"}])
                                          for i in range(200)))

    with FakeOpenAIServer(latency_s=0.2) as server:
        started = time.perf_counter()
        replies = asyncio.run(many(endpoint(server, timeout_s=10)))
        assert len(replies) == 200 and server.n_ok == 200
        assert time.perf_counter() - started < 0.2 * 200 / 4  # served concurrently, not one by one


def test_models_endpoint_and_async_responder():
    async def responder(request: dict) -> str:
        await asyncio.sleep(0.01)
        return "async ok"

    async def run(cfg):
        client = openai.AsyncOpenAI(base_url=cfg.base_url, api_key="EMPTY")
        try:
            models = await client.models.list()
        finally:
            await client.close()
        return [m.id for m in models.data], (await complete(cfg))[0]

    with FakeOpenAIServer(responder=responder) as server:
        assert asyncio.run(run(endpoint(server))) == (["fake-model"], "async ok")


def test_server_stops_cleanly_even_with_hanging_calls():
    threads = set(threading.enumerate())
    server = FakeOpenAIServer(timeout_rate=1.0).start()
    cfg = endpoint(server, timeout_s=30, max_retries=0)

    async def hang_then_stop():
        call = asyncio.create_task(complete(cfg))
        while server.n_timeouts == 0:
            await asyncio.sleep(0.01)
        started = time.perf_counter()
        await asyncio.to_thread(server.stop)
        with pytest.raises(EndpointError):
            await call
        return time.perf_counter() - started

    assert asyncio.run(hang_then_stop()) < 3
    assert set(threading.enumerate()) == threads
    with socket.socket() as sock:  # the port is free again
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", server.port))
    with FakeOpenAIServer(port=server.port) as again:  # and a server can be started on it again
        assert again.base_url == cfg.base_url


def test_response_format_is_sent_and_the_completion_carries_finish_reason_and_usage():
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}, "strict": True}}

    async def run(cfg):
        async with OpenAIChatClient(cfg) as client:
            return await client.complete_full(MSGS, response_format=fmt), await client.complete(MSGS)

    with FakeOpenAIServer(count_tokens=len) as server:
        done, plain = asyncio.run(run(endpoint(server)))
        assert server.requests[0]["response_format"] == fmt and "response_format" not in server.requests[1]
    assert done.finish_reason == "stop" and done.prompt_tokens == len(MSGS[0]["content"]) and plain == done.text


def test_bad_request_errors_keep_status_and_detail_and_tell_context_length_apart():
    async def run(cfg, messages=MSGS):
        async with OpenAIChatClient(cfg) as client:
            return await client.complete(messages, response_format={"type": "json_object"})

    with FakeOpenAIServer(reject_response_format=True) as server:
        with pytest.raises(EndpointError) as refused:
            asyncio.run(run(endpoint(server)))
    with FakeOpenAIServer(context_tokens=50) as server:
        with pytest.raises(EndpointError) as too_long:
            asyncio.run(run(endpoint(server), [{"role": "user", "content": "word " * 100}]))
    assert refused.value.status == 400 and "response_format" in refused.value.detail
    assert not refused.value.context_length
    assert too_long.value.status == 400 and too_long.value.context_length
    assert "maximum context length is 50 tokens" in too_long.value.detail


@pytest.mark.parametrize(("listed", "model", "expected"), [(2048, "fake-model", 2048), (2048, "other-name", 2048),
                                                          (None, "fake-model", None)])
def test_context_window_is_read_from_the_models_listing(listed, model, expected):
    async def run(cfg):
        async with OpenAIChatClient(cfg) as client:
            return await client.context_window()

    with FakeOpenAIServer(max_model_len=listed) as server:
        assert asyncio.run(run(endpoint(server).model_copy(update={"model": model}))) == expected
    with FakeOpenAIServer() as server:
        cfg = endpoint(server, max_retries=0)
    assert asyncio.run(run(cfg)) is None  # nothing listening: unknown, not an error
