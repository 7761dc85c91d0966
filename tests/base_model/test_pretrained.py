"""`init-model --source smollm2-135m-instruct`: the packaged GGUF becomes a standard checkpoint that loads, writes
like the GGUF model does, and is converted once."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from parallel_r1.base_model import pretrained
from parallel_r1.config import BaseModelConfig, ConfigError, load_config
from parallel_r1.paths import BASE_MODEL_INFO, RunPaths, resolve_base_model

pytestmark = pytest.mark.slow
CHAT = [{"role": "user", "content": "Why do we flip the fraction when we divide?"}]


def test_the_checkpoint_is_a_plain_model_with_its_chat_template(real_base_model):
    config = json.loads((real_base_model / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and "quantization_config" not in config
    assert (real_base_model / "model.safetensors").stat().st_size > 400e6  # float32 weights, not the 4-bit file
    info = json.loads((real_base_model / BASE_MODEL_INFO).read_text())
    assert info["source"]["licence"] == "Apache-2.0" and info["metrics"]["params"] > 130e6
    tok = AutoTokenizer.from_pretrained(real_base_model)
    text = tok.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")


def test_the_checkpoint_computes_what_the_gguf_model_computes(real_base_model):
    gguf = pretrained.gguf_path(pretrained.packaged("smollm2-135m-instruct"))
    tok = AutoTokenizer.from_pretrained(real_base_model)
    ids = tok.apply_chat_template(CHAT, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    ours = AutoModelForCausalLM.from_pretrained(real_base_model, dtype=torch.float32).eval()
    theirs = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    with torch.no_grad():
        assert torch.allclose(ours(**ids).logits, theirs(**ids).logits, atol=1e-4)
        out = ours.generate(**ids, max_new_tokens=12, do_sample=False)
    reply = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert sum(c.isalpha() for c in reply) > 20  # words, not newlines


def test_a_second_conversion_is_skipped_and_the_run_resolves_it(real_base_model, tmp_path):
    before = (real_base_model / "model.safetensors").stat().st_mtime_ns
    info = pretrained.convert_packaged("smollm2-135m-instruct", real_base_model, progress=False)
    assert info["skipped"] and (real_base_model / "model.safetensors").stat().st_mtime_ns == before
    paths = RunPaths(real_base_model.parent.parent)
    assert resolve_base_model(BaseModelConfig(source="smollm2-135m-instruct"), paths) == str(real_base_model)


def test_unknown_sources_and_missing_packages_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="smollm2-135m-instruct"):
        load_config(None, ["base_model.source=gpt-2"])
    monkeypatch.setitem(pretrained.PACKAGED, "absent", pretrained.PackagedModel(
        package="no_such_model_pkg", distribution="no-such-model-pkg", gguf_file="x.gguf", licence="-",
        description="-"))
    with pytest.raises(pretrained.MissingPackageError, match="no-such-model-pkg"):
        pretrained.convert_packaged("absent", tmp_path / "base", progress=False)
    assert not (tmp_path / "base").exists()
