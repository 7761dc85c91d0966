"""Grounding the router's replies in the knowledge base (`kb.ground: [serve]`): the high-confidence passages for the
student's last message join the system prompt the model sees, and the reply's `grounding` field names them."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from parallel_r1.config import KBConfig
from parallel_r1.kb.grounding import Retriever, check_not_empty, passage_ref, reference_block
from parallel_r1.kb.service import open_kb
from parallel_r1.serve.api import is_context_refusal
from parallel_r1.serve.schema import with_instruction

log = logging.getLogger(__name__)

RETRY_AFTER_S = 30.0  # a store that failed is left alone this long: replies meanwhile are ungrounded


def check_store(kb: KBConfig, workdir: str | Path) -> None:
    """Before the app is deployed: the knowledge base of `kb.ground: [serve]` is reachable and holds passages, or a
    one-line error says what is missing; once serving, a store that fails only degrades replies."""
    if "serve" in kb.ground:
        with open_kb(kb, Path(workdir)) as opened:
            check_not_empty(opened, "serve")


@dataclass
class Grounded:
    """A request's conversation as the model is to see it, the reply's extra field, and the conversation without
    the reference notes while they are in it."""

    conversation: list[dict]
    extra: dict = field(default_factory=dict)
    ungrounded: list[dict] | None = None

    def drop_notes(self, refusal: str | None) -> bool:
        """After the model refused the grounded prompt as over its context: answer without the notes (True), so
        grounding never turns a request that fits into a refused one."""
        if self.ungrounded is None or not refusal or not is_context_refusal(refusal):
            return False
        log.warning("kb grounding: the reference notes do not fit the model's context (%s); answering without them",
                    refusal)
        self.conversation, self.ungrounded, self.extra = self.ungrounded, None, {"grounding": []}
        return True


class ReplyGrounding:
    """The router replica's grounding: the store of `kb` (the kb section; None: grounding off) opened on the first
    request and kept; a store that fails degrades replies to ungrounded ones with a warning, never to an error."""

    def __init__(self, kb: dict | None, workdir: str | Path):
        self.retriever = Retriever(KBConfig(**kb), workdir) if kb is not None else None
        self._down_until = 0.0

    async def ground(self, conversation: list[dict]) -> Grounded:
        """The conversation with the reference notes in its system prompt, and the reply's extra field
        (`{"grounding": [...]}`, empty when off); retrieval runs in a thread, off the event loop."""
        if self.retriever is None:
            return Grounded(conversation)
        query = next((m["content"] for m in reversed(conversation) if m["role"] == "user"), "")
        if not query.strip() or time.monotonic() < self._down_until:
            return Grounded(conversation, {"grounding": []})
        try:
            hits = await asyncio.to_thread(self.retriever.retrieve, query)
        except Exception as e:  # unreachable, or failing mid-query: answer ungrounded
            self._down_until = time.monotonic() + RETRY_AFTER_S
            log.warning("kb grounding: the knowledge base failed (%s: %s); replies are ungrounded for %.0f s",
                        type(e).__name__, str(e).splitlines()[0] if str(e) else "", RETRY_AFTER_S)
            return Grounded(conversation, {"grounding": []})
        if not hits:
            return Grounded(conversation, {"grounding": []})
        grounded = with_instruction(conversation, reference_block([h.passage.text for h in hits]))
        return Grounded(grounded, {"grounding": [passage_ref(h) for h in hits]}, conversation)
