"""Every kind of registry version is served behind the one router: a merged full model (a Parallel-R1 model, answered
with the student view unless the request asks for the raw format) by the hf backend, and an OpenAI fine-tuned id by
an OpenAI-compatible endpoint (a real local one), streamed and not, its failures as OpenAI-shaped errors; what cannot
be served is listed with the reason. One app serves both kinds for the slow tests here."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from parallel_r1.compare.models import PARALLEL_SFT
from parallel_r1.config import ServeConfig
from parallel_r1.data.parallel_format import student_view
from parallel_r1.inference.engine import SamplingParams
from parallel_r1.registry.promotion import PromotionRecord
from parallel_r1.serve.generation import Delta, Generation, TextDeltas
from parallel_r1.serve.openai_backend import OpenAIRemote
from parallel_r1.serve.parallel_view import settled_prefix, student_stream
from parallel_r1.serve.schema import VERSION_HEADER, APIError
from parallel_r1.serve.served import Target, how_served, read_served
from tests.fakes.openai_server import FakeHTTPError, FakeOpenAIServer, echo_responder
from tests.serve.support import TOKEN, TOKEN_ENV, serve_config
from tests.support.adapters import promote
from tests.support.full_models import parallel_model

REPLY = ("Let us see. <Parallel><Path>check the start index</Path><Path>print each item</Path></Parallel>"
         "<Summary>Your loop starts at 1.</Summary> What index does a list start at?")
VIEW = "Let us see.\nYour loop starts at 1.\nWhat index does a list start at?"
OPENAI_NAME = "openai:neurodivergent"  # the name finetune registers an OpenAI job's model under
FT_ID, FT_ID_2 = "ft:gpt-4o-mini-2024-07-18:acme::abc123", "ft:gpt-4o-mini-2024-07-18:acme::def456"
QUESTION = [{"role": "user", "content": "Why does my loop skip the first item?"}]


def upstream(request: dict) -> str:
    """The fake endpoint's replies: an echo, or the error status a message `UPSTREAM <status>` asks for."""
    last = request["messages"][-1]["content"]
    if last.startswith("UPSTREAM "):
        raise FakeHTTPError(int(last.split()[1]), f"injected {last.split()[1]} by the test")
    return echo_responder(request)


def weights(folder: Path, kind: str) -> Path:
    """A folder the registry takes as `kind` weights (their bytes are never loaded here)."""
    folder.mkdir(parents=True)
    files = ("adapter_config.json", "adapter_model.safetensors") if kind == "adapter" else ("config.json",
                                                                                          "model.safetensors")
    for name in files:
        (folder / name).write_text(json.dumps({"folder": str(folder)}))
    return folder


# ---------------------------------------------------------------- what is served, without Ray


def test_read_served_serves_every_kind_it_can_and_says_why_not_for_the_rest(tmp_path, monkeypatch):
    workdir = tmp_path / "run"
    promote(workdir, "neurodivergent", weights(tmp_path / "adapter", "adapter"))
    full = promote(workdir, PARALLEL_SFT, weights(tmp_path / "sft", "model"), kind="model")
    promote(workdir, OPENAI_NAME, FT_ID, kind="openai")
    monkeypatch.setenv("PARALLEL_R1_TEST_UPSTREAM_KEY", "sk-test")
    remote = ServeConfig(openai_base_url="http://127.0.0.1:9/v1", openai_api_key_env="PARALLEL_R1_TEST_UPSTREAM_KEY")

    served = read_served(workdir, remote)
    assert served.unservable == {} and set(served.models) == {"neurodivergent", PARALLEL_SFT, OPENAI_NAME}
    assert served.target("neurodivergent").kind == "adapter" and not served.target("neurodivergent").parallel
    assert served.target(PARALLEL_SFT) == Target(f"{PARALLEL_SFT}@v1", "model", full.source, parallel=True)
    assert served.target(OPENAI_NAME) == Target(f"{OPENAI_NAME}@v1", "openai", FT_ID)
    assert how_served(served.target(PARALLEL_SFT), remote) == ("hf backend, full model, its own engine; "
                                                               "Parallel-R1 format, student view")
    assert how_served(served.target(OPENAI_NAME), remote) == f"{FT_ID} at http://127.0.0.1:9/v1"

    no_endpoint = read_served(workdir, ServeConfig())
    assert set(no_endpoint.models) == {"neurodivergent", PARALLEL_SFT}
    assert "set serve.openai_base_url" in no_endpoint.unservable[OPENAI_NAME]
    monkeypatch.delenv("PARALLEL_R1_TEST_UPSTREAM_KEY")
    assert "$PARALLEL_R1_TEST_UPSTREAM_KEY, which is not set" in read_served(workdir, remote).unservable[OPENAI_NAME]
    keyless = remote.model_copy(update={"openai_api_key_env": None})  # a local server that needs no key
    assert OPENAI_NAME in read_served(workdir, keyless).models

    vllm = read_served(workdir, ServeConfig(backend="vllm"))
    assert "neurodivergent" in vllm.models and "serve it with serve.backend=hf" in vllm.unservable[PARALLEL_SFT]
    shutil.rmtree(full.source)  # the stored version deleted by hand
    assert "its stored folder" in read_served(workdir, ServeConfig()).unservable[PARALLEL_SFT]


