"""Signals from a score log and the triggers they fire, on logs the tests write."""

from __future__ import annotations

import json

import pytest

from parallel_r1.config import ConfigError, MonitorConfig, load_config
from parallel_r1.monitor.log import read_score_log
from parallel_r1.monitor.signals import compute_signals
from parallel_r1.monitor.triggers import decide
from tests.monitor.support import write_scores

CFG = MonitorConfig(window=10, min_evaluations=5)


def _signals(log, cfg=CFG):
    return {(s.model, s.version): s for s in compute_signals(read_score_log(log).evaluations, cfg)}


def _actions(s, cfg=CFG):
    return [t.action for t in decide(s, cfg)]


def test_a_steady_good_version_fires_nothing(tmp_path):
    log = tmp_path / "scores.jsonl"
    write_scores(log, "neuro", "neuro@v1", [0.9, 0.88, 0.91, 0.9, 0.89, 0.9])
    s = _signals(log)["neuro", "neuro@v1"]
    assert s.n == 6 and s.ready and s.mean == pytest.approx(0.8967, abs=1e-3) and s.consecutive_low == 0
    assert _actions(s) == []


def test_low_scores_in_a_row_queue_the_parallel_sft_and_only_the_trailing_run_counts(tmp_path):
    log = tmp_path / "scores.jsonl"
    write_scores(log, "neuro", "neuro@v1", [0.7, 0.9, 0.8, 0.81, 0.79, 0.8, 0.78])
    s = _signals(log)["neuro", "neuro@v1"]
    assert s.consecutive_low == 5 and _actions(s) == ["parallel_sft"]
    write_scores(log, "neuro", "neuro@v1", [0.95], start=2000)
    assert _signals(log)["neuro", "neuro@v1"].consecutive_low == 0


def test_spread_or_failures_queue_rl(tmp_path):
    log = tmp_path / "scores.jsonl"
    write_scores(log, "a", "a@v1", [0.95, 0.6, 0.99, 0.62, 0.98, 0.97])  # std 0.17
    write_scores(log, "b", "b@v1", [0.9, 0.9, 0.9, 0.9, 0.9], start=500)
    append_error = {"ts": 600, "specialist": "b", "version": "b@v1", "score": None, "error": True}
    with log.open("a") as f:
        f.write(json.dumps(append_error) + "\n")
    signals = _signals(log)
    assert signals["a", "a@v1"].std > 0.12 and "rl" in _actions(signals["a", "a@v1"])
    b = signals["b", "b@v1"]
    assert b.failure_rate == pytest.approx(1 / 6) and _actions(b) == ["rl"]


def test_a_drop_against_the_baseline_window_queues_the_curriculum_instead_of_sft_and_rl(tmp_path):
    log = tmp_path / "scores.jsonl"
    write_scores(log, "m", "m@v1", [0.9] * 10 + [0.8] * 10)
    s = _signals(log)["m", "m@v1"]
    assert s.baseline_mean == pytest.approx(0.9) and s.drop == pytest.approx(1 / 9)
    assert _actions(s) == ["curriculum"]  # the 10 low ones in a row are part of it


def test_one_compliance_failure_queues_a_guardrail_sft(tmp_path):
    log = tmp_path / "scores.jsonl"
    write_scores(log, "m", "m@v1", [0.9] * 5)
    write_scores(log, "m", "m@v1", [0.9], start=3000, dismissive=True)
    s = _signals(log)["m", "m@v1"]
    assert s.compliance_failures == 1 and _actions(s) == ["guardrail_sft"]


def test_versions_are_apart_and_a_short_window_only_fires_on_a_run_of_lows(tmp_path):
    log = tmp_path / "scores.jsonl"
    write_scores(log, "m", "m@v1", [0.5, 0.95, 0.5])
    write_scores(log, "m", "m@v2", [0.9, 0.9], start=5000)
    signals = _signals(log)
    assert set(signals) == {("m", "m@v1"), ("m", "m@v2")}
    assert not signals["m", "m@v1"].ready and _actions(signals["m", "m@v1"]) == []


def test_unreadable_lines_are_counted_and_skipped(tmp_path):
    log = tmp_path / "scores.jsonl"
    write_scores(log, "m", "m@v1", [0.9, 0.9])
    with log.open("ab") as f:
        f.write(b'{"ts": 1, "specialist": "m", "sco\n')  # torn
        f.write(b'{"ts": 2, "specialist": "m", "score": 7}\n')  # out of range
        f.write(b"\xff\xfe\n")
    write_scores(log, "m", "m@v1", [0.9], start=4000)
    read = read_score_log(log)
    assert len(read.evaluations) == 3 and read.bad_lines == [3, 4, 5]
    assert "skipped 3 unreadable line(s) (line 3, 4, 5)" in read.warning()
    assert read_score_log(tmp_path / "none.jsonl").evaluations == []


@pytest.mark.parametrize("override, words", [
    ("monitor.min_evaluations=50", "exceeds monitor.window"),
    ("monitor.consecutive_low=21", "exceeds monitor.window"),
    ("monitor.failure_below=0.9", "above monitor.score_floor"),
    ("monitor.max_std=-1", "max_std"),
    ("monitor.commands={rl: []}", "no command for \\['rl'\\]"),
    ("monitor.commands={retrain: [run]}", "unknown action"),
])
def test_impossible_thresholds_are_config_errors_naming_the_field(override, words):
    with pytest.raises(ConfigError, match=words):
        load_config(None, [override])


def test_an_action_overridden_alone_keeps_the_others():
    commands = load_config(None, ["monitor.commands={rl: [models]}"]).monitor.commands
    assert commands["rl"] == ["models"] and commands["parallel_sft"] == ["parallel-sft", "compare", "gate"]
