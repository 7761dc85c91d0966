"""A batch spec naming an unknown column or criterion is a one-line error (exit 2) at the CLI, and loses nothing."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from parallel_r1.cli import app
from parallel_r1.data.schema import write_dialogues


@pytest.mark.parametrize("field, value, message", [
    ("rank_by", "empathy", "batch.batches[trauma].rank_by: unknown criterion(s) 'empathy'"),
    ("stratify_by", "colour", "batch.batches[trauma].stratify_by: unknown column(s) 'colour'"),
])
def test_unknown_name_in_a_batch_spec_exits_2_naming_batch_and_field(make, tmp_path, field, value, message):
    dialogues = tmp_path / "dialogues.parquet"
    write_dialogues(dialogues, [make(i, profile_kind="bad_prior_teacher") for i in range(4)])
    before = dialogues.read_bytes()
    config = tmp_path / "bad.yaml"
    config.write_text(f"batch:\n  batches:\n    - name: trauma\n      size: 2\n      {field}: [{value}]\n")
    result = CliRunner().invoke(app, ["batch", "--config", str(config), "--workdir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert message in result.output.replace("\n", "") and "Traceback" not in result.output
    assert dialogues.read_bytes() == before and not (tmp_path / "batches").exists()