def test_parallel_r1_serve_prints_what_is_served_and_why_the_rest_is_not(tmp_path, monkeypatch):
    from parallel_r1.config import load_config
    from parallel_r1.console import console
    from parallel_r1.serve import stage

    workdir = tmp_path / "run"
    promote(workdir, "neurodivergent", weights(tmp_path / "adapter", "adapter"))
    promote(workdir, PARALLEL_SFT, weights(tmp_path / "sft", "model"), kind="model")
    promote(workdir, OPENAI_NAME, FT_ID, kind="openai")
    monkeypatch.setattr(stage, "start_local", lambda cfg, plan: "http://127.0.0.1:1")  # the app itself: below
    cfg = load_config(None, {"workdir": str(workdir), "base_model.path": str(tmp_path / "base")})
    with console.capture() as out:
        stage.ServeStage(cfg).setup()
    printed = " ".join(out.get().replace("│", " ").split())  # the table's cells, without its borders
    assert f"{PARALLEL_SFT} {PARALLEL_SFT}@v1 hf backend, full model, its own engine; Parallel-R1 format" in printed
    assert "neurodivergent neurodivergent@v1 hf backend, LoRA on the base model" in printed
    assert f"not served: {OPENAI_NAME}: {OPENAI_NAME}@v1 is an OpenAI fine-tuned model ({FT_ID}): set " \
           "serve.openai_base_url" in printed


def test_a_streamed_parallel_reply_adds_up_to_its_student_view_however_it_is_cut():
    replies = [REPLY, "<Parallel><Path>a</Path><Path>b</Path></Parallel><Summary>S1</Summary>"
                      "<Parallel><Path>c</Path><Path>d</Path></Parallel><Summary>S2</Summary>",
               "x < y holds <Parallel><Path>a</Path></Parallel> and no summary", "a reply without tags"]
    assert settled_prefix("Hi <Para") == "Hi " and settled_prefix("Hi <Parallel><Path>a") == "Hi "
    assert settled_prefix("x < y") == "x < y"

    async def view(reply: str, step: int) -> tuple[list[str], str]:
        raw, deltas = TextDeltas(), []
        for end in range(1, len(reply) + 1, step):
            if text := raw.update(reply[:end]):
                deltas.append(text)

        async def events():
            for text in [*deltas, raw.finish(reply.strip())]:
                yield Delta(0, text)
            yield Generation([reply.strip()], ["stop"], 1, [1])

        out = [event async for event in student_stream(events(), 1)]
        return [e.text for e in out if isinstance(e, Delta)], out[-1].texts[0]

    for reply in replies:
        for step in (1, 4, 9):
            streamed, final = asyncio.run(view(reply, step))
            assert "".join(streamed) == final == student_view(reply)
            assert not any("<" in d and "Path" in d for d in streamed)
    assert student_view(REPLY) == VIEW


