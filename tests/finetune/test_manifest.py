"""`finetune_manifest.json` is read through its pydantic model: a torn or malformed manifest is a one-line error
naming the file, the field and what to do; a wrong value is refused where it is set; older entries stay readable."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from parallel_r1.cli import app
from parallel_r1.errors import UserFacingError
from parallel_r1.finetune.manifest import FinetuneJob, FinetuneManifest


def _manifest(workdir) -> FinetuneManifest:
    manifest = FinetuneManifest(workdir / "finetune_manifest.json")
    manifest.put(FinetuneJob(name="spec", backend="ray", batches=["spec"], status="succeeded"))
    return manifest


def test_a_torn_manifest_is_one_line_naming_the_file_and_what_to_do(tmp_path):
    manifest = _manifest(tmp_path)
    text = manifest.path.read_text()
    manifest.path.write_text(text[:len(text) // 2])  # cut short by a full disk or a bad copy
    result = CliRunner().invoke(app, ["check", "-w", str(tmp_path)])
    assert result.exit_code == 2 and result.output.count("error:") == 1, result.output
    assert f"{manifest.path} is unreadable (truncated or not JSON" in " ".join(result.output.split())
    assert "parallel-r1 finetune" in result.output and "Traceback" not in result.output


def test_a_malformed_entry_names_its_field_and_a_bad_update_writes_nothing(tmp_path):
    manifest = _manifest(tmp_path)
    record = json.loads(manifest.path.read_text())
    record["jobs"]["spec"]["written_by"] = "an older version"  # unknown keys: still readable
    manifest.path.write_text(json.dumps(record))
    assert manifest.read()["spec"].status == "succeeded"

    before = manifest.path.read_text()
    with pytest.raises(ValueError, match="job spec: status: Input should be 'queued'"):
        manifest.update("spec", status="done")
    assert manifest.path.read_text() == before

    record["jobs"]["spec"]["attempts"] = "twice"
    manifest.path.write_text(json.dumps(record))
    with pytest.raises(UserFacingError, match=r"\(jobs.spec.attempts: Input should be a valid integer"):
        manifest.read()
