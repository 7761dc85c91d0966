import json
import shutil
import sys
import time

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from parallel_r1.base_model import from_scratch
from parallel_r1.base_model.stage import build_base_model
from parallel_r1.config import BaseModelConfig, ConfigError
from parallel_r1.errors import UserFacingError
from parallel_r1.paths import BASE_MODEL_INFO, RunPaths, resolve_base_model

MESSAGES = [
    {"role": "system", "content": "You are a patient tutor."},
    {"role": "user", "content": "Why is 1/2 + 1/3 not 2/5?"},
    {"role": "assistant", "content": "What would you need to add two fractions?"},
    {"role": "user", "content": "The same bottom number?"},
    {"role": "assistant", "content": "Yes. Try sixths: what is 1/2 in sixths?"},
]


def test_tiny_model_loads_and_generates(tiny_base_model):
    tok = AutoTokenizer.from_pretrained(tiny_base_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_base_model)
    gen = model.generation_config
    assert (gen.do_sample, gen.temperature, gen.top_p) == (True, 0.8, 0.95)
    assert gen.eos_token_id == tok.eos_token_id == tok.convert_tokens_to_ids("<|end|>")
    assert gen.pad_token_id == tok.pad_token_id is not None
    assert model.config.tie_word_embeddings and model.config.vocab_size == len(tok)
    enc = tok.apply_chat_template(MESSAGES[:2], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    torch.manual_seed(0)
    out = model.generate(**enc, max_new_tokens=8)
    assert out.shape[1] > enc["input_ids"].shape[1]


def test_chat_template_masks_exactly_the_assistant_replies(tiny_base_model):
    tok = AutoTokenizer.from_pretrained(tiny_base_model)
    assert "{% generation %}" in tok.chat_template and "{% endgeneration %}" in tok.chat_template
    enc = tok.apply_chat_template(MESSAGES, return_assistant_tokens_mask=True, return_dict=True)
    ids, mask = enc["input_ids"], enc["assistant_masks"]
    spans, current = [], []
    for i, m in zip(ids, mask, strict=True):
        if m:
            current.append(i)
        elif current:
            spans.append(current)
            current = []
    spans += [current] if current else []
    expected = [m["content"] + tok.eos_token for m in MESSAGES if m["role"] == "assistant"]
    assert [tok.decode(s) for s in spans] == expected
    prompt = tok.apply_chat_template(MESSAGES[:2], add_generation_prompt=True, tokenize=False)
    assert prompt.startswith(tok.bos_token) and prompt.endswith("<|assistant|>\n")
    with pytest.raises(Exception, match="unsupported role"):
        tok.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


def test_pretraining_lowered_the_loss(tiny_base_model, tiny_base_config):
    info = json.loads((tiny_base_model / BASE_MODEL_INFO).read_text())
    metrics = info["metrics"]
    assert metrics["steps"] == tiny_base_config.max_steps
    assert metrics["final_loss"] < metrics["first_loss"] - 0.5
    assert 0 < metrics["tokens_seen"] <= tiny_base_config.max_steps * 8 * 64 and metrics["tokens_per_s"] > 0
    assert info["corpus"]["dialogues"] == 60 and info["loss_curve"]


def test_same_config_is_skipped_and_a_new_one_rebuilt(tiny_base_model, tiny_base_config, tmp_path):
    out = tmp_path / "base"
    shutil.copytree(tiny_base_model, out)
    weights = next(out.glob("*.safetensors"))
    before = weights.stat().st_mtime_ns
    again = build_base_model(tiny_base_config, out, progress=False)
    assert again.skipped and again.steps == tiny_base_config.max_steps and weights.stat().st_mtime_ns == before
    stale = tmp_path / ".base.partial-999999999"  # left by a killed build (no such pid)
    stale.mkdir()
    changed = tiny_base_config.model_copy(update={"max_steps": 3})
    rebuilt = build_base_model(changed, out, progress=False)
    assert not rebuilt.skipped and rebuilt.steps == 3
    assert json.loads((out / BASE_MODEL_INFO).read_text())["config"]["max_steps"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base"]


def test_interrupted_build_leaves_no_model(tiny_base_config, tmp_path, monkeypatch):
    def boom(step, progress):
        if step == 2:
            raise KeyboardInterrupt
        return 1.0

    monkeypatch.setattr(from_scratch, "_lr_factor", boom)
    with pytest.raises(KeyboardInterrupt):
        build_base_model(tiny_base_config, tmp_path / "base", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_replace_a_folder_it_did_not_build(tiny_base_config, tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "weights.bin").write_text("someone else's")
    with pytest.raises(UserFacingError, match="no embedded base model"):
        build_base_model(tiny_base_config, tmp_path / "base", progress=False)
    with pytest.raises(ConfigError, match="num_heads"):
        build_base_model(BaseModelConfig(hidden_size=30, num_heads=4), tmp_path / "other", progress=False)


def test_resolve_base_model(tiny_base_model, tmp_path):
    paths = RunPaths(tmp_path)
    with pytest.raises(FileNotFoundError, match="parallel-r1 init-model"):
        resolve_base_model(BaseModelConfig(), paths)
    assert resolve_base_model(BaseModelConfig(path="org/some-model"), paths) == "org/some-model"
    shutil.copytree(tiny_base_model, paths.base_model)
    assert resolve_base_model(BaseModelConfig(), paths) == str(paths.base_model)


def test_pre_training_takes_every_core_only_when_nothing_else_runs(monkeypatch):
    import os

    from parallel_r1.base_model import from_scratch

    cores = len(os.sched_getaffinity(0))
    assert 0 <= from_scratch._busy_cores(0.05) <= os.cpu_count() + 1e-9
    monkeypatch.setattr(from_scratch, "_busy_cores", lambda: 0.1)
    assert from_scratch.default_num_threads() == min(8, cores)
    monkeypatch.setattr(from_scratch, "_busy_cores", lambda: 1.5)
    assert from_scratch.default_num_threads() == max(1, min(8, cores - 1))


def test_a_step_budget_schedules_by_steps_and_the_clock_only_stops_early():
    cfg = BaseModelConfig(max_steps=100, train_minutes=1.0)
    assert from_scratch._progress(10, 50.0, cfg) == (0.1, False)  # slow steps: the schedule still follows steps
    assert from_scratch._progress(100, 1.0, cfg) == (1.0, True)
    assert from_scratch._progress(10, 60.0, cfg) == (0.1, True)  # the wall-clock cap
    timed = BaseModelConfig(max_steps=None, train_minutes=1.0)
    assert from_scratch._progress(10, 30.0, timed) == (0.5, False) and from_scratch._progress(10, 61.0, timed)[1]


def test_slow_first_steps_give_the_same_model(tiny_base_model, tiny_base_config, tmp_path, monkeypatch):
    """The first steps of a build on a busy machine take long (here 20 s each on a fake clock, well within the
    wall-clock cap): the model must be the one an idle machine builds."""
    real, calls = time.perf_counter, iter(range(10**9))

    def clock() -> float:  # pre-training's reads: its start, then one per step
        if sys._getframe(1).f_code.co_name != "pretrain":
            return real()
        k = next(calls)
        return 20.0 * min(k, 10) + 0.01 * max(0, k - 10)

    monkeypatch.setattr(from_scratch.time, "perf_counter", clock)
    out = tmp_path / "base"
    build_base_model(tiny_base_config, out, progress=False)
    monkeypatch.undo()
    assert json.loads((out / BASE_MODEL_INFO).read_text())["metrics"]["steps"] == tiny_base_config.max_steps
    assert (out / "model.safetensors").read_bytes() == (tiny_base_model / "model.safetensors").read_bytes()
