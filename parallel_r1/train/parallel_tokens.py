"""Teach a tokenizer and its model the Parallel-R1 tags: one token id per tag, embeddings resized to match.

The tags are added as atomic tokens that decoding keeps (`special=False` in the added-token sense): every engine
here decodes with `skip_special_tokens=True` to drop the chat-role markers, and that must not erase the
`<Parallel>`/`<Path>`/`<Summary>` structure the rewards and the format checker read. New embedding rows start at
the mean of the existing ones, so an untrained tag is not an outlier the first steps have to undo.
"""

from __future__ import annotations

import torch
from tokenizers import AddedToken
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from parallel_r1.curate.parallel_format import SPECIAL_TOKENS as PARALLEL_TAGS


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
