from pathlib import Path

import pytest

from parallel_r1.config import ConfigError, dump_config, load_config

ROOT = Path(__file__).resolve().parents[1]


def test_demo_yaml_loads_and_round_trips(tmp_path):
    cfg = load_config(ROOT / "configs" / "demo.yaml")
    assert cfg.discover.backend == "procedural"
    assert [b.name for b in cfg.batch.batches] == [
        "short_original_high", "medium_koan_high", "long_mixed_medium", "varied_original_diverse",
        "neurodivergent", "prior_trauma_recovery"]
    out = tmp_path / "c.yaml"
    out.write_text(dump_config(cfg))
    assert load_config(out) == cfg


@pytest.mark.parametrize("yaml_name", ["demo.yaml", "openai.yaml", "cluster.yaml"])
def test_shipped_configs_are_valid(yaml_name):
    load_config(ROOT / "configs" / yaml_name)


def test_unknown_field_is_named(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("discover:\n  num_actor: 3\n")
    with pytest.raises(ConfigError, match=r"discover\.num_actor: unknown field"):
        load_config(p)


def test_ill_typed_field_is_named():
    with pytest.raises(ConfigError, match=r"discover\.max_in_flight"):
        load_config(overrides=["discover.max_in_flight=lots"])
    with pytest.raises(ConfigError, match=r"batch\.batches\.0\.size"):
        load_config(overrides={"batch.batches": [{"name": "x", "size": 0}]})


def test_overrides_apply_in_order(tmp_path):
    cfg = load_config(ROOT / "configs" / "demo.yaml", ["discover.num_actors=5", "workdir=/tmp/x"])
    assert cfg.discover.num_actors == 5 and str(cfg.workdir) == "/tmp/x"


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("discover: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="section.field=value"):
        load_config(overrides=["discover.n"])


def test_confidence_tiers_must_be_ordered():
    with pytest.raises(ConfigError, match="medium_confidence"):
        load_config(overrides=["batch.medium_confidence=0.9", "batch.high_confidence=0.7"])
