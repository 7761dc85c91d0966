"""The model registry: immutable versions in the store, idempotent registration, the promotion record's promote and
rollback (who, when, why), and one-line errors for a corrupt record, a missing version or nothing to roll back to."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from parallel_r1.cli import app
from parallel_r1.registry.promotion import PromotionRecord
from parallel_r1.registry.versions import ModelRegistry, RegistryError


def _adapter(folder, weights: bytes):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": 4}))
    (folder / "adapter_model.safetensors").write_bytes(weights)
    return folder


def _promote(record: PromotionRecord, version, score: float):
    record.decide({"candidate": version.ref, "promoted": True, "reasons": ["wins"]}, version, score)


def test_retraining_adds_a_version_and_never_touches_a_stored_one(tmp_path):
    registry = ModelRegistry(tmp_path)
    folder = _adapter(tmp_path / "adapters" / "spec", b"one")
    v1 = registry.register("spec", "adapter", folder, training={"lr": 1e-3}, data_digest="d1", metrics={"loss": 1.0})
    assert v1.ref == "spec@v1" and registry.register("spec", "adapter", folder) == v1  # same weights: same version
    _adapter(folder, b"two")  # retrained in place
    v2 = registry.register("spec", "adapter", folder, parent=v1.ref)
    assert (v2.ref, v2.parent) == ("spec@v2", "spec@v1") and v2.digest != v1.digest
    assert (tmp_path / "registry" / "store" / "spec" / "v1" / "adapter_model.safetensors").read_bytes() == b"one"
    assert registry.get("spec") == v2 and registry.get("spec@v1").training == {"lr": 1e-3}
    openai = registry.register("openai:spec", "openai", "ft:gpt-4o-mini:org::abc")
    assert openai.source == "ft:gpt-4o-mini:org::abc" and openai.ref == "openai:spec@v1"


def test_promote_then_roll_back_to_the_previous_or_a_named_version(tmp_path):
    record = PromotionRecord(tmp_path)
    versions = [record.registry.register("spec", "adapter", _adapter(tmp_path / f"a{i}", bytes([i]))) for i in range(3)]
    for score, v in zip((0.5, 0.6, 0.7), versions, strict=True):
        _promote(record, v, score)
    assert record.promoted()["spec"].ref == "spec@v3"
    assert record.rollback("spec", reason="regression in prod") == ("spec@v3", "spec@v2")
    assert record.promoted()["spec"].score == 0.6  # the bar is the score v2 was promoted on
    assert record.rollback(to="v3") == ("spec@v2", "spec@v3")
    events = record.read()["events"]
    assert [e["event"] for e in events] == ["promote"] * 3 + ["rollback"] * 2
    assert events[3]["reason"] == "regression in prod" and "@" in events[3]["by"] and events[3]["at"]
    assert record.rollback() == ("spec@v3", "spec@v1")  # the stack: v2 was taken off when v3 came back by name
    with pytest.raises(RegistryError, match="first promoted version of spec"):
        record.rollback("spec")


def test_bad_registry_input_is_one_line_and_loses_nothing(tmp_path):
    record = PromotionRecord(tmp_path)
    with pytest.raises(RegistryError, match="nothing is promoted"):
        record.rollback()
    v1 = record.registry.register("spec", "adapter", _adapter(tmp_path / "a", b"1"))
    refused = record.registry.register("spec", "adapter", _adapter(tmp_path / "b", b"2"))
    _promote(record, v1, 0.5)
    with pytest.raises(RegistryError, match="spec@v2 was never promoted"):
        record.rollback("spec", to=refused.ref)
    with pytest.raises(RegistryError, match="spec@v9 does not exist; versions of spec: spec@v1, spec@v2"):
        record.registry.get("spec@v9")
    with pytest.raises(RegistryError, match="no model 'other'"):
        record.registry.get("other")
    with pytest.raises(RegistryError, match="not a version"):
        record.registry.get("spec@latest")
    before = record.file.read_text()
    record.file.write_text(before[:40])  # torn by hand
    with pytest.raises(RegistryError, match="promotion.json is not a promotion record"):
        record.rollback()
    assert record.file.read_text() == before[:40]  # not overwritten
    record.registry.file.write_text("[]")
    with pytest.raises(RegistryError, match="versions.json is not a model registry"):
        record.registry.versions()


def test_a_malformed_promotion_or_registry_record_names_the_field(tmp_path):
    record = PromotionRecord(tmp_path)
    _promote(record, record.registry.register("spec", "adapter", _adapter(tmp_path / "a", b"1")), 0.5)
    promotion = json.loads(record.file.read_text())
    promotion["promoted"]["spec"]["score"] = "high"
    record.file.write_text(json.dumps(promotion))
    with pytest.raises(RegistryError, match=r"promotion.json is not a promotion record \(promoted.spec.score: Input "
                                            "should be a valid number"):
        record.served()
    versions = json.loads(record.registry.file.read_text())
    del versions["versions"][0]["digest"]
    record.registry.file.write_text(json.dumps(versions))
    with pytest.raises(RegistryError, match=r"versions.json is not a model registry \(versions.0.digest: Field "
                                            "required"):
        record.registry.versions()


def test_the_rollback_and_models_commands(tmp_path):
    record = PromotionRecord(tmp_path)
    for i in range(2):
        _promote(record, record.registry.register("spec", "adapter", _adapter(tmp_path / f"a{i}", bytes([i]))), 0.5)
    out = CliRunner().invoke(app, ["models", "--workdir", str(tmp_path)])
    assert out.exit_code == 0 and "spec@v2" in out.output and "served" in out.output
    out = CliRunner().invoke(app, ["rollback", "spec", "--reason", "drift", "--workdir", str(tmp_path)])
    assert out.exit_code == 0 and "spec@v2 -> spec@v1" in out.output
    again = CliRunner().invoke(app, ["rollback", "spec", "--workdir", str(tmp_path)])
    assert again.exit_code != 0 and "no earlier version" in again.output
