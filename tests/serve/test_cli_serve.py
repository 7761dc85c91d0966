"""`parallel-r1 serve` in a process of its own (its own local Ray): it prints the routes and the URL, serves, and
stops on Ctrl-C (SIGINT), even when started with SIGINT ignored as a script's background job is; behind Serve's
proxy, and behind Ray Serve's HAProxy ingress (`RAY_SERVE_ENABLE_HA_PROXY=1` in its environment)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.serve.support import SPECIALISTS, free_port

pytestmark = pytest.mark.slow


def _below(root: int) -> set[str]:
    """The command names of the processes below `root`."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, rest = stat.read_text().rsplit(")", 1)
        except OSError:
            continue
        parents[int(stat.parent.name)] = (int(rest.split()[1]), name.split("(", 1)[1])
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, (ppid, _) in parents.items() if ppid in frontier}
        found |= {parents[pid][1] for pid in frontier}
    return found


@pytest.mark.parametrize("haproxy", [False, True], ids=["proxy", "haproxy"])
def test_cli_serve_prints_the_url_serves_and_stops_on_ctrl_c(serve_workdir, tiny_base_model, haproxy):
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "160", "RAY_SERVE_ENABLE_HA_PROXY": str(int(haproxy))}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "parallel_r1.cli", "serve", "--workdir", str(serve_workdir), "--port", str(port),
         "--set", f"base_model.path={tiny_base_model}", "--set", "ray.num_cpus=2",
         "--set", "serve.add_system_prompt=false", "--set", "serve.grading_fraction=0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 240
        while not any(line.startswith("ready:") for line in lines):
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            lines.append(line)
        out = "".join(lines)
        assert f"http://127.0.0.1:{port}/v1" in out and "prior_trauma_recovery" in out and "static" in out
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=30).json()
        assert {m["id"] for m in models["data"]} == {"parallel-r1", "base", *SPECIALISTS}
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        reply = httpx.post(url, json={"model": "neurodivergent", "messages": [{"role": "user", "content": "Why?"}]},
                           timeout=60)
        assert reply.status_code == 200 and reply.json()["specialist"] == "neurodivergent"
        bad = httpx.post(url, json={"model": "neurodivergent", "messages": []}, timeout=30)
        assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
        assert ("haproxy" in _below(proc.pid)) == haproxy
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=180) == 0  # Serve and Ray shut down in ~10 s on 2 idle cores
        assert "stopping (SIGINT)" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
