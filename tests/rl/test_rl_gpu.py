"""`parallel-r1 rl` on CUDA devices (marked `gpu`: skipped without one): GRPO in bf16 on the GPU (`rl.use_gpu`, which
turns on bf16 and gradient checkpointing), rollouts from a vLLM engine colocated on the same GPU with the trainer's
weights synced into it, and rollouts from a `trl vllm-serve` server (`rl.vllm_mode: server`) on a second GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from parallel_r1.config import load_config
from parallel_r1.config.workers import GRPOJob
from parallel_r1.rl.metrics import MetricsLog
from tests.rl.test_rl import SMALL, assert_engine_follows_a_sync
from tests.support.ray_head import free_ports

pytestmark = [pytest.mark.gpu, pytest.mark.slow]
GPU = {"rl.use_gpu": True, "rl.max_steps": 2, "rl.vllm_gpu_memory_utilization": 0.3}


def _gpus() -> int:
    import torch

    return torch.cuda.device_count()


def _job(workdir: Path, model: Path, backend: str, **overrides) -> GRPOJob:
    cfg = load_config(overrides={"workdir": str(workdir), **SMALL, **GPU, **overrides})
    return GRPOJob(rl=cfg.rl, model=str(model), backend=backend, max_blocks=3,
                   metrics_file=str(workdir / "metrics.jsonl"), state_file=str(workdir / "state.json"))


def _assert_steps(workdir: Path, n: int) -> list[dict]:
    rows = MetricsLog(workdir / "metrics.jsonl").read()
    assert [r["step"] for r in rows] == list(range(1, n + 1))
    for r in rows:
        assert r["completion_tokens"] > 0 and r["generation_s"] > 0 and r["reward"] == r["reward"]  # not NaN
    return rows


def test_grpo_trains_in_bf16_on_the_gpu(tmp_path, tagged_model):
    import torch

    from parallel_r1.rl.grpo_worker import build_trainer

    trainer = build_trainer(_job(tmp_path, tagged_model, "hf"), str(tmp_path / "out"), save=False)
    assert trainer.args.bf16 and not trainer.args.use_cpu and trainer.args.gradient_checkpointing
    before = {n: p.detach().cpu().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    assert next(trainer.model.parameters()).device.type == "cuda"
    _assert_steps(tmp_path, 2)
    moved = [n for n, p in trainer.model.named_parameters() if n in before and not torch.equal(p.cpu(), before[n])]
    assert moved, "no weight changed in two GRPO steps"


def test_colocated_vllm_on_cuda_gets_the_trained_weights(tmp_path, tagged_model):

    from parallel_r1.rl.grpo_worker import build_trainer

    trainer = build_trainer(_job(tmp_path, tagged_model, "vllm"), str(tmp_path / "out"), save=False)
    trainer.train()
    for r in _assert_steps(tmp_path, 2):
        assert r["weight_sync_s"] > 0
    assert_engine_follows_a_sync(trainer)  # both fp32 (rl.vllm_dtype): the engine follows token for token


@pytest.fixture
def vllm_server(tmp_path, tagged_model):
    """`trl vllm-serve` on the second GPU (the trainer keeps the first: their weight-sync group needs two devices)."""
    (port,) = free_ports(1)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "1"}
    trl = Path(sys.executable).with_name("trl")
    log = tmp_path / "vllm-serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([str(trl), "vllm-serve", "--model", str(tagged_model), "--host", "127.0.0.1",
                                 "--port", str(port), "--gpu_memory_utilization", "0.3", "--dtype", "float32"],
                                env=env, start_new_session=True, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    try:
        while True:
            assert proc.poll() is None, f"trl vllm-serve exited: {log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                assert time.monotonic() < deadline, "trl vllm-serve not healthy within 300 s"
                time.sleep(2)
        yield url
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=60)


@pytest.mark.skipif("_gpus() < 2", reason="needs two CUDA devices")
def test_server_mode_rollouts_come_from_trl_vllm_serve(tmp_path, tagged_model, vllm_server):
    from parallel_r1.rl.grpo_worker import build_trainer

    job = _job(tmp_path, tagged_model, "vllm", **{"rl.vllm_mode": "server", "rl.vllm_server_url": vllm_server})
    trainer = build_trainer(job, str(tmp_path / "out"), save=False)
    assert trainer.args.vllm_mode == "server" and trainer.args.vllm_server_base_url == vllm_server
    trainer.train()
    for r in _assert_steps(tmp_path, 2):
        assert r["weight_sync_s"] > 0  # the trained weights went to the server before each step's rollouts
    assert json.loads((tmp_path / "state.json").read_text())["step"] == 2
