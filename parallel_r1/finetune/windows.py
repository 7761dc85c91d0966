"""Training windows: a dialogue longer than the training context keeps every trained teacher turn.

Cut at `max_length` tokens, a long dialogue would lose its later turns (the long-dialogue specialist's whole
niche). Instead, each trained turn that ends past the limit becomes its own example: the latest context that
fits before it (the same cut `compare` and `serve` make with `fit_prompt`), then the turn as the only target.
Turns that are context carry `"weight": 0`, which the per-turn loss mask (`turn_mask`) keeps out of the loss.
"""

from __future__ import annotations

from collections.abc import Callable

from parallel_r1.data.context import fit_prompt
from parallel_r1.errors import UserFacingError


def _trained(message: dict) -> bool:
    return message["role"] == "assistant" and bool(message.get("weight", 1))


def _as_context(messages: list[dict]) -> list[dict]:
    return [{**m, "weight": 0} if m["role"] == "assistant" else m for m in messages]


def training_windows(messages: list[dict], count_tokens: Callable[[list[dict]], int],
                     max_length: int) -> list[list[dict]]:
    """The examples one chat record becomes under `max_length` tokens: the record itself when every trained turn
    fits; otherwise the record with the turns past the limit made context, then one window per such turn."""
    head = messages[:1] if messages and messages[0]["role"] == "system" else []
    turns = messages[len(head):]
    cut = [i for i, m in enumerate(turns) if _trained(m) and count_tokens(head + turns[:i + 1]) > max_length]
    if not cut:
        return [messages]
    first = head + [{**m, "weight": 0} if i in cut else m for i, m in enumerate(turns)]
    examples = [first] if any(_trained(m) for m in first) else []
    system = head[0]["content"] if head else None
    for i in cut:
        target = {**turns[i], "weight": 1}
        budget = max_length - (count_tokens(head + turns[:i + 1]) - count_tokens(head + turns[:i]))
        try:
            context = fit_prompt(turns[:i], count_tokens, budget, system)
        except UserFacingError:  # not even the student's last message fits: training truncates the target
            context = head + turns[i - 1:i]
        examples.append(_as_context(context) + [target])
    return examples
