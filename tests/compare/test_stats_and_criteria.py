"""Paired bootstrap CIs, the success criteria and the routing table on synthetic graded replies."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import numpy as np

from parallel_r1.compare.criteria import decision, routing_table, success_criteria
from parallel_r1.compare.scoring import ScoredReply
from parallel_r1.compare.stats import compare_cells, paired_bootstrap_ci, summarise
from parallel_r1.config import load_config

SLICES = ["abstract_scenarios", "validation_heavy", "general"]
KIND = {"abstract_scenarios": "rejects_metaphor", "validation_heavy": "bad_prior_teacher", "general": "standard"}


def rows_for(means: dict[str, dict[str, float]], n: int = 30, noise: float = 0.05, seed: int = 0) -> list[ScoredReply]:
    """Replies whose scores are `means[model][slice]` plus a shared per-prefix offset and noise."""
    rng = random.Random(seed)
    out = []
    for s in SLICES:
        for i in range(n):
            offset = rng.uniform(-0.1, 0.1)  # prefix difficulty, shared by every model: pairing removes it
            for model, by_slice in means.items():
                for k in range(2):
                    out.append(ScoredReply(
                        model=model, item_id=f"{s}-{i}", sample=k, slices=[s], profile_kind=KIND[s], scenario_id="x",
                        question_type="original", score=min(1, max(0, by_slice[s] + offset + rng.gauss(0, noise))),
                        criteria={}, stock_phrases=0, dismissive=False, answer_dump=False, completion_tokens=10,
                        reply="r"))
    return out


def test_bootstrap_interval_covers_the_true_mean_and_shrinks_with_n():
    rng = np.random.default_rng(1)
    small = paired_bootstrap_ci(rng.normal(0.2, 0.1, 20), 2000, 0.95)
    large = paired_bootstrap_ci(rng.normal(0.2, 0.1, 400), 2000, 0.95)
    assert small[0] < 0.2 < small[1] and large[0] < 0.2 < large[1]
    assert large[1] - large[0] < small[1] - small[0]


def test_cells_show_deltas_with_intervals_that_exclude_zero_only_for_real_effects():
    rows = rows_for({"base": dict.fromkeys(SLICES, 0.5),
                     "good": {**dict.fromkeys(SLICES, 0.5), "abstract_scenarios": 0.7},
                     "same": dict.fromkeys(SLICES, 0.5)})
    cells = {(c.model, c.slice): c for c in compare_cells(rows, ["base", "good", "same"], SLICES)}
    assert abs(cells["good", "abstract_scenarios"].delta - 0.2) < 0.03
    assert cells["good", "abstract_scenarios"].significant
    assert not cells["same", "general"].significant
    assert cells["base", "general"].delta == 0 and cells["good", "general"].n == 30


def test_cell_intervals_are_the_same_in_every_process():
    """The bootstrap's seed must not come from str hashing, which Python randomises per process."""
    code = ("import json; from tests.compare.test_stats_and_criteria import rows_for, SLICES; "
            "from parallel_r1.compare.stats import compare_cells; "
            "rows = rows_for({'base': dict.fromkeys(SLICES, 0.5), 'm': dict.fromkeys(SLICES, 0.6)}); "
            "cells = compare_cells(rows, ['base', 'm'], SLICES, samples=200); "
            "print(json.dumps([[c.ci_low, c.ci_high] for c in cells]))")
    runs = {seed: subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                 env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert json.loads(runs["1"]) == json.loads(runs["2"])


def test_success_criteria_pass_and_fail_with_their_numbers():
    cfg = load_config(overrides={"eval.niches": {"neurodivergent": ["abstract_scenarios"],
                                                 "prior_trauma_recovery": ["validation_heavy"],
                                                 "varied_original_diverse": ["general"]}}).eval
    cfg = cfg.model_copy(update={"slices": [s for s in cfg.slices if s.name in SLICES]})
    good = {"base": dict.fromkeys(SLICES, 0.5),
            "neurodivergent": {"abstract_scenarios": 0.8, "validation_heavy": 0.5, "general": 0.5},
            "prior_trauma_recovery": {"abstract_scenarios": 0.5, "validation_heavy": 0.75, "general": 0.5},
            "varied_original_diverse": {"abstract_scenarios": 0.77, "validation_heavy": 0.72, "general": 0.55}}
    rows = rows_for(good)
    models = list(good)
    crits = success_criteria(rows, compare_cells(rows, models, SLICES), models, cfg)
    assert [c.passed for c in crits] == [True, True, True, True], [c.detail for c in crits]
    assert "neurodivergent +0.3" in crits[0].detail
    assert crits[1].detail.endswith(", significant") and "margin +0.0" in crits[1].detail
    assert decision(crits)[0] == "best case"

    # A win by less than the sampling noise still passes (the seed's test is the best mean) but says so.
    tie = {**good, "neurodivergent": {**good["neurodivergent"], "abstract_scenarios": 0.772}}
    rows = rows_for(tie)
    winner = success_criteria(rows, compare_cells(rows, models, SLICES), models, cfg)[1]
    assert winner.detail.endswith("within noise"), winner.detail

    bad = {**good, "neurodivergent": dict.fromkeys(SLICES, 0.52), "varied_original_diverse": dict.fromkeys(SLICES, 0.6)}
    rows = rows_for(bad)
    crits = success_criteria(rows, compare_cells(rows, models, SLICES), models, cfg)
    assert [c.passed for c in crits] == [False, False, True, False], [c.detail for c in crits]
    assert decision(crits)[0] == "worst case"


def test_routing_table_names_the_best_model_per_profile_with_its_margin():
    rows = rows_for({"base": dict.fromkeys(SLICES, 0.5),
                     "neurodivergent": {"abstract_scenarios": 0.8, "validation_heavy": 0.4, "general": 0.5},
                     "prior_trauma_recovery": {"abstract_scenarios": 0.5, "validation_heavy": 0.7, "general": 0.45}},
                    noise=0.0)
    table = routing_table(rows, ["base", "neurodivergent", "prior_trauma_recovery"], load_config().eval)
    assert table["by_profile"]["rejects_metaphor"]["model"] == "neurodivergent"
    assert abs(table["by_profile"]["rejects_metaphor"]["margin"] - 0.3) < 1e-6
    assert table["by_profile"]["bad_prior_teacher"]["model"] == "prior_trauma_recovery"
    assert table["by_slice"]["general"]["model"] in {"base", "neurodivergent"}


def test_summary_counts_compliance_signals():
    rows = rows_for({"base": dict.fromkeys(SLICES, 0.5)}, n=5)
    for r in rows[:3]:
        r.dismissive, r.stock_phrases = True, 2
    s = summarise(rows, ["base"])["base"]
    assert s.dismissive_rate == 3 / len(rows) and s.pattern_density == 6 / len(rows)
