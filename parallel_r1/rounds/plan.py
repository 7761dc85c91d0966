"""The next round of the plan's decision tree, as a config overlay with a reason for every change.

Best case: discovery leans toward the profiles the winning specialists serve, and the batches grow toward 200.
Medium case: the winners are kept and grown, the losers leave the batches and the routes, and a length split
that did not matter is dropped. Worst case: the batches merge into fewer, larger ones that keep their
stratification columns. Pure: it reads a config and the evidence, never files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from parallel_r1.config import BatchSpec, PipelineConfig
from parallel_r1.data.plan import STANDARD_MIX, TRAIT_HEAVY_MIX
from parallel_r1.paths import round_dir

TARGET_SIZE = 200  # the plan's "scale to 200+ samples"
GROWTH = 2.0  # a kept batch's size is multiplied by this each round, up to TARGET_SIZE
WINNER_BOOST = 3.0  # discovery weight multiplier of a profile a winning specialist serves
CASES = ("best case", "medium case", "worst case")


@dataclass(frozen=True)
class SpecialistEvidence:
    """One specialist's result in its niche, and how its gain over the base varied with dialogue length."""

    name: str
    niche_delta: float
    ci: tuple[float, float]
    improves: bool  # niche delta >= eval.improvement_threshold
    length_gap: float | None = None  # |gain on short_dialogues - gain on long_dialogues|; None: not measured


@dataclass(frozen=True)
class RoundEvidence:
    """What compare found: the seed's case, each specialist's niche result, the routed winner per profile."""

    case: str
    specialists: dict[str, SpecialistEvidence]
    profile_winners: dict[str, str] = field(default_factory=dict)  # profile kind -> significant winner

    @property
    def winners(self) -> list[str]:
        return [n for n, s in self.specialists.items() if s.improves]

    @property
    def losers(self) -> list[str]:
        return [n for n, s in self.specialists.items() if not s.improves]


@dataclass(frozen=True)
class Change:
    key: str  # a dotted config path, as `--set` takes it
    value: object
    reason: str


def _grown(size: int) -> int:
    return max(size, min(TARGET_SIZE, round(size * GROWTH)))


def _sizes_reason(before: list[BatchSpec], after: list[BatchSpec]) -> str:
    old = {b.name: b.size for b in before}
    return ", ".join(f"{b.name} {old[b.name]} -> {b.size}" if b.name in old else f"{b.name} {b.size}" for b in after)


