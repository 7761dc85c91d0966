"""The peer-benchmark harness: alternation, median and spread, goals and verdicts, and the summary file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import peer  # noqa: E402


def test_alternate_interleaves_and_swaps_who_goes_first():
    calls: list[str] = []

    def run(name: str, value: float):
        return lambda: calls.append(name) or value

    ours, theirs = peer.alternate(run("ours", 1.0), run("peer", 2.0), 3)
    assert calls == ["ours", "peer", "peer", "ours", "ours", "peer"]
    assert ours == [1.0, 1.0, 1.0] and theirs == [2.0, 2.0, 2.0]
    with pytest.raises(ValueError):
        peer.alternate(run("ours", 1.0), run("peer", 2.0), 0)


def test_spread_is_the_median_and_the_range():
    assert peer.spread([3.0, 1.0, 10.0, 2.0]) == {"median": 2.5, "min": 1.0, "max": 10.0, "runs": [3.0, 1.0, 10.0, 2.0]}
    with pytest.raises(ValueError):
        peer.spread([])


@pytest.mark.parametrize(("goal", "ours", "theirs", "met"), [
    (peer.Goal("ratio", ">=", 0.8), 8.0, 10.0, True),
    (peer.Goal("ratio", ">=", 0.8), 7.9, 10.0, False),
    (peer.Goal("difference", "<=", 5), 15.0, 10.0, True),
    (peer.Goal("difference", "<=", 5), 15.1, 10.0, False),
])
def test_goals_on_the_ratio_or_the_difference(goal, ours, theirs, met):
    assert goal.met(ours, theirs) is met


def test_a_goal_names_what_it_bounds():
    assert peer.Goal("ratio", ">=", 0.9).text == "≥ 0.9×"
    assert peer.Goal("difference", "<=", 5).text == "Δ ≤ +5"
    with pytest.raises(ValueError):
        peer.Goal("sum", ">=", 1)


def test_a_row_judges_the_medians():
    row = peer.row("b", [10.0, 1.0, 9.0], [10.0, 10.0, 20.0], "x/s", peer.Goal("ratio", ">=", 0.8),
                   {"value": 50.0, "unit": "x/s", "note": ""})
    assert (row["ours"], row["peer"], row["ratio"], row["verdict"]) == (9.0, 10.0, 0.9, "met")
    assert row["ours_spread"]["min"] == 1.0 and row["peer_spread"]["max"] == 20.0
    assert peer.row("b", [1.0], [2.0], "ms", None)["verdict"] == "-"


def test_record_keeps_one_row_per_benchmark_with_its_machine(tmp_path):
    path = tmp_path / "results" / "summary.json"
    goal = peer.Goal("ratio", ">=", 0.8)
    peer.record([peer.row("a", [1.0], [1.0], "x/s", goal), peer.row("b", [1.0], [2.0], "x/s", goal)],
                peer.Machine(), path)
    peer.record([peer.row("a", [3.0], [1.0], "x/s", goal)], peer.Machine(), path)
    summary = json.loads(path.read_text())
    assert [(r["benchmark"], r["ours"], r["verdict"]) for r in summary["rows"]] == [("a", 3.0, "met"),
                                                                                   ("b", 1.0, "missed")]
    machine = summary["rows"][0]["machine"]
    assert machine["cpus"] >= 1 and len(machine["load_before"]) == len(machine["load_after"]) == 3
    assert {"commit", "date", "memory_gib"} <= set(machine)
    assert [p.name for p in path.parent.iterdir()] == ["summary.json"]  # no temporary file left behind


def test_the_markdown_table_has_a_line_per_row():
    summary = {"rows": [peer.row("a", [1.0, 2.0, 3.0], [2.0, 2.0, 2.0], "x/s", peer.Goal("ratio", ">=", 0.8),
                                 {"value": 10.0, "unit": "x/s", "note": ""})]}
    lines = peer.markdown(summary).splitlines()
    assert len(lines) == 3 and lines[0].startswith("| benchmark | ours | peer |")
    assert lines[2] == "| a | 2 (1–3) | 2 (2–2) | x/s | 1.00× | ≥ 0.8× | met | 10 |"
