"""The gate controls what a running app serves: under a steady load, a newly promoted version is served without a
restart, `parallel-r1 rollback` brings the previous one back the same way, a refused version is never served, and
not one request fails during the swaps."""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
import pytest
from typer.testing import CliRunner

from parallel_r1.cli import app
from parallel_r1.registry.promotion import PromotionRecord
from parallel_r1.serve.schema import VERSION_HEADER
from tests.serve.support import serve_config
from tests.support.adapters import promote, random_adapter

pytestmark = pytest.mark.slow
NAME = "neurodivergent"
BODY = {"model": NAME, "messages": [{"role": "user", "content": "Why does my loop skip the first item?"}],
        "max_tokens": 4}


class Load:
    """Clients sending requests back to back until stopped: every response's status and served version."""

    def __init__(self, url: str, clients: int = 3) -> None:
        self.url, self.seen, self.stop = url, [], threading.Event()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def _client(self) -> None:
        with httpx.Client(timeout=60) as http:
            while not self.stop.is_set():
                r = http.post(f"{self.url}/v1/chat/completions", json=BODY)
                self.seen.append((r.status_code, r.headers.get(VERSION_HEADER), time.monotonic()))

    def wait_for(self, version: str, timeout_s: float = 60) -> float:
        """Seconds until the first response from `version`."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if any(v == version and t > started for _, v, t in self.seen):
                return time.monotonic() - started
            time.sleep(0.1)
        raise AssertionError(f"{version} was never served: {Counter(v for _, v, _ in self.seen)}")

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)


def test_promotion_and_rollback_are_served_without_a_restart_and_without_a_failed_request(
        serve_port, tiny_base_model, tmp_path):
    from ray import serve

    from parallel_r1.serve.stage import start_local

    workdir = tmp_path / "run"
    promote(workdir, NAME, random_adapter(tiny_base_model, tmp_path / "v1", seed=11))
    cfg = serve_config(workdir, tiny_base_model, serve_port, app_name="reload", route_prefix="/reload",
                       reload_interval_s=0.2, grading_fraction=0.0)
    url = start_local(cfg)
    record = PromotionRecord(workdir)
    try:
        with Load(url) as load:
            load.wait_for(f"{NAME}@v1")
            refused = record.registry.register(NAME, "adapter", random_adapter(tiny_base_model, tmp_path / "v2", 12))
            record.decide({"candidate": refused.ref, "promoted": False, "reasons": ["refused by a test"]}, None, 0.0)
            promote(workdir, NAME, random_adapter(tiny_base_model, tmp_path / "v3", seed=13), score=0.7)
            to_new = load.wait_for(f"{NAME}@v3")
            out = CliRunner().invoke(app, ["rollback", NAME, "--reason", "test", "--workdir", str(workdir)])
            assert out.exit_code == 0 and f"{NAME}@v3 -> {NAME}@v1" in out.output, out.output
            to_old = load.wait_for(f"{NAME}@v1")
            time.sleep(1.0)
        statuses = Counter(s for s, _, _ in load.seen)
        versions = Counter(v for _, v, _ in load.seen)
        print(f"{len(load.seen)} requests during the swaps: {dict(statuses)}, {dict(versions)}; promotion served "
              f"after {to_new:.2f} s, rollback after {to_old:.2f} s")
        assert statuses == {200: len(load.seen)} and len(load.seen) > 20
        assert f"{NAME}@v2" not in versions  # registered, refused: never served
        models = httpx.get(f"{url}/ready", timeout=30).json()
        assert models["versions"] == {NAME: f"{NAME}@v1"}
    finally:
        serve.delete("reload")
