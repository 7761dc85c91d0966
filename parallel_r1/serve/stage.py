"""Starting the app locally (what `parallel-r1 serve` and the tests run): Ray, Serve's proxy on serve.host and
serve.port, the application, then a wait until `/ready` answers; `parallel-r1 serve` then runs until SIGINT or
SIGTERM and shuts Serve down.

The bearer token reaches the router as an environment variable of this process: the local Ray it starts passes
its environment on to every worker, so the token is in no config or runtime_env that Serve shows.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from parallel_r1.config import PipelineConfig
from parallel_r1.console import notice, summary_table
from parallel_r1.errors import UserFacingError
from parallel_r1.paths import RunPaths
from parallel_r1.recipe import run_recipe
from parallel_r1.serve.app import ServePlan, build_app, plan
from parallel_r1.serve.grounding import check_store
from parallel_r1.serve.routing import Router
from parallel_r1.serve.served import how_served


def _check_port_free(host: str, port: int) -> None:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError as e:
            raise UserFacingError(f"serve.port {port} on {host} is not free ({e.strerror}): pick another with "
                                  "--port or --set serve.port=...") from None


def wait_ready(url: str, timeout_s: float, token: str | None = None) -> None:
    """Poll `<url>/ready` until it answers 200 (the router and its backend are up). With the bearer `token` the
    router says why its model failed, if it did, and that error ends the wait at once."""
    request = urllib.request.Request(f"{url}/ready", headers={"Authorization": f"Bearer {token}"} if token else {})
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError as e:  # an HTTPError too: a 503 while the app starts
            last = str(e)
            if isinstance(e, urllib.error.HTTPError) and (error := _error_of(e)):
                raise UserFacingError(f"the app at {url} cannot serve: its model failed ({error}); the traceback is "
                                      "in the router replica's log (logs/serve under the Ray session folder)") from None
        time.sleep(0.5)
    raise TimeoutError(f"the app at {url} was not ready within {timeout_s:.0f} s ({last})")


def _error_of(response: urllib.error.HTTPError) -> str | None:
    """The error of the router's not-ready answer (a 503 whose JSON body names one), else None."""
    try:
        error = json.loads(response.read()).get("error") if response.code == 503 else None
    except (ValueError, AttributeError, OSError):  # not the router's JSON
        return None
    return error if isinstance(error, str) else None


def start_local(cfg: PipelineConfig, serve_plan: ServePlan | None = None) -> str:
    """Deploy the app on the Ray of `ensure_ray`, Serve's proxy on serve.host:serve.port (when this process
    starts Serve); returns the app's URL once it is ready."""
    from ray import serve

    from parallel_r1.ray_runtime import ensure_ray

    sc = cfg.serve
    check_store(cfg.kb, cfg.workdir)
    serve_plan = serve_plan or plan(cfg)
    local = not (cfg.ray.address or os.environ.get("RAY_ADDRESS"))
    if local and sc.auth_token_env and not os.environ.get(sc.auth_token_env):
        raise UserFacingError(f"serve.auth_token_env is {sc.auth_token_env!r}, but that environment variable is not "
                              "set (or empty): export it (the bearer token clients must send) before starting")
    ensure_ray(cfg.ray)
    if local and not _serve_running():
        _check_port_free(sc.host, sc.port)
    serve.start(http_options={"host": sc.host, "port": sc.port})
    serve.run(build_app(cfg, serve_plan), name=sc.app_name, route_prefix=sc.route_prefix)
    host = "127.0.0.1" if sc.host in ("0.0.0.0", "::") else sc.host
    url = f"http://{host}:{sc.port}{sc.route_prefix.rstrip('/')}"
    wait_ready(url, sc.ready_timeout_s, os.environ.get(sc.auth_token_env) if sc.auth_token_env else None)
    return url


def _serve_running() -> bool:
    from ray import serve

    try:
        serve.status()
    except Exception:  # no Serve controller on this Ray yet
        return False
    return True


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def wait_for_stop_signal(poll_s: float = 0.5) -> str:
    """Block until this process gets SIGINT (Ctrl-C) or SIGTERM (`kill`, `docker stop`, systemd) and return its
    name. Both are caught whatever the process inherited: a script's `parallel-r1 serve &` starts with SIGINT
    ignored, and Python then never raises KeyboardInterrupt; an uncaught SIGTERM would skip Serve's shutdown."""
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: received.append(signum)) for sig in STOP_SIGNALS}
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    try:
        while not received:
            time.sleep(poll_s)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return signal.Signals(received[0]).name


@dataclass(frozen=True)
class ServeResult:
    """Where the app answered and the signal that stopped it."""

    url: str
    stopped_by: str


class ServeStage:
    """setup() starts the app, run() prints its routes and URL and blocks until SIGINT or SIGTERM, cleanup() shuts
    Serve down (once the app started)."""

    def __init__(self, cfg: PipelineConfig):
        self.cfg = cfg
        self.url: str | None = None

    def setup(self) -> None:
        cfg = self.cfg
        self.plan = plan(cfg)
        served = self.plan.served
        if not served.models and not served.unservable:
            raise UserFacingError(f"nothing is promoted in {RunPaths(cfg.workdir).promotion}: run `parallel-r1 "
                                  "finetune`, `compare` and `gate` first (only promoted versions are served)")
        notice(f"serving on the {cfg.serve.backend} backend; base model {self.plan.base_model}; this takes a "
               "while on CPU (vllm: minutes)")
        rows = [(name, v.ref, how_served(served.target(name), cfg.serve)) for name, v in served.models.items()]
        notice(summary_table("served versions", ["model", "version", "served by"], rows) if rows
               else "served versions: none promoted can be served: the base model only")
        for name, why in served.unservable.items():
            notice(f"[yellow]not served:[/] {name}: {why}")
        self.url = start_local(cfg, self.plan)

    def run(self) -> ServeResult:
        cfg, serve_plan = self.cfg, self.plan
        served = serve_plan.served
        router = Router(list(served.models), served.routing_table, cfg.serve.static_routes)
        source = serve_plan.routing_path if served.routing_table else "serve.static_routes (no routing.json)"
        notice(summary_table(f"routes (from {source})", ["profile kind", "specialist", "rule"],
                             router.describe()))
        auth = f"; bearer token from ${cfg.serve.auth_token_env}" if cfg.serve.auth_token_env else ""
        notice(f"[bold green]ready:[/] {self.url}/v1 (model {cfg.serve.router_model!r} routes by student "
               f"profile{auth}); online scores -> {serve_plan.score_log}; promotions and rollbacks are served "
               "as they happen\nCtrl-C (or SIGTERM) to stop")
        stopped_by = wait_for_stop_signal()
        notice(f"stopping ({stopped_by})")
        return ServeResult(self.url, stopped_by)

    def cleanup(self) -> None:
        if self.url is not None:
            from ray import serve

            serve.shutdown()


def serve_until_interrupted(cfg: PipelineConfig) -> ServeResult:
    """`parallel-r1 serve`: start the app, print its routes and URL, block until SIGINT or SIGTERM, then shut
    Serve down."""
    return run_recipe(ServeStage(cfg))