def test_the_remote_backend_names_an_unreachable_or_slow_endpoint():
    target = Target(f"{OPENAI_NAME}@v1", "openai", FT_ID)
    sampling = SamplingParams(n=1, temperature=0.0, max_tokens=8)
    closed = OpenAIRemote(ServeConfig(openai_base_url="http://127.0.0.1:9/v1", openai_api_key_env=None,
                                      openai_max_retries=0))
    with pytest.raises(APIError) as err:
        asyncio.run(closed.generate(QUESTION, sampling, target))
    assert err.value.status == 502 and "127.0.0.1:9" in err.value.message and err.value.code == "upstream_error"
    with FakeOpenAIServer(timeout_rate=1.0, hang_s=5) as server:
        slow = OpenAIRemote(ServeConfig(openai_base_url=server.base_url, openai_api_key_env=None,
                                        openai_timeout_s=0.3, openai_max_retries=0))
        with pytest.raises(APIError) as err:
            asyncio.run(slow.generate(QUESTION, sampling, target))
    assert err.value.status == 504 and err.value.code == "upstream_timeout"


# ---------------------------------------------------------------- served through the router (Ray Serve)


@pytest.fixture(scope="module")
def kinds(serve_port, tiny_base_model, tmp_path_factory):
    """An app serving a trained Parallel-R1 full model (`parallel_sft`, hf backend, one full model loaded at a time)
    and an OpenAI fine-tuned id answered by a local OpenAI-compatible server."""
    from ray import serve

    from parallel_r1.serve.stage import start_local

    root = tmp_path_factory.mktemp("kinds")
    workdir = root / "run"
    promote(workdir, PARALLEL_SFT, parallel_model(tiny_base_model, root / "sft_v1", REPLY), kind="model")
    promote(workdir, OPENAI_NAME, FT_ID, kind="openai")
    with FakeOpenAIServer(upstream) as server:
        cfg = serve_config(workdir, tiny_base_model, serve_port, app_name="kinds", route_prefix="/kinds",
                           reload_interval_s=0.2, grading_fraction=0.0, max_loaded_models=1,
                           openai_base_url=server.base_url, openai_api_key_env=TOKEN_ENV, openai_max_retries=0)
        url = start_local(cfg)
        try:
            yield SimpleNamespace(url=url, workdir=workdir, root=root, server=server)
        finally:
            serve.delete("kinds")


def client(url: str):
    from openai import OpenAI

    return OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)


def chat(url: str, **body) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120)


@pytest.mark.slow
def test_ready_and_models_list_every_served_kind(kinds):
    ready = httpx.get(f"{kinds.url}/ready", timeout=30).json()
    assert ready["versions"] == {PARALLEL_SFT: f"{PARALLEL_SFT}@v1", OPENAI_NAME: f"{OPENAI_NAME}@v1"}
    assert ready["kinds"] == {PARALLEL_SFT: "model", OPENAI_NAME: "openai"} and ready["not_served"] == {}
    models = {m["id"]: m for m in client(kinds.url).models.list().model_dump()["data"]}
    assert set(models) == {"parallel-r1", "base", PARALLEL_SFT, OPENAI_NAME}
    assert (models[OPENAI_NAME]["version"], models[OPENAI_NAME]["kind"]) == (f"{OPENAI_NAME}@v1", "openai")


