"""The `vllm` backend end to end: Ray Serve LLM (vLLM's CPU build) with the three specialists as multi-LoRA
(max_loras=2, so vLLM swaps them), behind the same router, next to the hf app on the shared Serve proxy; and
base-model requests batched with specialist requests (vLLM's CPU build answers a no-LoRA prompt in a mixed batch
through a stale adapter slot). Every test runs twice: with the Serve LLM deployment, and with the engine in the
router's replica (`serve.vllm_in_router`).

Ready in ~2 minutes on 2 busy cores. Resources: the LLM replica reserves 2 CPUs (replica + engine); the session's
Ray has 4 logical CPUs and the hf app takes 0.25 of them, so both apps fit without a bigger Ray head.
"""

from __future__ import annotations

import importlib.util
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from parallel_r1.serve.schema import SPECIALIST_HEADER
from tests.serve.support import POLICY_MAX_TOKENS, SPECIALISTS, serve_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500),  # the engine's start: minutes more on a loaded host
              pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed")]

APP = "parallel_r1_vllm"
QUESTION = [{"role": "user", "content": "Why does my loop skip the first item?"}]
OTHER = [{"role": "user", "content": "No analogies please, what literally happens, line by line?"}]


def _content(chunks) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def _without_lora(messages) -> str:
    """The greedy reply of the LLM deployment itself to a request with no LoRA at all (sent alone)."""
    import asyncio

    from ray import serve
    from ray.serve.llm.openai_api_models import ChatCompletionRequest

    from parallel_r1.serve.vllm_backend import BASE_MODEL_ID

    handle = serve.get_deployment_handle(f"{APP}:{BASE_MODEL_ID}", APP).options(stream=True)
    request = ChatCompletionRequest(model=BASE_MODEL_ID, messages=messages, temperature=0,
                                    max_tokens=POLICY_MAX_TOKENS)

    async def reply() -> str:
        async for item in handle.chat.remote(request, None):
            for part in item if isinstance(item, list) else [item]:
                return part.choices[0].message.content.strip()

    return asyncio.run(reply())


@pytest.fixture()
def client(vllm_url):
    from openai import OpenAI

    return OpenAI(base_url=f"{vllm_url}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module", params=[False, True], ids=["deployment", "in_router"])
def in_router(request) -> bool:
    return request.param


def _vllm_config(serve_port, serve_workdir, tiny_base_model, app: str, in_router: bool, **inference):
    cfg = serve_config(serve_workdir, tiny_base_model, serve_port, backend="vllm", app_name=app,
                       route_prefix=f"/{app}", ready_timeout_s=480, vllm_in_router=in_router)
    cfg.inference = cfg.inference.model_copy(update={"engine": "vllm", "max_loras": 2, "max_lora_rank": 8,
                                                     "kv_cache_memory_bytes": 64 * 1024**2, **inference})
    return cfg


@pytest.fixture(scope="module")
def vllm_url(serve_port, serve_workdir, tiny_base_model, in_router):
    from ray import serve

    from parallel_r1.serve.stage import start_local

    yield start_local(_vllm_config(serve_port, serve_workdir, tiny_base_model, APP, in_router))
    serve.delete(APP)


def test_an_engine_that_cannot_start_in_the_router_is_its_error_at_once(serve_port, serve_workdir, tiny_base_model):
    """The engine in the router starts on the first `/ready`: its failure (a context over the model's 64 tokens)
    ends `serve`'s wait with vLLM's own error, not after serve.ready_timeout_s with a bare 503."""
    from ray import serve

    from parallel_r1.errors import UserFacingError
    from parallel_r1.serve.stage import start_local

    cfg = _vllm_config(serve_port, serve_workdir, tiny_base_model, "unstartable", True, max_model_len=4096)
    try:
        with pytest.raises(UserFacingError, match="its model failed") as e:
            start_local(cfg)
    finally:
        serve.delete("unstartable")
    assert "4096" in str(e.value), e.value


def test_the_engine_runs_where_the_config_puts_it(vllm_url, in_router):
    from ray import serve

    deployments = set(serve.status().applications[APP].deployments)
    assert "Router" in deployments
    assert (deployments == {"Router"}) == in_router  # else the Serve LLM deployment beside it


REPLIES: dict[bool, dict[str, str]] = {}  # in_router -> each model's greedy reply to QUESTION


