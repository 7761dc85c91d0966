"""vLLM's OpenAI-compatible server on a model of the run directory, as a child process group.

`managed_llm_server` starts it, waits until `/v1/models` answers and stops the whole process group on the way
out; a start that fails (no model folder, a taken port, a server that exits or never answers) is an
`LLMServerError` carrying the last line of interest from the server's log. `managed_endpoints` gives the stages
a config whose discovery endpoint and LLM judge point at such a server when `llm_server.managed` asks for it;
`serve_until_interrupted` is `parallel-r1 llm-server`.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from parallel_r1.config import LLMServerConfig, PipelineConfig
from parallel_r1.console import console
from parallel_r1.errors import UserFacingError
from parallel_r1.paths import RunPaths
from parallel_r1.recipe import run_recipe
from parallel_r1.watchdog import Watchdog, stop_processes

ENDPOINT_USERS = ("discover", "judge")
_ERROR_LINE = re.compile(r"\b\w*(?:Error|Exception)\b:|\berror:", re.IGNORECASE)
_POLL_S = 0.5


class LLMServerError(UserFacingError):
    """The LLM server could not be started, or stopped on its own."""


@dataclass(frozen=True)
class ServedModel:
    """What a started server serves: where to reach it, the model's name there, and its context length."""

    base_url: str
    model: str
    max_model_len: int | None
    log: Path


def model_folder(cfg: LLMServerConfig, workdir: Path) -> Path:
    """The folder to serve, checked: a Hugging Face checkpoint (with config.json)."""
    folder = Path(cfg.model) if cfg.model else RunPaths(workdir).base_model
    if not (folder / "config.json").is_file():
        hint = "" if cfg.model else "; build it with `parallel-r1 init-model`, or name one with --model"
        raise LLMServerError(f"llm_server.model: {folder} is not a model folder (no config.json){hint}")
    return folder.resolve()


def _port(host: str, port: int) -> int:
    """`port`, checked free on `host` (0: a free one)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            raise LLMServerError(f"llm_server.port: cannot listen on {host}:{port} ({e.strerror}); pick another "
                                 "port (--port, or 0 for a free one)") from None
        return sock.getsockname()[1]


def _on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def server_command(cfg: LLMServerConfig, model: Path, name: str, port: int, *, gpu: bool) -> list[str]:
    """The server's command line."""
    dtype = "float32" if cfg.dtype == "auto" and not gpu else cfg.dtype
    memory = (["--gpu-memory-utilization", str(cfg.gpu_memory_utilization)] if gpu
              else ["--kv-cache-memory-bytes", str(cfg.kv_cache_memory_bytes)])
    length = ["--max-model-len", str(cfg.max_model_len)] if cfg.max_model_len else []
    return [sys.executable, "-m", cfg.module, "--model", str(model), "--served-model-name", name,
            "--host", cfg.host, "--port", str(port), "--dtype", dtype, *length, *memory, *cfg.extra_args]


def log_excerpt(log: Path, lines: int = 3) -> str:
    """The last error line of the server's log, else its last few lines, on one line."""
    try:
        text = log.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    kept = [line.strip() for line in text if line.strip()]
    errors = [line for line in kept if _ERROR_LINE.search(line)]
    tail = errors[-1:] or kept[-lines:]
    return " | ".join(tail)[-600:] or "(empty log)"


class LLMServer:
    """One server process group: `start()` returns once it answers, `stop()` ends the whole group."""

    def __init__(self, cfg: LLMServerConfig, workdir: Path):
        self.cfg = cfg
        self.workdir = workdir
        self.log = RunPaths(workdir).workdir / "llm_server" / "server.log"
        self.proc: subprocess.Popen | None = None
        self.watchdog: Watchdog | None = None

    def start(self) -> ServedModel:
        cfg = self.cfg
        model = model_folder(cfg, self.workdir)
        name = cfg.served_model_name or model.name
        port = _port(cfg.host, cfg.port)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        command = server_command(cfg, model, name, port, gpu=_on_gpu())
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         env={**os.environ, **cfg.env}, start_new_session=True)
        # its own session keeps it from Ctrl-C; the guard stops it should this process die without stop()
        self.watchdog = Watchdog(groups=[self.proc.pid], grace_s=cfg.stop_timeout_s)
        try:
            return self._wait_ready(name, port)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, name: str, port: int) -> ServedModel:
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.cfg.host, self.cfg.host)
        base_url = f"http://{f'[{host}]' if ':' in host else host}:{port}/v1"
        deadline = time.monotonic() + self.cfg.start_timeout_s
        with httpx.Client(timeout=5.0) as http:
            while True:
                if self.proc.poll() is not None:
                    raise LLMServerError(f"llm-server: {self.cfg.module} exited with code {self.proc.returncode} "
                                         f"before answering: {log_excerpt(self.log)} (log: {self.log})")
                with suppress(httpx.HTTPError, ValueError):
                    listing = http.get(f"{base_url}/models").json()
                    entry = next((m for m in listing.get("data", []) if m.get("id") == name), None)
                    if entry is not None:
                        length = entry.get("max_model_len")
                        return ServedModel(base_url, name, length if isinstance(length, int) else None, self.log)
                if time.monotonic() > deadline:
                    raise LLMServerError(f"llm-server: no answer from {base_url}/models within "
                                         f"{self.cfg.start_timeout_s:g} s (llm_server.start_timeout_s): "
                                         f"{log_excerpt(self.log)} (log: {self.log})")
                time.sleep(_POLL_S)

    def wait(self) -> None:
        """Block while the server runs; its exiting on its own is an `LLMServerError`."""
        code = self.proc.wait()
        raise LLMServerError(f"llm-server: the server exited with code {code}: {log_excerpt(self.log)} "
                             f"(log: {self.log})")

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after `stop_timeout_s`; idempotent."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        leader = []
        with suppress(psutil.NoSuchProcess):  # reaped already when it exited at start
            leader.append(psutil.Process(proc.pid))  # reaped by the stop: a zombie would keep the group alive
        stopped = stop_processes(leader, [proc.pid], self.cfg.stop_timeout_s)
        proc.poll()  # the Popen learns that its process is gone
        if not stopped:
            raise LLMServerError(f"llm-server: process group {proc.pid} did not stop")
        self.watchdog.release()


