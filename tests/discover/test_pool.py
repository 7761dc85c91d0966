"""The discovery pool under faults: a killed actor, a killed driver, a flaky endpoint, resuming."""

import pytest
import ray

from parallel_r1.config import ConfigError, load_config
from parallel_r1.data import discovery_plan, read_dialogues
from parallel_r1.data.io import read_jsonl
from parallel_r1.discover.stage import run_discover
from tests.fakes.openai_server import FakeOpenAIServer
from tests.support.discovery import discover_with_hook

pytestmark = pytest.mark.slow


def _cfg(workdir, **discover):
    overrides = {"workdir": str(workdir), "discover.num_actors": 2, "discover.max_in_flight": 4,
                 "discover.flush_every": 5, "discover.include_special": True}
    overrides.update({f"discover.{k}": v for k, v in discover.items()})
    return load_config(overrides=overrides)


def _turns(workdir):
    return {d.dialogue_id: [t.content for t in d.turns] for d in read_dialogues(workdir / "dialogues.parquet")}


def test_killed_actor_is_replaced_and_nothing_is_lost_or_duplicated(ray_session, tmp_path):
    reference = tmp_path / "reference"
    run_discover(_cfg(reference, n=40), show_progress=False)

    killed = []

    def kill_one_actor(pool):
        if pool.stats.completed >= 8 and not killed:
            killed.append(ray.get(pool.actors[0].pid.remote()))
            ray.kill(pool.actors[0], no_restart=True)

    stage_dir = tmp_path / "killed"
    result = discover_with_hook(_cfg(stage_dir, n=40), hook=kill_one_actor)
    assert killed and result.actor_restarts == 1
    on_disk = read_dialogues(stage_dir / "dialogues.parquet")
    assert len(on_disk) == 40 and len({d.dialogue_id for d in on_disk}) == 40
    # Seeded dialogues: a re-run after the crash writes exactly what an undisturbed run writes.
    assert _turns(stage_dir) == _turns(reference)


def test_driver_killed_mid_run_resumes_to_n_without_duplicates(ray_session, tmp_path):
    class DriverKilled(Exception):
        pass

    def crash(pool):
        if pool.stats.completed >= 13:
            raise DriverKilled

    with pytest.raises(DriverKilled):
        discover_with_hook(_cfg(tmp_path, n=30), hook=crash)
    partial = read_dialogues(tmp_path / "dialogues.parquet")
    assert 10 <= len(partial) < 30  # flushed on the way out, in atomic chunks
    result = discover_with_hook(_cfg(tmp_path, n=30))
    assert result.already_done == len(partial) and result.completed == 30 - len(partial)
    ids = [d.dialogue_id for d in read_dialogues(tmp_path / "dialogues.parquet")]
    assert sorted(ids) == sorted(t.dialogue_id for t in discovery_plan(30, include_special=True))
    # Growing N continues the same plan; a finished run is a no-op.
    assert discover_with_hook(_cfg(tmp_path, n=36)).completed == 6
    assert discover_with_hook(_cfg(tmp_path, n=36)).completed == 0


def test_changing_the_plan_of_an_existing_run_is_refused(ray_session, tmp_path):
    discover_with_hook(_cfg(tmp_path, n=4))
    with pytest.raises(ConfigError, match="discover.include_special"):
        discover_with_hook(_cfg(tmp_path, n=8, include_special=False))


def test_flaky_openai_endpoint_every_dialogue_done_or_recorded(ray_session, tmp_path):
    n = 24
    with FakeOpenAIServer(failure_rate=0.2, seed=1) as server:
        cfg = _cfg(tmp_path, n=n, backend="openai", dialogue_attempts=1, **{
            "openai.base_url": server.base_url, "openai.timeout_s": 0.5, "openai.max_retries": 1,
            "openai.backoff_s": 0.01, "openai.max_backoff_s": 0.05})
        result = discover_with_hook(cfg)
    done = {d.dialogue_id for d in read_dialogues(tmp_path / "dialogues.parquet")}
    failed = {f["dialogue_id"] for f in read_jsonl(tmp_path / "discover_failures.jsonl")}
    planned = {t.dialogue_id for t in discovery_plan(n, include_special=True)}
    assert done | failed == planned and not done & failed
    assert result.failed == len(failed) > 0 and result.completed == len(done) > 0
    for f in read_jsonl(tmp_path / "discover_failures.jsonl"):
        assert f["error"] and f["attempts"] == 1 and f["card_id"]

    # A second run against a healthy endpoint retries exactly the failures and clears the file.
    with FakeOpenAIServer(seed=2) as server:
        cfg = _cfg(tmp_path, n=n, backend="openai", **{"openai.base_url": server.base_url})
        again = discover_with_hook(cfg)
    assert again.completed == len(failed) and again.failed == 0
    assert {d.dialogue_id for d in read_dialogues(tmp_path / "dialogues.parquet")} == planned
    assert read_jsonl(tmp_path / "discover_failures.jsonl") == []
