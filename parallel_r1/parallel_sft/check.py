"""The validation of the Parallel-R1 cold start before RL: the starting point (base model + tags) and the SFT'd
model answer the same held-out prefixes (eval slices, never in training) under the `ParallelExecutionPolicy`
instruction, with the same sampling seeds. Each model gets its format adherence (share of replies valid by
`validate_reply`) and the rubric score of what the student sees (`student_view`; an empty view, e.g. a reply cut
off inside its first block, scores 0: the student saw nothing); their weighted mean is the parallel score. The SFT'd
model must raise it by at least `parallel.sft.min_uplift` (relative), and not by format adherence alone: its rubric
must not fall (the paired bootstrap interval of the per-prefix rubric difference, within
`parallel.sft.max_rubric_drop`). `eval.json` records both checks, the weights it evaluated and why it failed;
`parallel-r1 rl` reads it (`validation_problem`) before it starts from the SFT'd model. The replies and their
scores come from `compare.parallel_replies`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from parallel_r1.compare.heldout import EvalItem, _prefix_key, build_heldout
from parallel_r1.compare.parallel_replies import ModelEval, weights_digest
from parallel_r1.compare.stats import paired_bootstrap_ci
from parallel_r1.config import PipelineConfig

START, SFT = "start", "sft"
UPLIFT_FLOOR = 0.01  # the uplift is relative to max(starting score, this): finite when the start scores 0


@dataclass
class RubricCheck:
    """Whether the rubric of the student's view did not fall: the SFT'd minus the starting point's mean rubric per
    held-out prefix, with its paired bootstrap interval (None without a prefix both answered)."""

    before: float
    after: float
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    level: float
    prefixes: int
    max_drop: float
    passed: bool


@dataclass
class UpliftCheck:
    """The verdict: the SFT'd model's relative uplift of the parallel score over the starting point, and its rubric
    not falling; `reason` says which failed and by how much (None when both passed)."""

    before: float
    after: float
    uplift: float
    min_uplift: float
    uplift_passed: bool
    rubric: RubricCheck
    passed: bool
    reason: str | None
    message: str


def training_prefix_keys(records: list[dict]) -> set[str]:
    """Every conversation prefix ending with a student turn in the parallel training records (system prompt and
    target left out), in the held-out set's key, so that no such prefix is evaluated."""
    keys = set()
    for record in records:
        history = [m for m in record["messages"] if m["role"] != "system"][:-1]
        keys.update(_prefix_key(history[:i + 1]) for i, m in enumerate(history) if m["role"] == "user")
    return keys


def heldout_items(cfg: PipelineConfig, exclude: set[str]) -> tuple[list[EvalItem], int]:
    """`parallel.sft.eval_prompts_per_slice` held-out prefixes per eval slice, none of them in `exclude`."""
    ecfg = cfg.eval.model_copy(update={"prompts_per_slice": cfg.parallel.sft.eval_prompts_per_slice})
    return build_heldout(ecfg, exclude)


def check_rubric(start: ModelEval, sft: ModelEval, max_drop: float, *, samples: int = 2000, level: float = 0.95,
                 seed: int = 0) -> RubricCheck:
    """Passes when the lower bound of the paired interval of the per-prefix rubric difference is >= -max_drop."""
    shared = sorted(set(start.item_rubric) & set(sft.item_rubric))
    if not shared:
        return RubricCheck(start.rubric, sft.rubric, None, None, None, level, 0, max_drop, False)
    diffs = np.array([sft.item_rubric[k] - start.item_rubric[k] for k in shared])
    low, high = paired_bootstrap_ci(diffs, samples, level, seed)
    return RubricCheck(start.rubric, sft.rubric, float(diffs.mean()), low, high, level, len(shared), max_drop,
                       low >= -max_drop)


def _rubric_text(r: RubricCheck) -> str:
    if r.delta is None:
        return f"rubric {r.before:.3f} -> {r.after:.3f} (no held-out prefix answered by both models)"
    return (f"rubric {r.before:.3f} -> {r.after:.3f} (paired difference {r.delta:+.3f}, {r.level:.0%} CI "
            f"{r.ci_low:+.3f} to {r.ci_high:+.3f} over {r.prefixes} held-out prefixes)")


