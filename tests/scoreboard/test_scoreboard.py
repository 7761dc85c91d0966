"""The ParallelScoreboard of a run directory the test writes: `parallel-r1 scoreboard` writes the page, and headless
Chromium renders its charts and tables with the expected values (a screenshot is kept in test-artifacts/)."""

from __future__ import annotations

import json
import time

from typer.testing import CliRunner

from parallel_r1.cli import app
from parallel_r1.compare.report import write_results
from parallel_r1.compare.scoring import ScoredReply
from parallel_r1.monitor.queue import Entry, TriggerLog
from tests.monitor.support import write_scores
from tests.support.adapters import promote
from tests.support.browser import Elements, dump_dom, screenshot

PARALLEL_REPLY = ("<Parallel><Path>Count the tens first.</Path><Path>Count the ones, then add.</Path></Parallel>"
                  "<Summary>Both ways give 42.</Summary> What do you get?")


def _reply(model: str, i: int, score: float, text: str = "What do you notice?") -> ScoredReply:
    return ScoredReply(model=model, item_id=f"i{i}", sample=0, slices=["all"], profile_kind="standard",
                       scenario_id="s", question_type="original", score=score, criteria={"guidance": score},
                       stock_phrases=0, dismissive=False, answer_dump=False, completion_tokens=5, reply=text)


def write_run(workdir):
    """Two served models with online evaluations (one degrading), a routing table, compare results with a
    parallel model, a trigger with its job, a promotion and a rollback."""
    promote(workdir, "neuro", "ft:a", kind="openai", score=0.7)
    promote(workdir, "neuro", "ft:b", kind="openai", score=0.8)
    promote(workdir, "koan", "ft:k", kind="openai", score=0.8)
    CliRunner().invoke(app, ["rollback", "neuro", "--reason", "v2 scored low online", "--workdir", str(workdir)])
    log = workdir / "serve" / "scores.jsonl"
    write_scores(log, "neuro", "neuro@v1", [0.9] * 20 + [0.7] * 6)
    write_scores(log, "koan", "koan@v1", [0.86, 0.88, 0.9, 0.87, 0.85], start=1100)
    with log.open("a") as f:
        f.write("{torn\n")
    (workdir / "eval").mkdir(exist_ok=True)
    (workdir / "eval" / "routing.json").write_text(json.dumps({"default": "koan", "by_profile": {
        "neurodivergent": {"model": "neuro", "margin": 0.05, "margin_ci": [0.01, 0.09], "significant": True},
        "standard": {"model": "koan", "margin": 0.006, "margin_ci": [-0.01, 0.02], "significant": False}}}))
    write_results(workdir / "eval" / "results.parquet",
                  [_reply("base", i, 0.5) for i in range(4)] + [_reply("parallel_sft", i, 0.6, PARALLEL_REPLY)
                                                                 for i in range(4)])
    TriggerLog(workdir).append(Entry(time.time(), "neuro", "neuro@v1", "curriculum", "SUBMITTED",
                                     "raysubmit_abc", "mean dropped", {"drop": 0.22}))
    TriggerLog(workdir).append(Entry(time.time(), "neuro", "neuro@v1", "curriculum", "RUNNING", "raysubmit_abc"))


def test_the_scoreboard_renders_in_headless_chromium_with_the_run_values(tmp_path):
    write_run(tmp_path)
    out = CliRunner().invoke(app, ["scoreboard", "--workdir", str(tmp_path)])
    assert out.exit_code == 0, out.output
    page = tmp_path / "scoreboard.html"
    url = page.as_uri()
    dom = Elements(dump_dom(url))
    shot = screenshot(url, "scoreboard.png")
    assert shot.stat().st_size > 20_000

    charts = {c["data-model"] for c in dom.find("svg", class_="chart")}
    assert charts == {"neuro", "koan"}
    assert len(dom.find("circle", class_="point")) == 31  # every readable evaluation, the torn line skipped
    floors = {t["data-name"]: float(t["data-value"]) for t in dom.find("line", class_="threshold")}
    assert floors["floor"] == 0.82 and floors["failure"] == 0.5
    assert abs(floors["drift limit"] - 0.9 * 0.93) < 1e-3  # the neuro baseline window less 7 %

    served = dom.rows("served")
    assert served["neuro"][1] == "neuro@v1" and served["koan"][1] == "koan@v1"  # after the rollback
    signals = dom.rows("signals")
    assert signals["neuro"][1] == "neuro@v1 (served)" and signals["neuro"][2] == "26"
    assert signals["neuro"][3] == "0.840" and signals["neuro"][6] == "6.7%"  # 14 x 0.9 + 6 x 0.7 vs 0.9
    routes = dom.rows("routes")
    assert routes["neurodivergent"][4] == "routed" and routes["standard"][4] == "static route (within noise)"
    kpis = dom.rows("kpis")
    assert kpis["parallel_sft"][4] == "100.0%" and kpis["base"][4] == "0.0%"
    assert dom.rows("triggers")[next(iter(dom.rows("triggers")))][5:] == ["raysubmit_abc", "RUNNING"]
    events = [r[1] for r in dom.tables["events"][1:]]
    assert events[0] == "rollback" and events.count("promote") == 3
    assert "1 unreadable line(s) of the score log skipped" in page.read_text()


def test_an_empty_run_directory_gives_a_page_that_says_so(tmp_path):
    out = CliRunner().invoke(app, ["scoreboard", "--workdir", str(tmp_path), "--out", str(tmp_path / "b.html")])
    assert out.exit_code == 0, out.output
    text = (tmp_path / "b.html").read_text()
    assert "Nothing is promoted" in text and "No online evaluations yet" in text and "No trigger has fired" in text


def test_one_evaluation_at_a_real_timestamp_is_drawn(tmp_path):
    """A single online score (the first after a promotion) used to divide by zero: found by the router's fuzzing."""
    promote(tmp_path, "neuro", "ft:a", kind="openai")
    write_scores(tmp_path / "serve" / "scores.jsonl", "neuro", "neuro@v1", [0.7], start=time.time())
    out = CliRunner().invoke(app, ["scoreboard", "--workdir", str(tmp_path), "--out", str(tmp_path / "b.html")])
    assert out.exit_code == 0, out.output
    assert "<circle" in (tmp_path / "b.html").read_text()


def test_a_corrupt_promotion_record_is_a_one_line_error(tmp_path):
    (tmp_path / "promotion.json").write_text("{not json")
    out = CliRunner().invoke(app, ["scoreboard", "--workdir", str(tmp_path)])
    assert out.exit_code == 2 and out.output.count("error:") == 1 and "promotion.json" in out.output
    assert not (tmp_path / "scoreboard.html").exists()
