"""Parallel-R1 replies in `compare`: graded by what the student sees, and the parallel KPIs per model."""

from __future__ import annotations

from parallel_r1.compare.heldout import build_heldout
from parallel_r1.compare.replies import Reply
from parallel_r1.compare.report import render_report
from parallel_r1.compare.scoring import score_replies
from parallel_r1.compare.stats import summarise
from parallel_r1.config import load_config
from parallel_r1.data.parallel_format import format_block

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
        "items": 1, "dropped": 0, "samples": 1, "temperature": 0.8, "engine": "hf"}, [], 0.95)
    assert "## Parallel thinking" in report and "| parallel | 100.0% |" in report and "| plain | 0.0% |" in report


def test_compare_grades_with_the_llm_judge_concurrently_and_a_failure_is_one_line(tmp_path):
    import asyncio
    import json

    import pytest

    from parallel_r1.errors import UserFacingError
    from parallel_r1.grade import build_grader
    from tests.fakes.openai_server import FakeOpenAIServer
    from tests.grade.test_judge_structured import schema_names

    cfg = load_config(overrides={"eval.prompts_per_slice": 2})
    items = build_heldout(cfg.eval, set())[0][:6]
    replies = [Reply("m", item.item_id, 0, SUMMARY, 20, "stop") for item in items]
    in_flight, most = [0], [0]

    async def judge(request: dict) -> str:
        in_flight[0] += 1
        most[0] = max(most[0], in_flight[0])
        await asyncio.sleep(0.2)
        in_flight[0] -= 1
        return json.dumps({"criteria": {n: 0.9 for n in schema_names(request)}, "confidence": 0.9, "notes": ""})

    with FakeOpenAIServer(judge) as server:
        grade_cfg = cfg.grade.model_copy(update={"grader": "llm", "judge": cfg.grade.judge.model_copy(update={
            "base_url": server.base_url, "api_key_env": "PR1_TEST_NO_KEY", "max_retries": 0})})
        rows = score_replies(items, replies, build_grader(grade_cfg))
    assert len(rows) == 6 and all(r.score == pytest.approx(0.9) for r in rows)
    assert most[0] > 1  # asked at once, not one reply after another
    with FakeOpenAIServer(lambda request: "no idea") as server:
        grade_cfg = grade_cfg.model_copy(update={"judge": grade_cfg.judge.model_copy(
            update={"base_url": server.base_url})})
        with pytest.raises(UserFacingError, match="could not grade 6 of 6 replies"):
            score_replies(items, replies, build_grader(grade_cfg))
