"""Grounding the cold-start data in the knowledge base: the passages retrieved for each record's dialogue prefix,
only those above the similarity threshold, become every path's context and a reference block of its system prompt;
the record lists which passages it used."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from parallel_r1.kb.grounding import check_not_empty, high_confidence, passage_ref, reference_block

if TYPE_CHECKING:
    from parallel_r1.kb import KnowledgeBase
    from parallel_r1.parallel_sft.dataset import ParallelRecord

PREFIX_MESSAGES = 3  # the last messages of the prefix that make the query: the student's question and its context


def prefix_query(messages: Sequence[dict]) -> str:
    """The query for a record: the last few non-system messages before its target, oldest first."""
    history = [m["content"] for m in messages[:-1] if m["role"] != "system"]
    return "\n".join(history[-PREFIX_MESSAGES:])


class Grounder:
    def __init__(self, kb: KnowledgeBase, top_k: int = 3, min_score: float = 0.45):
        check_not_empty(kb, "parallel_sft")
        self.kb, self.top_k, self.min_score = kb, top_k, min_score

    def ground(self, records: Sequence[ParallelRecord]) -> int:
        """Fill each record's path_context, grounding and system prompt in place; how many records got passages."""
        results = high_confidence(self.kb, [prefix_query(r.messages) for r in records], self.top_k, self.min_score)
        grounded = 0
        for record, kept in zip(records, results, strict=True):
            record.grounding = [passage_ref(h) for h in kept]
            texts = [h.passage.text for h in kept]
            record.path_context = [list(texts) for _ in record.paths]
            if texts:
                grounded += 1
                system = record.messages[0]
                record.messages[0] = {**system, "content": f"{system['content']}\n\n{reference_block(texts)}"}
        return grounded
