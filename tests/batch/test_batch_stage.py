"""`parallel-r1 run` cuts the batches again exactly when what they were cut from changed."""

from __future__ import annotations

import pytest

from parallel_r1.batch.batches import BatchShortfallError
from parallel_r1.batch.stage import batches_up_to_date, run_batch
from parallel_r1.config import load_config
from parallel_r1.data.schema import write_dialogues


def test_batches_are_out_of_date_when_their_config_or_dialogues_change(make, tmp_path):
    dialogues = [make(i, profile_kind="bad_prior_teacher", score=0.9 - i / 100) for i in range(6)]
    write_dialogues(tmp_path / "dialogues.parquet", dialogues)
    config = tmp_path / "trauma.yaml"
    config.write_text("batch:\n  batches:\n    - {name: trauma, size: 2, profile_kinds: [bad_prior_teacher]}\n")
    cfg = load_config(config, overrides={"workdir": str(tmp_path)})
    assert not batches_up_to_date(cfg)  # never cut
    run_batch(cfg, print_report=False)
    assert batches_up_to_date(cfg)
    assert not batches_up_to_date(load_config(config, overrides={"workdir": str(tmp_path), "batch.turn_floor": 0.5}))
    write_dialogues(tmp_path / "dialogues.parquet", dialogues[:5])  # re-graded or re-discovered
    assert not batches_up_to_date(cfg)
    run_batch(cfg, print_report=False)
    assert batches_up_to_date(cfg)
    (tmp_path / "batches" / "inputs.json").unlink()  # cut by a version that did not record its inputs
    assert not batches_up_to_date(cfg)
    run_batch(cfg, print_report=False)
    short = load_config(config, overrides={"workdir": str(tmp_path), "batch.strict": True})
    short.batch.batches[0].size = 50
    with pytest.raises(BatchShortfallError):
        run_batch(short, print_report=False)  # partial batches on disk: no longer a cut of any inputs
    assert not batches_up_to_date(cfg) and not batches_up_to_date(short)


def test_a_torn_or_malformed_inputs_record_is_one_line_naming_file_field_and_the_fix(make, tmp_path):
    from parallel_r1.errors import UserFacingError

    write_dialogues(tmp_path / "dialogues.parquet", [make(i, score=0.9) for i in range(4)])
    config = tmp_path / "one.yaml"
    config.write_text("batch:\n  batches:\n    - {name: one, size: 2}\n")
    cfg = load_config(config, overrides={"workdir": str(tmp_path)})
    run_batch(cfg, print_report=False)
    inputs = tmp_path / "batches" / "inputs.json"
    text = inputs.read_text()
    inputs.write_text(text[:len(text) // 2])
    with pytest.raises(UserFacingError, match=r"inputs.json is unreadable \(truncated or not JSON.*parallel-r1 batch"):
        batches_up_to_date(cfg)
    inputs.write_text(text.replace('"dialogues": "', '"dialogues": ["').replace('"\n}', '"]\n}'))
    with pytest.raises(UserFacingError, match=r"inputs.json is unreadable \(dialogues: Input should be a valid str"):
        batches_up_to_date(cfg)
    run_batch(cfg, print_report=False)  # what the message says to do
    assert batches_up_to_date(cfg)


def test_grades_from_more_than_one_grader_are_a_warning(make):
    from parallel_r1.batch.stage import mixed_graders

    def graded(i: int, grader: str):
        d = make(i)
        d.grader = grader
        return d

    assert mixed_graders([graded(0, "a"), graded(1, "a")]) == []
    [warning] = mixed_graders([graded(0, "a"), graded(1, "b"), graded(2, "a")])
    assert "2 graders (2 by a, 1 by b)" in warning and "grade --force" in warning
