"""The hf-backend app on a free local port, driven with the real `openai` client: routing (explicit, metadata,
inferred, by model name), token streaming, the execution policy's defaults, /v1/models, health, auth (and the
token kept out of what Serve shows), online grading and concurrent specialists, streamed or not."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from parallel_r1.config import InferenceConfig
from parallel_r1.monitor.log import score_log_path
from parallel_r1.serve.schema import SPECIALIST_HEADER
from tests.serve.support import POLICY_MAX_TOKENS, SPECIALISTS, TOKEN

pytestmark = pytest.mark.slow

ROUTER = "parallel-r1"
QUESTION = [{"role": "user", "content": "Why does my loop skip the first item?"}]
METAPHOR_HATER = [{"role": "user", "content": "No analogies please, what literally happens, line by line?"}]
LONG = 64  # max_tokens past the tiny model's context: replies run to its end
HURT_STUDENT = [{"role": "user", "content": "Sorry if this is obvious. My last teacher said I'm not a maths person."}]


def _chat(client, messages, **kwargs):
    raw = client.chat.completions.with_raw_response.create(model=kwargs.pop("model", ROUTER), messages=messages,
                                                           **kwargs)
    return raw.parse(), raw.headers


def test_explicit_profile_in_body_routes_to_its_specialist(client):
    reply, headers = _chat(client, QUESTION, extra_body={"student_profile": {"bad_prior_teacher": True}})
    body = reply.model_dump()
    assert headers[SPECIALIST_HEADER] == body["specialist"] == "prior_trauma_recovery"
    assert body["route_source"] == "static"
    assert body["student_profile"] == {"kind": "bad_prior_teacher", "traits": ["bad_prior_teacher"], "source": "body"}
    assert reply.choices[0].message.role == "assistant" and reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 0


def test_profile_in_metadata_as_json_string_or_object(client):
    for profile in ('{"rejects_metaphor": true}', {"rejects_metaphor": True}):
        reply, headers = _chat(client, QUESTION, extra_body={"metadata": {"student_profile": profile}})
        body = reply.model_dump()
        assert headers[SPECIALIST_HEADER] == "neurodivergent"
        assert body["student_profile"]["source"] == "metadata" and body["student_profile"]["kind"] == "rejects_metaphor"


def test_inferred_profile_routes_by_the_students_words(client):
    cases = {"neurodivergent": ("rejects_metaphor", METAPHOR_HATER), "prior_trauma_recovery":
             ("bad_prior_teacher", HURT_STUDENT), "varied_original_diverse": ("standard", QUESTION)}
    for specialist, (kind, messages) in cases.items():
        reply, headers = _chat(client, messages)
        body = reply.model_dump()
        assert headers[SPECIALIST_HEADER] == body["specialist"] == specialist
        assert body["student_profile"]["kind"] == kind and body["student_profile"]["source"] == "inferred"


def test_model_name_selects_a_specialist_or_the_base(client):
    for name in (*SPECIALISTS, "base"):
        reply, headers = _chat(client, QUESTION, model=name)
        assert headers[SPECIALIST_HEADER] == name and reply.model == name
        assert reply.model_dump()["route_source"] == "request.model"
        assert reply.model_dump()["student_profile"] == {"kind": None, "traits": [], "source": "not read"}


def _stream(client, messages, **kwargs):
    """A streamed reply through the openai client: (chunks, seconds from the request to each chunk, headers)."""
    started = time.perf_counter()
    with client.chat.completions.with_streaming_response.create(
            model=kwargs.pop("model", ROUTER), messages=messages, stream=True,
            stream_options={"include_usage": True}, **kwargs) as response:
        chunks, times = [], []
        for chunk in response.parse():
            chunks.append(chunk)
            times.append(time.perf_counter() - started)
        return chunks, times, response.headers


def _content(chunks) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_streaming_sends_tokens_as_they_are_generated(client):
    """A long greedy reply (to the context length): about a chunk per token, the same text as without streaming,
    and the first text long before the last (best of three tries: the machine is shared)."""
    whole, _ = _chat(client, QUESTION, model="neurodivergent", max_tokens=LONG)
    assert whole.choices[0].finish_reason == "length" and whole.usage.completion_tokens > 20
    ratios = []
    for _ in range(3):
        chunks, times, headers = _stream(client, QUESTION, model="neurodivergent", max_tokens=LONG)
        assert headers[SPECIALIST_HEADER] == "neurodivergent"
        assert chunks[0].choices[0].delta.role == "assistant"
        assert chunks[-2].choices[0].finish_reason == "length" and not chunks[-1].choices
        assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
        assert _content(chunks) == whole.choices[0].message.content
        assert {c.model_dump()["specialist"] for c in chunks} == {"neurodivergent"}
        arrivals = [t for c, t in zip(chunks, times, strict=True) if c.choices and c.choices[0].delta.content]
        assert len(arrivals) >= whole.usage.completion_tokens // 2  # ~ one chunk per token, not per reply
        ratios.append(arrivals[0] / arrivals[-1])
        if ratios[-1] < 0.5:
            break
    assert min(ratios) < 0.5, ratios


def test_requests_default_to_the_execution_policy(client):
    """The test app's policy (parallel.inference) is greedy with POLICY_MAX_TOKENS tokens: a request that sets
    no sampling gets exactly that; its own settings win."""
    default, _ = _chat(client, QUESTION, model="neurodivergent")
    explicit, _ = _chat(client, QUESTION, model="neurodivergent", temperature=0, max_tokens=POLICY_MAX_TOKENS)
    assert default.choices[0].message.content == explicit.choices[0].message.content
    assert (default.choices[0].finish_reason, default.usage.completion_tokens) == ("length", POLICY_MAX_TOKENS)
    longer, _ = _chat(client, QUESTION, model="neurodivergent", max_tokens=POLICY_MAX_TOKENS + 8)
    assert longer.usage.completion_tokens > POLICY_MAX_TOKENS


def test_n_choices_and_request_sampling(client):
    reply, _ = _chat(client, QUESTION, model="base", n=2, temperature=0.9, seed=5, max_tokens=6)
    assert [c.index for c in reply.choices] == [0, 1]
    assert all(t <= 12 for t in [reply.usage.completion_tokens])


def test_models_health_and_ready(client, served):
    ids = [m.id for m in client.models.list().data]
    assert ids == [ROUTER, *sorted({*SPECIALISTS, "base"})]
    assert httpx.get(f"{served[1]}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{served[1]}/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_auth_is_required(served):
    from openai import AuthenticationError, OpenAI

    url = f"{served[1]}/v1"
    for key in ("wrong", ""):
        bad = OpenAI(base_url=url, api_key=key or "x", max_retries=0, default_headers={} if key else
                     {"Authorization": ""})
        with pytest.raises(AuthenticationError) as err:
            bad.chat.completions.create(model=ROUTER, messages=QUESTION)
        assert err.value.status_code == 401 and "bearer token" in err.value.body["message"]
    assert httpx.get(f"{url}/models").status_code == 401
    assert httpx.get(f"{url}/models", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_the_token_is_in_nothing_serve_shows(served):
    """The router reads the token from its replica's environment: it is in no deployment option, runtime_env
    or config that `serve status` / the dashboard show (the controller's instance details)."""
    import ray
    from ray.serve.context import _get_global_client

    details = json.dumps(ray.get(_get_global_client()._controller.get_serve_instance_details.remote()), default=str)
    assert '"parallel_r1"' in details and TOKEN not in details


def test_concurrent_requests_each_get_their_own_specialists_answer(client, tiny_base_model, serve_workdir):
    from parallel_r1.inference import SamplingParams
    from parallel_r1.inference.hf_engine import HFEngine

    prompts = [QUESTION, METAPHOR_HATER, HURT_STUDENT]
    engine = HFEngine(InferenceConfig(max_batch_size=4), tiny_base_model,
                      {n: serve_workdir / "adapters" / n for n in SPECIALISTS})
    greedy = SamplingParams(temperature=0, max_tokens=12)
    expected = {(s, i): engine.generate([p], greedy, adapter=s)[0].text
                for s in SPECIALISTS for i, p in enumerate(prompts)}
    engine.close()
    assert len({v for (s, i), v in expected.items() if i == 0}) == len(SPECIALISTS)  # the adapters differ
    jobs = [(s, i) for _ in range(3) for s in SPECIALISTS for i in range(len(prompts))]

    def ask(k, job):
        if k % 2:  # every other request streamed: streaming holds the engine's lock like the rest
            chunks, _, headers = _stream(client, prompts[job[1]], model=job[0])
            return headers[SPECIALIST_HEADER], _content(chunks)
        reply, headers = _chat(client, prompts[job[1]], model=job[0])
        return headers[SPECIALIST_HEADER], reply.choices[0].message.content

    with ThreadPoolExecutor(max_workers=9) as pool:
        got = list(pool.map(ask, range(len(jobs)), jobs))
    assert got == [(s, expected[s, i]) for s, i in jobs]


def test_online_grading_appends_records_after_the_response(client, served):
    log = score_log_path(served[0].serve, served[0].workdir)
    before = len(log.read_text().splitlines()) if log.exists() else 0
    _chat(client, HURT_STUDENT)
    deadline = time.monotonic() + 10
    while (len(log.read_text().splitlines()) if log.exists() else 0) <= before and time.monotonic() < deadline:
        time.sleep(0.05)
    record = json.loads(log.read_text().splitlines()[-1])
    assert record["specialist"] == "prior_trauma_recovery" and record["profile_kind"] == "bad_prior_teacher"
    assert record["profile_source"] == "inferred" and 0 <= record["score"] <= 1 and record["latency_s"] > 0
