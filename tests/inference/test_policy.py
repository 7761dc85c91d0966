"""The parallel execution policy and the parallel KPIs over replies (pure: no model is loaded)."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from parallel_r1.config import load_config
from parallel_r1.data.parallel_format import ParallelBlock, format_block
from parallel_r1.inference.policy import (
    ParallelExecutionPolicy,
    agrees_with_majority,
    consensus_rate,
    majority_paths,
    mean_path_diversity,
    parallel_kpis,
    parallel_ratio,
)

A = "Write factorial(3) as 3 times factorial(2) and expand it by hand."
A2 = "Write factorial(3) as 3 times factorial(2), then expand it by hand."
B = "Which call in the chain never calls itself again?"
VALID = format_block([A, B], A)
BROKEN = "<Parallel><Path>only one</Path></Parallel><Summary>s</Summary>"


def test_policy_validates_and_maps_to_sampling_params():
    policy = ParallelExecutionPolicy(branches=4, temperature=0.9, max_tokens=128)
    params = policy.sampling_params(seed=7)
    assert (params.temperature, params.max_tokens, params.seed, params.n) == (0.9, 128, 7, 1)
    assert "4 different approaches" in policy.instruction() and "<Summary>" in policy.instruction()
    with pytest.raises(ValidationError):
        ParallelExecutionPolicy(branches=1)
    with pytest.raises(ValidationError):
        ParallelExecutionPolicy(temperature=3.0)


def test_policy_from_a_config_section_with_the_same_fields():
    cfg = SimpleNamespace(branches=2, max_blocks=1, temperature=0.5, top_p=0.9, max_tokens=64)
    assert ParallelExecutionPolicy.from_config(cfg) == ParallelExecutionPolicy(**vars(cfg))


def test_policy_from_the_parallel_config_section():
    cfg = load_config(None, ["parallel.inference.branches=5"]).parallel.inference
    assert ParallelExecutionPolicy.from_config(cfg).branches == 5


def test_policy_module_imports_without_torch():
    code = "import sys, parallel_r1.inference.policy; print('torch' in sys.modules or 'ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_parallel_ratio_counts_valid_parallel_replies_only():
    assert parallel_ratio([VALID, BROKEN, "plain reply", VALID]) == 0.5
    assert parallel_ratio([]) == 0.0
    assert parallel_ratio([VALID * 3], max_blocks=2) == 0.0


def test_mean_path_diversity_over_well_formed_blocks():
    assert mean_path_diversity([format_block([A, A], A)]) == 0.0
    assert mean_path_diversity([VALID, BROKEN]) > 0.8
    assert mean_path_diversity(["plain"]) == 0.0


def test_majority_is_the_path_the_others_agree_with():
    assert majority_paths([A, A2, B]) == [0, 1]
    assert majority_paths([A, B]) == [0, 1]  # two paths: a tie, both count


def test_consensus_when_the_summary_follows_the_majority():
    assert agrees_with_majority(ParallelBlock([A, A2, B], A))
    assert not agrees_with_majority(ParallelBlock([A, A2, B], B))  # picks the odd one out
    assert not agrees_with_majority(ParallelBlock([A, B], "Something else entirely."))
    replies = [format_block([A, A2, B], A2), format_block([A, A2, B], B), BROKEN]
    assert consensus_rate(replies) == 0.5
    assert consensus_rate(["plain"]) == 0.0


def test_kpis_together():
    kpis = parallel_kpis([VALID, "plain"])
    assert kpis.n_replies == 2 and kpis.parallel_ratio == 0.5 and kpis.consensus_rate == 1.0
    assert kpis.mean_path_diversity == mean_path_diversity([VALID])
