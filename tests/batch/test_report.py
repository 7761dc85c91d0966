from __future__ import annotations

import json

from parallel_r1.batch import build_batches, summary_rows, write_batches
from parallel_r1.config import BatchConfig, BatchSpec
from parallel_r1.data import read_dialogues
from parallel_r1.data.prompts import system_prompt


def test_written_batches_are_valid_sft_data_and_round_trip(rich_pool, tmp_path):
    result = build_batches(rich_pool, BatchConfig())
    paths = write_batches(result, tmp_path / "batches")
    names = [b.name for b in result]
    assert sorted(p.name for p in (tmp_path / "batches").iterdir()) == sorted(
        [f"{n}.parquet" for n in names] + [f"{n}.jsonl" for n in names] + ["report.md"])
    assert len(paths) == 2 * len(names) + 1
    for batch in result:
        assert read_dialogues(tmp_path / "batches" / f"{batch.name}.parquet") == batch.dialogues
        lines = (tmp_path / "batches" / f"{batch.name}.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines]
        assert len(records) == batch.size
        for record, dialogue in zip(records, batch.dialogues, strict=True):
            msgs = record["messages"]
            assert msgs[0] == {"role": "system", "content": system_prompt(batch.spec)}
            assert [m["content"] for m in msgs if m["role"] == "assistant"] == [
                t.content for t in dialogue.turns if t.role == "teacher"]
            assert [m["content"] for m in msgs if m["role"] == "user"] == [
                t.content for t in dialogue.turns if t.role == "student"]


def test_report_has_a_composition_table_per_batch_and_the_warnings(make, tmp_path):
    pool = [make(i, profile_kind="bad_prior_teacher", density=0.02) for i in range(4)]
    cfg = BatchConfig(batches=[BatchSpec(name="trauma", size=6, profile_kinds=["bad_prior_teacher"],
                                         description="Recovery from a bad prior teacher")])
    result = build_batches(pool, cfg)
    write_batches(result, tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "## Warnings" in report and result["trauma"].shortfall.message() in report
    assert "## trauma" in report and "| count / target | 4 / 6 |" in report
    for row in ("length buckets | short 4", "question types | original 4", "confidence tiers | high 4",
                "profile kinds | bad_prior_teacher 4", "mean score | 0.800", "mean stock-phrase density | 0.020"):
        assert row in report


def test_summary_rows_one_per_batch(make):
    pool = [make(i, confidence=0.6 + i / 100) for i in range(5)]
    cfg = BatchConfig(batches=[BatchSpec(name="a", size=2), BatchSpec(name="b", size=6)])
    rows = {r["name"]: r for r in summary_rows(build_batches(pool, cfg))}
    assert list(rows["a"]) == ["name", "size", "target", "mean_score", "mean_confidence", "density", "status"]
    assert (rows["a"]["size"], rows["a"]["target"], rows["a"]["status"]) == (2, 2, "full")
    assert (rows["b"]["size"], rows["b"]["status"]) == (3, "short 3")
    assert rows["a"]["mean_score"] == 0.8 and rows["a"]["density"] == 0.0
    empty = summary_rows(build_batches([], cfg))[0]
    assert empty["mean_score"] is None and empty["status"] == "short 2"


def test_system_prompt_states_the_specialists_focus():
    cfg = BatchConfig()
    prompts = {s.name: system_prompt(s) for s in cfg.batches}
    assert "analogies" in prompts["neurodivergent"] and "numbered steps" in prompts["neurodivergent"]
    assert "bad prior teacher" in prompts["prior_trauma_recovery"]
    assert "brief" in prompts["short_original_high"]
    assert "contemplative" in prompts["medium_koan_high"]
    assert len(set(prompts.values())) == len(prompts)
