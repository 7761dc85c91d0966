"""Atomic artifact writes leave files other users can read, as the umask says (not mkstemp's 0600)."""

from __future__ import annotations

from parallel_r1.data.io import UMASK, atomic_write_text


def test_artifacts_get_the_umasks_permissions(tmp_path):
    path = atomic_write_text(tmp_path / "a.json", "{}")
    assert path.stat().st_mode & 0o777 == 0o666 & ~UMASK
