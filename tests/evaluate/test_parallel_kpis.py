"""Parallel-R1 replies in `compare`: graded by what the student sees, and the parallel KPIs per model."""

from __future__ import annotations

from parallel_r1.config import load_config
from parallel_r1.curate.parallel_format import format_block
from parallel_r1.evaluate.heldout import build_heldout
from parallel_r1.evaluate.replies import Reply
from parallel_r1.evaluate.report import render_report
from parallel_r1.evaluate.scoring import score_replies
from parallel_r1.evaluate.stats import summarise

SUMMARY = "What do you notice when you add the tens first? Try it and tell me what you get."
PARALLEL = format_block(["Ask what they notice about the tens.", "Count on from 23 by ones."], SUMMARY)


def test_a_parallel_reply_is_graded_as_its_summary_and_counted_in_the_kpis():
    cfg = load_config(overrides={"eval.prompts_per_slice": 2})
    item = build_heldout(cfg.eval, set())[0][0]
    replies = [Reply("parallel", item.item_id, 0, PARALLEL, 30, "stop"),
               Reply("plain", item.item_id, 0, SUMMARY, 20, "stop")]
    rows = score_replies([item], replies)
    assert rows[0].score == rows[1].score and rows[0].reply == PARALLEL
    summaries = summarise(rows, ["parallel", "plain"])
    assert summaries["parallel"].parallel.parallel_ratio == 1.0
    assert summaries["parallel"].parallel.mean_path_diversity > 0
    assert summaries["plain"].parallel.parallel_ratio == 0.0
    report = render_report([], ["parallel", "plain"], [], summaries, [], ("worst case", "…"), {
        "items": 1, "dropped": 0, "samples": 1, "temperature": 0.8, "engine": "hf"})
    assert "## Parallel thinking" in report and "| parallel | 100.0% |" in report and "| plain | 0.0% |" in report