def _discovery_n(cfg: PipelineConfig, batches: list[BatchSpec], why: str) -> list[Change]:
    """More dialogues in proportion to the batches' total size, so the larger batches can fill (none when the
    batches need no more than before)."""
    before = sum(b.size for b in cfg.batch.batches)
    after = sum(b.size for b in batches)
    n = max(cfg.discover.n, -(-cfg.discover.n * after // max(before, 1)))
    if n == cfg.discover.n:
        return []
    return [Change("discover.n", n, f"{why}: batches total {before} -> {after} dialogues, so discovery grows in "
                                    f"proportion ({cfg.discover.n} -> {n})")]


def _profiles_of(evidence: RoundEvidence, cfg: PipelineConfig, names: list[str]) -> list[str]:
    """The profile kinds the given profile specialists (batches restricted to some kinds) serve: their batches'
    kinds and the profiles routed to them."""
    profiled = {b.name: b.profile_kinds for b in cfg.batch.batches if b.profile_kinds and b.name in names}
    kinds = {k for ks in profiled.values() for k in ks}
    kinds |= {k for k, m in evidence.profile_winners.items() if m in profiled}
    return sorted(kinds)


def _best(cfg: PipelineConfig, evidence: RoundEvidence) -> list[Change]:
    winners = evidence.winners
    changes = []
    kinds = _profiles_of(evidence, cfg, winners)
    if kinds:
        mix = dict(cfg.discover.profile_mix or (TRAIT_HEAVY_MIX if cfg.discover.include_special else STANDARD_MIX))
        boosted = {k: w * (WINNER_BOOST if k in kinds else 1.0) for k, w in mix.items()}
        boosted.update({k: WINNER_BOOST * min(mix.values()) for k in kinds if k not in mix})
        total = sum(boosted.values())
        changes.append(Change("discover.profile_mix", {k: round(w / total, 3) for k, w in boosted.items()},
                              f"best case: {', '.join(winners)} improved in their niche; the profiles the winning "
                              f"profile specialists serve ({', '.join(kinds)}) get {WINNER_BOOST:g}x their weight "
                              "in discovery"))
    batches = [b.model_copy(update={"size": _grown(b.size)}) for b in cfg.batch.batches]
    changes.append(Change("batch.batches", batches, f"best case: every batch grows toward {TARGET_SIZE} "
                                                    f"({_sizes_reason(cfg.batch.batches, batches)})"))
    return changes + _discovery_n(cfg, batches, "best case")


def _medium(cfg: PipelineConfig, evidence: RoundEvidence) -> list[Change]:
    winners, losers = evidence.winners, evidence.losers
    tolerance = cfg.eval.generalist_tolerance
    batches, simplified = [], []
    for b in cfg.batch.batches:
        if b.name in losers:
            continue
        update: dict = {"size": _grown(b.size)}
        gap = evidence.specialists[b.name].length_gap if b.name in evidence.specialists else None
        if "length_bucket" in b.stratify_by and gap is not None and gap < tolerance:
            update["stratify_by"] = [c for c in b.stratify_by if c != "length_bucket"]
            simplified.append(f"{b.name} (gain on short vs long dialogues differs by {gap:.3f} < {tolerance:g})")
        batches.append(b.model_copy(update=update))
    reason = (f"medium case: keep the winners ({', '.join(winners) or 'none'}) and grow them toward {TARGET_SIZE} "
              f"({_sizes_reason(cfg.batch.batches, batches)}); drop the losers ({', '.join(losers) or 'none'})")
    if simplified:
        reason += "; length split dropped where it did not matter: " + ", ".join(simplified)
    changes = [Change("batch.batches", batches, reason)]
    routes = dict(cfg.serve.static_routes)
    moved = {k: evidence.profile_winners.get(k) if evidence.profile_winners.get(k) in winners else "base"
             for k, m in routes.items() if m in losers}
    if moved:
        routes.update(moved)
        changes.append(Change("serve.static_routes", routes, "medium case: profiles routed to a loser go to their "
                                                             "significant winner, else the base: " +
                              ", ".join(f"{k} -> {m}" for k, m in moved.items())))
    return changes + _discovery_n(cfg, batches, "medium case")


def _merge(name: str, group: list[BatchSpec]) -> BatchSpec:
    """One batch holding a group's data: the union of what each admitted, stratified by every column the group
    was split on (its members' stratification, and the dimensions on which they differed)."""
    columns = [c for b in group for c in b.stratify_by]

    def union(attr: str, column: str):
        values = [getattr(b, attr) for b in group]
        if len({tuple(v) if v else None for v in values}) > 1:
            columns.append(column)
        return None if any(v is None for v in values) else sorted({x for v in values for x in v})

    lengths = union("lengths", "length_bucket")
    question_types = union("question_types", "question_type")
    profile_kinds = union("profile_kinds", "profile_kind")
    confidence = group[0].confidence if len({b.confidence for b in group}) == 1 else "any"
    return BatchSpec(name=name, size=sum(b.size for b in group), lengths=lengths, question_types=question_types,
                     profile_kinds=profile_kinds, confidence=confidence, stratify_by=list(dict.fromkeys(columns)),
                     diverse_patterns=any(b.diverse_patterns for b in group),
                     rank_by=list(dict.fromkeys(c for b in group for c in b.rank_by)),
                     description="Merged: " + ", ".join(b.name for b in group))


def _worst(cfg: PipelineConfig, evidence: RoundEvidence) -> list[Change]:
    groups = {"general_merged": [b for b in cfg.batch.batches if not b.profile_kinds],
              "profiles_merged": [b for b in cfg.batch.batches if b.profile_kinds]}
    merged = {name: _merge(name, group) for name, group in groups.items() if group}
    into = {b.name: name for name, group in groups.items() for b in group}
    batches = list(merged.values())
    changes = [Change("batch.batches", batches, "worst case: no specialisation paid off, so the batches merge into "
                      "fewer, larger ones that keep their stratification columns: " +
                      "; ".join(f"{b.name} = {b.description.removeprefix('Merged: ')} ({b.size} dialogues, "
                                f"stratified by {', '.join(b.stratify_by)})" for b in batches))]
    niches = {}
    for old, slices in cfg.eval.niches.items():
        if old in into:
            niches.setdefault(into[old], [])
            niches[into[old]] += [s for s in slices if s not in niches[into[old]]]
    changes.append(Change("eval.niches", niches, "worst case: each merged batch's niche is the union of its "
                                                 "members' niches"))
    if cfg.eval.generalist in into:
        changes.append(Change("eval.generalist", into[cfg.eval.generalist],
                              f"worst case: {cfg.eval.generalist} merged into {into[cfg.eval.generalist]}"))
    routes = {k: into.get(m, m) for k, m in cfg.serve.static_routes.items()}
    changes.append(Change("serve.static_routes", routes, "worst case: each profile goes to the merged batch that "
                                                         "holds its former specialist"))
    if cfg.tune.specialist in into:
        changes.append(Change("tune.specialist", into[cfg.tune.specialist],
                              f"worst case: {cfg.tune.specialist} merged into {into[cfg.tune.specialist]}"))
    return changes


def next_round(cfg: PipelineConfig, evidence: RoundEvidence, round_no: int) -> list[Change]:
    """The changes of round `round_no` for the config the evidence came from, in a new run directory."""
    if evidence.case not in CASES:
        raise ValueError(f"unknown case {evidence.case!r}; expected one of {', '.join(CASES)}")
    act = {"best case": _best, "medium case": _medium, "worst case": _worst}[evidence.case]
    workdir = round_dir(cfg.workdir, round_no)
    return [Change("workdir", workdir, f"round {round_no} runs in its own run directory, beside {cfg.workdir}"),
            *act(cfg, evidence)]

