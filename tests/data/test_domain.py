import collections
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from parallel_r1.data import (
    ORDINARY_CARDS,
    PROFILE_KINDS,
    SPECIAL_CARDS,
    Dialogue,
    PersonaSampler,
    StudentProfileConfig,
    Turn,
    discovery_plan,
    length_bucket,
    read_dialogues,
    write_dialogues,
)
from parallel_r1.data.schema import DIALOGUE_SCHEMA


def test_domain_imports_neither_ray_nor_torch():
    code = ("import sys, parallel_r1.data, parallel_r1.config; "
            "bad = [m for m in ('ray', 'torch', 'vllm') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_neurodivergent_traits_imply_neurodivergent():
    for flag in ("rejects_metaphor", "executive_function_gap", "hyperfocus_trait"):
        p = StudentProfileConfig(**{flag: True})
        assert p.neurodivergent and "neurodivergent" in p.traits
    assert StudentProfileConfig().kind == "standard"
    assert not StudentProfileConfig(bad_prior_teacher=True).neurodivergent
    with pytest.raises(ValueError):
        StudentProfileConfig(colour_blind=True)
    assert {StudentProfileConfig.for_kind(k).kind for k in PROFILE_KINDS} == set(PROFILE_KINDS)


def test_personas_are_varied_and_consistent_with_traits():
    sampler = PersonaSampler(seed=1)
    personas = [sampler.sample(StudentProfileConfig.for_kind(k)) for k in PROFILE_KINDS for _ in range(20)]
    assert len({p.name for p in personas}) > 15 and len({p.level for p in personas}) > 5
    for p in personas:
        assert p.profile.kind == p.kind
    rejecters = [p for p in personas if p.kind == "rejects_metaphor"]
    assert all(p.voice and p.struggles for p in rejecters)
    assert PersonaSampler(3).sample(StudentProfileConfig()) == PersonaSampler(3).sample(StudentProfileConfig())


def test_cards_cover_topics_types_and_specials():
    assert len(ORDINARY_CARDS) >= 12
    assert {c.question_type for c in ORDINARY_CARDS} == {"original", "koan"}
    assert {c.domain for c in ORDINARY_CARDS} == {"programming", "maths"}
    assert {c.id for c in SPECIAL_CARDS} == {"bad_prior_teacher", "neurodivergent_exec", "neurodivergent_reject",
                                            "neurodivergent_hyperfocus"}
    for c in ORDINARY_CARDS + SPECIAL_CARDS:
        assert c.opening and c.goal and c.good_teaching and c.difficulty in ("easy", "medium", "hard")
    assert "impossible for visual learners" in SPECIAL_CARDS[0].opening


def test_plan_covers_every_card_and_profile_and_is_deterministic():
    plan = discovery_plan(60, include_special=True, seed=7)
    assert plan == discovery_plan(60, include_special=True, seed=7)
    assert {t.card_id for t in plan} == {c.id for c in ORDINARY_CARDS + SPECIAL_CARDS}
    assert set(collections.Counter(t.profile_kind for t in plan)) == set(PROFILE_KINDS)
    assert len({t.dialogue_id for t in plan}) == 60
    assert {length_bucket(t.target_turns) for t in plan} == {"short", "medium", "long"}
    ordinary = discovery_plan(30, include_special=False)
    assert {t.card_id for t in ordinary} <= {c.id for c in ORDINARY_CARDS}
    assert set(t.profile_kind for t in ordinary) == set(PROFILE_KINDS)


def test_plan_prefix_is_stable_so_resume_to_larger_n_is_consistent():
    # A bigger N must not change the dialogues already done.
    for include_special in (False, True):
        small = discovery_plan(20, include_special, seed=3)
        assert small == discovery_plan(140, include_special, seed=3)[:20]


def _dialogue(i: int, n_turns: int = 4) -> Dialogue:
    turns = [Turn("student" if k % 2 == 0 else "teacher", f"message {k}") for k in range(n_turns)]
    return Dialogue(dialogue_id=f"x{i}", iteration=i, scenario_id="fractions-add", topic="fractions",
                    domain="maths", question_type="original", difficulty="easy", is_special=False,
                    profile_kind="standard", persona=PersonaSampler(i).sample(StudentProfileConfig()).to_dict(),
                    turns=turns, backend="test", model="m", seed=i, score=0.5, criteria={"tone": 1.0})


def test_parquet_round_trip_with_explicit_schema(tmp_path):
    path = tmp_path / "d.parquet"
    ds = [_dialogue(i, n) for i, n in enumerate([2, 5, 9])]
    write_dialogues(path, ds)
    assert pq.read_schema(path).remove_metadata().equals(DIALOGUE_SCHEMA)
    back = read_dialogues(path)
    assert back == ds
    assert [d.length_bucket for d in back] == ["short", "medium", "long"]
    assert back[0].messages()[1] == {"role": "assistant", "content": "message 1"}


def test_files_written_before_the_grounding_column_still_read(tmp_path):
    from parallel_r1.data.schema import dialogues_to_table

    path = tmp_path / "old.parquet"
    pq.write_table(dialogues_to_table([_dialogue(0)]).drop_columns(["grounding"]), path)
    assert [d.grounding for d in read_dialogues(path)] == [[]]


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="parallel-r1 discover"):
        read_dialogues(tmp_path / "d.parquet")


def test_atomic_write_leaves_old_file_when_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "d.parquet"
    write_dialogues(path, [_dialogue(0)])

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", boom)
    with pytest.raises(OSError):
        write_dialogues(path, [_dialogue(1)])
    monkeypatch.undo()
    assert [d.dialogue_id for d in read_dialogues(path)] == ["x0"]
    assert [p.name for p in tmp_path.iterdir()] == ["d.parquet"]


def test_a_truncated_dialogues_file_is_a_one_line_error_naming_it_and_the_stage_to_rerun(tmp_path):
    from parallel_r1.data.records import ArtifactError

    path = tmp_path / "dialogues.parquet"
    write_dialogues(path, [_dialogue(i, 4) for i in range(20)])
    data = path.read_bytes()
    for cut in (data[:len(data) // 2], data[:-20], b""):  # killed copy, lost footer, empty file
        path.write_bytes(cut)
        with pytest.raises(ArtifactError) as error:
            read_dialogues(path)
        message = str(error.value)
        assert message.startswith(f"{path} is unreadable") and "parallel-r1 discover" in message
        assert "\n" not in message