@pytest.mark.slow
def test_a_promoted_parallel_r1_full_model_answers_with_the_student_view_or_raw(kinds):
    r = chat(kinds.url, model=PARALLEL_SFT, messages=QUESTION, max_tokens=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert r.headers[VERSION_HEADER] == body["version"] == f"{PARALLEL_SFT}@v1"
    assert body["choices"][0]["message"]["content"] == VIEW and body["parallel_view"] == "student"
    assert body["usage"]["completion_tokens"] > len(VIEW.split())  # the paths were generated, not shown

    raw = chat(kinds.url, model=PARALLEL_SFT, messages=QUESTION, max_tokens=60, parallel_view="raw").json()
    assert raw["choices"][0]["message"]["content"] == REPLY and raw["parallel_view"] == "raw"

    stream = client(kinds.url).chat.completions.create(model=PARALLEL_SFT, messages=QUESTION, max_tokens=60,
                                                       stream=True)
    deltas = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert "".join(deltas) == VIEW and not any("Path" in d for d in deltas)
    bad = chat(kinds.url, model=PARALLEL_SFT, messages=QUESTION, parallel_view="paths")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "parallel_view"


@pytest.mark.slow
def test_an_openai_fine_tuned_version_is_answered_by_the_openai_compatible_endpoint(kinds):
    question = [{"role": "user", "content": "What is a loop exactly?"}]
    expected = echo_responder({"messages": question})
    raw = client(kinds.url).chat.completions.with_raw_response.create(model=OPENAI_NAME, messages=question,
                                                                      max_tokens=20, temperature=0.5, seed=3)
    assert raw.headers[VERSION_HEADER] == f"{OPENAI_NAME}@v1"
    reply = raw.parse()
    assert reply.choices[0].message.content == expected and reply.model_dump()["version"] == f"{OPENAI_NAME}@v1"
    sent = kinds.server.requests[-1]
    assert (sent["model"], sent["messages"], sent["max_tokens"], sent["temperature"], sent["seed"]) == (
        FT_ID, question, 20, 0.5, 3)
    assert kinds.server.authorizations[-1] == f"Bearer {TOKEN}"  # the key from serve.openai_api_key_env

    chunks = list(client(kinds.url).chat.completions.create(model=OPENAI_NAME, messages=question, max_tokens=20,
                                                            stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected
    assert chunks[-1].usage.completion_tokens == len(expected.split()) and kinds.server.requests[-1]["stream"]
    assert {c.model_dump()["version"] for c in chunks} == {f"{OPENAI_NAME}@v1"}


@pytest.mark.slow
def test_upstream_failures_are_openai_shaped_errors(kinds):
    for status, expected, code in ((503, 502, "upstream_error"), (401, 502, "upstream_error"),
                                   (429, 429, "rate_limit_exceeded"), (400, 400, "invalid_request")):
        for stream in (False, True):
            r = chat(kinds.url, model=OPENAI_NAME, messages=[{"role": "user", "content": f"UPSTREAM {status}"}],
                     stream=stream)
            assert r.status_code == expected and r.headers["content-type"] == "application/json", (status, r.text)
            error = r.json()["error"]
            assert error["code"] == code and f"injected {status}" in error["message"], error
            if expected != 400:
                assert kinds.server.base_url in error["message"] and f"{OPENAI_NAME}@v1" in error["message"]


@pytest.mark.slow
def test_promotions_and_rollbacks_of_full_and_openai_versions_are_served_without_a_restart(kinds, tiny_base_model):
    from ray import serve

    def served_version(model: str, version: str, timeout_s: float = 90) -> httpx.Response:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            r = chat(kinds.url, model=model, messages=QUESTION, max_tokens=60)
            if r.status_code == 200 and r.headers[VERSION_HEADER] == version:
                return r
            time.sleep(0.2)
        raise AssertionError(f"{version} was never served")

    promote(kinds.workdir, PARALLEL_SFT, parallel_model(tiny_base_model, kinds.root / "sft_v2"), 0.7, kind="model")
    promote(kinds.workdir, OPENAI_NAME, FT_ID_2, 0.7, kind="openai")
    served_version(PARALLEL_SFT, f"{PARALLEL_SFT}@v2")
    backend = serve.get_deployment_handle("HFSpecialists", "kinds")
    assert backend.models.remote().result() == ["base", f"{PARALLEL_SFT}@v2"]  # v1's engine dropped: 1 loaded at most
    served_version(OPENAI_NAME, f"{OPENAI_NAME}@v2")
    assert kinds.server.requests[-1]["model"] == FT_ID_2
    record = PromotionRecord(kinds.workdir)
    record.rollback(PARALLEL_SFT, reason="test")
    record.rollback(OPENAI_NAME, reason="test")
    back = served_version(PARALLEL_SFT, f"{PARALLEL_SFT}@v1")
    assert back.json()["choices"][0]["message"]["content"] == VIEW  # reloaded from its stored folder
    served_version(OPENAI_NAME, f"{OPENAI_NAME}@v1")
    assert kinds.server.requests[-1]["model"] == FT_ID
