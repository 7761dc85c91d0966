"""Grounding a prompt in the knowledge base, the one retrieval every grounded stage uses (`kb.ground`): the top-k
passages scoring at least `kb.min_score`, a "Reference notes" block of their texts and the references naming them."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from parallel_r1.config import KBConfig
from parallel_r1.kb.service import KnowledgeBase, open_kb
from parallel_r1.kb.store import Hit, KBError


def check_not_empty(kb: KnowledgeBase, stage: str) -> None:
    if kb.store.count() == 0:
        raise KBError(f"kb.ground includes {stage} but the knowledge base is empty (table {kb.store.table}): run "
                      f"`parallel-r1 kb ingest --builtin` (or ingest your own notes) first")


def high_confidence(kb: KnowledgeBase, queries: list[str], top_k: int, min_score: float) -> list[list[Hit]]:
    """For each query, its best `top_k` passages that score at least `min_score`, best first."""
    return [[h for h in hits if h.score >= min_score] for hits in kb.query_many(queries, top_k)]


def reference_block(passages: Sequence[str]) -> str:
    return "Reference notes (use them where they help):\n" + "\n".join(f"- {p}" for p in passages)


def passage_ref(hit: Hit) -> dict:
    """What a record or a reply says of a passage it used."""
    return {"digest": hit.passage.digest, "source": hit.passage.source, "title": hit.passage.title,
            "score": round(hit.score, 4)}


class Retriever:
    """`high_confidence` for one query at a time, on the knowledge base of `cfg` opened on first use and kept open
    (once per process: a discovery actor, a router replica); thread-safe. A failed query closes it, to reopen next."""

    def __init__(self, cfg: KBConfig, workdir: str | Path):
        self.cfg, self.workdir = cfg, str(workdir)
        self._lock = threading.Lock()
        self._open: ExitStack | None = None
        self._kb: KnowledgeBase | None = None

    def __reduce__(self):  # sent to a Ray actor as its settings: the copy opens a store of its own
        return Retriever, (self.cfg, self.workdir)

    def retrieve(self, query: str) -> list[Hit]:
        with self._lock:
            try:
                if self._kb is None:
                    self._open = ExitStack()
                    self._kb = self._open.enter_context(open_kb(self.cfg, Path(self.workdir)))
                return high_confidence(self._kb, [query], self.cfg.top_k, self.cfg.min_score)[0]
            except BaseException:
                self._close()
                raise

    def _close(self) -> None:
        stack, self._open, self._kb = self._open, None, None
        if stack is not None:
            stack.close()

    def close(self) -> None:
        with self._lock:
            self._close()