@contextmanager
def managed_llm_server(cfg: LLMServerConfig, workdir: Path) -> Iterator[ServedModel]:
    """A running server for the `with` block; it is stopped however the block ends."""
    server = LLMServer(cfg, workdir)
    try:
        yield server.start()
    finally:
        server.stop()


def endpoint_users(cfg: PipelineConfig) -> set[str]:
    """The endpoints of this run a managed server stands in for: "discover" (the openai chat backend) and
    "judge" (an llm or combined grader); none unless `llm_server.managed`."""
    if not cfg.llm_server.managed:
        return set()
    return ({"discover"} if cfg.discover.backend == "openai" else set()) | (
        {"judge"} if cfg.grade.grader in ("llm", "combined") else set())


def pointed_at(cfg: PipelineConfig, served: ServedModel, users: Collection[str]) -> PipelineConfig:
    """`cfg` with the `users`' endpoints on the served model (its context asked of the server) and
    `llm_server.managed` off, so that stages run inside do not start another."""
    def endpoint(section):
        return section.model_copy(update={"base_url": served.base_url, "model": served.model,
                                          "context_tokens": None})

    update: dict = {"llm_server": cfg.llm_server.model_copy(update={"managed": False})}
    if "discover" in users:
        update["discover"] = cfg.discover.model_copy(update={"openai": endpoint(cfg.discover.openai)})
    if "judge" in users:
        update["grade"] = cfg.grade.model_copy(update={"judge": endpoint(cfg.grade.judge)})
    return cfg.model_copy(update=update)


@contextmanager
def managed_endpoints(cfg: PipelineConfig, needs: Collection[str] = ENDPOINT_USERS) -> Iterator[PipelineConfig]:
    """`cfg` as it is, or, when a managed server stands in for one of the endpoints the caller `needs`, the
    config pointed at a server that runs for the `with` block."""
    users = endpoint_users(cfg) & set(needs)
    if not users:
        yield cfg
        return
    console.print(f"llm-server: starting {cfg.llm_server.module} for {', '.join(sorted(users))}", markup=False)
    with managed_llm_server(cfg.llm_server, cfg.workdir) as served:
        console.print(f"llm-server: {served.model} at {served.base_url} (max_model_len {served.max_model_len}; "
                      f"log: {served.log})", markup=False)
        yield pointed_at(cfg, served, users)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


class LLMServerStage:
    """`parallel-r1 llm-server`: setup() catches SIGINT and SIGTERM (whatever the process inherited: a script's
    `parallel-r1 llm-server &` starts with SIGINT ignored), run() starts the server and keeps it until one arrives,
    cleanup() stops it and restores the handlers."""

    def __init__(self, cfg: PipelineConfig):
        self.cfg = cfg
        self.server = LLMServer(cfg.llm_server, cfg.workdir)
        self.previous: dict = {}

    def setup(self) -> None:
        self.previous = {sig: signal.signal(sig, _interrupt) for sig in STOP_SIGNALS}
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    def run(self) -> ServedModel | None:
        """The served model once stopped (None when stopped before it answered)."""
        served = None
        try:
            console.print(f"llm-server: starting {self.cfg.llm_server.module} (log: {self.server.log})", markup=False)
            served = self.server.start()
            console.print(f"base_url: {served.base_url}\nmodel: {served.model}\nmax_model_len: "
                          f"{served.max_model_len}", markup=False)
            console.print("serving; Ctrl-C stops it", markup=False)
            self.server.wait()
        except KeyboardInterrupt:
            console.print("llm-server: stopping", markup=False)
        return served

    def cleanup(self) -> None:
        for sig in STOP_SIGNALS:  # a second Ctrl-C must not orphan the server: stopping is bounded anyway
            signal.signal(sig, signal.SIG_IGN)
        self.server.stop()
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def serve_until_interrupted(cfg: PipelineConfig) -> ServedModel | None:
    """Start the server, print where it answers, and keep it running until Ctrl-C or SIGTERM."""
    return run_recipe(LLMServerStage(cfg))
