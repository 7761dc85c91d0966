"""A two-node Ray cluster on the test machine: the head in this network namespace, on one end of a veth pair, and
the worker in a network namespace of its own, on the other end; each a real `ray start` with its own resources (the
worker a custom `specialist` resource). Where namespaces are not permitted (not root, no `ip`), two `ray start`
processes on loopback instead; `mode` says which."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.ray_head import RayHead, ray_env, stop_group


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class TwoNodes:
    def __init__(self, head_cpus: int = 2, worker_cpus: int = 2, worker_resources: dict | None = None) -> None:
        self.head_cpus, self.worker_cpus = head_cpus, worker_cpus
        self.worker_resources = worker_resources or {"specialist": 2}
        k = os.getpid() % 10_000
        self.ns, self.veth, self.peer = f"pr1w{k}", f"pr1a{k}", f"pr1b{k}"
        net = f"10.231.{k % 250}"
        self.head_ip, self.worker_ip, self.mode = f"{net}.1", f"{net}.2", "netns"
        self.temp_dir = tempfile.mkdtemp(prefix="pr1w")
        self.worker: subprocess.Popen | None = None
        self.head: RayHead | None = None

    def _make_network(self) -> bool:
        if os.geteuid() != 0 or shutil.which("ip") is None:
            return False
        try:
            _ip("netns", "add", self.ns)
            _ip("link", "add", self.veth, "type", "veth", "peer", "name", self.peer)
            _ip("link", "set", self.peer, "netns", self.ns)
            _ip("addr", "add", f"{self.head_ip}/24", "dev", self.veth)
            _ip("link", "set", self.veth, "up")
            _ip("-n", self.ns, "addr", "add", f"{self.worker_ip}/24", "dev", self.peer)
            _ip("-n", self.ns, "link", "set", self.peer, "up")
            _ip("-n", self.ns, "link", "set", "lo", "up")
        except (subprocess.CalledProcessError, OSError):
            self._remove_network()
            return False
        return True

    def _remove_network(self) -> None:
        for args in (("link", "del", self.veth), ("netns", "del", self.ns)):
            subprocess.run(["ip", *args], capture_output=True, timeout=30)

    def __enter__(self) -> TwoNodes:
        if not self._make_network():
            self.mode, self.head_ip, self.worker_ip = "loopback", "127.0.0.1", "127.0.0.1"
        self.head = RayHead(self.head_cpus, self.head_ip).__enter__()
        bin_dir, env = ray_env()
        prefix = ["ip", "netns", "exec", self.ns] if self.mode == "netns" else []
        cmd = [*prefix, f"{bin_dir}/ray", "start", "--block", f"--address={self.head.gcs_address}",
               f"--node-ip-address={self.worker_ip}", f"--num-cpus={self.worker_cpus}",
               f"--resources={json.dumps(self.worker_resources)}", f"--temp-dir={self.temp_dir}"]
        self.log = open(Path(self.temp_dir) / "worker.log", "wb")
        self.worker = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        self._wait_for_nodes(2)
        return self

    def nodes(self) -> dict[str, str]:
        """Alive node id -> node IP."""
        from ray.util.state import list_nodes

        return {n.node_id: n.node_ip for n in list_nodes(address=self.head.dashboard_url,
                                                         filters=[("state", "=", "ALIVE")])}

    def _wait_for_nodes(self, count: int, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.worker.poll() is not None:
                raise RuntimeError(f"the worker's ray start exited: {Path(self.log.name).read_text()[-2000:]}")
            try:
                if len(self.nodes()) >= count:
                    return
            except Exception:  # noqa: BLE001 - the state API is not up yet
                pass
            time.sleep(2)
        raise TimeoutError(f"the worker node did not join in {timeout_s:g} s: "
                           f"{Path(self.log.name).read_text()[-2000:]}")

    def __exit__(self, *exc) -> None:
        if self.worker is not None:
            stop_group(self.worker)
            self.log.close()
        if self.head is not None:
            self.head.__exit__(*exc)
        if self.mode == "netns":
            self._remove_network()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
