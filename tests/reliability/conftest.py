"""The reliability suite's fixtures: `reliability` records the test's row of the table (see `recording.py`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.recording import Recorder, append_row, results_path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"_reliability_{report.when}", report)


@pytest.fixture
def reliability(request, tmp_path_factory) -> Recorder:
    """Call `reliability.record(load=..., faults=..., items=..., unit=..., lost=..., duplicated=..., wall_s=...)`;
    the row is appended when the test ends, with its outcome."""
    recorder = Recorder(request.node.name)
    yield recorder
    if not recorder.recorded:
        return
    reports = [getattr(request.node, f"_reliability_{when}", None) for when in ("setup", "call")]
    reports = [r for r in reports if r is not None]
    failed = [r for r in reports if r.failed]
    recorder.row.outcome = ("error" if failed[0].when == "setup" else "failed") if failed else "passed"
    recorder.row.duration_s = round(sum(r.duration for r in reports), 1)
    append_row(results_path(Path(tmp_path_factory.getbasetemp()) / "reliability.jsonl"), recorder.row)
