"""Atomic artifact writes leave files other users can read, as the umask says (not mkstemp's 0600)."""

from __future__ import annotations

from parallel_r1.data.io import UMASK, atomic_write_text


def test_artifacts_get_the_umasks_permissions(tmp_path):
    path = atomic_write_text(tmp_path / "a.json", "{}")
    assert path.stat().st_mode & 0o777 == 0o666 & ~UMASK


def test_a_torn_last_line_is_dropped_and_a_corrupt_middle_line_is_a_one_line_error(tmp_path):
    import pytest

    from parallel_r1.data.io import read_jsonl
    from parallel_r1.errors import UserFacingError

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "loss"')  # killed mid-write
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}]
    path.write_text('{"step": 1}\n{"ste\n{"step": 3}\n')
    with pytest.raises(UserFacingError, match=r"metrics.jsonl:2: not JSON"):
        read_jsonl(path)
