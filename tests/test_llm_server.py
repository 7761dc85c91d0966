"""The LLM server's launcher: start, readiness, the errors a user meets (no model, a taken port, a server that
exits or never answers), stopping the process group, `parallel-r1 llm-server` until Ctrl-C, and the config the
stages get when the server is managed. These run a stand-in for vLLM's server module (tests/fakes/vllm_server.py)
in a real child process; the slow test at the end runs vLLM itself."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from parallel_r1.cli import app
from parallel_r1.config import LLMServerConfig, load_config
from parallel_r1.data import read_dialogues
from parallel_r1.data.io import read_jsonl
from parallel_r1.llm_client import OpenAIChatClient
from parallel_r1.llm_server import LLMServer, LLMServerError, managed_endpoints, managed_llm_server

ROOT = Path(__file__).resolve().parents[1]
FAKE = {"module": "tests.fakes.vllm_server", "env": {"PYTHONPATH": str(ROOT)}, "port": 0}


def model_dir(workdir: Path) -> Path:
    """A folder that passes for a checkpoint (the fake server only checks config.json)."""
    folder = workdir / "models" / "base"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    return folder


def fake_cfg(**kw) -> LLMServerConfig:
    return LLMServerConfig(**{**FAKE, "start_timeout_s": 30, **kw})


def listening(url: str) -> bool:
    try:
        httpx.get(f"{url}/models", timeout=2)
    except httpx.TransportError:
        return False
    return True


def fake_pid(log: Path) -> int:
    return int(re.search(r"pid=(\d+)", log.read_text()).group(1))


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_started_server_answers_under_its_name_and_stops_with_its_group(tmp_path):
    model_dir(tmp_path)
    with managed_llm_server(fake_cfg(max_model_len=512, extra_args=["--enforce-eager"]), tmp_path) as served:
        assert served.model == "base" and served.max_model_len == 512
        assert served.log == tmp_path.resolve() / "llm_server" / "server.log"
        listed = httpx.get(f"{served.base_url}/models").json()["data"]
        assert [(m["id"], m["max_model_len"]) for m in listed] == [("base", 512)]
        log = served.log.read_text()
        assert "dtype=float32" in log and "--enforce-eager" in log and "--kv-cache-memory-bytes" in log
        pid = fake_pid(served.log)
    assert not listening(served.base_url) and gone(pid)
    assert "fake vLLM: stopped" in served.log.read_text()  # SIGTERM, a clean shutdown


def test_a_missing_model_folder_is_named_before_anything_starts(tmp_path):
    with pytest.raises(LLMServerError, match=r"llm_server.model: .*models/base is not a model folder.*init-model"):
        LLMServer(fake_cfg(), tmp_path).start()
    with pytest.raises(LLMServerError, match="nowhere is not a model folder"):
        LLMServer(fake_cfg(model=str(tmp_path / "nowhere")), tmp_path).start()
    assert not (tmp_path / "llm_server").exists()


def test_a_taken_port_is_an_error(tmp_path):
    model_dir(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LLMServerError, match=rf"llm_server.port: cannot listen on 127.0.0.1:{port}"):
            LLMServer(fake_cfg(port=port), tmp_path).start()


def test_a_server_that_exits_at_start_reports_its_log(tmp_path):
    model_dir(tmp_path)
    started = time.monotonic()
    with pytest.raises(LLMServerError) as err:
        LLMServer(fake_cfg(extra_args=["--fake-fail", "not enough KV cache memory"]), tmp_path).start()
    message = str(err.value)
    assert "exited with code 1 before answering" in message and "\n" not in message
    assert "RuntimeError: not enough KV cache memory" in message and "server.log" in message
    assert time.monotonic() - started < 20


def test_a_server_that_never_answers_times_out_and_is_stopped(tmp_path, monkeypatch):
    model_dir(tmp_path)
    started, popen = [], subprocess.Popen

    def spy(*args, **kwargs):  # the pid from Popen: a loaded machine may stop the fake before it logs its own
        proc = popen(*args, **kwargs)
        if "parallel_r1.watchdog" not in args[0]:  # not the server's guard
            started.append(proc.pid)
        return proc

    monkeypatch.setattr(subprocess, "Popen", spy)
    server = LLMServer(fake_cfg(start_timeout_s=1, extra_args=["--fake-start-delay", "60"]), tmp_path)
    with pytest.raises(LLMServerError, match=r"no answer from .* within 1 s \(llm_server.start_timeout_s\)"):
        server.start()
    assert len(started) == 1 and gone(started[0])


def test_a_server_that_ignores_sigterm_is_killed(tmp_path):
    model_dir(tmp_path)
    server = LLMServer(fake_cfg(stop_timeout_s=1, extra_args=["--fake-ignore-sigterm"]), tmp_path)
    served = server.start()
    pid = fake_pid(served.log)
    started = time.monotonic()
    server.stop()
    assert gone(pid) and not listening(served.base_url) and time.monotonic() - started < 10


def test_managed_endpoints_point_discovery_and_the_judge_at_the_server(tmp_path):
    model_dir(tmp_path)
    overrides = {"workdir": str(tmp_path), "discover.backend": "openai", "grade.grader": "combined",
                 "discover.openai.context_tokens": 4096, "llm_server.managed": True,
                 **{f"llm_server.{k}": v for k, v in FAKE.items()}}
    cfg = load_config(overrides=overrides)
    with managed_endpoints(cfg) as pointed:
        for endpoint in (pointed.discover.openai, pointed.grade.judge):
            assert endpoint.model == "base" and endpoint.context_tokens is None
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", endpoint.base_url)
        assert not pointed.llm_server.managed  # stages run inside do not start a second one
        with managed_endpoints(pointed) as inner:
            assert inner is pointed

        async def chat():
            async with OpenAIChatClient(pointed.discover.openai) as client:
                return await client.complete([{"role": "user", "content": "hello there"}])

        assert "hello there" in asyncio.run(chat())
        url = pointed.discover.openai.base_url
    assert not listening(url)
    # Only what the caller needs, only when managed: the grade stage with a heuristic grader starts nothing.
    heuristic = load_config(overrides={**overrides, "grade.grader": "heuristic"})
    with managed_endpoints(heuristic, ("judge",)) as same:
        assert same is heuristic
    unmanaged = load_config(overrides={**overrides, "llm_server.managed": False})
    with managed_endpoints(unmanaged) as same:
        assert same is unmanaged


def test_cli_bad_model_path_is_one_line_and_exit_2(tmp_path):
    result = CliRunner().invoke(app, ["llm-server", "--model", str(tmp_path / "missing"), "--workdir",
                                      str(tmp_path)])
    assert result.exit_code == 2, result.output
    error = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "missing is not a model folder (no config.json)" in error[0]
    assert "Traceback" not in result.output


def start_cli(tmp_path: Path) -> tuple[subprocess.Popen, str, str]:
    """`parallel-r1 llm-server` on the fake server, as a script's background job, once it serves: the process, its
    output so far and the server's base URL."""
    model = model_dir(tmp_path / "elsewhere")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "parallel_r1.cli", "llm-server", "--model", str(model), "--port", "0",
         "--workdir", str(tmp_path), "--set", "llm_server.module=tests.fakes.vllm_server",
         "--set", "llm_server.max_model_len=256"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while not any(line.startswith("serving") for line in lines):
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            lines.append(line)
    except BaseException:
        proc.kill()
        raise
    out = "".join(lines)
    return proc, out, re.search(r"base_url: (\S+)", out).group(1)


