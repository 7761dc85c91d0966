"""The serving components without Ray: routing rules, the score log, request validation, the app plan's checks of the
run directory and the wait for a stop signal (profile reading is tested in tests/profiles)."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time

import pytest

from parallel_r1.compare.report import read_routing_table
from parallel_r1.config import ConfigError, ServeConfig, load_config
from parallel_r1.data.profiles import PROFILE_KINDS
from parallel_r1.errors import UserFacingError
from parallel_r1.inference.engine import SamplingParams
from parallel_r1.inference.policy import ParallelExecutionPolicy
from parallel_r1.registry.versions import ModelRegistry
from parallel_r1.serve.generation import TextDeltas
from parallel_r1.serve.online_grading import OnlineGrader, append_line
from parallel_r1.serve.routing import Route, Router
from parallel_r1.serve.schema import (
    APIError,
    parse_request,
    request_sampling,
    requested_profile,
    with_instruction,
    with_system_prompt,
)
from parallel_r1.serve.stage import wait_for_stop_signal

STATIC = ServeConfig().static_routes
AVAILABLE = ["neurodivergent", "prior_trauma_recovery", "varied_original_diverse", "short_original_high"]


def test_routing_json_wins_over_static_routes_when_it_names_a_loaded_model():
    table = {"default": "short_original_high", "by_profile": {
        "hyperfocus": {"model": "short_original_high", "significant": True},
        "standard": {"model": "not_deployed", "significant": True}}}
    router = Router(AVAILABLE, table, STATIC)
    assert router.route("hyperfocus").specialist == "short_original_high"
    assert router.route("hyperfocus").source == "routing.json"
    assert (router.route("standard").specialist, router.route("standard").source) == ("varied_original_diverse",
                                                                                      "static")
    assert [kind for kind, _, _ in router.describe()] == list(PROFILE_KINDS)


def test_static_fallback_then_default_then_base():
    assert Router(AVAILABLE, None, STATIC).route("rejects_metaphor").specialist == "neurodivergent"
    assert Router(AVAILABLE, None, STATIC).route("bad_prior_teacher").specialist == "prior_trauma_recovery"
    only_one = Router(["short_original_high"], {"default": "short_original_high"}, STATIC)
    assert (only_one.route("standard").specialist, only_one.route("standard").source) == ("short_original_high",
                                                                                          "default")
    assert Router([], None, STATIC).route("standard").specialist == "base"
    with pytest.raises(UserFacingError, match="serve.static_routes: unknown profile kind"):
        Router(AVAILABLE, None, {"sleepy": "neurodivergent"})


def test_routing_table_file_errors_name_the_file(tmp_path):
    assert read_routing_table(tmp_path / "missing.json") is None
    bad = tmp_path / "routing.json"
    bad.write_text("{not json")
    with pytest.raises(UserFacingError, match="routing.json is not valid JSON"):
        read_routing_table(bad)
    bad.write_text(json.dumps({"by_profile": []}))
    with pytest.raises(UserFacingError, match="is not a routing table"):
        read_routing_table(bad)


def test_score_log_lines_stay_whole_under_concurrent_writers(tmp_path):
    log = tmp_path / "serve" / "scores.jsonl"
    payload = "x" * 5000

    def write(i: int) -> None:
        for j in range(50):
            append_line(log, {"writer": i, "j": j, "payload": payload})

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(rows) == 400 and {r["payload"] for r in rows} == {payload}


def test_online_grader_fraction_and_record(tmp_path):
    from parallel_r1.data.profiles import StudentProfileConfig

    assert not any(OnlineGrader(0.0, tmp_path / "a.jsonl").should_grade() for _ in range(100))
    sometimes = OnlineGrader(0.3, tmp_path / "b.jsonl", seed=1)
    assert 40 < sum(sometimes.should_grade() for _ in range(200)) < 80
    grader = OnlineGrader(1.0, tmp_path / "c.jsonl")
    record = grader.grade(request_id="r1", history=[{"role": "system", "content": "be kind"},
                                                    {"role": "user", "content": "What is a loop?"}],
                          reply="What do you think happens on each pass?", specialist="neurodivergent",
                          profile=StudentProfileConfig(hyperfocus_trait=True), profile_source="body",
                          route_source="static", latency_s=0.01)
    assert json.loads((tmp_path / "c.jsonl").read_text()) == record
    assert record["profile_kind"] == "hyperfocus" and record["traits"] == ["neurodivergent", "hyperfocus_trait"]
    # a request that named its model comes without a profile: the grade reads it after the response
    unread = grader.grade(request_id="r2", history=[{"role": "user", "content": "please no analogies, I hate "
                                                                                   "metaphors, just the steps"}],
                          reply="First, write the loop header.", specialist="base", profile=None,
                          profile_source="not read", route_source="request.model", latency_s=0.01)
    assert unread["profile_source"] == "inferred" and "rejects_metaphor" in unread["traits"]


class _GatedGrader:
    """A rubric grader that waits for `gate` and fails on the reply "boom"; records the grading thread's nice."""

    def __init__(self):
        from parallel_r1.grade import HeuristicRubricGrader

        self.gate, self.nice, self.rubric = threading.Event(), None, HeuristicRubricGrader()

    def grade_turn(self, history, reply, profile=None):
        self.gate.wait(10)
        self.nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        if reply == "boom":
            raise ValueError("a grader that fails")
        return self.rubric.grade_turn(history, reply, profile)


