"""The inference engines on a CUDA device (marked `gpu`: skipped without one): vLLM's CUDA build in bfloat16 with
LoRA adapters per request, as configs/cluster.yaml runs it (`inference.dtype: bfloat16`), and the HF engine on the
GPU, agreeing with vLLM in fp32 as they do on CPU."""

from __future__ import annotations

import pytest

from parallel_r1.inference import SamplingParams
from parallel_r1.inference.hf_engine import HFEngine

pytestmark = [pytest.mark.gpu, pytest.mark.slow]
CONVERSATIONS = [[{"role": "user", "content": text}] for text in
                 ["I don't understand fractions.", "Why does the moon change shape?", "What is a variable?"]]
GREEDY = SamplingParams(temperature=0, max_tokens=16)


def _texts(completions):
    return [c.texts for c in completions]


def test_vllm_on_cuda_in_bf16_serves_the_base_and_each_adapter(tiny_inference_config, tiny_base_model, tiny_adapters):
    import torch

    from parallel_r1.inference.vllm_engine import VLLMEngine

    cfg = tiny_inference_config.model_copy(update={"dtype": "bfloat16", "gpu_memory_utilization": 0.3})
    free_before = torch.cuda.mem_get_info()[0]
    engine = VLLMEngine(cfg, tiny_base_model, tiny_adapters)
    try:
        assert torch.cuda.mem_get_info()[0] < free_before  # the engine (weights, KV cache) lives on the GPU
        assert engine._llm.llm_engine.model_config.dtype == torch.bfloat16
        base = engine.generate(CONVERSATIONS, GREEDY)
        styled = engine.generate(CONVERSATIONS, GREEDY, adapter="style")
        other = engine.generate(CONVERSATIONS, GREEDY, adapter="other")
        for out in (base, styled, other):
            assert all(c.completion_tokens[0] > 0 for c in out)
        assert _texts(styled) != _texts(base) and _texts(styled) != _texts(other)
        assert _texts(engine.generate(CONVERSATIONS, GREEDY, adapter="style")) == _texts(styled)  # deterministic
    finally:
        engine.close()


def test_hf_on_cuda_agrees_with_vllm_in_fp32(tiny_inference_config, tiny_base_model, tiny_adapters):
    from parallel_r1.inference.vllm_engine import VLLMEngine

    hf = HFEngine(tiny_inference_config, tiny_base_model, tiny_adapters)
    assert hf._device.type == "cuda"
    vllm = VLLMEngine(tiny_inference_config.model_copy(update={"gpu_memory_utilization": 0.3}), tiny_base_model,
                      tiny_adapters)
    try:
        for adapter in (None, "style"):
            h, v = hf.generate(CONVERSATIONS, GREEDY, adapter), vllm.generate(CONVERSATIONS, GREEDY, adapter)
            assert [c.prompt_tokens for c in h] == [c.prompt_tokens for c in v]
            assert sum(a == b for a, b in zip(_texts(h), _texts(v), strict=True)) >= len(CONVERSATIONS) - 1
    finally:
        vllm.close()
        hf.close()
