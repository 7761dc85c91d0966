"""Fitting a conversation into a model's context window: the newest turns are kept, the oldest go first.

Evaluation, serving and training windows all cut conversations this one way, so a model is trained on the
kind of context it is later prompted with.
"""

from __future__ import annotations

from parallel_r1.errors import UserFacingError


def fit_prompt(history: list[dict], count_tokens, budget: int, system_prompt: str | None,
               hint: str = "lower eval.max_tokens or raise inference.max_model_len") -> list[dict]:
    """`system_prompt` (if any) + the latest messages of `history` that fit `budget` tokens, starting with a student
    turn; the oldest go first. When not even the last student message fits, its beginning is cut; when nothing of
    it fits, a `UserFacingError` ends with `hint` (the settings that make room). `count_tokens(messages)` measures
    a prompt."""
    system = [{"role": "system", "content": system_prompt}] if system_prompt is not None else []
    starts = [i for i, m in enumerate(history) if m["role"] == "user"]
    for start in starts:
        prompt = system + history[start:]
        if count_tokens(prompt) <= budget:
            return prompt
    last = dict(history[-1])
    while last["content"] and count_tokens(system + [last]) > budget:
        last["content"] = last["content"][max(1, len(last["content"]) // 4):]
    if not last["content"]:
        raise UserFacingError(f"the system prompt leaves no room for a student message within {budget} prompt "
                              f"tokens: {hint}")
    return system + [last]


def token_counter(tokenizer):
    """`count_tokens(messages)` for `fit_prompt`: the prompt's length under the tokenizer's chat template."""
    def count(messages: list[dict]) -> int:
        return len(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                 return_dict=True)["input_ids"])
    return count
