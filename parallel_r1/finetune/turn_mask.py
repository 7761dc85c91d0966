"""Per-turn loss masks that do not depend on the chat template.

A teacher turn marked `"weight": 0` (a weak turn kept for its context, or a training window's earlier turns) must
stay out of the loss. Hub templates (Qwen, Llama, SmolLM, TRL's training templates) ignore per-message keys, so
the mask is built here from the rendered conversation: a trained turn's span runs from where the template's
generation prompt ends to where the rendered turn ends (its end-of-turn token included, so the model learns to
stop), and the tokens whose characters overlap a trained span carry the loss.
"""

from __future__ import annotations

from parallel_r1.errors import UserFacingError


class TemplateError(UserFacingError):
    pass


def _trained(message: dict) -> bool:
    return message["role"] == "assistant" and bool(message.get("weight", 1))


def _render(tokenizer, messages: list[dict], generation_prompt: bool = False) -> str:
    plain = [{"role": m["role"], "content": m["content"]} for m in messages]
    return tokenizer.apply_chat_template(plain, tokenize=False, add_generation_prompt=generation_prompt)


def trained_spans(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of its trained teacher turns."""
    text = _render(tokenizer, messages)
    spans = []
    for i, message in enumerate(messages):
        if not _trained(message):
            continue
        prompt = _render(tokenizer, messages[:i], generation_prompt=True)
        upto = _render(tokenizer, messages[:i + 1]).rstrip()
        if not (upto.startswith(prompt) and text.startswith(upto)):
            raise TemplateError("the base model's chat template renders a conversation differently from its own "
                                "prefixes (e.g. it rewrites earlier turns), so trained turns cannot be located in "
                                "it: give the tokenizer a template whose rendering of a conversation extends its "
                                "rendering of each prefix")
        spans.append((len(prompt), len(upto)))
    return text, spans


def tokenize_with_turn_mask(tokenizer, messages: list[dict]) -> dict:
    """`input_ids` of the rendered conversation and `assistant_masks` (1: the token carries loss), the columns
    TRL's SFTTrainer takes as an already processed dataset."""
    if not getattr(tokenizer, "is_fast", False):
        raise TemplateError(f"{type(tokenizer).__name__} is not a fast tokenizer: per-turn loss masks need its "
                            "character offsets")
    text, spans = trained_spans(tokenizer, messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    mask = [int(any(start < hi and end > lo for lo, hi in spans)) for start, end in enc["offset_mapping"]]
    return {"input_ids": enc["input_ids"], "assistant_masks": mask}
