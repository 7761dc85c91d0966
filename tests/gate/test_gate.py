"""The promotion gate: each compared model's version against the score its promoted version was promoted on (or the
base's), compliance checks, path diversity for parallel-format models, reasons, idempotence, the registry record."""

from __future__ import annotations

import json

import pytest

from parallel_r1.compare.models import ModelSpec, write_model_index
from parallel_r1.compare.report import read_results, write_results
from parallel_r1.config import load_config
from parallel_r1.gate.stage import run_gate
from parallel_r1.paths import RunPaths
from parallel_r1.registry.promotion import PromotionRecord
from tests.compare.test_stats_and_criteria import SLICES, rows_for


def _adapter(folder, weights: bytes) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": 4}))
    (folder / "adapter_model.safetensors").write_bytes(weights)
    return str(folder)


def _setup(tmp_path, means, **gate):
    """Compare's results for `means` and its index of the adapters it evaluated (one folder per model)."""
    cfg = load_config(overrides={"workdir": str(tmp_path), **{f"gate.{k}": v for k, v in gate.items()}})
    rows = rows_for(means, noise=0.0)
    write_results(tmp_path / "eval" / "results.parquet", rows)
    write_model_index(RunPaths(tmp_path), [ModelSpec(m, "adapter", _adapter(tmp_path / "adapters" / m, m.encode()))
                                           for m in means if m != "base"])
    return cfg, rows


def _decision(result, name):
    return next(d for d in result.decisions if d.candidate.startswith(name + "@"))


def test_each_better_compliant_model_is_promoted_as_a_version_then_must_beat_its_recorded_score(tmp_path):
    cfg, rows = _setup(tmp_path, {"base": dict.fromkeys(SLICES, 0.5), "spec": dict.fromkeys(SLICES, 0.6),
                                  "meh": dict.fromkeys(SLICES, 0.51)})
    assert len(read_results(tmp_path / "eval" / "results.parquet")) == len(rows)
    result = run_gate(cfg)
    assert result.promoted == ["spec@v1"] and not _decision(result, "meh").promoted
    assert _decision(result, "spec").incumbent == "base"
    record = PromotionRecord(tmp_path)
    promoted = record.promoted()["spec"]
    assert promoted.ref == "spec@v1" and promoted.score == pytest.approx(0.6, abs=0.01)
    assert (tmp_path / "registry" / "store" / "spec" / "v1" / "adapter_model.safetensors").read_bytes() == b"spec"
    # Same results: nothing is decided (or recorded) twice.
    assert run_gate(cfg).decisions[0].candidate == "meh@v1"
    assert len(record.read()["decisions"]) == 2
    # spec retrained: its v2 must beat the 0.6 v1 was promoted on by 4 %, whatever the results say about v1 now.
    cfg, _ = _setup(tmp_path, {"base": dict.fromkeys(SLICES, 0.5), "spec": dict.fromkeys(SLICES, 0.61)})
    _adapter(tmp_path / "adapters" / "spec", b"spec v2")
    write_model_index(RunPaths(tmp_path), [ModelSpec("spec", "adapter", str(tmp_path / "adapters" / "spec"))])
    challenger = run_gate(cfg, "spec")
    decision = challenger.decisions[0]
    assert decision.candidate == "spec@v2" and decision.incumbent == "spec@v1" and not decision.promoted
    assert any("score" in r and "fails" in r for r in decision.reasons)
    assert record.promoted()["spec"].ref == "spec@v1"


def test_weights_changed_since_compare_are_refused(tmp_path):
    cfg, _ = _setup(tmp_path, {"base": dict.fromkeys(SLICES, 0.5), "spec": dict.fromkeys(SLICES, 0.6)})
    _adapter(tmp_path / "adapters" / "spec", b"retrained after compare")
    with pytest.raises(Exception, match="changed since compare"):
        run_gate(cfg)
    assert not (tmp_path / "promotion.json").exists() or not PromotionRecord(tmp_path).promoted()


def test_margin_below_four_percent_is_rejected_with_the_numbers(tmp_path):
    cfg, _ = _setup(tmp_path, {"base": dict.fromkeys(SLICES, 0.5), "spec": dict.fromkeys(SLICES, 0.515)})
    decision = run_gate(cfg).decisions[0]
    assert not decision.promoted
    score = next(c for c in decision.checks if c.name == "score")
    assert score.threshold == pytest.approx(1.04 * (score.value - 0.015))  # 4% over the base, which is 0.015 lower


@pytest.mark.parametrize("flag,field,reason", [("dismissive", "dismissive", "dismissive or offensive tone"),
                                               ("answer_dump", "answer_dump", "answer dumping"),
                                               ("stock_phrases", "stock_phrases", "pattern density")])
def test_a_better_model_failing_a_compliance_check_is_rejected(tmp_path, flag, field, reason):
    cfg, _ = _setup(tmp_path, {"base": dict.fromkeys(SLICES, 0.5), "spec": dict.fromkeys(SLICES, 0.8)})
    rows = rows_for({"base": dict.fromkeys(SLICES, 0.5), "spec": dict.fromkeys(SLICES, 0.8)}, noise=0.0)
    for r in rows:
        if r.model == "spec":
            setattr(r, field, 3 if field == "stock_phrases" else True)
    write_results(tmp_path / "eval" / "results.parquet", rows)
    decision = run_gate(cfg).decisions[0]
    assert not decision.promoted
    assert any(reason in r for r in decision.reasons), decision.reasons
    assert PromotionRecord(tmp_path).promoted() == {}  # a refused version is never served


@pytest.mark.parametrize("paths,verdict", [(["Count on by ones from 14.", "Count on by ones from 14."], "copied"),
                                           (["Count on from 14 by ones until nine are added.",
                                             "Split nine into six and three, make twenty first."], None)])
def test_a_parallel_model_needs_paths_that_are_neither_copies_nor_noise(tmp_path, paths, verdict):
    from parallel_r1.data.parallel_format import format_block

    cfg = load_config(overrides={"workdir": str(tmp_path)})
    rows = rows_for({"base": dict.fromkeys(SLICES, 0.5), "parallel_sft": dict.fromkeys(SLICES, 0.8)}, noise=0.0)
    for r in rows:
        if r.model == "parallel_sft":
            r.reply = format_block(paths, "Add the tens, then the ones.")
    write_results(tmp_path / "eval" / "results.parquet", rows)
    model = tmp_path / "parallel" / "sft" / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"weights")
    write_model_index(RunPaths(tmp_path), [ModelSpec("parallel_sft", "parallel", str(model))])
    decision = run_gate(cfg).decisions[0]
    names = [c.name for c in decision.checks if not c.passed]
    assert names == ([f"paths not {verdict}"] if verdict else []), decision.reasons


def test_gate_without_compare_results_says_which_stage_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="compare"):
        run_gate(load_config(overrides={"workdir": str(tmp_path)}))


def test_a_truncated_results_file_is_a_one_line_error_naming_it(tmp_path):
    from parallel_r1.errors import UserFacingError

    cfg, _ = _setup(tmp_path, {"base": dict.fromkeys(SLICES, 0.5), "spec": dict.fromkeys(SLICES, 0.6)})
    results = tmp_path / "eval" / "results.parquet"
    results.write_bytes(results.read_bytes()[:-200])
    with pytest.raises(UserFacingError) as e:
        run_gate(cfg)
    assert str(results) in str(e.value) and "re-run `parallel-r1 compare`" in str(e.value)
    assert "\n" not in str(e.value)
