"""`tune`: the Ray Tune sweep over batch size x learning rate x LoRA rank for one specialist — its data,
its outputs, a real tiny sweep with early stopping and a rerun that trains nothing, and bad input."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from parallel_r1.config import load_config
from parallel_r1.data import discovery_plan, write_dialogues
from parallel_r1.data.prompts import system_prompt
from parallel_r1.discover.procedural import ProceduralBackend
from parallel_r1.discover.simulator import simulate_dialogue
from parallel_r1.errors import UserFacingError
from parallel_r1.grade import grade_dialogues
from parallel_r1.paths import RunPaths
from parallel_r1.tune.stage import _check, _fingerprint, best_config, best_trial, plot_sweep, prepare_data, run_tune


def _dialogues(workdir: Path, n: int = 40) -> Path:
    backend = ProceduralBackend(seed=5)

    async def run():
        return [await simulate_dialogue(backend, t) for t in discovery_plan(n, True, 7)]

    return write_dialogues(workdir / "dialogues.parquet", grade_dialogues(asyncio.run(run())))


def _cfg(workdir: Path, base: Path | str = "/nonexistent/base", **tune):
    overrides = {
        "workdir": str(workdir), "base_model.path": str(base), "batch.quality_floor": 0.0,
        "tune.specialist": "neurodivergent", "tune.batch_sizes": [6, 12], "tune.learning_rates": [1e-2],
        "tune.lora_ranks": [4], "tune.eval_prompts": 2, "tune.max_concurrent_trials": 2, "tune.grace_epochs": 1,
        "finetune.epochs": 2, "finetune.max_length": 512, "finetune.per_device_batch_size": 2,
        "finetune.cpus_per_worker": 0.25, "finetune.lora.r": 4, "finetune.lora.alpha": 8,
        "eval.samples_per_prompt": 1, "eval.max_tokens": 16, "inference.max_model_len": 1024,  # beyond the 64 trained
    }
    overrides.update({f"tune.{k}": v for k, v in tune.items()})
    return load_config(overrides=overrides)


def _record(name, bs, lr, r, status, score):
    return {"trial": name, "batch_size": bs, "learning_rate": lr, "lora_r": r, "lora_alpha": 2 * r, "n_examples": bs,
            "n_available": 30, "status": status, "train_loss": 1.0, "stopped_at_epoch": None, "niche_score": score,
            "delta_vs_base": None if score is None else score - 0.5, "slice_scores": None, "wall_time_s": 1.0,
            "adapter": None, "error": None}


def test_bad_input_names_the_field_or_file(tmp_path, tiny_base_model):
    with pytest.raises(UserFacingError, match="tune.specialist: unknown specialist 'nope'"):
        run_tune(_cfg(tmp_path, specialist="nope"))
    for field in ("batch_sizes", "learning_rates", "lora_ranks"):
        with pytest.raises(UserFacingError, match=f"tune.{field} is empty"):
            run_tune(_cfg(tmp_path, **{field: []}))
    with pytest.raises(UserFacingError, match=r"tune.batch_sizes: invalid value\(s\) \[0\]"):
        run_tune(_cfg(tmp_path, batch_sizes=[0, 6]))
    cfg = _cfg(tmp_path)
    cfg.eval.niches = {}
    with pytest.raises(UserFacingError, match="eval.niches has no slices for specialist 'neurodivergent'"):
        run_tune(cfg)
    with pytest.raises(FileNotFoundError, match="dialogues.parquet not found"):
        run_tune(_cfg(tmp_path, tiny_base_model))
    _dialogues(tmp_path)
    with pytest.raises(FileNotFoundError, match="base_model.path: /nonexistent/base not found"):
        run_tune(_cfg(tmp_path))
    cfg = _cfg(tmp_path, tiny_base_model)
    cfg.batch.quality_floor = 1.0
    with pytest.raises(UserFacingError, match="none of the 40 dialogues .* is eligible"):
        run_tune(cfg)


def test_trial_data_is_nested_and_short_batches_use_every_eligible_dialogue(tmp_path):
    _dialogues(tmp_path)
    cfg = _cfg(tmp_path, batch_sizes=[12, 6, 500])
    spec, slices = _check(cfg)
    assert slices == ["abstract_scenarios", "exec_function", "hyperfocus"]
    data = prepare_data(cfg, spec, RunPaths(tmp_path))
    assert sorted(data) == [6, 12, 500]
    (f6, n6, avail), (f12, n12, _), (f500, n500, _) = data[6], data[12], data[500]
    assert (n6, n12) == (6, 12) and n500 == avail < 500
    assert f6 == tmp_path / "tune" / "data" / "bs6.jsonl"
    rows = {n: [json.loads(line) for line in f.read_text().splitlines()] for n, f in ((6, f6), (12, f12), (500, f500))}
    assert rows[12][:6] == rows[6] and rows[500][:12] == rows[12]  # every smaller sample is part of the larger
    first = rows[6][0]["messages"]
    assert first[0] == {"role": "system", "content": system_prompt(spec)}
    assert {m["role"] for m in first[1:]} == {"user", "assistant"}
    assert prepare_data(cfg, spec, RunPaths(tmp_path))[6] == data[6]  # seeded


def test_fingerprint_changes_with_what_a_trial_depends_on_only(tmp_path):
    _dialogues(tmp_path)
    paths = RunPaths(tmp_path)

    def fingerprint(section: str = "", field: str = "", value=None) -> str:
        cfg = _cfg(tmp_path)
        if section:
            setattr(getattr(cfg, section), field, value)
        spec, slices = _check(cfg)
        return _fingerprint(cfg, spec, "base", slices, paths)

    same = fingerprint()
    for change in [("tune", "batch_sizes", [30]), ("tune", "learning_rates", [1e-3]),
                   ("tune", "max_concurrent_trials", 1), ("finetune", "storage_path", "/elsewhere"),
                   ("finetune", "learning_rate", 0.5)]:
        assert fingerprint(*change) == same, change
    for change in [("finetune", "epochs", 5), ("finetune", "max_length", 128), ("eval", "max_tokens", 40),
                   ("batch", "quality_floor", 0.5), ("tune", "eval_prompts", 5), ("tune", "grace_epochs", 2)]:
        assert fingerprint(*change) != same, change
    _dialogues(tmp_path, n=41)
    assert fingerprint() != same


def test_best_config_and_plot(tmp_path):
    cfg = _cfg(tmp_path, batch_sizes=[6, 12])
    trials = [_record("bs6-lr0.01-r4", 6, 1e-2, 4, "completed", 0.61),
              _record("bs12-lr0.01-r4", 12, 1e-2, 4, "completed", 0.72),
              _record("bs12-lr0.1-r8", 12, 0.1, 8, "early-stopped", None),
              _record("bs6-lr0.1-r8", 6, 0.1, 8, "failed", None)]
    best = best_trial(trials)
    assert best["trial"] == "bs12-lr0.01-r4"
    assert best_trial([t for t in trials if t["status"] != "completed"]) is None
    path = tmp_path / "best_config.yaml"
    path.write_text(best_config(cfg, best))
    loaded = load_config(path)
    assert loaded.finetune.learning_rate == 1e-2 and (loaded.finetune.lora.r, loaded.finetune.lora.alpha) == (4, 8)
    assert {b.name: b.size for b in loaded.batch.batches}["neurodivergent"] == 12
    assert [b.name for b in loaded.batch.batches] == [b.name for b in cfg.batch.batches]
    png = plot_sweep(trials, 0.5, "tune: test", tmp_path / "sweep.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_sweep_scores_trials_stops_poor_ones_and_a_rerun_trains_nothing(ray_session, tmp_path, tiny_base_model):
    _dialogues(tmp_path)
    # Trials run per learning rate, two at a time: both at a sane rate reach epoch 1 first (ASHA never stops the
    # first to reach a rung; the second may stop there if its loss is higher); both at an absurd rate reach it
    # later with a far higher loss than either, and ASHA stops them there.
    cfg = _cfg(tmp_path, tiny_base_model, batch_sizes=[6, 12], learning_rates=[1e-2, 10.0])
    summary = run_tune(cfg)
    out = tmp_path / "tune"
    results = json.loads((out / "results.json").read_text())
    by_name = {t["trial"]: t for t in results["trials"]}
    good, bad = [by_name["bs6-lr0.01-r4"], by_name["bs12-lr0.01-r4"]], [by_name["bs6-lr10-r4"], by_name["bs12-lr10-r4"]]
    assert summary.trained == 4 and summary.reused == 0 and len(by_name) == 4
    base = results["base"]
    assert set(base) == {"abstract_scenarios", "exec_function", "hyperfocus", "mean"}
    completed = [t for t in good if t["status"] == "completed"]
    assert completed and all(t["status"] in ("completed", "early-stopped") for t in good), good
    for t in completed:
        assert 0 <= t["niche_score"] <= 1 and t["delta_vs_base"] == pytest.approx(t["niche_score"] - base["mean"])
        assert set(t["slice_scores"]) == {"abstract_scenarios", "exec_function", "hyperfocus"}
        assert t["n_examples"] == t["batch_size"] and t["train_loss"] > 0 and t["wall_time_s"] > 0
        assert (Path(t["adapter"]) / "adapter_config.json").exists()
    for t in bad:
        assert t["status"] == "early-stopped" and t["stopped_at_epoch"] == pytest.approx(1.0), t
        assert t["niche_score"] is None and t["train_loss"] > max(g["train_loss"] for g in good)
    best = max(completed, key=lambda t: t["niche_score"])
    assert results["best"] == best and summary.best == best
    loaded = load_config(out / "best_config.yaml")
    assert loaded.finetune.learning_rate == best["learning_rate"]
    assert {b.name: b.size for b in loaded.batch.batches}["neurodivergent"] == best["batch_size"]
    assert (out / "sweep.png").stat().st_size > 1000
    experiments = sorted(p.name for p in (out / "ray_results").iterdir())
    # A rerun with the same settings trains nothing and starts no Tune experiment.
    again = run_tune(cfg)
    assert again.trained == 0 and again.reused == 4
    assert json.loads((out / "results.json").read_text())["trials"] == results["trials"]
    assert sorted(p.name for p in (out / "ray_results").iterdir()) == experiments
    # A trial recorded as failed after its fit (killed while scoring) runs again, scores its adapter without
    # training again, and gets the same score (same held-out prefixes, same sampling seeds).
    fit_record = Path(best["adapter"]) / "fit.json"
    fitted_at = fit_record.stat().st_mtime_ns
    (out / "results.json").write_text(json.dumps({**results, "trials": [
        {**t, "status": "failed", "niche_score": None} if t["trial"] == best["trial"] else t
        for t in results["trials"]]}))
    third = run_tune(cfg)
    assert third.trained == 1 and third.reused == 3 and fit_record.stat().st_mtime_ns == fitted_at
    assert third.best["niche_score"] == pytest.approx(best["niche_score"])
    print(json.dumps({"base": base, "trials": results["trials"]}, indent=1))
