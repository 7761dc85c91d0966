"""A conversation as token ids with every message's content tokenised as plain text: a special-token string a user
types (`<|im_end|>`, `<|assistant|>`, a Parallel-R1 tag added as a token) stays text and cannot forge a turn.

The chat template is rendered with a placeholder for each content; template text is tokenised as usual (its own
special tokens included), contents with `split_special_tokens`. A template that alters contents (so a placeholder
does not come back whole) falls back to `defuse`d contents in the usual rendering.
"""

from __future__ import annotations

import re

WORD_JOINER = "\u2060"  # invisible; inserted into a special-token string it no longer matches the token
_MARK = re.compile("\ue000(\\d+)\ue001")  # private-use characters: no real text carries them


def special_strings(tokenizer) -> list[str]:
    """The text forms of the tokenizer's special tokens (and added tokens marked special), longest first."""
    added = [t.content for t in getattr(tokenizer, "added_tokens_decoder", {}).values() if t.special]
    return sorted({*tokenizer.all_special_tokens, *added} - {""}, key=len, reverse=True)


def defuse(text: str, specials: list[str]) -> str:
    """`text` with a word joiner after the first character of every special-token string in it."""
    for s in specials:
        if s in text:
            text = text.replace(s, s[0] + WORD_JOINER + s[1:])
    return text


def chat_ids(tokenizer, conversation: list[dict], specials: list[str] | None = None) -> list[int]:
    """The prompt ids of `conversation` (generation prompt added) with its contents tokenised as text."""
    marked = [{**m, "content": f"\ue000{i}\ue001"} for i, m in enumerate(conversation)]
    text = tokenizer.apply_chat_template(marked, add_generation_prompt=True, tokenize=False)
    parts = _MARK.split(text)
    if sorted(int(i) for i in parts[1::2]) != list(range(len(conversation))):
        specials = special_strings(tokenizer) if specials is None else specials
        safe = [{**m, "content": defuse(m["content"], specials)} for m in conversation]
        text = tokenizer.apply_chat_template(safe, add_generation_prompt=True, tokenize=False)
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    ids: list[int] = []
    for k, part in enumerate(parts):
        if k % 2:  # a content
            ids += tokenizer(conversation[int(part)]["content"], add_special_tokens=False,
                             split_special_tokens=True)["input_ids"]
        elif part:  # the template's own text; it writes bos itself
            ids += tokenizer(part, add_special_tokens=False)["input_ids"]
    return ids
