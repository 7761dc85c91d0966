"""`parallel-r1 next`: fixed compare results for the best, medium and worst case each give their overlay, and the
overlay loads on top of the config it came from. No Ray, no model: the results are written by hand."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from parallel_r1.cli import app
from parallel_r1.compare.report import write_results
from parallel_r1.compare.scoring import ScoredReply
from parallel_r1.config import load_config
from parallel_r1.rounds.plan import RoundEvidence, SpecialistEvidence, next_round
from parallel_r1.rounds.stage import gather_evidence, overlay_sets, write_next_round

runner = CliRunner()
SLICE_KIND = {"abstract_scenarios": "rejects_metaphor", "validation_heavy": "bad_prior_teacher",
              "exec_function": "executive_function_gap", "hyperfocus": "hyperfocus"}
NICHES = load_config().eval.niches
SPECIALISTS = list(NICHES)
ITEMS_PER_SLICE = 8


def write_fixture(workdir: Path, gains: dict[str, dict[str, float]]) -> None:
    """results.parquet of base + the six specialists: each scores 0.5 + its gain on a slice (+ small noise)."""
    rng = random.Random(0)
    rows = []
    for slice_name in load_config().eval.slices:
        s = slice_name.name
        for i in range(ITEMS_PER_SLICE):
            item = f"{s}-{i}"
            for model in ["base", *SPECIALISTS]:
                score = 0.5 + gains.get(model, {}).get(s, 0.0) + rng.uniform(-0.02, 0.02)
                rows.append(ScoredReply(model=model, item_id=item, sample=0, slices=[s],
                                        profile_kind=SLICE_KIND.get(s, "standard"), scenario_id="fractions-add",
                                        question_type="koan" if s == "koans" else "original", score=score,
                                        criteria={}, stock_phrases=0, dismissive=False, answer_dump=False,
                                        completion_tokens=20, reply="a reply"))
    write_results(workdir / "eval" / "results.parquet", rows)


def niche_gains(gain: float, models=SPECIALISTS) -> dict[str, dict[str, float]]:
    return {m: dict.fromkeys(NICHES[m], gain) for m in models}


ALL_SLICES = [s.name for s in load_config().eval.slices]
BEST = {**niche_gains(0.3), "varied_original_diverse": {s: 0.28 for s in ALL_SLICES} | {"general": 0.3}}
MEDIUM = {**niche_gains(0.3, ["neurodivergent"]),
          "varied_original_diverse": {"general": 0.3, "short_dialogues": 0.1, "long_dialogues": 0.1}}
WORST: dict = {}


def plan(tmp_path: Path, gains: dict, **overrides):
    cfg = load_config(None, {"workdir": str(tmp_path / "run"), **overrides})
    write_fixture(cfg.workdir, gains)
    return cfg


def overlay_of(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_best_case_leans_discovery_toward_the_winners_and_grows_the_batches(tmp_path):
    cfg = plan(tmp_path, BEST)
    evidence, _ = gather_evidence(cfg)
    assert evidence.case == "best case" and set(evidence.winners) == set(SPECIALISTS)
    path, case, _ = write_next_round(cfg, None)
    assert path == cfg.workdir / "next" / "round-1.yaml" and case == "best case"
    overlay = overlay_of(path)
    mix = overlay["discover.profile_mix"]
    assert mix["bad_prior_teacher"] == pytest.approx(3 * mix["standard"] * 0.16 / 0.2, abs=0.002)
    assert all(mix[k] > mix["standard"] for k in ("neurodivergent", "hyperfocus", "bad_prior_teacher"))
    sizes = {b["name"]: b["size"] for b in overlay["batch.batches"]}
    assert sizes == {"short_original_high": 80, "medium_koan_high": 70, "long_mixed_medium": 70,
                     "varied_original_diverse": 80, "neurodivergent": 60, "prior_trauma_recovery": 60}
    assert overlay["discover.n"] == 2 * cfg.discover.n and overlay["workdir"] == f"{cfg.workdir}-round1"
    text = path.read_text()
    assert "# best case: neurodivergent" in text or "# best case:" in text
    assert "short_original_high 40 -> 80" in text.replace("\n#   ", " ")


def test_medium_case_keeps_winners_drops_losers_and_the_length_split_that_did_not_matter(tmp_path):
    cfg = plan(tmp_path, MEDIUM)
    evidence, _ = gather_evidence(cfg)
    assert evidence.case == "medium case"
    assert set(evidence.winners) == {"neurodivergent", "varied_original_diverse"}
    assert evidence.specialists["varied_original_diverse"].length_gap < 0.05
    overlay = overlay_of(write_next_round(cfg, None)[0])
    batches = {b["name"]: b for b in overlay["batch.batches"]}
    assert set(batches) == {"neurodivergent", "varied_original_diverse"}
    assert batches["varied_original_diverse"]["stratify_by"] == ["profile_kind", "scenario_id"]
    assert batches["varied_original_diverse"]["size"] == 80 and batches["neurodivergent"]["size"] == 60
    routes = overlay["serve.static_routes"]
    assert routes["bad_prior_teacher"] in {"base", "neurodivergent", "varied_original_diverse"}
    assert routes["neurodivergent"] == "neurodivergent" and routes["standard"] == "varied_original_diverse"
    assert "discover.n" not in overlay  # fewer, larger batches than before: the dialogues on hand suffice


def test_a_length_split_that_mattered_is_kept(tmp_path):
    cfg = load_config()
    gap = {"varied_original_diverse": SpecialistEvidence("varied_original_diverse", 0.3, (0.2, 0.4), True, 0.2),
           "short_original_high": SpecialistEvidence("short_original_high", 0.0, (-0.1, 0.1), False, 0.0)}
    changes = {c.key: c.value for c in next_round(cfg, RoundEvidence("medium case", gap), 1)}
    [kept] = [b for b in changes["batch.batches"] if b.name == "varied_original_diverse"]
    assert "length_bucket" in kept.stratify_by
    assert "short_original_high" not in {b.name for b in changes["batch.batches"]}


def test_worst_case_merges_the_batches_keeping_their_stratification(tmp_path):
    cfg = plan(tmp_path, WORST)
    assert gather_evidence(cfg)[0].case == "worst case"
    overlay = overlay_of(write_next_round(cfg, None)[0])
    batches = {b["name"]: b for b in overlay["batch.batches"]}
    assert set(batches) == {"general_merged", "profiles_merged"}
    general, profiles = batches["general_merged"], batches["profiles_merged"]
    assert general["size"] == 150 and profiles["size"] == 60
    assert set(general["stratify_by"]) == {"length_bucket", "profile_kind", "scenario_id", "question_type"}
    assert set(profiles["profile_kinds"]) == {"neurodivergent", "rejects_metaphor", "executive_function_gap",
                                              "hyperfocus", "bad_prior_teacher"}
    assert profiles["rank_by"] == ["validation"]
    assert overlay["eval.niches"]["profiles_merged"] == ["abstract_scenarios", "exec_function", "hyperfocus",
                                                        "validation_heavy"]
    assert overlay["eval.generalist"] == "general_merged" and overlay["tune.specialist"] == "profiles_merged"
    assert set(overlay["serve.static_routes"].values()) == {"general_merged", "profiles_merged"}


@pytest.mark.parametrize("gains", [BEST, MEDIUM, WORST], ids=["best", "medium", "worst"])
def test_the_overlay_loads_on_the_config_it_came_from(tmp_path, gains):
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"workdir": str(tmp_path / "run"), "discover": {"n": 300, "seed": 3},
                                    "batch": {"quality_floor": 0.5}}))
    write_fixture(tmp_path / "run", gains)
    result = runner.invoke(app, ["next", "--config", str(base)])
    assert result.exit_code == 0, result.output
    path = tmp_path / "run" / "next" / "round-1.yaml"
    assert f"#   parallel-r1 run --config {base} --overlay {path}\n" in path.read_text()
    cfg = load_config(base, overlay_sets(path))
    overlay = overlay_of(path)
    assert str(cfg.workdir) == f"{tmp_path / 'run'}-round1" and cfg.discover.seed == 3
    assert cfg.batch.quality_floor == 0.5  # the rest of the config it came from is untouched
    assert [b.name for b in cfg.batch.batches] == [b["name"] for b in overlay["batch.batches"]]
    # the round after it is round 2, in a sibling run directory
    write_fixture(cfg.workdir, gains)
    assert write_next_round(cfg, base)[0] == cfg.workdir / "next" / "round-2.yaml"
    assert overlay_of(cfg.workdir / "next" / "round-2.yaml")["workdir"] == f"{tmp_path / 'run'}-round2"


def test_next_without_compare_results_and_a_bad_overlay_are_one_line_errors(tmp_path):
    result = runner.invoke(app, ["next", "--workdir", str(tmp_path)])
    assert result.exit_code == 2 and "parallel-r1 compare" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    result = runner.invoke(app, ["run", "--workdir", str(tmp_path), "--overlay", str(bad)])
    assert result.exit_code == 2 and "must hold a mapping" in result.output
    assert len(result.output.strip().splitlines()) == 1
