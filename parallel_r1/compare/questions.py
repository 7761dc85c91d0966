"""The plan's open questions, answered from compare's results with the numbers that bear on them: do the profile
specialists transfer to standard students, is dialogue length a useful stratification dimension, and do small
batches generalise. Each answer says whether its numbers are outside sampling noise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parallel_r1.compare.models import BASE
from parallel_r1.compare.scoring import ScoredReply
from parallel_r1.compare.stats import Cell, cell_map, item_means
from parallel_r1.config import BatchSpec, EvalConfig


@dataclass(frozen=True)
class Answer:
    question: str
    answer: str
    noise: str  # "significant", "within noise", "no interval" or "not answered"


@dataclass(frozen=True)
class PreviousRound:
    """The run directory this round came from: its graded replies and its batches."""

    workdir: str
    rows: list[ScoredReply]
    batches: list[BatchSpec]


TRANSFER = "Do the profile specialists transfer to standard students?"
LENGTH = "Is dialogue length a useful stratification dimension?"
SIZE = "Do small batches generalise?"


def _diffs(rows: list[ScoredReply], model: str, slices: list[str] | None) -> np.ndarray:
    """Per held-out prefix, the model's mean score minus the base's, over the given slices (None: every prefix)."""
    mine, base = {}, {}
    for s in slices or [None]:
        mine.update(item_means(rows, model, s))
        base.update(item_means(rows, BASE, s))
    return np.array([mine[i] - base[i] for i in sorted(set(mine) & set(base))])


def gap_ci(a: np.ndarray, b: np.ndarray, cfg: EvalConfig) -> tuple[float, float, float]:
    """mean(a) - mean(b) with a bootstrap interval that resamples the two sets of prefixes independently."""
    if not len(a) or not len(b):
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(cfg.seed)
    draws = (a[rng.integers(0, len(a), (cfg.bootstrap_samples, len(a)))].mean(axis=1)
             - b[rng.integers(0, len(b), (cfg.bootstrap_samples, len(b)))].mean(axis=1))
    tail = (1 - cfg.ci_level) / 2 * 100
    return float(a.mean() - b.mean()), float(np.percentile(draws, tail)), float(np.percentile(draws, 100 - tail))


def _significant(lo: float, hi: float) -> bool:
    return lo > 0 or hi < 0


def _verdict(flags: list[bool]) -> str:
    return "significant" if any(flags) else "within noise"


def _slice_named(cfg: EvalConfig, **spec) -> str | None:
    return next((s.name for s in cfg.slices if all(getattr(s, k) == v for k, v in spec.items())), None)


def transfer(cells: list[Cell], cfg: EvalConfig, batches: list[BatchSpec]) -> Answer:
    standard = _slice_named(cfg, profile_kinds=["standard"])
    cm = cell_map(cells)
    specialists = [b.name for b in batches if b.profile_kinds and "standard" not in b.profile_kinds]
    measured = [cm[m, standard] for m in specialists if (m, standard) in cm]
    if standard is None or not measured:
        why = "no slice of standard students only" if standard is None else "no profile specialist was compared"
        return Answer(TRANSFER, f"not answered: {why}", "not answered")

    def word(c: Cell) -> str:
        return "helps" if c.ci_low > 0 else "hurts" if c.ci_high < 0 else "no different from the base"

    parts = [f"{c.model} {c.delta:+.3f} [{c.ci_low:+.3f}, {c.ci_high:+.3f}] ({word(c)})" for c in measured]
    return Answer(TRANSFER, f"on `{standard}` against the base: " + "; ".join(parts),
                  _verdict([c.significant for c in measured]))


def _unsplit(rows: list[ScoredReply], cfg: EvalConfig, batches: list[BatchSpec], previous: PreviousRound
             ) -> tuple[list[str], list[bool]]:
    """Specialists whose length split this round dropped: their niche gain now against the previous round's."""
    before = {b.name: b for b in previous.batches}
    parts, flags = [], []
    for b in batches:
        old = before.get(b.name)
        if old is None or "length_bucket" not in old.stratify_by or "length_bucket" in b.stratify_by:
            continue
        niche = cfg.niches.get(b.name)
        gap, lo, hi = gap_ci(_diffs(rows, b.name, niche), _diffs(previous.rows, b.name, niche), cfg)
        if not np.isnan(gap):
            flags.append(_significant(lo, hi))
            parts.append(f"{b.name} without its length split against with it in {previous.workdir}: niche gain "
                         f"{gap:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    return parts, flags


def length(rows: list[ScoredReply], cfg: EvalConfig, models: list[str], batches: list[BatchSpec],
           previous: PreviousRound | None) -> Answer:
    """From each model's gain on short against long dialogues, and from a round that dropped a length split."""
    short, long_ = _slice_named(cfg, lengths=["short"]), _slice_named(cfg, lengths=["long"])
    if short is None or long_ is None:
        return Answer(LENGTH, "not answered: no slices of only short and only long dialogues", "not answered")
    parts, flags = [], []
    for m in (m for m in models if m != BASE):
        gap, lo, hi = gap_ci(_diffs(rows, m, [short]), _diffs(rows, m, [long_]), cfg)
        if np.isnan(gap):
            continue
        flags.append(_significant(lo, hi))
        parts.append(f"{m} {gap:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    if not parts:
        return Answer(LENGTH, "not answered: no model was compared on both length slices", "not answered")
    matters = [p.split()[0] for p, f in zip(parts, flags, strict=True) if f]
    head = (f"the gain over the base differs between `{short}` and `{long_}` beyond noise for "
            f"{', '.join(matters)}" if matters else
            f"for no model does the gain over the base differ between `{short}` and `{long_}` beyond noise")
    text = f"{head} (gain on short minus gain on long: {'; '.join(parts)})"
    if previous is not None:
        more, more_flags = _unsplit(rows, cfg, batches, previous)
        text += "".join(f"; {p}" for p in more)
        flags += more_flags
    return Answer(LENGTH, text, _verdict(flags))


def _out_of_niche(rows: list[ScoredReply], cfg: EvalConfig, model: str) -> np.ndarray:
    others = [s.name for s in cfg.slices if s.name not in cfg.niches.get(model, [])]
    return _diffs(rows, model, others)


def batch_size(rows: list[ScoredReply], cfg: EvalConfig, batches: list[BatchSpec], tune: dict | None,
               previous: PreviousRound | None) -> Answer:
    """From the previous round (the same specialists trained on batches of another size: their gain over the base
    outside their niche, then and now) and from `tune`'s sweep of batch sizes (niche scores, no interval)."""
    parts, flags, noise = [], [], "not answered"
    if previous is not None:
        sizes = {b.name: b.size for b in previous.batches}
        for b in batches:
            if sizes.get(b.name, b.size) == b.size:
                continue
            gap, lo, hi = gap_ci(_out_of_niche(rows, cfg, b.name), _out_of_niche(previous.rows, cfg, b.name), cfg)
            if not np.isnan(gap):
                flags.append(_significant(lo, hi))
                parts.append(f"{b.name} at {b.size} dialogues against {sizes[b.name]} in {previous.workdir}: gain "
                             f"outside its niche {gap:+.3f} [{lo:+.3f}, {hi:+.3f}]")
        noise = _verdict(flags) if flags else noise
    done = [t for t in (tune or {}).get("trials", []) if t.get("niche_score") is not None]
    if done:
        best = (tune or {}).get("best") or max(done, key=lambda t: t["niche_score"])
        same = sorted((t for t in done if (t["learning_rate"], t["lora_r"]) == (best["learning_rate"], best["lora_r"])),
                      key=lambda t: t["batch_size"])
        if len(same) > 1:
            lo_t, hi_t = same[0], same[-1]
            parts.append(f"tune ({tune.get('specialist')}, in its niche): {lo_t['batch_size']} dialogues "
                         f"{lo_t['niche_score']:.3f} against {hi_t['batch_size']} dialogues {hi_t['niche_score']:.3f} "
                         f"(base {tune['base']['mean']:.3f}; tune keeps means only, so no interval)")
            noise = noise if flags else "no interval"
    if not parts:
        return Answer(SIZE, "not answered: run `parallel-r1 tune` (a sweep of batch sizes), or a round from "
                            "`parallel-r1 next` that changes the batch sizes", "not answered")
    return Answer(SIZE, "; ".join(parts), noise)


def open_questions(rows: list[ScoredReply], cells: list[Cell], models: list[str], cfg: EvalConfig,
                   batches: list[BatchSpec], tune: dict | None = None, previous: PreviousRound | None = None
                   ) -> list[Answer]:
    return [transfer(cells, cfg, batches), length(rows, cfg, models, batches, previous),
            batch_size(rows, cfg, batches, tune, previous)]


def render_answers(answers: list[Answer], level: float) -> list[str]:
    lines = ["## Open questions", "",
             f"Intervals: {level:.0%} bootstrap over held-out prefixes; gains are against the base on the same "
             "prefixes; a round is compared with the run directory it came from.", "",
             "| question | answer | noise |", "|---|---|---|"]
    return lines + [f"| {a.question} | {a.answer} | {a.noise} |" for a in answers] + [""]
