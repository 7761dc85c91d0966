"""Each command logs to <workdir>/logs/<command>.log (status lines, warnings, errors with their traceback) while the
terminal keeps its one-line warnings and errors; the logging is removed after each command (no leaks, no doubles)."""

from __future__ import annotations

import logging

import pytest
from typer.testing import CliRunner

from parallel_r1.cli import app
from parallel_r1.data.schema import write_dialogues
from tests.batch.conftest import make_dialogue

runner = CliRunner()

SHORT_BATCH = "batch:\n  quality_floor: 0.0\n  batches:\n    - name: trauma\n      size: 6\n{extra}"


@pytest.fixture
def workdir(tmp_path):
    write_dialogues(tmp_path / "run" / "dialogues.parquet",
                    [make_dialogue(i, profile_kind="bad_prior_teacher") for i in range(4)])
    return tmp_path / "run"


def batch(workdir, extra: str = ""):
    config = workdir.parent / "batch.yaml"
    config.write_text(SHORT_BATCH.format(extra=extra))
    return runner.invoke(app, ["batch", "--config", str(config), "--workdir", str(workdir)])


def test_a_stage_writes_its_status_lines_and_warnings_to_its_log_file_and_each_run_once(workdir):
    package = logging.getLogger("parallel_r1")
    before = list(package.handlers), package.level, package.propagate
    first = batch(workdir)
    assert first.exit_code == 0, first.output
    assert "warning: trauma 4/6" in first.output  # the shortfall, on the terminal as one line
    assert (package.handlers, package.level, package.propagate) == before  # nothing left behind

    assert batch(workdir).exit_code == 0
    lines = (workdir / "logs" / "batch.log").read_text().splitlines()
    started = [line for line in lines if "INFO parallel_r1.cli.logs: batch: started in" in line]
    assert len(started) == 2 and str(workdir.resolve()) in started[0]
    assert len([line for line in lines if "batch (4 dialogues" in line]) == 2  # the summary table, once per run
    warnings = [line for line in lines if " WARNING parallel_r1.batch.stage: " in line]
    assert len(warnings) == 2 and "trauma" in warnings[0]
    assert len([line for line in lines if "batch: done after" in line]) == 2
    assert lines[0][:4].isdigit()  # timestamped


def test_a_user_error_is_one_line_on_the_terminal_and_a_traceback_in_the_log(workdir):
    result = batch(workdir, extra="      rank_by: [empathy]\n")
    assert result.exit_code == 2
    assert result.output.startswith("error: batch.batches[trauma].rank_by") and result.output.count("\n") == 1
    log = (workdir / "logs" / "batch.log").read_text()
    assert " ERROR parallel_r1.cli.common: batch.batches[trauma].rank_by" in log
    assert "Traceback (most recent call last)" in log and "ConfigError" in log and "batch: exit code 2" in log
    assert logging.getLogger("parallel_r1").handlers == []


def test_an_unexpected_error_is_logged_with_its_traceback_and_left_to_python(workdir, monkeypatch):
    import parallel_r1.batch.stage as stage

    def boom(cfg):
        raise RuntimeError("boom")

    monkeypatch.setattr(stage, "run_batch", boom)
    result = batch(workdir)
    assert isinstance(result.exception, RuntimeError) and "unexpected error" not in result.output
    log = (workdir / "logs" / "batch.log").read_text()
    assert "ERROR parallel_r1.cli.common: unexpected error" in log and "RuntimeError: boom" in log
    assert "batch: failed after" in log


def test_no_run_directory_no_log(tmp_path):
    result = runner.invoke(app, ["batch", "--workdir", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "parallel-r1 discover" in result.output
    assert not (tmp_path / "missing").exists()


def test_views_write_no_log(workdir):
    assert runner.invoke(app, ["config", "--workdir", str(workdir)]).exit_code == 0
    assert not (workdir / "logs").exists()
