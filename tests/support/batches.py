"""Small specialist training files in the batch stage's format, from procedural dialogues (tests, benchmarks)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from parallel_r1.config import load_config
from parallel_r1.data import discovery_plan
from parallel_r1.data.io import atomic_write_jsonl
from parallel_r1.data.prompts import system_prompt
from parallel_r1.discover.procedural import ProceduralBackend
from parallel_r1.discover.simulator import simulate_dialogue

BATCHES = ["short_original_high", "medium_koan_high", "long_mixed_medium", "varied_original_diverse",
           "neurodivergent", "prior_trauma_recovery"]


def write_batches(workdir: Path, names=BATCHES, per_batch: int = 8) -> None:
    """`<workdir>/batches/<name>.jsonl` with `per_batch` dialogues each."""
    cfg = load_config()
    specs = {b.name: b for b in cfg.batch.batches}
    backend = ProceduralBackend(seed=5)
    tasks = discovery_plan(per_batch * len(names), include_special=True, seed=99)
    dialogues = [asyncio.run(simulate_dialogue(backend, t)) for t in tasks]
    for i, name in enumerate(names):
        chunk = dialogues[i * per_batch:(i + 1) * per_batch]
        atomic_write_jsonl(workdir / "batches" / f"{name}.jsonl",
                           [{"messages": d.messages(system=system_prompt(specs[name]))} for d in chunk])
