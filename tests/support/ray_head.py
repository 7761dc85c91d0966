"""A private `ray start --head` for tests: explicit free ports, its own temp dir, stopped by killing
its process group (never `ray stop`, which kills every Ray on the host)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def free_port_range(width: int, avoid: list[int]) -> int:
    """The first port of `width` consecutive free ports that contain none of `avoid`."""
    for _ in range(100):
        start = free_ports(1)[0]
        if start + width > 65535 or any(start <= p <= start + width for p in avoid):
            continue
        try:
            held = []
            for port in range(start, start + width + 1):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
        return start
    raise RuntimeError(f"no {width} consecutive free ports found")


def ray_env() -> tuple[str, dict]:
    """The folder of this venv's `ray` and the environment a private `ray start` runs with."""
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    return bin_dir, env


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group `proc` leads (a `ray start --block` and its children), SIGKILL after 10 s (a test
    cluster keeps nothing: its temp dir goes next)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


class RayHead:
    """`ray start --head` on `node_ip` (default loopback) with `num_cpus` CPUs and any extra `ray start` args."""

    def __init__(self, num_cpus: int = 4, node_ip: str = "127.0.0.1", extra: list[str] | None = None):
        self.num_cpus, self.node_ip, self.extra = num_cpus, node_ip, extra or []
        self.temp_dir = tempfile.mkdtemp(prefix="pr1ray")  # short: Ray's unix sockets have a path limit
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> RayHead:
        ports = free_ports(9)
        gcs, dash, client, nm, om, agent, agent_grpc, rt_env, metrics = ports
        wmin = free_port_range(200, avoid=ports)
        self.gcs_address = f"{self.node_ip}:{gcs}"
        self.dashboard_url = f"http://{self.node_ip}:{dash}"
        bin_dir, env = ray_env()
        cmd = [
            f"{bin_dir}/ray", "start", "--head", "--block", f"--num-cpus={self.num_cpus}",
            f"--node-ip-address={self.node_ip}", f"--port={gcs}", "--include-dashboard=true",
            f"--dashboard-host={self.node_ip}", f"--dashboard-port={dash}", f"--ray-client-server-port={client}",
            f"--node-manager-port={nm}", f"--object-manager-port={om}",
            f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
            f"--runtime-env-agent-port={rt_env}", f"--metrics-export-port={metrics}",
            f"--min-worker-port={wmin}", f"--max-worker-port={wmin + 200}", f"--temp-dir={self.temp_dir}",
            *self.extra,
        ]
        self.log = open(Path(self.temp_dir) / "head.log", "wb")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready()
        return self

    def _wait_ready(self, timeout_s: float = 300) -> None:  # a loaded 2-core host took over 120 s once
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray start exited: {Path(self.log.name).read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.dashboard_url}/api/version", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(1)
        raise TimeoutError(f"the Ray head's job server did not come up in {timeout_s:g} s: "
                           f"{Path(self.log.name).read_text()[-2000:]}")

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            stop_group(self.proc)
        self.log.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
