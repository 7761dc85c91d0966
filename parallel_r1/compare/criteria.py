"""The seed's success criteria, each pass / fail with its numbers, the decision they lead to, and the
routing table (best model per student profile and per slice) the Serve router reads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parallel_r1.compare.models import BASE
from parallel_r1.compare.scoring import ScoredReply
from parallel_r1.compare.stats import Cell, cell_map, item_means, niche_delta, paired_bootstrap_ci
from parallel_r1.config import EvalConfig


@dataclass
class Criterion:
    name: str
    passed: bool | None  # None: cannot be judged (a model or slice is missing)
    detail: str

    @property
    def verdict(self) -> str:
        return {True: "pass", False: "fail", None: "n/a"}[self.passed]


def _winner_check(name: str, model: str, slice_name: str, cells: dict[tuple[str, str], Cell],
                  models: list[str], rows: list[ScoredReply], cfg: EvalConfig) -> Criterion:
    """Pass when `model` has the best mean on the slice (the seed's test); the numbers add the paired bootstrap
    CI of its margin over the best other model, so a verdict decided by sampling noise reads as such."""
    if (model, slice_name) not in cells:
        return Criterion(name, None, f"{model} or slice {slice_name} was not evaluated")
    mine = cells[model, slice_name].mean
    others = {m: cells[m, slice_name].mean for m in models if m != model and (m, slice_name) in cells}
    if not others:
        return Criterion(name, None, "no other model to compare with")
    best_other = max(others, key=others.get)
    ours, theirs = item_means(rows, model, slice_name), item_means(rows, best_other, slice_name)
    diffs = np.array([ours[i] - theirs[i] for i in sorted(set(ours) & set(theirs))])
    lo, hi = paired_bootstrap_ci(diffs, cfg.bootstrap_samples, cfg.ci_level, seed=cfg.seed)
    noise = "within noise" if lo <= 0 <= hi else "significant"
    return Criterion(name, mine > others[best_other],
                     f"{model} {mine:.3f} vs best other {best_other} {others[best_other]:.3f} on {slice_name}; "
                     f"margin {mine - others[best_other]:+.3f} [{lo:+.3f}, {hi:+.3f}], {noise}")


def success_criteria(rows: list[ScoredReply], cells: list[Cell], models: list[str], cfg: EvalConfig
                     ) -> list[Criterion]:
    cm = cell_map(cells)
    specialists = [m for m in models if m in cfg.niches]
    improving, parts = [], []
    for m in specialists:
        delta, lo, hi, n = niche_delta(rows, m, cfg.niches[m], cfg.bootstrap_samples, cfg.ci_level)
        parts.append(f"{m} {delta:+.3f} [{lo:+.3f}, {hi:+.3f}]")
        if delta >= cfg.improvement_threshold:
            improving.append(m)
    first = Criterion(
        f">= {cfg.min_improving_specialists} specialists improve on the base by >= {cfg.improvement_threshold:g} "
        "in their niche", (len(improving) >= cfg.min_improving_specialists) if specialists else None,
        f"{len(improving)} improve ({', '.join(improving) or 'none'}); niche deltas: {'; '.join(parts) or '-'}")
    out = [first,
           _winner_check("neurodivergent specialist is best on abstract_scenarios", "neurodivergent",
                         "abstract_scenarios", cm, models, rows, cfg),
           _winner_check("trauma-informed specialist is best on validation_heavy", "prior_trauma_recovery",
                         "validation_heavy", cm, models, rows, cfg)]
    g = cfg.generalist
    slices = [s.name for s in cfg.slices]
    if g not in models:
        out.append(Criterion("diverse-patterns batch generalises", None, f"{g} was not evaluated"))
    else:
        gaps = {s: max(cm[m, s].mean for m in models if (m, s) in cm) - cm[g, s].mean for s in slices if (g, s) in cm}
        worst = max(gaps, key=gaps.get)
        out.append(Criterion(f"diverse-patterns batch generalises (within {cfg.generalist_tolerance:g} of the best "
                             "on every slice)", all(v <= cfg.generalist_tolerance for v in gaps.values()),
                             f"{g}: largest gap to the best {gaps[worst]:.3f} on {worst}"))
    return out


def decision(criteria: list[Criterion]) -> tuple[str, str]:
    """The seed's best / medium / worst case and its recommended next step."""
    verdicts = [c.passed for c in criteria]
    if all(v is True for v in verdicts):
        return "best case", ("the specialists beat the base in their niches: promote them through "
                             "`parallel-r1 gate` and route students by profile (`parallel-r1 serve`)")
    if verdicts and verdicts[0]:
        return "medium case", ("some specialists help: route only those that win their slice (routing.json), "
                               "and retrain the rest with more or better data; sweep the batch size with "
                               "`parallel-r1 tune`")
    return "worst case", ("specialisation does not pay off yet: do not deploy; look at the batches' data, the base "
                          "model's pre-training and the LoRA settings, then `parallel-r1 tune` before retraining")


def routing_table(rows: list[ScoredReply], models: list[str], cfg: EvalConfig) -> dict:
    """Best model per student profile kind and per slice, with its margin over the runner-up and the base, the
    margin's paired bootstrap CI, and `significant`: whether that CI excludes 0 (only then does Serve route on it)."""
    means_of = {m: item_means(rows, m) for m in models}

    def best_of(groups: dict[str, list[str]]) -> dict:
        table = {}
        for key, item_ids in groups.items():
            ids = set(item_ids)
            scores = {}
            for m in models:
                means = {k: v for k, v in means_of[m].items() if k in ids}
                if means:
                    scores[m] = sum(means.values()) / len(means)
            if not scores:
                continue
            ranked = sorted(scores, key=scores.get, reverse=True)
            runner = ranked[1] if len(ranked) > 1 else ranked[0]
            shared = sorted(ids & means_of[ranked[0]].keys() & means_of[runner].keys())
            diffs = np.array([means_of[ranked[0]][i] - means_of[runner][i] for i in shared])
            low, high = paired_bootstrap_ci(diffs, cfg.bootstrap_samples, cfg.ci_level, cfg.seed)
            table[key] = {"model": ranked[0], "score": round(scores[ranked[0]], 4),
                          "runner_up": runner, "margin": round(scores[ranked[0]] - scores[runner], 4),
                          "margin_ci": [round(low, 4), round(high, 4)],
                          "significant": bool(runner != ranked[0] and low > 0),
                          "vs_base": round(scores[ranked[0]] - scores.get(BASE, float("nan")), 4), "n": len(ids)}
        return table

    by_profile: dict[str, list[str]] = {}
    by_slice: dict[str, list[str]] = {}
    for r in rows:
        if r.model == BASE:
            by_profile.setdefault(r.profile_kind, []).append(r.item_id)
            for s in r.slices:
                by_slice.setdefault(s, []).append(r.item_id)
    overall = best_of({"all": [r.item_id for r in rows if r.model == BASE]})
    return {"default": overall.get("all", {}).get("model", BASE), "by_profile": best_of(by_profile),
            "by_slice": best_of(by_slice), "niches": cfg.niches}
