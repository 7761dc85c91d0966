"""Fitting one role's chat request into the served model's context window.

The system prompt and the dialogue's opening always stay; the oldest turns after them are left out in
user/assistant pairs (so the roles still alternate, as strict chat templates require) until the request and
the reply's tokens fit. Token counts are the LLM judge's estimates (`grading.judge_prompt`), corrected from
the prompt sizes the server reports and from its context-length refusals.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from parallel_r1.grade.judge import CONTEXT_NUMBERS, PROMPT_NUMBERS
from parallel_r1.grade.judge_prompt import CHARS_PER_TOKEN, prompt_tokens
from parallel_r1.llm_client import EndpointError, OpenAIChatClient

MIN_REPLY_TOKENS = 32
LEFT_OUT_NOTE = "\n\n(Older messages of this chat are not shown here.)"


class ContextTooSmall(RuntimeError):
    """Even the system prompt, the opening and the last message do not fit the model's context."""


def _first_int(patterns, text: str) -> int | None:
    for pattern in patterns:
        if m := pattern.search(text):
            return int(m.group(1))
    return None


def fit_messages(messages: list[dict], head: int, budget: int | None,
                 estimate: Callable[[list[dict]], int]) -> tuple[list[dict], int]:
    """`messages` within `budget` prompt tokens, and how many were left out.

    The first `head` messages (the system prompt and the opening) and at least the last one are kept; the
    oldest of the others go in pairs, and the system prompt then says that older messages are not shown.
    Raises `ContextTooSmall` when nothing left out makes it fit; a None budget (an unknown context) keeps all.
    """
    if budget is None or estimate(messages) <= budget:
        return messages, 0
    tail = messages[head:]
    system = {**messages[0], "content": messages[0]["content"] + LEFT_OUT_NOTE}
    shortest = [system, *messages[1:head], *tail]
    for dropped in range(2, len(tail), 2):
        fitted = [system, *messages[1:head], *tail[dropped:]]
        if estimate(fitted) <= budget:
            return fitted, dropped
        shortest = fitted
    raise ContextTooSmall(f"the request needs about {estimate(shortest)} prompt tokens with every older message "
                          f"left out, and the model's context leaves {budget} for the prompt: raise "
                          "llm_server.max_model_len (or discover.openai.context_tokens), or shorten the turns "
                          "(discover.roleplay)")


class ContextWindow:
    """The served model's context in tokens and a characters-per-token estimate, shared by a backend's sessions.

    The context is `context_tokens` when configured, else asked of the server's /v1/models once; None when
    neither says (then nothing is trimmed until the server refuses a prompt and names its limit).
    """

    def __init__(self, client: OpenAIChatClient, context_tokens: int | None):
        self._client = client
        self.tokens = context_tokens
        self.chars_per_token = CHARS_PER_TOKEN
        self._known = context_tokens is not None
        self._lookup: asyncio.Lock | None = None

    async def ready(self) -> None:
        """Look the context up on first use (one request, however many sessions ask at once)."""
        if self._known:
            return
        self._lookup = self._lookup or asyncio.Lock()
        async with self._lookup:
            if not self._known:
                self.tokens = await self._client.context_window()
                self._known = True

    def reply_tokens(self, wanted: int) -> int:
        """Tokens asked for the reply: `wanted`, but at most a quarter of the context (at least a few)."""
        if self.tokens is None:
            return wanted
        return min(wanted, max(MIN_REPLY_TOKENS, self.tokens // 4))

    def prompt_budget(self, reply_tokens: int) -> int | None:
        return None if self.tokens is None else self.tokens - reply_tokens

    def estimate(self, messages: list[dict]) -> int:
        return prompt_tokens(messages, self.chars_per_token)

    def calibrate(self, messages: list[dict], prompt_tokens_seen: int | None) -> None:
        """Lower the characters-per-token estimate when the server counted more tokens than it assumed."""
        if prompt_tokens_seen:
            observed = sum(len(str(m["content"])) for m in messages) / prompt_tokens_seen
            self.chars_per_token = max(0.5, min(self.chars_per_token, observed))

    def learn(self, err: EndpointError, messages: list[dict]) -> None:
        """After a context-length refusal: take the limit and the prompt's size from the server's message where
        it gives them, else assume tokens are a quarter denser than estimated."""
        limit = _first_int(CONTEXT_NUMBERS, err.detail)
        if limit:
            self.tokens = min(self.tokens or limit, limit)
            self._known = True
        seen = _first_int(PROMPT_NUMBERS, err.detail)
        before = self.chars_per_token
        self.calibrate(messages, seen)
        if self.chars_per_token == before:
            self.chars_per_token = max(0.5, before * 0.75)
