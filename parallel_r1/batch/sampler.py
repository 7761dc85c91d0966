"""Stratified, quality-first sampling of one specialist batch.

Picks are balanced over the strata of the batch's `stratify_by` columns, best first inside a stratum (by
score, or by the mean of the score and the batch's niche criteria, `rank_by`) with seeded tie-breaks,
optionally varied in teacher openers; a stock-phrase cap then replaces or drops the densest picks so that
memorised phrases cannot dominate the batch.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

from parallel_r1.config import BatchSpec, ConfigError
from parallel_r1.data.hashing import stable_hash
from parallel_r1.data.schema import Dialogue
from parallel_r1.grade.grade import CRITERIA

# Dialogue columns a batch can be stratified by (scalar fields and properties).
STRATIFY_COLUMNS = (
    "scenario_id", "topic", "domain", "question_type", "difficulty", "is_special", "profile_kind",
    "length_bucket", "n_turns", "backend", "model", "grader",
)
OPENER_WORDS = 3
_EPS = 1e-12
_WORD = re.compile(r"[\w']+")


def teacher_openers(dialogue: Dialogue, words: int = OPENER_WORDS) -> list[str]:
    """The first `words` words of each teacher turn, lower-cased and without punctuation."""
    openers = (" ".join(_WORD.findall(t.content.lower())[:words]) for t in dialogue.turns if t.role == "teacher")
    return [o for o in openers if o]


def mean_density(dialogues: Sequence[Dialogue]) -> float | None:
    """Mean stock-phrase density (stock phrases per teacher turn); None for no dialogues."""
    return sum(d.stock_phrase_density for d in dialogues) / len(dialogues) if dialogues else None


def _check_names(spec: BatchSpec, field: str, kind: str, allowed: Sequence[str]) -> None:
    """A ConfigError (one line at the CLI, exit 2) naming the batch, the field and every value not in `allowed`."""
    unknown = [c for c in getattr(spec, field) if c not in allowed]
    if unknown:
        raise ConfigError(f"batch.batches[{spec.name}].{field}: unknown {kind}(s) {', '.join(map(repr, unknown))}; "
                         f"expected some of {', '.join(allowed)}")


class _Mix:
    """Running composition of a batch: value counts per stratify column and stratum, and opener counts."""

    def __init__(self, sampler: StratifiedSampler, selected: Iterable[Dialogue]):
        self._sampler = sampler
        self.values: list[Counter] = [Counter() for _ in sampler.columns]
        self.strata: Counter = Counter()
        self.openers: Counter = Counter()
        for d in selected:
            self.add(d)

    def add(self, d: Dialogue) -> None:
        stratum = self._sampler.stratum(d)
        for counts, value in zip(self.values, stratum, strict=True):
            counts[value] += 1
        self.strata[stratum] += 1
        if self._sampler.spec.diverse_patterns:
            self.openers.update(self._sampler.openers(d))

    def balance_key(self, stratum: tuple) -> tuple:
        """Least represented first: by the first column's value, then the next column's, then the stratum."""
        return (*(counts[v] for counts, v in zip(self.values, stratum, strict=True)), self.strata[stratum])

    def overlap(self, d: Dialogue) -> float:
        """How common this dialogue's teacher openers already are in the batch (mean count per opener)."""
        openers = self._sampler.openers(d)
        return sum(self.openers[o] for o in openers) / len(openers) if openers else 0.0


