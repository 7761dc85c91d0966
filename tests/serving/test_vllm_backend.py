"""The `vllm` backend end to end: Ray Serve LLM (vLLM's CPU build) with the three specialists as multi-LoRA
(max_loras=2, so vLLM swaps them), behind the same router, next to the hf app on the shared Serve proxy.

Ready in ~2 minutes on 2 busy cores. Resources: the LLM replica reserves 2 CPUs (replica + engine); the session's
Ray has 4 logical CPUs and the hf app takes 0.25 of them, so both apps fit without a bigger Ray head.
"""

from __future__ import annotations

import importlib.util

import httpx
import pytest

from parallel_r1.serving.schema import SPECIALIST_HEADER
from tests.serving.support import SPECIALISTS, serve_config

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed")]

QUESTION = [{"role": "user", "content": "Why does my loop skip the first item?"}]


@pytest.fixture(scope="module")
def vllm_url(serve_port, serve_workdir, tiny_base_model):
    from ray import serve

    from parallel_r1.serving.local import start_local

    cfg = serve_config(serve_workdir, tiny_base_model, serve_port, backend="vllm", app_name="parallel_r1_vllm",
                       route_prefix="/vllm", ready_timeout_s=480)
    cfg.inference = cfg.inference.model_copy(update={"engine": "vllm", "max_loras": 2, "max_lora_rank": 8,
                                                     "kv_cache_memory_bytes": 64 * 1024**2})
    yield start_local(cfg)
    serve.delete("parallel_r1_vllm")


def test_vllm_backend_routes_streams_and_refuses_bad_input(vllm_url):
    from openai import BadRequestError, OpenAI

    client = OpenAI(base_url=f"{vllm_url}/v1", api_key="unused", max_retries=0, timeout=120)
    assert [m.id for m in client.models.list().data] == ["parallel-r1", *sorted({*SPECIALISTS, "base"})]
    answers = {}
    for name in (*SPECIALISTS, "base"):
        raw = client.chat.completions.with_raw_response.create(model=name, messages=QUESTION)
        reply = raw.parse()
        assert raw.headers[SPECIALIST_HEADER] == name and reply.usage.completion_tokens > 0
        answers[name] = reply.choices[0].message.content
    assert len(set(answers.values())) == len(answers)  # each adapter (and the base) answers in its own way
    again = client.chat.completions.create(model=SPECIALISTS[0], messages=QUESTION)  # after vLLM swapped adapters
    assert again.choices[0].message.content == answers[SPECIALISTS[0]]

    routed = client.chat.completions.create(model="parallel-r1", messages=QUESTION,
                                            extra_body={"student_profile": {"bad_prior_teacher": True}})
    assert routed.model_dump()["specialist"] == "prior_trauma_recovery"
    assert routed.choices[0].message.content == answers["prior_trauma_recovery"]

    seeded = [client.chat.completions.create(model="neurodivergent", messages=QUESTION, temperature=0.9, seed=3,
                                             n=2).choices for _ in range(2)]
    assert [c.message.content for c in seeded[0]] == [c.message.content for c in seeded[1]]

    chunks = list(client.chat.completions.create(model="neurodivergent", messages=QUESTION, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == answers["neurodivergent"]

    with pytest.raises(BadRequestError):
        client.chat.completions.create(model="neurodivergent", messages=[{"role": "user", "content": "why " * 200}])
    assert httpx.get(f"{vllm_url}/ready").status_code == 200
