"""LoRA products for vLLM's CPU build, one matrix product per adapter slot instead of vLLM's per-token weight gather.

vLLM's CPU punica ops (`vllm.lora.ops.torch_ops`) copy the whole adapter weight for every token of a batch and
answer a token without an adapter (slot -1) through the last slot. These do the same products grouped by slot and
leave slot -1 tokens without a LoRA term, as vLLM's GPU kernels do. They are installed by a vLLM general plugin
(`register`, the `vllm.general_plugins` entry point), which vLLM runs in each of its processes, and only where the
environment asks for them (`LORA_ENV=grouped`, set by the engines from `inference.vllm_cpu_lora`): a plain vLLM in
the same environment keeps its own ops.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import torch

LORA_ENV = "PARALLEL_R1_VLLM_CPU_LORA"
OPS = ("bgmv_shrink", "bgmv_expand", "bgmv_expand_slice", "sgmv_shrink", "sgmv_expand", "sgmv_expand_slice")


def _products(inputs: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor, dtype: torch.dtype,
              rows_out: int) -> Iterator[tuple[slice | torch.Tensor, torch.Tensor]]:
    """(rows, inputs[rows] @ weights[slot].T) per adapter slot in `indices`, skipping slot -1. vLLM's shapes: one
    input row or one index broadcasts over the other; rows past `rows_out` (padding) are dropped."""
    weights = weights.squeeze(1) if weights.dim() == 4 else weights
    n = max(len(inputs), len(indices))
    if n > 1 and len(inputs) == 1:
        inputs = inputs.expand(n, -1)
    if n > 1 and len(indices) == 1:
        indices = indices.expand(n)
    inputs, indices = inputs[:rows_out], indices[:rows_out]
    inputs = inputs.to(dtype)
    slots = torch.unique(indices).tolist()
    if slots == [-1]:
        return
    if len(slots) == 1:
        yield slice(None), inputs @ weights[slots[0]].to(dtype).T
        return
    for slot in slots:
        if slot >= 0:
            rows = (indices == slot).nonzero().squeeze(1)
            yield rows, inputs[rows] @ weights[slot].to(dtype).T


def bgmv_shrink(inputs: torch.Tensor, lora_b_weights: torch.Tensor, output_tensor: torch.Tensor,
                lora_indices_tensor: torch.Tensor, scaling: float = 1.0) -> None:
    """output[:, :rank] = scaling * inputs @ A[slot].T per token (0 for slot -1)."""
    out = output_tensor[:, :lora_b_weights.shape[-2]]
    out.zero_()
    for rows, product in _products(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype, len(out)):
        out[rows] = scaling * product


def bgmv_expand_slice(inputs: torch.Tensor, lora_b_weights: torch.Tensor, output_tensor: torch.Tensor,
                      lora_indices_tensor: torch.Tensor, slice_offset: int, slice_size: int,
                      add_inputs: bool = True) -> None:
    """output[:, offset:offset+size] (+)= inputs @ B[slot].T per token (nothing added for slot -1)."""
    _expand(inputs, lora_b_weights, output_tensor[:, slice_offset:slice_offset + slice_size],
            lora_indices_tensor, add_inputs)


def bgmv_expand(inputs: torch.Tensor, lora_b_weights: torch.Tensor, output_tensor: torch.Tensor,
                lora_indices_tensor: torch.Tensor, add_inputs: bool = True) -> None:
    """output[:, :width] (+)= inputs @ B[slot].T per token, width the smaller of the two (their paddings differ)."""
    width = min(lora_b_weights.shape[-2], output_tensor.shape[1])
    _expand(inputs, lora_b_weights[..., :width, :], output_tensor[:, :width], lora_indices_tensor, add_inputs)


def _expand(inputs: torch.Tensor, weights: torch.Tensor, out: torch.Tensor, indices: torch.Tensor,
            add_inputs: bool) -> None:
    if not add_inputs:
        out.zero_()
    for rows, product in _products(inputs, weights, indices, out.dtype, len(out)):
        out[rows] += product


def _per_token(lora_indices_tensor: torch.Tensor, seq_len_tensor: torch.Tensor) -> torch.Tensor:
    return torch.repeat_interleave(lora_indices_tensor, seq_len_tensor)


def sgmv_shrink(inputs, lora_a_weights, output_tensor, b_seq_start_loc, seq_len_tensor, lora_indices_tensor,
                batches, max_seq_length, token_nums, scaling) -> None:
    """bgmv_shrink over a prefill batch, the slot given per sequence."""
    bgmv_shrink(inputs, lora_a_weights, output_tensor, _per_token(lora_indices_tensor, seq_len_tensor), scaling)


def sgmv_expand(inputs, lora_b_weights, output_tensor, b_seq_start_loc, seq_len_tensor, lora_indices_tensor,
                batches, max_seq_length, token_nums, add_inputs=False) -> None:
    """bgmv_expand over a prefill batch, the slot given per sequence."""
    bgmv_expand(inputs, lora_b_weights, output_tensor, _per_token(lora_indices_tensor, seq_len_tensor), add_inputs)


def sgmv_expand_slice(inputs, lora_b_weights, output_tensor, b_seq_start_loc, seq_len_tensor, lora_indices_tensor,
                      batches, max_seq_length, token_nums, slice_offset, slice_size, add_inputs=False) -> None:
    """bgmv_expand_slice over a prefill batch, the slot given per sequence."""
    bgmv_expand_slice(inputs, lora_b_weights, output_tensor, _per_token(lora_indices_tensor, seq_len_tensor),
                      slice_offset, slice_size, add_inputs)


def register() -> None:
    """The vLLM plugin: where LORA_ENV is `grouped`, vLLM's CPU punica wrapper calls these ops instead of its own."""
    mode = os.environ.get(LORA_ENV, "vllm")
    if mode not in ("grouped", "vllm"):
        raise ValueError(f"{LORA_ENV}={mode!r}: expected 'grouped' or 'vllm'")
    if mode == "vllm":
        return
    from vllm.lora.punica_wrapper import punica_cpu

    missing = [name for name in OPS if not callable(getattr(punica_cpu, name, None))]
    if missing:
        raise RuntimeError(f"this vLLM's CPU LoRA wrapper has no {', '.join(missing)}: parallel-r1's grouped LoRA "
                           f"ops do not fit it; set inference.vllm_cpu_lora: vllm")
    ours = sys.modules[__name__]
    for name in OPS:
        setattr(punica_cpu, name, getattr(ours, name))
