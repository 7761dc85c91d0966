"""Artifact IO: atomic writes get the umask's permissions (not mkstemp's 0600), torn JSONL tails, records read
through pydantic models as one-line errors, and the removal of what killed writers left."""

from __future__ import annotations

import os

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


def test_a_record_that_is_torn_or_of_the_wrong_shape_is_one_line_naming_file_and_field(tmp_path):
    import pytest
    from pydantic import Field

    from parallel_r1.data.records import ArtifactError, Record, read_record

    class Inputs(Record):
        digest: str = Field(description="A digest.")
        sizes: dict[str, int] = Field(description="Sizes by name.")

    path = tmp_path / "inputs.json"
    path.write_text('{"digest": "abc", "sizes": {"a": 1}, "written_by": "a newer version"}')
    assert read_record(path, Inputs, "re-run it") == Inputs(digest="abc", sizes={"a": 1})
    path.write_text('{"digest": "abc", "si')
    with pytest.raises(ArtifactError, match=r"inputs.json is unreadable \(truncated or not JSON .*\): re-run it$"):
        read_record(path, Inputs, "re-run it")
    path.write_text('{"digest": "abc", "sizes": {"a": "many"}}')
    with pytest.raises(ArtifactError, match=r"inputs.json is unreadable \(sizes.a: Input should be a valid integer"):
        read_record(path, Inputs, "re-run it")


def test_a_killed_writers_temporary_entries_are_removed_and_nothing_else(tmp_path):
    from parallel_r1.data.io import remove_stale_temps

    live = f".spec.partial-{os.getpid()}"
    for name in ("spec", ".spec.tmp", ".other.partial-999999999", live, ".keep"):
        (tmp_path / name).mkdir()
    (tmp_path / ".spec.json.a1b2.tmp").write_text("{")
    assert remove_stale_temps(tmp_path) == [".other.partial-999999999", ".spec.json.a1b2.tmp", ".spec.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".keep", live, "spec"])


def test_a_cache_record_that_cannot_be_read_is_rebuilt_not_fatal(tmp_path, caplog):
    """The keys and done markers stages compare with (base_model.json, tune's results, the reply cache, parallel-sft's
    meta) read as absent when torn, so the stage rebuilds what they record."""
    from parallel_r1.compare.replies import Reply, ReplyCache
    from parallel_r1.data.io import cached_json

    path = tmp_path / "key.json"
    assert cached_json(path) is None
    path.write_text('{"key": 1}')
    assert cached_json(path) == {"key": 1}
    path.write_text('{"key": ')
    assert cached_json(path) is None and "unreadable" in caplog.text
    cache = ReplyCache(tmp_path / "replies")
    written = cache.put("m", {"k": 1}, [Reply("m", "i", 0, "hi", 1, "stop")])
    assert cache.get("m", {"k": 1})[0].text == "hi"
    written.write_bytes(written.read_bytes()[:10])
    assert cache.get("m", {"k": 1}) is None
