"""`finetune` on CUDA devices (marked `gpu`: skipped without one), as configs/cluster.yaml runs it: Ray Train workers
with a GPU each (`finetune.use_gpu`), and one job trained data-parallel over two GPUs (`finetune.num_workers: 2`,
which needs two devices)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from parallel_r1.config import load_config
from parallel_r1.finetune.stage import run_finetune
from tests.support.batches import write_batches

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


def _gpus() -> int:
    import torch

    return torch.cuda.device_count()


def _cfg(workdir: Path, base: Path, **finetune):
    overrides = {"workdir": str(workdir), "base_model.path": str(base), "finetune.epochs": 2,
                 "finetune.use_gpu": True, "finetune.gpus_per_worker": 1, "finetune.cpus_per_worker": 1,
                 "finetune.per_device_batch_size": 4, "finetune.max_length": 512, "finetune.lora.r": 4,
                 "finetune.lora.alpha": 8}
    overrides.update({f"finetune.{k}": v for k, v in finetune.items()})
    return load_config(overrides=overrides)


def _assert_trained(job, adapter: Path, base: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    assert job.status == "succeeded", job.error
    m = job.metrics
    assert math.isfinite(m["train_loss"]) and m["train_loss"] > 0 and m["tokens_per_s"] > 0
    ids = torch.tensor([[1, 2, 3]])
    bare = AutoModelForCausalLM.from_pretrained(base)(ids).logits
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter)(ids).logits
    assert not torch.allclose(tuned, bare)


def test_lora_sft_on_a_gpu_worker(ray_session, tmp_path, tiny_base_model):
    import ray

    assert ray.cluster_resources().get("GPU", 0) >= 1, "the session's Ray sees no GPU"
    write_batches(tmp_path, names=["neurodivergent"], per_batch=8)
    jobs = run_finetune(_cfg(tmp_path, tiny_base_model))
    job = jobs["neurodivergent"]
    _assert_trained(job, tmp_path / "adapters" / "neurodivergent", tiny_base_model)
    assert job.metrics["workers"] == 1


@pytest.mark.skipif("_gpus() < 2", reason="needs two CUDA devices")
def test_one_job_data_parallel_over_two_gpus(ray_session, tmp_path, tiny_base_model):
    write_batches(tmp_path, names=["neurodivergent"], per_batch=16)
    jobs = run_finetune(_cfg(tmp_path, tiny_base_model, num_workers=2))
    job = jobs["neurodivergent"]
    _assert_trained(job, tmp_path / "adapters" / "neurodivergent", tiny_base_model)
    # Two workers share the global batch of per_device_batch_size x num_workers = 8: the optimizer steps of one.
    assert job.metrics["workers"] == 2
    assert job.metrics["global_step"] == math.ceil(job.metrics["examples"] / 8) * 2


def test_a_gpu_trains_in_bf16_mixed_precision_where_it_can_and_the_cpu_in_fp32():
    import torch

    from parallel_r1.finetune.sft import bf16_mixed

    assert bf16_mixed(True) == torch.cuda.is_bf16_supported()
    assert bf16_mixed(False) is False
