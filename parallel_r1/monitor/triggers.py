"""Which retraining each version's signals call for, with the plan's rules: a compliance failure → a guardrail
SFT of that specialist; a drop against the baseline → the full curriculum; a wide spread or many failures → RL;
a run of low scores → the parallel SFT. The curriculum contains the parallel SFT and RL, so it replaces them."""

from __future__ import annotations

from dataclasses import dataclass

from parallel_r1.config.monitor import MonitorConfig
from parallel_r1.monitor.signals import Signals


@dataclass(frozen=True)
class Trigger:
    """An action a model version's signals call for, and why."""

    model: str
    version: str
    action: str
    reason: str
    signals: Signals


def decide(s: Signals, cfg: MonitorConfig) -> list[Trigger]:
    """The triggers one version fires, most urgent first (none for a version without enough evaluations, except a
    run of low scores, which counts evaluations in a row)."""
    fired: list[tuple[str, str]] = []
    if s.ready and s.compliance_failures > cfg.max_compliance_failures:
        fired.append(("guardrail_sft", f"{s.compliance_failures} compliance failure(s) in the last {s.window_n} "
                                       f"evaluations (limit {cfg.max_compliance_failures})"))
    if s.ready and s.drop > cfg.max_drop:
        fired.append(("curriculum", f"mean {s.mean:.3f} is {s.drop:.1%} under the baseline {s.baseline_mean:.3f} "
                                    f"(limit {cfg.max_drop:.0%})"))
    if s.ready and (s.std > cfg.max_std or s.failure_rate > cfg.max_failure_rate):
        why = (f"score std {s.std:.3f} > {cfg.max_std:g}" if s.std > cfg.max_std else
               f"failure rate {s.failure_rate:.1%} > {cfg.max_failure_rate:.0%}")
        fired.append(("rl", f"{why} over the last {s.window_n} evaluations"))
    if s.consecutive_low >= cfg.consecutive_low:
        fired.append(("parallel_sft", f"{s.consecutive_low} evaluations in a row under {cfg.score_floor:g}"))
    if any(action == "curriculum" for action, _ in fired):
        fired = [(a, r) for a, r in fired if a not in ("rl", "parallel_sft")]
    return [Trigger(s.model, s.version, action, reason, s) for action, reason in fired]
