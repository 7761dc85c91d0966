"""`discover.profile_mix` and `--profile-mix` reach the discovery plan and shift the profile kinds discovered; bad
names and weights are one-line errors. No Ray: the plan is simulated directly on the procedural backend."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from typer.testing import CliRunner

from parallel_r1.cli import app
from parallel_r1.config import ConfigError, load_config
from parallel_r1.data.plan import check_profile_mix, parse_profile_mix
from parallel_r1.discover.procedural import ProceduralBackend
from parallel_r1.discover.simulator import simulate_dialogue
from parallel_r1.discover.stage import plan_for

runner = CliRunner()


def discovered_kinds(cfg) -> Counter:
    async def run():
        backend = ProceduralBackend(seed=cfg.discover.seed)
        out = [await simulate_dialogue(backend, t) for t in plan_for(cfg.discover)]
        await backend.close()
        return out

    return Counter(d.profile_kind for d in asyncio.run(run()))


def test_a_mix_shifts_the_discovered_kinds():
    base = {"discover.n": 60, "discover.include_special": False}
    default = discovered_kinds(load_config(None, base))
    mix = parse_profile_mix("hyperfocus=3,rejects_metaphor=1,standard=0")
    shifted = discovered_kinds(load_config(None, {**base, "discover.profile_mix": mix}))
    assert default.most_common(1)[0][0] == "standard" and default["standard"] >= 25
    assert set(shifted) == {"hyperfocus", "rejects_metaphor"}  # weight 0 and left-out kinds are not drawn
    assert shifted["hyperfocus"] == 45 and shifted["rejects_metaphor"] == 15


def test_special_cards_keep_their_kind_under_any_mix():
    cfg = load_config(None, {"discover.n": 60, "discover.include_special": True,
                             "discover.profile_mix": {"standard": 1}})
    kinds = Counter(t.profile_kind for t in plan_for(cfg.discover))
    assert kinds["standard"] > 40 and kinds["bad_prior_teacher"] >= 1 and "neurodivergent" not in kinds


@pytest.mark.parametrize(("mix", "message"), [
    ({"standrd": 1}, "unknown profile kind(s) 'standrd'"),
    ({"standard": -1}, "the weight of standard must be a number >= 0"),
    ({"standard": 0, "hyperfocus": 0}, "at least one weight must be above 0"),
    ({}, "at least one weight must be above 0"),
])
def test_bad_mixes_are_config_errors_naming_the_field(mix, message):
    with pytest.raises(ConfigError, match="discover.profile_mix") as err:
        check_profile_mix(mix)
    assert message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="discover.profile_mix"):
        plan_for(load_config(None, {"discover.n": 5, "discover.profile_mix": mix}).discover)


def test_the_flag_reaches_discover_and_run_and_bad_flags_are_one_line(tmp_path, monkeypatch):
    import parallel_r1.discover.stage as discover
    import parallel_r1.pipeline as pipeline

    seen = []

    def stop(cfg, **_):
        seen.append(cfg.discover.profile_mix)
        raise FileNotFoundError("stopped")

    monkeypatch.setattr(discover, "run_discover", stop)
    monkeypatch.setattr(pipeline, "run_pipeline", stop)
    for command in ("discover", "run"):
        result = runner.invoke(app, [command, "-w", str(tmp_path), "--profile-mix", "hyperfocus=2, standard=1"])
        assert result.exit_code == 2
    assert seen == [{"hyperfocus": 2.0, "standard": 1.0}] * 2
    for bad, message in (("hyperfocus", "'hyperfocus' must look like kind=weight"),
                         ("hyperfocus=x", "must look like kind=weight"),
                         ("genius=1", "unknown profile kind(s) 'genius'")):
        result = runner.invoke(app, ["discover", "-w", str(tmp_path), "--profile-mix", bad])
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output


def test_a_resume_with_another_plan_is_refused_naming_what_changed(tmp_path):
    """Switching the mix or the grounding of a run's discovery midway would mix two plans in one dialogues file."""
    from parallel_r1.config import ConfigError, load_config
    from parallel_r1.discover.stage import DiscoverStage

    def stage(**overrides):
        return DiscoverStage(load_config(overrides={"workdir": str(tmp_path), "discover.backend": "openai",
                                                    **overrides}))

    stage()._check_same_plan()
    (tmp_path / "dialogues.parquet").write_bytes(b"")
    stage()._check_same_plan()  # the same plan resumes
    with pytest.raises(ConfigError, match="grounded in the kb .kb.ground has discover.: None on disk, True now"):
        stage(**{"kb.ground": ["discover"]})._check_same_plan()
    with pytest.raises(ConfigError, match="discover.profile_mix: None on disk"):
        stage(**{"discover.profile_mix": {"standard": 1.0}})._check_same_plan()
