"""The grouped CPU LoRA ops against vLLM's own (`vllm.lora.ops.torch_ops`) on the shapes vLLM calls them with, the
slot -1 rule, and the plugin that installs them only where the environment asks. The engine-level check (a batch
mixing the base model with adapters) is tests/inference/test_engines.py's generate_each test."""

from __future__ import annotations

import importlib.metadata

import pytest
import torch

from parallel_r1.inference import vllm_cpu_lora as grouped
from parallel_r1.inference.vllm_cpu_lora import LORA_ENV, OPS, register

vllm_ops = pytest.importorskip("vllm.lora.ops.torch_ops")

TOKENS, IN, OUT, RANK, SLOTS = 12, 24, 40, 4, 3
INDICES = {"one slot": [1] * TOKENS, "mixed": [0, 2, 1, 1, 0, 2, 2, 0, 1, 0, 0, 2], "one index": [2]}


def _weights(dim_out: int, dim_in: int) -> torch.Tensor:
    return torch.randn(SLOTS, 1, dim_out, dim_in)  # vLLM's stacked layout: slot, 1, out, in


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("indices", INDICES.values(), ids=INDICES.keys())
def test_shrink_matches_vllm(indices):
    x, a, idx = torch.randn(TOKENS, IN), _weights(RANK, IN), torch.tensor(indices)
    ours, theirs = torch.full((TOKENS, RANK), 7.0), torch.full((TOKENS, RANK), 7.0)
    grouped.bgmv_shrink(x, a, ours, idx, 0.5)
    vllm_ops.bgmv_shrink(x, a, theirs, idx, 0.5)
    torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("add_inputs", [True, False])
@pytest.mark.parametrize("indices", INDICES.values(), ids=INDICES.keys())
def test_expand_and_expand_slice_match_vllm(indices, add_inputs):
    buffer, b, idx = torch.randn(TOKENS, RANK), _weights(OUT, RANK), torch.tensor(indices)
    start = torch.randn(TOKENS, OUT + 8)
    for op, args in (("bgmv_expand", ()), ("bgmv_expand_slice", (3, OUT))):
        ours, theirs = start.clone(), start.clone()
        getattr(grouped, op)(buffer, b, ours, idx, *args, add_inputs)
        getattr(vllm_ops, op)(buffer, b, theirs, idx, *args, add_inputs)
        torch.testing.assert_close(ours, theirs, msg=op)


def test_expand_padding_and_broadcast_match_vllm():
    """Output padded narrower than the weights, more input rows than output rows, and one input row for all."""
    b = _weights(OUT, RANK)
    for rows_in, rows_out in ((TOKENS + 4, TOKENS), (1, TOKENS)):
        buffer, idx = torch.randn(rows_in, RANK), torch.randint(0, SLOTS, (rows_in,))
        ours, theirs = torch.zeros(rows_out, OUT - 6), torch.zeros(rows_out, OUT - 6)
        grouped.bgmv_expand(buffer, b, ours, idx, True)
        vllm_ops.bgmv_expand(buffer, b, theirs, idx, True)
        torch.testing.assert_close(ours, theirs)


def test_prefill_ops_give_each_sequence_its_slot():
    """sgmv_*: the slot per sequence, spread over its tokens, as vLLM's."""
    seq_lens, slots = torch.tensor([5, 3, 4]), torch.tensor([2, 0, 2])
    x, a, b = torch.randn(TOKENS, IN), _weights(RANK, IN), _weights(OUT, RANK)
    meta = (torch.tensor([0, 5, 8]), seq_lens, slots, 3, 5, TOKENS)
    ours, theirs = torch.zeros(TOKENS, RANK), torch.zeros(TOKENS, RANK)
    grouped.sgmv_shrink(x, a, ours, *meta, 2.0)
    vllm_ops.sgmv_shrink(x, a, theirs, *meta, 2.0)
    torch.testing.assert_close(ours, theirs)
    out_ours, out_theirs = torch.ones(TOKENS, OUT + 2), torch.ones(TOKENS, OUT + 2)
    grouped.sgmv_expand_slice(ours, b, out_ours, *meta, 2, OUT, True)
    vllm_ops.sgmv_expand_slice(theirs, b, out_theirs, *meta, 2, OUT, True)
    torch.testing.assert_close(out_ours, out_theirs)
    grouped.sgmv_expand(ours, b, out_ours, *meta, False)
    vllm_ops.sgmv_expand(theirs, b, out_theirs, *meta, False)
    torch.testing.assert_close(out_ours, out_theirs)


def test_a_token_without_an_adapter_gets_no_lora_term():
    """Slot -1 (a request without a LoRARequest): no contribution, where vLLM's ops use the last slot."""
    idx = torch.tensor([0, -1, 2, -1])
    x, a, b = torch.randn(4, IN), _weights(RANK, IN), _weights(OUT, RANK)
    buffer = torch.full((4, RANK), 7.0)
    grouped.bgmv_shrink(x, a, buffer, idx, 1.0)
    assert buffer[[1, 3]].abs().max() == 0 and buffer[[0, 2]].abs().min() > 0
    out = torch.ones(4, OUT)
    grouped.bgmv_expand(buffer, b, out, idx, True)
    torch.testing.assert_close(out[[1, 3]], torch.ones(2, OUT))
    only_base = torch.ones(4, OUT)
    grouped.bgmv_expand_slice(buffer, b, only_base, torch.full((4,), -1), 0, OUT, True)
    torch.testing.assert_close(only_base, torch.ones(4, OUT))


@pytest.fixture
def punica_cpu():
    from vllm.lora.punica_wrapper import punica_cpu

    stock = {name: getattr(punica_cpu, name) for name in OPS}
    yield punica_cpu
    for name, op in stock.items():
        setattr(punica_cpu, name, op)


def test_the_plugin_installs_the_ops_only_where_the_environment_asks(punica_cpu, monkeypatch):
    assert any(e.value == f"{grouped.__name__}:register"
               for e in importlib.metadata.entry_points(group="vllm.general_plugins"))
    stock = {name: getattr(punica_cpu, name) for name in OPS}
    for mode in (None, "vllm"):
        if mode is None:
            monkeypatch.delenv(LORA_ENV, raising=False)
        else:
            monkeypatch.setenv(LORA_ENV, mode)
        register()
        assert {name: getattr(punica_cpu, name) for name in OPS} == stock
    monkeypatch.setenv(LORA_ENV, "grouped")
    register()
    assert {name: getattr(punica_cpu, name) for name in OPS} == {name: getattr(grouped, name) for name in OPS}
    monkeypatch.setenv(LORA_ENV, "fast")
    with pytest.raises(ValueError, match="expected 'grouped' or 'vllm'"):
        register()


def test_a_vllm_without_the_expected_ops_is_refused_with_what_to_set(punica_cpu, monkeypatch):
    monkeypatch.setenv(LORA_ENV, "grouped")
    monkeypatch.delattr(punica_cpu, "sgmv_expand_slice")
    with pytest.raises(RuntimeError, match="inference.vllm_cpu_lora: vllm"):
        register()
