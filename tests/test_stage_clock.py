"""The run summary's stage wall times: every stage is timed, a failing one included, and the table totals them."""

from __future__ import annotations

import time

import pytest

from parallel_r1.console import console
from parallel_r1.pipeline import StageClock


def test_stages_are_timed_in_order_and_a_failing_stage_still_counts():
    clock = StageClock()
    with clock.stage("discover"):
        time.sleep(0.05)
    with pytest.raises(RuntimeError), clock.stage("finetune"):
        raise RuntimeError("worker crashed")
    assert list(clock.seconds) == ["discover", "finetune"]
    assert clock.seconds["discover"] >= 0.05
    with console.capture() as out:
        console.print(clock.table())
    text = out.get()
    assert "stage wall times" in text and "total" in text
    assert f"{sum(clock.seconds.values()):.1f}" in text
