import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from parallel_r1.cli import app
from parallel_r1.config import ConfigError, PipelineConfig, dump_config, load_config
from parallel_r1.config.explain import field_rows

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = [name for name in PipelineConfig.model_fields if name != "workdir"]
runner = CliRunner()


def test_demo_yaml_loads_and_round_trips(tmp_path):
    cfg = load_config(ROOT / "configs" / "demo.yaml")
    assert cfg.discover.backend == "procedural"
    assert [b.name for b in cfg.batch.batches] == [
        "short_original_high", "medium_koan_high", "long_mixed_medium", "varied_original_diverse",
        "neurodivergent", "prior_trauma_recovery"]
    out = tmp_path / "c.yaml"
    out.write_text(dump_config(cfg))
    assert load_config(out) == cfg


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path, tmp_path):
    cfg = load_config(path)
    out = tmp_path / "c.yaml"
    out.write_text(dump_config(cfg))
    assert load_config(out) == cfg


def _referenced_configs() -> list[str]:
    """Pipeline configs named by `--config` in the Ray job specs and cluster files (themselves not pipeline
    configs: their top-level keys are Ray's)."""
    texts = [p.read_text() for folder in ("jobs", "clusters") for p in sorted((ROOT / folder).glob("*.yaml"))]
    found = {m for text in texts for m in re.findall(r"--config (\S+\.yaml)", text)}
    return sorted(m.removeprefix("~/parallel-r1/") for m in found)  # ray up's copy of the repository


@pytest.mark.parametrize("name", _referenced_configs())
def test_configs_named_by_jobs_and_clusters_are_valid(name):
    load_config(ROOT / name)


def test_jobs_and_clusters_are_not_pipeline_configs():
    """Were one of them a pipeline config, the two tests above would have to load it too."""
    for path in [*(ROOT / "jobs").glob("*.yaml"), *(ROOT / "clusters").glob("*.yaml")]:
        assert not set(yaml.safe_load(path.read_text())) <= set(PipelineConfig.model_fields), path


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


def test_explain_lists_every_section_and_field():
    result = runner.invoke(app, ["config", "--explain"])
    assert result.exit_code == 0, result.output
    paths = {line.split()[0] for line in result.output.splitlines()[1:]}
    assert {"workdir", *SECTIONS} <= paths
    assert {"parallel.sft.min_uplift", "rl.explore.temperature", "batch.batches[].rank_by"} <= paths
    line = next(x for x in result.output.splitlines() if x.startswith("discover.backend "))
    assert "'procedural' | 'openai'" in line and "procedural" in line and "Chat backend." in line


def test_explain_one_dotted_section():
    result = runner.invoke(app, ["config", "--explain", "parallel.sft"])
    assert result.exit_code == 0, result.output
    rows = result.output.splitlines()[1:]
    assert rows and all(r.startswith("parallel.sft") for r in rows)
    assert "Peak learning rate; None: finetune.learning_rate." in result.output
    verify = runner.invoke(app, ["config", "--explain", "rl.verify"]).output
    assert re.search(r"rl\.verify\.temperature\s+float\s+0\.6\s", verify)


def test_explain_unknown_section_exits_2_listing_the_sections():
    result = runner.invoke(app, ["config", "--explain", "nope"])
    assert result.exit_code == 2
    assert "unknown config section 'nope'" in result.output and "Traceback" not in result.output
    assert all(s in result.output for s in [*SECTIONS, "parallel.sft"])


def test_every_field_is_described():
    """--explain is only as good as the descriptions behind it."""
    assert [r.path for r in field_rows(PipelineConfig, PipelineConfig()) if not r.description] == []


def test_batch_names_that_would_escape_the_run_directory_or_collide_are_refused():
    from parallel_r1.config import ConfigError

    with pytest.raises(ConfigError, match="should match pattern"):
        load_config(None, ["batch.batches=[{name: ../x, size: 4}]"])
    with pytest.raises(ConfigError, match=r"\['base'\] are taken"):
        load_config(None, ["batch.batches=[{name: base, size: 4}]"])


def test_null_sets_none_and_flags_are_not_parsed_as_yaml(tmp_path):
    from typer.testing import CliRunner

    from parallel_r1.cli import app

    assert load_config(None, ["batch.turn_floor=null"]).batch.turn_floor is None
    odd = tmp_path / "x #2"
    out = CliRunner().invoke(app, ["config", "--workdir", str(odd)])
    assert out.exit_code == 0 and str(odd) in out.output.replace("\n", "")
