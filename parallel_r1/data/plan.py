"""The discovery plan: which card, student profile, length and seed each iteration gets.

The plan is a pure function of its arguments, so a resumed run re-derives the same tasks and can
skip those already done.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from parallel_r1.data.profiles import PROFILE_KINDS
from parallel_r1.data.scenarios import cards

# Target turns (messages) per length bucket: short 2–4, medium 5–8, long 9–14.
TURN_RANGES = {"short": (2, 4), "medium": (5, 8), "long": (9, 14)}

STANDARD_MIX = {"standard": 0.5, "neurodivergent": 0.1, "bad_prior_teacher": 0.1, "rejects_metaphor": 0.1,
                "executive_function_gap": 0.1, "hyperfocus": 0.1}
TRAIT_HEAVY_MIX = {"standard": 0.2, "neurodivergent": 0.16, "bad_prior_teacher": 0.16,
                   "rejects_metaphor": 0.16, "executive_function_gap": 0.16, "hyperfocus": 0.16}
LENGTH_MIX = {"short": 0.35, "medium": 0.35, "long": 0.3}
PLAN_BLOCK = 60  # profile kinds and lengths are balanced within each block of 60 iterations


@dataclass(frozen=True)
class DialogueTask:
    iteration: int
    dialogue_id: str
    card_id: str
    profile_kind: str
    target_turns: int
    seed: int

    def to_dict(self) -> dict:
        return asdict(self)


def _weighted_cycle(weights: dict[str, float], n: int, rng: random.Random) -> list[str]:
    """n labels in proportion to the weights; when n allows, the first len(weights) are all distinct."""
    labels = list(weights)
    if n <= len(labels):
        return rng.sample(labels, n)
    total = sum(weights.values())
    counts = {k: max(1, int(n * weights[k] / total)) for k in labels}
    while sum(counts.values()) > n:
        counts[max(counts, key=counts.get)] -= 1
    while sum(counts.values()) < n:
        counts[rng.choices(labels, weights=[weights[k] for k in labels])[0]] += 1
    rest = [k for k in labels for _ in range(counts[k] - 1)]
    rng.shuffle(rest)
    return rng.sample(labels, len(labels)) + rest


def _blocked(weights: dict[str, float], i: int, block: int, seed: str) -> str:
    """The i-th label of an endless sequence built block by block, so every prefix is stable."""
    b, k = divmod(i, block)
    return _weighted_cycle(weights, block, random.Random(f"{seed}:{b}"))[k]


def discovery_plan(n: int, include_special: bool = False, seed: int = 0,
                   profile_mix: dict[str, float] | None = None) -> list[DialogueTask]:
    """N tasks spread so that every card and every profile kind appears once N covers them.

    Task i depends only on (i, seed, include_special, mix): growing N never changes earlier tasks,
    which is what lets `discover` resume to a larger N.
    """
    if n < 0:
        raise ValueError("the number of dialogues must be >= 0")
    mix = profile_mix or (TRAIT_HEAVY_MIX if include_special else STANDARD_MIX)
    unknown = set(mix) - set(PROFILE_KINDS)
    if unknown:
        raise ValueError(f"unknown profile kinds in profile_mix: {sorted(unknown)}")
    deck = list(cards(include_special))
    tasks = []
    for i in range(n):
        rnd, k = divmod(i, len(deck))
        card = random.Random(f"{seed}:cards:{rnd}").sample(deck, len(deck))[k]
        kind = card.special or _blocked(mix, i, PLAN_BLOCK, f"{seed}:kinds")
        lo, hi = TURN_RANGES[_blocked(LENGTH_MIX, i, PLAN_BLOCK, f"{seed}:lengths")]
        rng = random.Random(f"{seed}:task:{i}")
        tasks.append(DialogueTask(
            iteration=i, dialogue_id=f"d{seed:04d}-{i:06d}", card_id=card.id, profile_kind=kind,
            target_turns=rng.randint(lo, hi), seed=rng.getrandbits(31),
        ))
    return tasks