def test_cli_serves_until_ctrl_c(tmp_path):
    proc, out, url = start_cli(tmp_path)
    try:
        assert "model: base" in out and "max_model_len: 256" in out
        assert [m["id"] for m in httpx.get(f"{url}/models").json()["data"]] == ["base"]
        pid = fake_pid(tmp_path / "llm_server" / "server.log")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "llm-server: stopping" in proc.stdout.read()
    assert not listening(url) and gone(pid)


def test_the_server_stops_when_the_cli_is_killed(tmp_path):
    """SIGKILL runs none of the CLI's cleanup; the server runs in its own session, so only the watchdog stops it."""
    proc, _, url = start_cli(tmp_path)
    pid = fake_pid(tmp_path / "llm_server" / "server.log")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 30
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert gone(pid) and not listening(url)
    assert "fake vLLM: stopped" in (tmp_path / "llm_server" / "server.log").read_text()  # SIGTERM first


@pytest.mark.slow
def test_real_vllm_server_behind_discover(ray_session, tiny_base_model, tmp_path):
    """`discover --backend openai` with a managed server: vLLM (CPU build) starts on the tiny model, the
    dialogues it writes land in dialogues.parquet or, with their reason, in discover_failures.jsonl, and the
    server is gone afterwards."""
    from parallel_r1.discover.stage import run_discover
    from parallel_r1.discover.turn_checks import check_turn

    model = tmp_path / "models" / "base"
    shutil.copytree(tiny_base_model, model)
    # The tiny model was trained on 64 positions; its role prompts need more. RoPE has no position weights, so a
    # longer rotary table is all vLLM needs (what it writes there is noise, like the rest of its text).
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 1024}))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = load_config(overrides={
        "workdir": str(tmp_path), "discover.n": 3, "discover.backend": "openai", "discover.include_special": False,
        "discover.num_actors": 1, "discover.dialogue_attempts": 1, "discover.roleplay.max_retries": 1,
        "discover.openai.timeout_s": 60, "discover.openai.max_tokens": 200,
        "llm_server.managed": True, "llm_server.port": port, "llm_server.max_model_len": 1024,
        "llm_server.kv_cache_memory_bytes": 64 * 1024**2, "llm_server.extra_args": ["--enforce-eager"],
        "llm_server.start_timeout_s": 180})
    result = run_discover(cfg, show_progress=False)

    log = (tmp_path / "llm_server" / "server.log").read_text()
    assert "POST /v1/chat/completions HTTP/1.1\" 200" in log
    assert not listening(f"http://127.0.0.1:{port}/v1")
    dialogues = read_dialogues(tmp_path / "dialogues.parquet") if (tmp_path / "dialogues.parquet").exists() else []
    failures = read_jsonl(tmp_path / "discover_failures.jsonl")
    assert result.planned == 3 and len(dialogues) + len(failures) == 3
    for d in dialogues:
        assert (d.backend, d.model) == ("openai", "base") and d.score is not None
        assert [t.role for t in d.turns] == [("student", "teacher")[i % 2] for i in range(d.n_turns)]
        for i, turn in enumerate(d.turns[1:], start=1):
            assert check_turn(turn.role, turn.content, finish_reason="stop", history=d.turns[:i],
                              name=d.persona["name"], rules=cfg.discover.roleplay) is None
    for f in failures:
        assert re.match(r"(TurnRejected|ContextTooSmall|EndpointError): \w", f["error"]), f
        if f["error"].startswith("ContextTooSmall"):  # the server's max_model_len, less the reply's 200 tokens
            assert "leaves 824 for the prompt" in f["error"]
