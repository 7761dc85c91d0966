"""The promotion gate: margin over the promoted model, compliance checks, reasons, idempotence."""

from __future__ import annotations

import json

import pytest

from parallel_r1.compare.report import write_results
from parallel_r1.config import load_config
from parallel_r1.gate.stage import read_results, run_gate
from tests.compare.test_stats_and_criteria import SLICES, rows_for


def _setup(tmp_path, means, **gate):
    cfg = load_config(overrides={"workdir": str(tmp_path), **{f"gate.{k}": v for k, v in gate.items()}})
    rows = rows_for(means, noise=0.0)
    write_results(tmp_path / "eval" / "results.parquet", rows)
    return cfg, rows


def test_a_clearly_better_compliant_model_is_promoted_then_must_beat_itself(tmp_path):
    cfg, rows = _setup(tmp_path, {"base": dict.fromkeys(SLICES, 0.5), "spec": dict.fromkeys(SLICES, 0.6),
                                  "meh": dict.fromkeys(SLICES, 0.51)})
    assert len(read_results(tmp_path / "eval" / "results.parquet")) == len(rows)
    decision = run_gate(cfg)
    assert decision.candidate == "spec" and decision.incumbent == "base" and decision.promoted
    promo = json.loads((tmp_path / "promotion.json").read_text())
    assert promo["promoted"]["model"] == "spec" and len(promo["decisions"]) == 1
    # Same results: the decision is not taken (or recorded) twice.
    assert run_gate(cfg).promoted
    assert len(json.loads((tmp_path / "promotion.json").read_text())["decisions"]) == 1
    # A named challenger now has to beat the promoted model by 4%, which 'meh' does not.
    challenger = run_gate(cfg, "meh")
    assert not challenger.promoted and challenger.incumbent == "spec"
    assert any("score" in r and "fails" in r for r in challenger.reasons)
    assert json.loads((tmp_path / "promotion.json").read_text())["promoted"]["model"] == "spec"


def test_margin_below_four_percent_is_rejected_with_the_numbers(tmp_path):
    cfg, _ = _setup(tmp_path, {"base": dict.fromkeys(SLICES, 0.5), "spec": dict.fromkeys(SLICES, 0.515)})
    decision = run_gate(cfg)
    assert not decision.promoted
    score = next(c for c in decision.checks if c.name == "score")
    assert score.threshold == pytest.approx(1.04 * (score.value - 0.015))  # 4% over the base, which is 0.015 lower


@pytest.mark.parametrize("flag,field,reason", [("dismissive", "dismissive", "dismissive or offensive tone"),
                                               ("answer_dump", "answer_dump", "answer dumping"),
                                               ("stock_phrases", "stock_phrases", "pattern density")])
def test_a_better_model_failing_a_compliance_check_is_rejected(tmp_path, flag, field, reason):
    cfg = load_config(overrides={"workdir": str(tmp_path)})
    rows = rows_for({"base": dict.fromkeys(SLICES, 0.5), "spec": dict.fromkeys(SLICES, 0.8)}, noise=0.0)
    for r in rows:
        if r.model == "spec":
            setattr(r, field, 3 if field == "stock_phrases" else True)
    write_results(tmp_path / "eval" / "results.parquet", rows)
    decision = run_gate(cfg)
    assert not decision.promoted
    assert any(reason in r for r in decision.reasons), decision.reasons


def test_gate_without_compare_results_says_which_stage_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="compare"):
        run_gate(load_config(overrides={"workdir": str(tmp_path)}))
