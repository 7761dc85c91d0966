"""Teach a tokenizer and its model the Parallel-R1 tags: one token id per tag, embeddings resized to match.

The tags are added as atomic tokens that decoding keeps (`special=False` in the added-token sense): every engine
here decodes with `skip_special_tokens=True` to drop the chat-role markers, and that must not erase the
`<Parallel>`/`<Path>`/`<Summary>` structure the rewards and the format checker read. New embedding rows start at
the mean of the existing ones, so an untrained tag is not an outlier the first steps have to undo.

`export_parallel_model` writes the full model folders the parallel stage evaluates and hands to RL: the starting
point (base + tags) and the cold-start SFT's adapter merged into it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from tokenizers import AddedToken
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from parallel_r1.data.parallel_format import SPECIAL_TOKENS as PARALLEL_TAGS


def parallel_token_ids(tokenizer: PreTrainedTokenizerBase) -> dict[str, int]:
    """Each tag's id, for tags the tokenizer encodes as one token; missing tags are left out."""
    ids = {}
    for tag in PARALLEL_TAGS:
        encoded = tokenizer.encode(tag, add_special_tokens=False)
        if len(encoded) == 1:
            ids[tag] = encoded[0]
    return ids


def add_parallel_tokens(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel | None = None) -> list[str]:
    """Add the missing tags to `tokenizer` (and resize `model`'s embeddings); returns the tags added. Idempotent."""
    missing = [t for t in PARALLEL_TAGS if t not in parallel_token_ids(tokenizer)]
    if missing:
        tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in missing])
    if model is not None and model.get_input_embeddings().num_embeddings < len(tokenizer):
        old = model.get_input_embeddings().num_embeddings
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        with torch.no_grad():
            for emb in {model.get_input_embeddings(), model.get_output_embeddings()} - {None}:
                emb.weight[old:] = emb.weight[:old].mean(dim=0)
    return missing


def extend_context(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, length: int) -> None:
    """Raise the model's context to `length` tokens where it is shorter. Only for rotary-position models, whose
    positions are computed rather than learned: a parallel reply holds every path and outgrows a small context."""
    config = model.config
    if config.max_position_embeddings >= length:
        return
    if not (getattr(config, "rope_parameters", None) or getattr(config, "rope_theta", None)):
        raise ValueError(f"parallel.sft.max_length={length} exceeds the model's context "
                         f"({config.max_position_embeddings}) and its positions are learned: lower max_length")
    config.max_position_embeddings = length
    tokenizer.model_max_length = max(tokenizer.model_max_length, length)


def export_parallel_model(base_model: str | Path, out_dir: Path, *, context: int,
                          adapter: str | Path | None = None) -> Path:
    """A full model folder with its tokenizer: `base_model` with the tags added and its context raised to `context`,
    and, when given, `adapter` (a LoRA + trainable-token adapter trained on exactly that) merged in. Atomic: the
    folder is written under a temporary name and renamed into place."""
    tokenizer = AutoTokenizer.from_pretrained(adapter or base_model)
    model = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
    add_parallel_tokens(tokenizer, model)
    extend_context(model, tokenizer, context)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    out = Path(out_dir)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out
