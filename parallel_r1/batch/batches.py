"""The specialist batches: eligibility, allocation of scarce dialogues, and shortfall diagnosis.

`build_batches` is pure and deterministic given `cfg.seed`. A batch that cannot be filled is never
silently shrunk: its `Shortfall` says which constraint binds and roughly how many more discover
iterations would fill it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from parallel_r1.batch.sampler import StratifiedSampler, mean_density
from parallel_r1.config import BatchConfig, BatchSpec
from parallel_r1.data.profiles import PROFILE_KINDS
from parallel_r1.data.schema import Dialogue
from parallel_r1.errors import UserFacingError

_EPS = 1e-12


class UngradedDialoguesError(UserFacingError, ValueError):
    """Some dialogues lack grading columns; batches need `parallel-r1 grade` first."""


class BatchShortfallError(UserFacingError, ValueError):
    """Strict mode: at least one batch could not be filled. `batch_set` holds the partial result."""

    def __init__(self, batch_set: BatchSet):
        self.batch_set = batch_set
        lines = "\n".join(f"  - {s.message()}" for s in batch_set.shortfalls)
        super().__init__(f"{len(batch_set.shortfalls)} batch(es) could not be filled (batch.strict):\n{lines}")


def confidence_tier(confidence: float | None, cfg: BatchConfig) -> str:
    """'high' (>= high_confidence), 'medium' ([medium_confidence, high_confidence)), 'low' or 'unknown'."""
    if confidence is None:
        return "unknown"
    if confidence >= cfg.high_confidence:
        return "high"
    return "medium" if confidence >= cfg.medium_confidence else "low"


@dataclass(frozen=True)
class Constraint:
    label: str
    test: Callable[[Dialogue], bool]


def _one_of(values: Sequence[str]) -> str:
    return values[0] if len(values) == 1 else f"({' or '.join(values)})"


def batch_constraints(spec: BatchSpec, cfg: BatchConfig) -> list[Constraint]:
    """The filters a dialogue must pass to be eligible for `spec`; the quality floor always applies."""
    out = []
    if spec.lengths:
        lengths = set(spec.lengths)
        out.append(Constraint(_one_of(spec.lengths), lambda d: d.length_bucket in lengths))
    if spec.question_types:
        types = set(spec.question_types)
        out.append(Constraint(_one_of(spec.question_types), lambda d: d.question_type in types))
    if spec.confidence != "any":
        tier = spec.confidence
        out.append(Constraint(f"{tier} confidence", lambda d: confidence_tier(d.confidence, cfg) == tier))
    if spec.profile_kinds:
        kinds = set(spec.profile_kinds)
        out.append(Constraint(_one_of(spec.profile_kinds), lambda d: d.profile_kind in kinds))
    floor = cfg.quality_floor
    out.append(Constraint(f"score >= {floor:g}", lambda d: d.score >= floor))
    return out


def describe(spec: BatchSpec, cfg: BatchConfig) -> str:
    """e.g. 'long & medium confidence & score >= 0.6'."""
    return " & ".join(c.label for c in batch_constraints(spec, cfg))


def eligible(dialogues: Sequence[Dialogue], spec: BatchSpec, cfg: BatchConfig) -> list[Dialogue]:
    """The dialogues passing every constraint of `spec`, in input order."""
    constraints = batch_constraints(spec, cfg)
    return [d for d in dialogues if all(c.test(d) for c in constraints)]


@dataclass(frozen=True)
class Shortfall:
    """Why a batch is short and how much more discovery would likely fill it."""

    batch: str
    target: int
    selected: int
    eligible: int  # dialogues passing every constraint
    used_elsewhere: int  # of those, taken by other batches (no overlap)
    capped: int  # of those, free but kept out by the stock-phrase cap
    constraint: str
    discovered: int  # all dialogues the batches were built from
    zero_rate_hint: str = ""

    @property
    def missing(self) -> int:
        return self.target - self.selected

    @property
    def rate(self) -> float:
        """Eligible dialogues per discovered dialogue."""
        return self.eligible / self.discovered if self.discovered else 0.0

    @property
    def iterations(self) -> int | None:
        """More discover iterations that would likely fill the batch; None when the rate is 0."""
        return math.ceil(self.missing / self.rate) if self.rate > 0 else None

    def message(self) -> str:
        parts = [f"{self.batch} {self.selected}/{self.target}: {self.constraint}: "
                 f"{self.eligible} eligible, {self.missing} missing"]
        if self.used_elsewhere:
            parts.append(f"{self.used_elsewhere} eligible used by other batches")
        if self.capped:
            parts.append(f"{self.capped} eligible kept out by the stock-phrase cap")
        if self.iterations is None:
            parts.append(f"eligible rate is 0: {self.zero_rate_hint}")
        else:
            parts.append(f"~{self.iterations} more discover iterations would likely fill it "
                         f"({self.rate:.3f} eligible per discovered dialogue)")
        return "; ".join(parts)


@dataclass
class Batch:
    spec: BatchSpec
    dialogues: list[Dialogue]
    eligible: int
    cap_removed: int  # picks the stock-phrase cap replaced or dropped
    shortfall: Shortfall | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def target(self) -> int:
        return self.spec.size

    @property
    def size(self) -> int:
        return len(self.dialogues)

    @property
    def full(self) -> bool:
        return self.shortfall is None

    @property
    def status(self) -> str:
        return "full" if self.shortfall is None else f"short {self.shortfall.missing}"

    @property
    def mean_score(self) -> float | None:
        return sum(d.score for d in self.dialogues) / self.size if self.dialogues else None

    @property
    def mean_confidence(self) -> float | None:
        known = [d.confidence for d in self.dialogues if d.confidence is not None]
        return sum(known) / len(known) if known else None

    @property
    def mean_density(self) -> float | None:
        return mean_density(self.dialogues)


@dataclass
class BatchSet:
    batches: list[Batch]  # in config order
    config: BatchConfig
    discovered: int
    allocation_order: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[Batch]:
        return iter(self.batches)

    def __getitem__(self, name: str) -> Batch:
        for b in self.batches:
            if b.name == name:
                return b
        raise KeyError(name)

    @property
    def shortfalls(self) -> list[Shortfall]:
        return [b.shortfall for b in self.batches if b.shortfall is not None]

    @property
    def warnings(self) -> list[str]:
        return [s.message() for s in self.shortfalls]


def _check_inputs(dialogues: Sequence[Dialogue], cfg: BatchConfig) -> None:
    ungraded = [d.dialogue_id for d in dialogues if d.score is None or d.stock_phrase_density is None]
    if ungraded:
        raise UngradedDialoguesError(
            f"{len(ungraded)} of {len(dialogues)} dialogues are ungraded (no score or stock-phrase density), "
            f"e.g. {', '.join(ungraded[:3])}: run `parallel-r1 grade` first"
        )
    seen: set[str] = set()
    dupes = sorted({d.dialogue_id for d in dialogues if d.dialogue_id in seen or seen.add(d.dialogue_id)})
    if dupes:
        raise ValueError(f"duplicate dialogue ids: {', '.join(dupes[:5])}")
    for spec in cfg.batches:
        unknown = sorted(set(spec.profile_kinds or ()) - set(PROFILE_KINDS))
        if unknown:
            raise ValueError(f"batch.batches[{spec.name}].profile_kinds: unknown kind(s) {', '.join(unknown)}; "
                             f"expected some of {', '.join(PROFILE_KINDS)}")


def _zero_rate_hint(spec: BatchSpec, cfg: BatchConfig, dialogues: Sequence[Dialogue]) -> str:
    if not dialogues:
        return "no dialogues discovered yet: run `parallel-r1 discover`"
    absent = [c.label for c in batch_constraints(spec, cfg) if not any(c.test(d) for d in dialogues)]
    what = (f"no discovered dialogue matches {', '.join(absent)}" if absent
            else "no discovered dialogue meets all the constraints together")
    what += "; more iterations of the same discovery will not fill it: "
    needs_traits = spec.profile_kinds and set(spec.profile_kinds) != {"standard"}
    if needs_traits and not any(d.is_special for d in dialogues):
        return what + "rerun `parallel-r1 discover --include-special` (special cards, trait-heavy profiles)"
    return what + "relax this batch's constraints or change the discovery mix"


def build_batches(dialogues: Sequence[Dialogue], cfg: BatchConfig) -> BatchSet:
    """Cut `cfg.batches` from graded dialogues; raises `BatchShortfallError` on a shortfall if `cfg.strict`.

    Allocation (without `allow_overlap`): batches are filled most constrained first (fewest eligible
    dialogues per slot), except that batches with fewer eligible dialogues than slots go last, so they
    cannot starve batches that could be full. Each draws from what no earlier batch took; then a short
    batch takes dialogues from others along augmenting paths (the donor takes a free replacement,
    transitively), so a scarce dialogue ends where it is needed. Every batch's mean stock-phrase density
    stays <= cap.
    """
    _check_inputs(dialogues, cfg)
    cap = cfg.max_stock_phrase_density
    samplers = {s.name: StratifiedSampler(s, cfg.seed) for s in cfg.batches}
    pools = {s.name: sorted(eligible(dialogues, s, cfg), key=samplers[s.name].quality_key) for s in cfg.batches}
    order = sorted(cfg.batches, key=lambda s: (len(pools[s.name]) < s.size, len(pools[s.name]) / s.size))
    members: dict[str, list[Dialogue]] = {}
    cap_removed: dict[str, int] = {}
    owner: dict[str, str] = {}
    for spec in order:
        free = [d for d in pools[spec.name] if cfg.allow_overlap or d.dialogue_id not in owner]
        picks = samplers[spec.name].draw(free)
        picked = {d.dialogue_id for d in picks}
        kept, removed = samplers[spec.name].cap_density(
            picks, (d for d in free if d.dialogue_id not in picked), cap)
        members[spec.name], cap_removed[spec.name] = kept, len(removed)
        owner.update((d.dialogue_id, spec.name) for d in kept)
    if not cfg.allow_overlap:
        _rebalance(order, pools, members, samplers, cap)
        owner = {d.dialogue_id: name for name, ds in members.items() for d in ds}

    batches = []
    for spec in cfg.batches:
        chosen = members[spec.name]
        shortfall = None
        if len(chosen) < spec.size:
            pool = pools[spec.name]
            used = 0 if cfg.allow_overlap else sum(owner.get(d.dialogue_id, spec.name) != spec.name for d in pool)
            shortfall = Shortfall(
                batch=spec.name, target=spec.size, selected=len(chosen), eligible=len(pool), used_elsewhere=used,
                capped=len(pool) - len(chosen) - used, constraint=describe(spec, cfg), discovered=len(dialogues),
                zero_rate_hint="" if pool else _zero_rate_hint(spec, cfg, dialogues),
            )
        batches.append(Batch(spec, chosen, len(pools[spec.name]), cap_removed[spec.name], shortfall))
    batch_set = BatchSet(batches, cfg, len(dialogues), [s.name for s in order])
    if cfg.strict and batch_set.shortfalls:
        raise BatchShortfallError(batch_set)
    return batch_set


@dataclass(frozen=True)
class _Hop:
    """One step of an augmenting path: `batch` receives a dialogue and gives up `gives` (None at the start)."""

    batch: str
    gives: Dialogue | None
    prev: _Hop | None
    path: frozenset[str]


def _rebalance(order: list[BatchSpec], pools: dict[str, list[Dialogue]], members: dict[str, list[Dialogue]],
               samplers: dict[str, StratifiedSampler], cap: float) -> None:
    """Grow short batches along augmenting paths until none is found (each success adds one dialogue)."""
    progress = True
    while progress:
        progress = False
        for spec in order:
            while len(members[spec.name]) < spec.size and _augment(spec.name, pools, members, samplers, cap):
                progress = True


def _augment(short: str, pools: dict[str, list[Dialogue]], members: dict[str, list[Dialogue]],
             samplers: dict[str, StratifiedSampler], cap: float) -> bool:
    """Breadth-first search for a shortest path ending at a batch that can take a free dialogue."""
    owner = {d.dialogue_id: name for name, ds in members.items() for d in ds}
    totals = {name: (sum(d.stock_phrase_density for d in ds), len(ds)) for name, ds in members.items()}

    def fits(batch: str, add: Dialogue, remove: Dialogue | None) -> bool:
        total, n = totals[batch]
        if remove is not None:
            total, n = total - remove.stock_phrase_density, n - 1
        return (total + add.stock_phrase_density) / (n + 1) <= cap + _EPS

    queue = deque([_Hop(short, None, None, frozenset([short]))])
    seen: set[str] = set()
    while queue:
        hop = queue.popleft()
        free = [d for d in pools[hop.batch] if d.dialogue_id not in owner and fits(hop.batch, d, hop.gives)]
        if free:
            rest = [d for d in members[hop.batch] if d is not hop.gives]
            _apply(hop, samplers[hop.batch].draw(free, 1, selected=rest)[0], members)
            return True
        for d in pools[hop.batch]:
            other = owner.get(d.dialogue_id)
            if other is None or other in hop.path or d.dialogue_id in seen or not fits(hop.batch, d, hop.gives):
                continue
            seen.add(d.dialogue_id)
            queue.append(_Hop(other, d, hop, hop.path | {other}))
    return False


def _apply(hop: _Hop | None, receives: Dialogue, members: dict[str, list[Dialogue]]) -> None:
    """Walk the path back: each batch takes what it receives in place of what it gives up."""
    while hop is not None:
        batch = members[hop.batch]
        if hop.gives is None:
            batch.append(receives)
        else:
            batch[batch.index(hop.gives)] = receives
        receives, hop = hop.gives, hop.prev