class StratifiedSampler:
    """Draws a batch's dialogues balanced over the strata of `spec.stratify_by`.

    Nested round-robin: the next pick comes from the least represented value of the first stratify
    column, among those from the least represented value of the next column, and so on; inside a
    stratum the best score wins (with `spec.rank_by`, the best mean of the score and those niche
    criteria), ties broken by a seeded hash of the dialogue id. With
    `spec.diverse_patterns` a candidate whose teacher openers are already common in the batch yields
    to one whose openers are not (before score, after balance). Candidates must be graded.
    """

    def __init__(self, spec: BatchSpec, seed: int = 0):
        _check_names(spec, "stratify_by", "column", STRATIFY_COLUMNS)
        _check_names(spec, "rank_by", "criterion", CRITERIA)
        self.spec = spec
        self.seed = seed
        self.columns = tuple(spec.stratify_by)
        self._openers: dict[str, list[str]] = {}

    def stratum(self, d: Dialogue) -> tuple:
        return tuple(getattr(d, c) for c in self.columns)

    def openers(self, d: Dialogue) -> list[str]:
        if d.dialogue_id not in self._openers:
            self._openers[d.dialogue_id] = teacher_openers(d)
        return self._openers[d.dialogue_id]

    def rank_value(self, d: Dialogue) -> float:
        """The score, or with `spec.rank_by` the mean of the score and those criteria the dialogue is graded on."""
        niche = [d.criteria[c] for c in self.spec.rank_by if c in d.criteria]
        return (d.score + sum(niche)) / (1 + len(niche))

    def quality_key(self, d: Dialogue) -> tuple[float, int]:
        """Best rank value first, then the seeded tie-break."""
        return (-self.rank_value(d), stable_hash(self.seed, self.spec.name, d.dialogue_id))

    def draw(self, candidates: Iterable[Dialogue], size: int | None = None,
             selected: Sequence[Dialogue] = ()) -> list[Dialogue]:
        """Up to `size` candidates (default: what `selected` lacks of `spec.size`), in pick order.

        `selected` is the batch so far: it counts toward balance and opener overlap, and its
        dialogues are not picked again.
        """
        want = self.spec.size - len(selected) if size is None else size
        mix = _Mix(self, selected)
        taken = {d.dialogue_id for d in selected}
        groups: dict[tuple, list[Dialogue]] = {}
        for d in sorted(candidates, key=self.quality_key):
            if d.dialogue_id not in taken:
                taken.add(d.dialogue_id)
                groups.setdefault(self.stratum(d), []).append(d)
        picks: list[Dialogue] = []
        while len(picks) < want and groups:
            _, stratum, index = min(self._candidate(mix, s, members) for s, members in groups.items())
            d = groups[stratum].pop(index)
            if not groups[stratum]:
                del groups[stratum]
            mix.add(d)
            picks.append(d)
        return picks

    def _candidate(self, mix: _Mix, stratum: tuple, members: list[Dialogue]) -> tuple:
        """(preference key, stratum, index of the stratum's best member); members are in quality order."""
        if not self.spec.diverse_patterns:
            return (mix.balance_key(stratum), self.quality_key(members[0])), stratum, 0
        index = min(range(len(members)), key=lambda i: (mix.overlap(members[i]), i))
        member = members[index]
        return (mix.balance_key(stratum), mix.overlap(member), self.quality_key(member)), stratum, index

    def cap_density(self, selected: Sequence[Dialogue], spares: Iterable[Dialogue],
                    cap: float) -> tuple[list[Dialogue], list[Dialogue]]:
        """Hold the batch's mean stock-phrase density at or under `cap`.

        While the mean is over the cap, the densest pick leaves the batch; the best spare with a lower
        density takes its place (one under the cap first, then one from the same stratum, then the
        best score), or, when no spare is less dense, the batch shrinks. Returns (kept, removed).
        """
        kept = list(selected)
        spare = list(spares)
        removed: list[Dialogue] = []
        while kept and mean_density(kept) > cap + _EPS:
            worst = max(kept, key=lambda d: (d.stock_phrase_density, self.quality_key(d)))
            kept.remove(worst)
            removed.append(worst)
            lighter = [d for d in spare if d.stock_phrase_density < worst.stock_phrase_density]
            if lighter:
                best = min(lighter, key=lambda d: (d.stock_phrase_density > cap,
                                                   self.stratum(d) != self.stratum(worst), self.quality_key(d)))
                spare.remove(best)
                kept.append(best)
        return kept, removed
