"""The discovery plan: which card, student profile, length and seed each iteration gets.

The plan is a pure function of its arguments, so a resumed run re-derives the same tasks and can
skip those already done.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from parallel_r1.config.base import ConfigError
from parallel_r1.data.profiles import PROFILE_KINDS
from parallel_r1.data.scenarios import ScenarioCard, cards

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


def parse_profile_mix(text: str) -> dict[str, float]:
    """`standard=1,hyperfocus=3` (the `--profile-mix` flag) as a mapping, checked like `discover.profile_mix`."""
    mix: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        kind, _, weight = item.partition("=")
        try:
            mix[kind.strip()] = float(weight)
        except ValueError:
            raise ConfigError(f"--profile-mix: {item!r} must look like kind=weight (e.g. standard=1,hyperfocus=3)"
                              ) from None
    return check_profile_mix(mix)


def check_profile_mix(mix: Mapping[str, float]) -> dict[str, float]:
    """The mix without its zero weights; unknown kinds, negative weights or no positive weight are a ConfigError."""
    unknown = sorted(set(mix) - set(PROFILE_KINDS))
    if unknown:
        raise ConfigError(f"discover.profile_mix: unknown profile kind(s) {', '.join(map(repr, unknown))}; "
                          f"expected some of {', '.join(PROFILE_KINDS)}")
    negative = sorted(k for k, w in mix.items() if not w >= 0)
    if negative:
        raise ConfigError(f"discover.profile_mix: the weight of {', '.join(negative)} must be a number >= 0")
    kept = {k: float(w) for k, w in mix.items() if w > 0}
    if not kept:
        raise ConfigError("discover.profile_mix: at least one weight must be above 0")
    return kept


def discovery_plan(n: int, include_special: bool = False, seed: int = 0,
                   profile_mix: Mapping[str, float] | None = None,
                   extra_cards: Sequence[ScenarioCard] = ()) -> list[DialogueTask]:
    """N tasks spread so that every card and every profile kind appears once N covers them.

    Task i depends only on (i, seed, include_special, mix, cards): growing N never changes earlier tasks,
    which is what lets `discover` resume to a larger N. A kind of weight 0 is never drawn, but a special card
    (built in or from a card file) always gets the kind it was written for. `extra_cards` (from card files) join
    the deck after the built-in ones; their special cards only with `include_special`.
    """
    if n < 0:
        raise ValueError("the number of dialogues must be >= 0")
    mix = TRAIT_HEAVY_MIX if include_special else STANDARD_MIX
    if profile_mix is not None:
        mix = check_profile_mix(profile_mix)
    deck = list(cards(include_special)) + [c for c in extra_cards if include_special or c.special is None]
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
