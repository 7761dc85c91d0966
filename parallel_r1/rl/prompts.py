"""GRPO prompts from the curriculum: procedural dialogue prefixes (ending with a student turn) per scenario tier, with
the tutor system prompt and the `ParallelExecutionPolicy` instruction, fitted into the prompt token budget.

The training dataset holds only slot numbers; `CurriculumPrompts.row(slot, tier, branches)` turns a slot into a
prompt of the tier and branch count that apply when the rollout is generated, so a promotion or a phase switch takes
effect at the very next step. The pool is a pure function of (tiers, size, seed): a resumed run sees the same
prompts. No torch, no Ray.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from parallel_r1.data import PROFILE_KINDS, DialogueTask, ScenarioCard
from parallel_r1.data.context import fit_prompt
from parallel_r1.discover.procedural import ProceduralBackend
from parallel_r1.discover.simulator import simulate_dialogue
from parallel_r1.inference.policy import ParallelExecutionPolicy
from parallel_r1.rl.curriculum import tier_cards

TURN_RANGE = (1, 7)  # messages simulated before the cut: the prefix ends at one of their student turns


@dataclass(frozen=True)
class Prefix:
    """One dialogue so far, ending with the student; the card and profile the rewards grade against."""

    history: tuple[dict, ...]
    scenario_id: str
    profile_kind: str


def _task(card: ScenarioCard, i: int, seed: int) -> DialogueTask:
    rng = random.Random(f"{seed}:rl:{card.id}:{i}")
    kind = card.special or PROFILE_KINDS[i % len(PROFILE_KINDS)]
    return DialogueTask(iteration=i, dialogue_id=f"rl{seed:04d}-{card.id}-{i:04d}", card_id=card.id,
                        profile_kind=kind, target_turns=rng.randint(*TURN_RANGE), seed=rng.getrandbits(31))


def tier_prefixes(tier: str, n: int, seed: int = 0) -> list[Prefix]:
    """`n` prefixes over the cards of a tier (round robin), each cut at a random student turn."""
    cards = tier_cards(tier)
    tasks = [_task(cards[i % len(cards)], i, seed) for i in range(n)]
    backend = ProceduralBackend(seed)

    async def simulate() -> list:
        return [await simulate_dialogue(backend, t) for t in tasks]

    out = []
    for task, d in zip(tasks, asyncio.run(simulate()), strict=True):
        msgs = d.messages()
        cut = random.Random(f"{seed}:rl-cut:{task.dialogue_id}").choice(
            [i for i, m in enumerate(msgs) if m["role"] == "user"])
        out.append(Prefix(tuple(msgs[:cut + 1]), d.scenario_id, task.profile_kind))
    return out


def system_prompt(branches: int, max_blocks: int) -> str:
    """The system prompt of the cold-start SFT targets, asking for `branches` paths per block."""
    return ParallelExecutionPolicy(branches=branches, max_blocks=max_blocks).system_prompt()


CONTEXT_HINT = "lower rl.explore.max_tokens / rl.verify.max_tokens or raise rl.max_model_len"


class CurriculumPrompts:
    """Slot -> prompt row (`prompt`, `scenario_id`, `profile_kind`, `tier`) for the tier and branch count given."""

    def __init__(self, tiers: Sequence[str], pool_size: int, seed: int, max_blocks: int,
                 count_tokens: Callable[[list[dict]], int], budget: int):
        self.pools = {t: tier_prefixes(t, pool_size, seed) for t in dict.fromkeys(tiers)}
        self.max_blocks, self.count_tokens, self.budget = max_blocks, count_tokens, budget
        self._cache: dict[tuple[str, int, int], dict] = {}

    def row(self, slot: int, tier: str, branches: int) -> dict:
        key = (tier, branches, slot % len(self.pools[tier]))
        if key not in self._cache:
            prefix = self.pools[tier][key[2]]
            prompt = fit_prompt(list(prefix.history), self.count_tokens, self.budget,
                                system_prompt(branches, self.max_blocks), hint=CONTEXT_HINT)
            self._cache[key] = {"prompt": prompt, "scenario_id": prefix.scenario_id,
                                "profile_kind": prefix.profile_kind, "tier": tier}
        return dict(self._cache[key])
