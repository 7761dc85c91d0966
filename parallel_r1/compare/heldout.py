"""The held-out evaluation set: conversation prefixes (ending with a student turn) in named slices,
simulated from a seed of their own and checked against every training batch, so no prefix a model is
asked to answer was trained on.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from parallel_r1.config import EvalConfig, EvalSliceSpec
from parallel_r1.data import Dialogue, StudentProfileConfig, discovery_plan, read_dialogues
from parallel_r1.data.io import atomic_write_json
from parallel_r1.discover.procedural import ProceduralBackend
from parallel_r1.discover.simulator import simulate_dialogue
from parallel_r1.errors import UserFacingError

POOL_STEP = 300  # dialogues simulated per round while slices are still short
MAX_POOL = 6000
LATE_TURN = 6  # long dialogues are cut at a student turn at or after this message index


@dataclass
class EvalItem:
    """One held-out prefix: the chat so far (ending with the student), who the student is, which slices."""

    item_id: str
    dialogue_id: str
    scenario_id: str
    profile: dict  # StudentProfileConfig fields
    profile_kind: str
    length_bucket: str
    question_type: str
    history: list[dict]  # chat messages, user = student, assistant = teacher
    reference: str  # the simulated teacher's reply at this point ("" when the dialogue ended there)
    slices: list[str]

    @property
    def student(self) -> StudentProfileConfig:
        return StudentProfileConfig(**self.profile)


def matches(spec: EvalSliceSpec, d: Dialogue) -> bool:
    profile = StudentProfileConfig.for_kind(d.profile_kind)
    return ((spec.lengths is None or d.length_bucket in spec.lengths)
            and (spec.question_types is None or d.question_type in spec.question_types)
            and (spec.profile_kinds is None or d.profile_kind in spec.profile_kinds)
            and (spec.traits is None or any(t in profile.traits for t in spec.traits)))


def _prefix_key(messages: Iterable[dict]) -> str:
    return hashlib.sha1(json.dumps([[m["role"], m["content"]] for m in messages]).encode()).hexdigest()


def training_prefixes(batch_dir: Path) -> set[str]:
    """Every conversation prefix ending with a student turn in any training batch of the run."""
    keys: set[str] = set()
    for path in sorted(Path(batch_dir).glob("*.parquet")):
        for d in read_dialogues(path, "re-run `parallel-r1 batch` to cut the batches again"):
            msgs = d.messages()
            keys.update(_prefix_key(msgs[:i + 1]) for i, m in enumerate(msgs) if m["role"] == "user")
    return keys


def _cut(d: Dialogue, rng: random.Random) -> int:
    """Index of the student turn to stop at: late in long dialogues, anywhere otherwise."""
    students = [i for i, t in enumerate(d.turns) if t.role == "student"]
    late = [i for i in students if i >= LATE_TURN]
    return rng.choice(late if d.length_bucket == "long" and late else students)


def _simulate(n_from: int, n_to: int, seed: int) -> list[Dialogue]:
    backend = ProceduralBackend(seed)

    async def run() -> list[Dialogue]:
        return [await simulate_dialogue(backend, t) for t in discovery_plan(n_to, True, seed)[n_from:]]

    return asyncio.run(run())


def build_heldout(cfg: EvalConfig, exclude: set[str]) -> tuple[list[EvalItem], int]:
    """Fill every slice with `prompts_per_slice` prefixes whose key is not in `exclude`.

    Returns the items and how many candidate prefixes were dropped because a training batch has them.
    """
    want = {s.name: cfg.prompts_per_slice for s in cfg.slices}
    items: list[EvalItem] = []
    dropped, simulated = 0, 0
    while any(want.values()):
        if simulated >= MAX_POOL:
            short = {k: v for k, v in want.items() if v}
            raise UserFacingError(f"eval: could not fill slices {short} from {MAX_POOL} held-out dialogues; "
                                  "check the slice filters in `eval.slices`")
        pool = _simulate(simulated, simulated + POOL_STEP, cfg.seed)
        simulated += POOL_STEP
        for d in pool:
            slices = [s.name for s in cfg.slices if want[s.name] and matches(s, d)]
            if not slices:
                continue
            cut = _cut(d, random.Random(f"{cfg.seed}:cut:{d.dialogue_id}"))
            msgs = d.messages()
            history = msgs[:cut + 1]
            if _prefix_key(history) in exclude:
                dropped += 1
                continue
            for name in slices:
                want[name] -= 1
            profile = StudentProfileConfig.for_kind(d.profile_kind)
            items.append(EvalItem(
                item_id=f"{d.dialogue_id}@{cut}", dialogue_id=d.dialogue_id, scenario_id=d.scenario_id,
                profile=profile.model_dump(), profile_kind=d.profile_kind, length_bucket=d.length_bucket,
                question_type=d.question_type, history=history,
                reference=msgs[cut + 1]["content"] if cut + 1 < len(msgs) else "", slices=slices,
            ))
    return items, dropped


def fingerprint(items: list[EvalItem]) -> str:
    return hashlib.sha1(json.dumps([asdict(i) for i in items], sort_keys=True).encode()).hexdigest()[:16]


def write_heldout(path: Path, items: list[EvalItem], dropped: int) -> Path:
    return atomic_write_json(path, {"fingerprint": fingerprint(items), "dropped_as_trained": dropped,
                                    "items": [asdict(i) for i in items]})


def read_heldout(path: Path) -> list[EvalItem]:
    return [EvalItem(**i) for i in json.loads(Path(path).read_text())["items"]]
