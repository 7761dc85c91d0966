"""The held-out set: every slice filled, deterministic, and no prefix a training batch holds."""

from __future__ import annotations

import asyncio

import pytest

from parallel_r1.compare.heldout import _prefix_key, build_heldout, read_heldout, training_prefixes, write_heldout
from parallel_r1.config import EvalSliceSpec, load_config
from parallel_r1.data import discovery_plan, write_dialogues
from parallel_r1.discover.procedural import ProceduralBackend
from parallel_r1.discover.simulator import simulate_dialogue
from parallel_r1.errors import UserFacingError


def test_every_slice_is_filled_with_matching_prefixes_ending_on_a_student_turn():
    cfg = load_config(overrides={"eval.prompts_per_slice": 6}).eval
    items, dropped = build_heldout(cfg, set())
    assert dropped == 0
    for spec in cfg.slices:
        members = [i for i in items if spec.name in i.slices]
        assert len(members) == 6, spec.name
    for item in items:
        assert item.history[-1]["role"] == "user"
        assert {m["role"] for m in item.history} <= {"user", "assistant"}
    abstract = [i for i in items if "abstract_scenarios" in i.slices]
    assert all(i.profile["rejects_metaphor"] for i in abstract)
    assert all(i.length_bucket == "long" and len(i.history) >= 7 for i in items if "long_dialogues" in i.slices)
    again, _ = build_heldout(cfg, set())
    assert [i.item_id for i in again] == [i.item_id for i in items]


def test_prefixes_held_by_a_training_batch_are_dropped(tmp_path):
    cfg = load_config(overrides={"eval.prompts_per_slice": 4}).eval
    items, _ = build_heldout(cfg, set())
    # A "training batch" that contains the very dialogues the held-out set would use.
    backend = ProceduralBackend(cfg.seed)
    tasks = discovery_plan(300, True, cfg.seed)
    dialogues = [asyncio.run(simulate_dialogue(backend, t)) for t in tasks]
    (tmp_path / "batches").mkdir()
    write_dialogues(tmp_path / "batches" / "leaky.parquet", dialogues)
    trained = training_prefixes(tmp_path / "batches")
    assert any(_prefix_key(i.history) in trained for i in items)
    clean, dropped = build_heldout(cfg, trained)
    assert dropped > 0
    assert not any(_prefix_key(i.history) in trained for i in clean)


def test_heldout_roundtrips_and_an_unfillable_slice_is_a_clear_error(tmp_path):
    cfg = load_config(overrides={"eval.prompts_per_slice": 2}).eval
    items, dropped = build_heldout(cfg, set())
    write_heldout(tmp_path / "heldout.json", items, dropped)
    assert [i.item_id for i in read_heldout(tmp_path / "heldout.json")] == [i.item_id for i in items]
    impossible = cfg.model_copy(update={"slices": [EvalSliceSpec(name="nobody", profile_kinds=["martian"])]})
    with pytest.raises(UserFacingError, match="nobody"):
        build_heldout(impossible, set())
