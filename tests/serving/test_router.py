"""The hf-backend app on a free local port, driven with the real `openai` client: routing (explicit, metadata,
inferred, by model name), streaming, /v1/models, health, auth, online grading and concurrent specialists."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from parallel_r1.config import InferenceConfig
from parallel_r1.serving.online_grading import score_log_path
from parallel_r1.serving.schema import SPECIALIST_HEADER
from tests.serving.support import SPECIALISTS, TOKEN

pytestmark = pytest.mark.slow

ROUTER = "parallel-r1"
QUESTION = [{"role": "user", "content": "Why does my loop skip the first item?"}]
METAPHOR_HATER = [{"role": "user", "content": "No analogies please, what literally happens, line by line?"}]
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


def test_streaming_gives_the_same_text_as_non_streaming(client):
    whole, _ = _chat(client, QUESTION, model="neurodivergent")
    with client.chat.completions.with_streaming_response.create(model="neurodivergent", messages=QUESTION,
                                                                stream=True) as response:
        assert response.headers[SPECIALIST_HEADER] == "neurodivergent"
        chunks = list(response.parse())
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[-1].choices[0].finish_reason
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == whole.choices[0].message.content
    assert {c.model_dump()["specialist"] for c in chunks} == {"neurodivergent"}


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

    def ask(job):
        reply, headers = _chat(client, prompts[job[1]], model=job[0])
        return headers[SPECIALIST_HEADER], reply.choices[0].message.content

    with ThreadPoolExecutor(max_workers=9) as pool:
        got = list(pool.map(ask, jobs))
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