def test_online_grading_runs_behind_serving_on_a_bounded_backlog(tmp_path):
    from parallel_r1.data.profiles import StudentProfileConfig

    graded, rubric = [], _GatedGrader()
    grader = OnlineGrader(1.0, tmp_path / "scores.jsonl", grader=rubric, backlog=2, on_graded=graded.append)
    reply = dict(history=[{"role": "user", "content": "What is a loop?"}], specialist="base",
                 profile=StudentProfileConfig(), profile_source="body", route_source="static", latency_s=0.01)
    assert grader.submit(request_id="r1", reply="boom", **reply)  # taken by the thread, which waits at the gate
    deadline = time.monotonic() + 10
    while not grader._queue.empty() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert grader.submit(request_id="r2", reply="What happens first?", **reply)
    assert grader.submit(request_id="r3", reply="And then?", **reply)
    assert not grader.submit(request_id="r4", reply="Lost", **reply) and grader.skipped == 1  # backlog full
    rubric.gate.set()
    grader.join()
    lines = [json.loads(line) for line in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert [r["request_id"] for r in lines] == ["r2", "r3"] == [g["request_id"] for g in graded]  # r1 failed alone
    if sys.platform == "linux":
        assert rubric.nice == 19 and os.getpriority(os.PRIO_PROCESS, 0) < 19  # the thread, not the process


def test_requested_profile_sources():
    cfg = ServeConfig()
    body = {"model": "m", "messages": [{"role": "developer", "content": "x"}, {"role": "user", "content": "hi"}]}
    assert requested_profile(parse_request(json.dumps(body).encode(), cfg)) == (None, None)
    chat = parse_request(json.dumps({**body, "student_profile": {"hyperfocus_trait": True}}).encode(), cfg)
    assert requested_profile(chat)[0].kind == "hyperfocus" and requested_profile(chat)[1] == "body"
    assert chat.conversation()[0]["role"] == "system"
    with pytest.raises(APIError) as err:
        parse_request(json.dumps({**body, "metadata": {"student_profile": {"x": 1}}}).encode(), cfg)
    assert err.value.status == 400 and err.value.param == "metadata.student_profile.x"


def test_serve_config_section():
    cfg = load_config(None, ["serve.port=9123", "serve.backend=vllm", "serve.model_num_cpus=0.25"])
    assert (cfg.serve.port, cfg.serve.backend, cfg.serve.model_num_cpus) == (9123, "vllm", 0.25)
    assert all(f.description for f in ServeConfig.model_fields.values())
    with pytest.raises(ConfigError, match="serve.grading_fraction"):
        load_config(None, ["serve.grading_fraction=2"])
    with pytest.raises(ConfigError, match="serve.colour: unknown field"):
        load_config(None, ["serve.colour=red"])


def test_the_engine_in_the_router_is_only_for_the_vllm_backend():
    with pytest.raises(ConfigError, match="serve.vllm_in_router needs serve.backend 'vllm', not 'hf'"):
        load_config(None, ["serve.vllm_in_router=true"])
    assert load_config(None, ["serve.vllm_in_router=true", "serve.backend=vllm"]).serve.vllm_in_router


@pytest.mark.parametrize("metrics", [True, False])
def test_the_vllm_engine_records_its_metrics_unless_configured_off(serve_workdir, tiny_base_model, metrics):
    from parallel_r1.inference.vllm_cpu_lora import LORA_ENV
    from parallel_r1.serve.app import plan
    from parallel_r1.serve.vllm_backend import llm_config
    from tests.serve.support import serve_config

    assert ServeConfig().engine_metrics
    cfg = serve_config(serve_workdir, tiny_base_model, 8000, backend="vllm", engine_metrics=metrics)
    serve_plan = plan(cfg)
    adapters = {v.ref: v.source for v in serve_plan.served.models.values() if v.kind == "adapter"}
    config = llm_config(cfg, serve_plan.base_model, adapters)
    assert config.log_engine_metrics is metrics
    assert config.runtime_env["env_vars"][LORA_ENV] == cfg.inference.vllm_cpu_lora == "grouped"  # its CPU LoRA ops


def test_the_router_calls_the_model_by_value_over_grpc_unless_configured_off():
    """`serve.grpc_handles` (on by default, so every served test goes that way) sets the router's handle to the
    model deployment to `_by_reference=False`: Ray Serve's inter-deployment gRPC."""
    from parallel_r1.serve.generation import backend_client

    class Handle:
        def __init__(self, options=None):
            self.opts = options or {}

        def options(self, **kw):
            return Handle({**self.opts, **kw})

    assert ServeConfig().grpc_handles
    on, off = backend_client("hf", Handle(), True, []), backend_client("hf", Handle(), False, [])
    assert on._handle.opts == {"_by_reference": False}
    assert on._streaming.opts == {"_by_reference": False, "stream": True}
    assert off._handle.opts == {} and off._streaming.opts == {"stream": True}


def test_plan_names_the_missing_or_corrupt_artifacts(tmp_path, tiny_base_model, serve_workdir):
    import shutil

    from parallel_r1.registry.versions import RegistryError
    from parallel_r1.serve.app import plan
    from tests.support.adapters import promote

    with pytest.raises(FileNotFoundError, match="run `parallel-r1 init-model` first"):
        plan(load_config(None, {"workdir": str(tmp_path)}))
    cfg = load_config(None, {"workdir": str(tmp_path), "base_model.path": str(tiny_base_model)})
    version = promote(tmp_path, "neurodivergent", serve_workdir / "adapters" / "neurodivergent")
    shutil.rmtree(version.source)  # the stored version deleted by hand
    assert "its stored folder" in plan(cfg).served.unservable["neurodivergent"]
    (tmp_path / "promotion.json").write_text("{torn")
    with pytest.raises(RegistryError, match="promotion.json is not a promotion record"):
        plan(cfg)


def test_serve_config_file_builds_the_app(serve_workdir, tiny_base_model, monkeypatch):
    """serve/config.yaml is a valid Serve config whose import path builds the router app from its args."""
    from pathlib import Path

    import yaml
    from ray.serve.deployment import Application
    from ray.serve.schema import ServeDeploySchema

    from parallel_r1.serve.app import app_builder

    spec = ServeDeploySchema.model_validate(yaml.safe_load((Path(__file__).parents[2] / "serve" / "config.yaml")
                                                           .read_text()))
    app = spec.applications[0]
    assert app.import_path == "parallel_r1.serve.app:app_builder"
    monkeypatch.setenv("PARALLEL_R1_WORKDIR", str(serve_workdir))
    built = app_builder({**app.args, "set": [*app.args["set"], f"base_model.path={tiny_base_model}"]})
    assert isinstance(built, Application)
    with pytest.raises(UserFacingError, match="unknown key"):
        app_builder({"workdri": "x"})


def test_cli_serve_names_the_missing_run_directory_artifacts(tmp_path, tiny_base_model):
    from typer.testing import CliRunner

    from parallel_r1.cli import app

    result = CliRunner().invoke(app, ["serve", "--workdir", str(tmp_path), "--set",
                                      f"base_model.path={tiny_base_model}", "--port", "18765"])
    assert result.exit_code == 2 and "nothing is promoted" in result.output and "`gate`" in result.output


def test_system_prompt_and_parallel_instruction():
    user = [{"role": "user", "content": "hi"}]
    assert with_system_prompt(user, "be patient") == [{"role": "system", "content": "be patient"}, *user]
    own = [{"role": "system", "content": "mine"}, *user]
    assert with_system_prompt(own, "be patient") == own and with_system_prompt(user, "") == user
    instruction = ParallelExecutionPolicy(branches=2).instruction()
    assert with_instruction(own, instruction) == [{"role": "system", "content": f"mine\n\n{instruction}"}, *user]
    assert with_instruction(user, instruction) == [{"role": "system", "content": instruction}, *user]


def test_text_deltas_add_up_to_the_stripped_reply():
    """Whitespace at either end and a half-decoded character wait until text follows them."""
    deltas = TextDeltas()
    raws = ["", " ", " Step", " Step 1: ", " Step 1: caf\ufffd", " Step 1: café", " Step 1: café \n"]
    got = [deltas.update(raw) for raw in raws]
    assert got == ["", "", "Step", " 1:", " caf", "é", ""]
    assert deltas.finish(raws[-1].strip()) == "" and deltas.sent == "Step 1: café"
    cut = TextDeltas()
    cut.update("Step 1:")
    assert cut.finish("Step 1: \ufffd") == " \ufffd"  # the final reply wins over what decoding held back


def test_text_deltas_never_send_a_stop_string_or_what_may_become_one():
    deltas = TextDeltas(stop=("STOP", "\n\n"))
    raws = ["Step", "Step 1 ST", "Step 1 STO", "Step 1 STOP and more", "Step 1 STOP and more\n\n"]
    assert [deltas.update(raw) for raw in raws] == ["Step", " 1", "", "", ""]
    assert deltas.finish("Step 1") == "" and deltas.sent == "Step 1"
    held = TextDeltas(stop=("STOP",))
    assert [held.update(raw) for raw in ["a ST", "a STA"]] == ["a", " STA"]  # not a stop after all


def test_sampling_defaults_come_from_the_execution_policy():
    cfg = load_config(None, ["parallel.inference.temperature=0.3", "parallel.inference.top_p=0.5",
                             "parallel.inference.max_tokens=77"])
    policy = ParallelExecutionPolicy.from_config(cfg.parallel.inference)
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    unset = request_sampling(parse_request(json.dumps(body).encode(), cfg.serve), policy)
    assert (unset.temperature, unset.top_p, unset.max_tokens) == (0.3, 0.5, 77)
    chat = parse_request(json.dumps({**body, "temperature": 0, "top_p": 0.9, "max_completion_tokens": 5, "n": 2,
                                     "seed": 4}).encode(), cfg.serve)
    assert request_sampling(chat, policy) == SamplingParams(n=2, temperature=0, top_p=0.9, max_tokens=5, seed=4)
    assert ServeConfig().parallel_format is False  # the finetune specialists were not trained on the format


def test_plan_serves_promoted_versions_only_and_routes_on_significant_margins(serve_workdir, tiny_base_model,
                                                                              tmp_path):
    from parallel_r1.serve.app import plan
    from parallel_r1.serve.served import Target
    from tests.support.adapters import promote

    workdir = tmp_path / "run"
    cfg = load_config(None, {"workdir": str(workdir), "base_model.path": str(tiny_base_model)})
    assert plan(cfg).served.models == {}  # nothing promoted: the base model only
    for name in ("neurodivergent", "prior_trauma_recovery"):
        promote(workdir, name, serve_workdir / "adapters" / name)
    refused = ModelRegistry(workdir).register("varied_original_diverse", "adapter",
                                              serve_workdir / "adapters" / "varied_original_diverse")
    loaded = plan(cfg)
    assert loaded.served.routing_table is None
    assert {n: v.ref for n, v in loaded.served.models.items()} == {"neurodivergent": "neurodivergent@v1",
                                                                    "prior_trauma_recovery": "prior_trauma_recovery@v1"}
    assert refused.name not in loaded.served.models  # registered, never promoted: never served
    source = loaded.served.models["neurodivergent"].source
    assert loaded.served.target("neurodivergent") == Target("neurodivergent@v1", "adapter", source)
    assert loaded.served.target("base") == Target("base")
    table = {"default": "neurodivergent", "by_profile": {
        "standard": {"model": "prior_trauma_recovery", "significant": True},
        "bad_prior_teacher": {"model": "neurodivergent", "significant": False}}}  # within noise
    (workdir / "eval").mkdir()
    (workdir / "eval" / "routing.json").write_text(json.dumps(table))
    loaded = plan(cfg)
    assert loaded.served.routing_table == table and loaded.score_log == workdir.resolve() / "serve" / "scores.jsonl"
    router = Router(list(loaded.served.models), loaded.served.routing_table, STATIC)
    assert router.route("standard") == Route("prior_trauma_recovery", "routing.json")
    assert router.route("bad_prior_teacher") == Route("prior_trauma_recovery", "static")


def test_auth_without_its_token_variable_is_a_clear_error(serve_workdir, tiny_base_model, monkeypatch):
    """`parallel-r1 serve` checks the variable before it starts anything; the app itself never reads it (the
    router replica does), so building it works without."""
    from parallel_r1.serve.app import build_app
    from parallel_r1.serve.stage import start_local

    monkeypatch.delenv("PARALLEL_R1_UNSET_TOKEN", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cfg = load_config(None, {"workdir": str(serve_workdir), "base_model.path": str(tiny_base_model),
                             "serve": {"auth_token_env": "PARALLEL_R1_UNSET_TOKEN"}})
    with pytest.raises(UserFacingError, match="PARALLEL_R1_UNSET_TOKEN.*not set"):
        start_local(cfg)
    build_app(cfg)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_stops_on_sigint_or_sigterm_even_when_it_started_with_them_ignored(sig):
    before = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        threading.Timer(0.3, os.kill, (os.getpid(), sig)).start()
        assert wait_for_stop_signal(poll_s=0.05) == sig.name
        assert signal.getsignal(sig) == signal.SIG_IGN
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def test_a_slow_first_answer_is_a_503_then_ends_the_wait_and_a_failed_one_is_asked_again():
    import asyncio

    from parallel_r1.serve.api import FirstAnswer
    from parallel_r1.serve.schema import APIError

    calls = []

    async def ask(delay: float, fail: bool = False):
        calls.append(delay)
        await asyncio.sleep(delay)
        if fail:
            raise RuntimeError("replica died")

    async def run() -> None:
        slow = FirstAnswer(lambda: ask(0.3), probe_s=0.1)
        with pytest.raises(APIError) as e:
            await slow.wait()
        assert e.value.status == 503 and e.value.headers["Retry-After"] == "1"
        await asyncio.sleep(0.3)  # the probe ran on: the next request does not wait
        await slow.wait()
        assert calls == [0.3]
        failing = FirstAnswer(lambda: ask(0.0, fail=True), probe_s=0.1)
        for _ in range(2):
            with pytest.raises(APIError):
                await failing.wait()
        assert calls == [0.3, 0.0, 0.0]  # asked again after the failure
        answering = FirstAnswer(lambda: ask(0.05), probe_s=0.1)
        for _ in range(2):
            await answering.check()  # /ready asks anew each time
        await answering.wait()  # and its answer ends a request's wait without another question
        assert calls == [0.3, 0.0, 0.0, 0.05, 0.05]

    asyncio.run(run())


def test_ready_is_bounded_by_the_probe_and_says_how_the_model_failed_to_an_authorized_caller(tmp_path, monkeypatch,
                                                                                              caplog):
    """However short serve.request_timeout_s is, /ready answers 200 when the model deployment answers within the
    probe, else 503 with Retry-After; once a try failed (an engine that could not start), an authorized caller is
    told the error, also while the next try is still running, and an anonymous one only that it is not ready. The
    log says each change of the answer once, not every poll."""
    import asyncio

    from starlette.requests import Request

    from tests.fakes.router import bare_router

    class Deployment:
        delay, fails = 0.05, False

        async def models(self):
            await asyncio.sleep(self.delay)
            if self.fails:
                raise ValueError("max_model_len 4096 is over the model's 128")
            return ["base"]

    monkeypatch.setenv("READY_TOKEN", "s3cret")
    deployment = Deployment()
    router = bare_router(tmp_path, deployment, tmp_path / "scores.jsonl",
                         serve={"request_timeout_s": 0.001, "auth_token_env": "READY_TOKEN"})
    router.first_answer.probe_s = 0.3

    def request(token: str | None) -> Request:
        headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
        return Request({"type": "http", "method": "GET", "path": "/ready", "query_string": b"", "headers": headers})

    async def run() -> list:
        answers = [await router.ready(request("s3cret"))]
        deployment.delay = 1.0
        answers.append(await router.ready(request("s3cret")))  # slow: still starting, no failure yet
        await asyncio.sleep(1.0)  # the slow answer comes meanwhile
        deployment.fails = True
        answers.append(await router.ready(request("s3cret")))  # asked again: this try fails after 1 s
        await asyncio.sleep(1.0)
        for token in ("s3cret", None):  # the next try is running: the last one's failure is the answer
            answers.append(await router.ready(request(token)))
        deployment.fails, deployment.delay = False, 0.05
        await asyncio.sleep(1.1)  # the running try is answered
        answers.append(await router.ready(request(None)))
        return answers

    with caplog.at_level(logging.INFO, logger="parallel_r1.serve.api"):
        up, slow, starting, failed, anonymous, again = asyncio.run(run())
    assert [r.getMessage() for r in caplog.records if r.name == "parallel_r1.serve.api"] == [
        "not ready: the model deployment did not answer (starting or unavailable)",
        "not ready: the model deployment did not answer (ValueError: max_model_len 4096 is over the model's 128)",
        "ready: the model deployment answers"]
    assert again.status_code == 200
    assert (up.status_code, json.loads(up.body)["status"]) == (200, "ready")
    for answer in (slow, starting, failed, anonymous):
        assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    assert json.loads(slow.body) == json.loads(starting.body) == {"status": "not ready"}
    assert json.loads(failed.body) == {"status": "not ready",
                                       "error": "ValueError: max_model_len 4096 is over the model's 128"}
    assert json.loads(anonymous.body) == {"status": "not ready"}


@pytest.mark.parametrize("error", [None, "ValueError: the engine could not start"])
def test_waiting_for_the_app_ends_at_once_on_the_models_error(error):
    from fastapi import FastAPI, Header
    from fastapi.responses import JSONResponse

    from parallel_r1.serve.stage import wait_ready
    from tests.fakes.threaded_server import ThreadedServer

    class NotReadyApp(ThreadedServer):
        tokens: list[str] = []

        def _app(self) -> FastAPI:
            app = FastAPI()

            @app.get("/app/ready")
            def ready(authorization: str = Header("")) -> JSONResponse:
                self.tokens.append(authorization)
                return JSONResponse({"status": "not ready", **({"error": error} if error else {})}, status_code=503)

            return app

    with NotReadyApp() as server:
        url = f"http://127.0.0.1:{server.port}/app"
        began = time.monotonic()
        with pytest.raises(UserFacingError if error else TimeoutError) as e:
            wait_ready(url, timeout_s=3, token="s3cret")
        took = time.monotonic() - began
    assert (error or "not ready within 3 s") in str(e.value)
    assert (took < 2) if error else (took >= 3)
    assert set(server.tokens) == {"Bearer s3cret"}


def test_a_failure_no_handler_caught_is_a_500_in_the_openai_shape_unless_the_answer_began():
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse
    from fastapi.testclient import TestClient

    from parallel_r1.serve.api import LastResort, api

    assert any(m.cls is LastResort for m in api.user_middleware)  # the router's app has it
    app = FastAPI()
    app.add_middleware(LastResort)

    @app.get("/boom")
    async def boom():
        raise RuntimeError("a detail for the log only")

    @app.get("/late")
    async def late():
        async def chunks():
            yield "data: 1\n\n"
            raise RuntimeError("mid-stream")
        return StreamingResponse(chunks(), media_type="text/event-stream")

    client = TestClient(app, raise_server_exceptions=False)
    answer = client.get("/boom", headers={"x-request-id": "rid-7"})
    error = answer.json()["error"]
    assert answer.status_code == 500 and error["code"] == "internal_error" and error["type"] == "server_error"
    assert "rid-7" in error["message"] and "detail" not in error["message"]
    with pytest.raises(RuntimeError, match="mid-stream"):  # begun: no second answer, the failure goes to the server
        TestClient(app).get("/late")
