"""Grounding the Parallel-R1 records on the real embedded store: passages above the threshold become each path's
context and the system prompt's reference notes, the record lists them, and an off-topic prefix gets none."""

from __future__ import annotations

import pytest

from parallel_r1.config import KBConfig
from parallel_r1.kb import KBError, open_kb
from parallel_r1.kb.stage import collect
from parallel_r1.parallel_sft.dataset import ParallelRecord
from parallel_r1.parallel_sft.grounding import Grounder, prefix_query

pytestmark = pytest.mark.kb


def _record(question: str) -> ParallelRecord:
    messages = [{"role": "system", "content": "You are a tutor."}, {"role": "user", "content": question},
                {"role": "assistant", "content": "<Parallel>...</Parallel>"}]
    return ParallelRecord(dialogue_id="d", turn_index=1, scenario_id="s", profile_kind="standard",
                          difficulty="easy", paths=["a", "b"], path_moves=[[], []], path_grades=[0.9, 0.8],
                          path_context=[[], []], summary="a", summary_mode="choose", chosen_path=0,
                          summary_grade=0.9, target="<Parallel>...</Parallel>", path_source="replay",
                          path_model="procedural", messages=messages)


def test_records_get_the_passages_above_the_threshold(kb_workdir, embedder, small_corpus):
    from parallel_r1.config import load_config

    cfg = load_config(None, {"workdir": str(kb_workdir), "kb.table": "t_ground"})
    passages, _ = collect(cfg, small_corpus)
    with open_kb(cfg.kb, kb_workdir, embedder) as kb:
        with pytest.raises(KBError, match="knowledge base is empty"):
            Grounder(kb)
        kb.ingest(passages)
        on_topic = _record("Why does my swap(int a, int b) function in C not actually swap anything?")
        off_topic = _record("What should I cook for dinner tonight?")
        assert Grounder(kb, top_k=2, min_score=0.45).ground([on_topic, off_topic]) == 1
    assert on_topic.grounding and all(g["score"] >= 0.45 for g in on_topic.grounding)
    assert on_topic.grounding[0]["source"].endswith("pointers.md") and len(on_topic.grounding) <= 2
    assert on_topic.path_context[0] == on_topic.path_context[1] and "by value" in on_topic.path_context[0][0]
    assert "Reference notes" in on_topic.messages[0]["content"] and on_topic.messages[-1]["role"] == "assistant"
    assert off_topic.grounding == [] and off_topic.path_context == [[], []]
    assert off_topic.messages[0]["content"] == "You are a tutor."
    assert prefix_query(on_topic.messages) == on_topic.messages[1]["content"]


def test_grounding_is_off_by_default():
    assert KBConfig().ground == []