def test_vllm_backend_routes_streams_and_refuses_bad_input(vllm_url, client, in_router):
    from openai import BadRequestError

    assert [m.id for m in client.models.list().data] == ["parallel-r1", *sorted({*SPECIALISTS, "base"})]
    answers = {}
    for name in (*SPECIALISTS, "base"):
        raw = client.chat.completions.with_raw_response.create(model=name, messages=QUESTION)
        reply = raw.parse()
        assert raw.headers[SPECIALIST_HEADER] == name and reply.usage.completion_tokens > 0
        answers[name] = reply.choices[0].message.content
    assert len(set(answers.values())) == len(answers)  # each adapter (and the base) answers in its own way
    REPLIES[in_router] = answers
    if len(REPLIES) == 2:  # the same engine settings wherever the engine runs: the same greedy replies
        assert REPLIES[True] == REPLIES[False]
    again = client.chat.completions.create(model=SPECIALISTS[0], messages=QUESTION)  # after vLLM swapped adapters
    assert again.choices[0].message.content == answers[SPECIALISTS[0]]

    routed = client.chat.completions.create(model="parallel-r1", messages=QUESTION,
                                            extra_body={"student_profile": {"bad_prior_teacher": True}})
    assert routed.model_dump()["specialist"] == "prior_trauma_recovery"
    assert routed.choices[0].message.content == answers["prior_trauma_recovery"]

    seeded = [client.chat.completions.create(model="neurodivergent", messages=QUESTION, temperature=0.9, seed=3,
                                             n=2).choices for _ in range(2)]
    assert [c.message.content for c in seeded[0]] == [c.message.content for c in seeded[1]]

    chunks = list(client.chat.completions.create(model="neurodivergent", messages=QUESTION, stream=True,
                                                 stream_options={"include_usage": True}))
    assert _content(chunks) == answers["neurodivergent"] and chunks[-1].usage.completion_tokens > 0
    long = list(client.chat.completions.create(model="neurodivergent", messages=QUESTION, stream=True, max_tokens=40))
    assert sum(bool(c.choices and c.choices[0].delta.content) for c in long) > 1  # tokens, not one finished reply

    with pytest.raises(BadRequestError):
        client.chat.completions.create(model="neurodivergent", messages=[{"role": "user", "content": "why " * 200}])
    assert httpx.get(f"{vllm_url}/ready").status_code == 200


def test_base_requests_batched_with_specialist_requests_get_the_base_models_reply(client, in_router):
    """vLLM's CPU build answers a prompt without a LoRA through a stale adapter slot when it shares a batch with
    LoRA prompts: many concurrent base and specialist requests (streamed or not), each checked against the
    greedy reply of the same request sent alone."""
    models = ("base", *SPECIALISTS)
    prompts = (QUESTION, OTHER)
    alone = {(m, i): client.chat.completions.create(model=m, messages=p).choices[0].message.content
             for m in models for i, p in enumerate(prompts)}
    jobs = [(m, i, k % 3 == 0) for k, (m, i) in enumerate([(m, i) for _ in range(3) for m in models
                                                            for i in range(len(prompts))])]

    def ask(job):
        model, i, stream = job
        if stream:
            return _content(client.chat.completions.create(model=model, messages=prompts[i], stream=True))
        return client.chat.completions.create(model=model, messages=prompts[i]).choices[0].message.content

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        got = list(pool.map(ask, jobs))
    wrong = [(m, i, s, g) for (m, i, s), g in zip(jobs, got, strict=True) if g != alone[m, i]]
    assert not wrong, f"{len(wrong)} of {len(jobs)} replies differ from the lone request's: {wrong[:4]}"
    if not in_router:  # `base` is served through a zero LoRA: its replies are the model's without any LoRA, sent alone
        assert [_without_lora(p) for p in prompts] == [alone["base", i] for i in range(len(prompts))]


def test_zero_adapter_is_a_specialist_with_every_weight_zero(serve_workdir, tmp_path):
    import json

    from safetensors.torch import load_file

    from parallel_r1.serve.vllm_backend import ADAPTER_WEIGHTS, write_zero_adapter

    like = serve_workdir / "adapters" / SPECIALISTS[0]
    zero = write_zero_adapter(like, tmp_path / "zero")
    assert json.loads((zero / "adapter_config.json").read_text()) == json.loads(
        (like / "adapter_config.json").read_text())
    weights, original = load_file(zero / ADAPTER_WEIGHTS), load_file(like / ADAPTER_WEIGHTS)
    assert weights.keys() == original.keys() and all(not w.any() for w in weights.values())
    assert all(w.shape == original[k].shape for k, w in weights.items())