def check_uplift(start: ModelEval, sft: ModelEval, min_uplift: float, max_rubric_drop: float = 0.0, *,
                 samples: int = 2000, level: float = 0.95, seed: int = 0) -> UpliftCheck:
    """Whether the SFT'd model's parallel score is at least (1 + min_uplift) x the starting point's, and its rubric
    does not fall (`check_rubric`): format adherence alone must not carry the uplift."""
    uplift = (sft.score - start.score) / max(start.score, UPLIFT_FLOOR)
    uplift_passed = uplift >= min_uplift
    rubric = check_rubric(start, sft, max_rubric_drop, samples=samples, level=level, seed=seed)
    detail = (f"parallel score {start.score:.3f} -> {sft.score:.3f} (format adherence {start.format_adherence:.3f} "
              f"-> {sft.format_adherence:.3f}, {_rubric_text(rubric)}): uplift {uplift:+.1%}")
    reasons = []
    if not uplift_passed:
        reasons.append(f"it does not reach the required uplift: {uplift:+.1%} < {min_uplift:.1%} "
                       "(parallel.sft.min_uplift)")
    if not rubric.passed:
        bound = "no held-out prefix to compare" if rubric.delta is None else (
            f"paired difference {rubric.delta:+.3f}, its {rubric.level:.0%} CI reaches {rubric.ci_low:+.3f}, below "
            f"{-max_rubric_drop:+.3f}")
        reasons.append(f"the rubric score may have fallen ({rubric.before:.3f} -> {rubric.after:.3f}; {bound}; "
                       "parallel.sft.max_rubric_drop), so the uplift may be format adherence alone")
    reason = "; ".join(reasons) or None
    if reason is None:
        held = ("does not fall" if max_rubric_drop == 0 else
                f"does not fall by more than {max_rubric_drop:.3f} (parallel.sft.max_rubric_drop)")
        message = (f"parallel-sft: {detail} >= {min_uplift:.1%} (parallel.sft.min_uplift), and the rubric {held}: "
                   "ready for `parallel-r1 rl`")
    else:
        message = (f"parallel-sft: the SFT'd model is not ready for `parallel-r1 rl`: {reason}. {detail}. Train "
                   "longer (parallel.sft.epochs / learning_rate) or on more data (parallel.dataset_threshold), or "
                   "evaluate more prefixes (parallel.sft.eval_prompts_per_slice) if the interval is wide, then run "
                   "`parallel-r1 parallel-sft --force`")
    return UpliftCheck(start.score, sft.score, uplift, min_uplift, uplift_passed, rubric, reason is None, reason,
                       message)


def validation_problem(record: dict, model_dir: Path) -> str | None:
    """Why an `eval.json` record does not clear `model_dir` to start RL, or None when it does: it predates the
    rubric check, it evaluated other weights, or its check failed."""
    if "checks" not in record or SFT not in record.get("weights", {}):
        return ("it was written before the rubric check and the weights record: run `parallel-r1 parallel-sft` "
                "to re-evaluate (cached replies are reused)")
    if record["weights"][SFT] != weights_digest(model_dir):
        return (f"it evaluated other weights than those in {model_dir} (the model changed since): run "
                "`parallel-r1 parallel-sft` to validate them")
    if not record["passed"]:
        return f"the parallel-SFT validation failed: {record['reason']}"
    return None


def evaluation_record(results: dict[str, ModelEval], check: UpliftCheck, meta: dict) -> dict:
    """What `eval.json` holds: both models, the deltas, both checks, the verdict (with its reason) and how it was
    measured."""
    start, sft = results[START], results[SFT]
    deltas = {k: getattr(sft, k) - getattr(start, k) for k in ("format_adherence", "rubric", "score")}
    checks = {"uplift": {"passed": check.uplift_passed, "before": check.before, "after": check.after,
                         "uplift": check.uplift, "min_uplift": check.min_uplift},
              "rubric": asdict(check.rubric)}
    return {"passed": check.passed, "reason": check.reason, "message": check.message, "uplift": check.uplift,
            "min_uplift": check.min_uplift, "checks": checks, "models": {n: asdict(r) for n, r in results.items()},
            "deltas": deltas, **meta}
