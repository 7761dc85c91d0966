"""Serving a real pretrained instruct model (SmolLM2-135M-Instruct) with LoRA specialists on both backends: the
hf app and the vLLM app (multi-LoRA), each on the shared Serve proxy under its own prefix, routing per student and
answering in words with the model's own chat template and system prompt."""

from __future__ import annotations

import importlib.util
import time

import httpx
import pytest

from parallel_r1.serve.schema import SPECIALIST_HEADER
from tests.serve.support import SPECIALISTS, serve_config
from tests.support.adapters import promote, random_adapter

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]
QUESTION = [{"role": "user", "content": "Why do we flip the second fraction when we divide fractions?"}]


@pytest.fixture(scope="module")
def real_workdir(tmp_path_factory, real_base_model):
    workdir = tmp_path_factory.mktemp("real_serve")
    for seed, name in enumerate(SPECIALISTS, start=3):
        promote(workdir, name, random_adapter(real_base_model, workdir / "adapters" / name, seed, r=4))
    return workdir


def _client(url: str):
    from openai import OpenAI

    return OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=300)


def _check(client) -> None:
    assert {m.id for m in client.models.list().data} == {"parallel-r1", "base", *SPECIALISTS}
    answers = {}
    for name in ("base", *SPECIALISTS):
        raw = client.chat.completions.with_raw_response.create(model=name, messages=QUESTION, max_tokens=12)
        answers[name] = raw.parse().choices[0].message.content
        assert raw.headers[SPECIALIST_HEADER] == name
    assert sum(c.isalpha() for c in answers["base"]) >= 10, answers  # words from a real model
    assert len(set(answers.values())) > 1  # the adapters change the replies
    routed = client.chat.completions.create(model="parallel-r1", messages=QUESTION, max_tokens=12,
                                            extra_body={"student_profile": {"bad_prior_teacher": True}})
    assert routed.model_dump()["specialist"] == "prior_trauma_recovery"


def _app(real_workdir, real_base_model, serve_port, **serve):
    cfg = serve_config(real_workdir, real_base_model, serve_port, add_system_prompt=True, max_tokens_limit=32,
                       ready_timeout_s=600, **serve)
    cfg.inference = cfg.inference.model_copy(update={"max_model_len": 1024})
    return cfg


def test_the_hf_backend_serves_the_real_model(serve_port, real_workdir, real_base_model):
    """Also: a client that goes away from a whole (non-streamed) reply through the proxy stops its generation, so the
    next request does not wait behind it (one generation at a time; measured against the whole reply's time)."""
    from ray import serve

    from parallel_r1.serve.stage import start_local

    app = "real_hf"
    cfg = _app(real_workdir, real_base_model, serve_port, app_name=app, route_prefix="/real-hf")
    cfg.serve = cfg.serve.model_copy(update={"max_tokens_limit": 120})
    cfg.inference = cfg.inference.model_copy(update={"max_batch_size": 1})
    url = start_local(cfg)
    try:
        client = _client(url)
        _check(client)
        story = [{"role": "user", "content": "Tell me a long story about a dragon who learns fractions."}]
        long = {"model": "base", "messages": story, "temperature": 0, "max_tokens": 120}
        start = time.perf_counter()
        whole = client.chat.completions.create(**long)
        full_s = time.perf_counter() - start
        assert whole.choices[0].finish_reason == "length"  # the reply runs its full length: the check can fail
        with pytest.raises(httpx.ReadTimeout):  # the client gives up a quarter of the way and closes
            httpx.post(f"{url}/v1/chat/completions", json=long, timeout=httpx.Timeout(60, read=full_s / 4))
        start = time.perf_counter()
        client.chat.completions.create(**{**long, "max_tokens": 1})
        assert time.perf_counter() - start < full_s / 2, full_s
    finally:
        serve.delete(app)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed")
def test_the_vllm_backend_serves_the_real_model_with_multi_lora(serve_port, real_workdir, real_base_model):
    from ray import serve

    from parallel_r1.serve.stage import start_local

    app = "real_vllm"
    cfg = _app(real_workdir, real_base_model, serve_port, backend="vllm", app_name=app, route_prefix="/real-vllm")
    cfg.inference = cfg.inference.model_copy(update={"engine": "vllm", "max_loras": 2, "max_lora_rank": 8,
                                                     "kv_cache_memory_bytes": 256 * 1024**2})
    url = start_local(cfg)
    try:
        _check(_client(url))
    finally:
        serve.delete(app)


def test_a_cancelled_generation_stops_and_frees_the_engine(real_base_model):
    """What a timeout or a client that went away does to the hf model replica: its generation stops at the next
    token, so the next request does not wait behind the abandoned one (measured against the whole reply's time)."""
    import asyncio

    from parallel_r1.config import InferenceConfig
    from parallel_r1.serve.hf_backend import HFSpecialists

    replica = HFSpecialists.func_or_class(InferenceConfig(max_batch_size=1).model_dump(), str(real_base_model), {})
    story = [{"role": "user", "content": "Tell me a long story about a dragon who learns fractions."}]
    long = {"temperature": 0, "max_tokens": 120}

    async def run() -> tuple[float, float]:
        start = time.perf_counter()
        whole = await replica.generate(story, long, "base")
        full_s = time.perf_counter() - start
        assert whole["finish_reasons"] == ["length"]  # the reply runs its full length: the check below can fail
        abandoned = asyncio.ensure_future(replica.generate(story, long, "base"))
        await asyncio.sleep(full_s / 4)
        abandoned.cancel()
        start = time.perf_counter()
        await replica.generate(story, {"temperature": 0, "max_tokens": 1}, "base")
        return full_s, time.perf_counter() - start

    full_s, next_s = asyncio.run(run())
    assert next_s < full_s / 2, (full_s, next_s)
