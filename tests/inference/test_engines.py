"""The HF and vLLM engines on a tiny model: records, adapters, seeds, concurrency, errors, engine choice, and
that both engines give the same greedy replies."""

from __future__ import annotations

import importlib.util
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from parallel_r1.config import InferenceConfig
from parallel_r1.errors import UserFacingError
from parallel_r1.inference import SamplingParams, build_engine, factory, vllm_available
from parallel_r1.inference.adapters import UnknownAdapterError
from parallel_r1.inference.hf_engine import HFEngine
from parallel_r1.inference.vllm_cpu_lora import LORA_ENV
from parallel_r1.inference.vllm_engine import RESERVED_ENV, cpu_engine_env, reserved_cores

OPENINGS = ["I don't understand fractions.", "Why does the moon change shape?", "Can you help me with loops?",
            "What is a variable?", "hi", "I keep getting recursion wrong."]
CONVERSATIONS = [[{"role": "user", "content": text}] for text in OPENINGS]
CONVERSATIONS[3] = [{"role": "system", "content": "You are a patient tutor."}, *CONVERSATIONS[3]]
GREEDY = SamplingParams(temperature=0, max_tokens=24)
SAMPLED = SamplingParams(n=2, temperature=0.8, max_tokens=16, seed=11)
ENVIRONMENT_AT_IMPORT = os.environ.get(RESERVED_ENV)


@pytest.fixture(scope="module")
def hf(tiny_inference_config, tiny_base_model, tiny_adapters):
    engine = HFEngine(tiny_inference_config, tiny_base_model, tiny_adapters)
    yield engine
    engine.close()


def _key(completions):
    return [(c.texts, c.completion_tokens, c.finish_reasons) for c in completions]


def _assert_concurrent_routes(engine, conversations, requests: int, workers: int) -> None:
    """Requests for the base and both adapters from several threads each get what they get alone."""
    routes = [None, "style", "other"]
    expected = {r: _key(engine.generate(conversations, GREEDY, adapter=r)) for r in routes}
    sent = [routes[i % 3] for i in range(requests)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        got = list(pool.map(lambda r: _key(engine.generate(conversations, GREEDY, adapter=r)), sent))
    assert [g == expected[r] for g, r in zip(got, sent, strict=True)] == [True] * len(sent)


def test_hf_records(hf):
    out = hf.generate(CONVERSATIONS[:3], SamplingParams(max_tokens=12), adapter="style")
    assert len(out) == 3 and hf.adapters == ["style", "other"]
    for c in out:
        assert c.adapter == "style" and c.prompt_tokens > 5 and len(c.texts) == 1 and isinstance(c.text, str)
        assert 1 <= c.completion_tokens[0] <= 12 and c.finish_reasons[0] in ("stop", "length")
        assert c.finish_reasons[0] == "stop" or c.completion_tokens[0] == 12
    assert hf.generate([], GREEDY) == []


def test_adapter_changes_greedy_output_and_base_is_the_bare_model(hf, tiny_inference_config, tiny_base_model):
    base = hf.generate(CONVERSATIONS, GREEDY)
    styled = hf.generate(CONVERSATIONS, GREEDY, adapter="style")
    other = hf.generate(CONVERSATIONS, GREEDY, adapter="other")
    assert sum(b.text != s.text for b, s in zip(base, styled, strict=True)) >= len(CONVERSATIONS) - 1
    assert _key(styled) != _key(other)
    bare = HFEngine(tiny_inference_config, tiny_base_model)  # no PeftModel at all
    assert _key(bare.generate(CONVERSATIONS, GREEDY)) == _key(base)
    assert any(c.finish_reasons[0] == "length" and c.completion_tokens[0] == 24 for c in base)


def test_seeds_reproducible_and_independent_of_batching(hf, tiny_inference_config, tiny_base_model, tiny_adapters):
    first = hf.generate(CONVERSATIONS, SAMPLED, adapter="style")
    assert _key(hf.generate(CONVERSATIONS, SAMPLED, adapter="style")) == _key(first)
    one_by_one = HFEngine(tiny_inference_config.model_copy(update={"max_batch_size": 1}), tiny_base_model,
                          {"style": tiny_adapters["style"]})
    assert _key(one_by_one.generate(CONVERSATIONS, SAMPLED, adapter="style")) == _key(first)
    # Prompt i is sampled with seed + i: the same conversation at index 0 with seed + 2 gets the same replies.
    shifted = hf.generate(CONVERSATIONS[2:3], SamplingParams(n=2, max_tokens=16, seed=SAMPLED.seed + 2), "style")
    assert _key(shifted) == _key(first[2:3])
    other_seed = hf.generate(CONVERSATIONS, SamplingParams(n=2, max_tokens=16, seed=99), adapter="style")
    assert _key(other_seed) != _key(first)


def test_static_and_dynamic_kv_cache_give_the_same_replies(hf, tiny_inference_config, tiny_base_model, tiny_adapters):
    assert tiny_inference_config.hf_cache == "static"
    dynamic = HFEngine(tiny_inference_config.model_copy(update={"hf_cache": "dynamic"}), tiny_base_model,
                       {"style": tiny_adapters["style"]})
    for adapter in (None, "style"):
        for sampling in (GREEDY, SAMPLED):
            assert _key(dynamic.generate(CONVERSATIONS, sampling, adapter)) == _key(hf.generate(CONVERSATIONS,
                                                                                              sampling, adapter))


def test_n_samples(hf):
    out = hf.generate(CONVERSATIONS[:2], SamplingParams(n=3, temperature=1.0, max_tokens=16))
    for c in out:
        assert len(c.texts) == len(c.completion_tokens) == len(c.finish_reasons) == 3
        assert len(set(c.texts)) > 1  # three independent samples, not one repeated
    greedy = hf.generate(CONVERSATIONS[:1], SamplingParams(n=2, temperature=0, max_tokens=8))[0]
    assert greedy.texts[0] == greedy.texts[1]


def test_concurrent_requests_for_different_adapters_get_their_own_replies(hf):
    """Without the engine's lock, one thread's set_adapter changes another's generation midway."""
    _assert_concurrent_routes(hf, CONVERSATIONS[:3], requests=18, workers=6)


def test_adapter_errors(hf, tmp_path, tiny_adapters):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "missing")):
        hf.add_adapter("missing", tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        hf.add_adapter("empty", tmp_path)
    with pytest.raises(UnknownAdapterError, match=r"'nope'.*'style', 'other'") as err:
        hf.generate(CONVERSATIONS[:1], GREEDY, adapter="nope")
    assert isinstance(err.value, KeyError) and isinstance(err.value, UserFacingError)
    hf.add_adapter("style", tiny_adapters["style"])  # the same folder again: nothing to do
    with pytest.raises(UserFacingError, match="new name"):
        hf.add_adapter("style", tiny_adapters["other"])
    with pytest.raises(UserFacingError, match="context length"):
        hf.generate([[{"role": "user", "content": "word " * 40}]], GREEDY)
    assert hf.adapters == ["style", "other"]


class _FakeVLLMEngine:
    def __init__(self, cfg, base_model, adapters=None):
        self.args = (cfg, base_model, adapters)


def test_build_engine_choice(monkeypatch, tiny_inference_config, tiny_base_model, tiny_adapters):
    assert vllm_available() is vllm_available()  # a cached bool
    monkeypatch.setattr("parallel_r1.inference.vllm_engine.VLLMEngine", _FakeVLLMEngine)
    auto, hf_only, vllm_only = (tiny_inference_config.model_copy(update={"engine": e}) for e in ("auto", "hf", "vllm"))

    monkeypatch.setattr(factory, "vllm_available", lambda: True)
    assert isinstance(build_engine(auto, tiny_base_model), _FakeVLLMEngine)
    assert build_engine(vllm_only, tiny_base_model, tiny_adapters).args[2] == tiny_adapters
    engine = build_engine(hf_only, tiny_base_model, tiny_adapters)
    assert isinstance(engine, HFEngine) and engine.adapters == ["style", "other"]

    monkeypatch.setattr(factory, "vllm_available", lambda: False)
    assert isinstance(build_engine(auto, tiny_base_model), HFEngine)
    with pytest.raises(UserFacingError, match="inference.engine is 'vllm'"):
        build_engine(vllm_only, tiny_base_model)


# ---- vLLM: one engine for the module (starting one takes 20-60 s on 2 cores) ----

needs_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed")


@pytest.fixture(scope="module")
def vllm(tiny_inference_config, tiny_base_model, tiny_adapters):
    from parallel_r1.inference.vllm_engine import VLLMEngine

    engine = VLLMEngine(tiny_inference_config, tiny_base_model, tiny_adapters)
    yield engine
    engine.close()
    engine.close()  # idempotent


@pytest.mark.slow
@needs_vllm
@pytest.mark.parametrize("adapter", [None, "style"])
def test_vllm_and_hf_agree_on_greedy_replies(vllm, hf, adapter):
    """Both engines run the fp32 model, so greedy replies match token for token; a reduction-order difference
    could still flip a near-tie and change one reply's tail, so one mismatch in six is tolerated (none was seen).
    The prompt tokens must match exactly: both render the same chat template."""
    v = vllm.generate(CONVERSATIONS, GREEDY, adapter=adapter)
    h = hf.generate(CONVERSATIONS, GREEDY, adapter=adapter)
    assert [c.prompt_tokens for c in v] == [c.prompt_tokens for c in h]
    assert all(c.adapter == adapter for c in v)
    matches = [a == b for a, b in zip(_key(v), _key(h), strict=True)]
    assert sum(matches) >= len(matches) - 1, list(zip(_key(v), _key(h), strict=True))


@pytest.mark.slow
@needs_vllm
def test_vllm_seeds_records_and_errors(vllm, tmp_path):
    first = vllm.generate(CONVERSATIONS, SAMPLED, adapter="other")
    assert _key(vllm.generate(CONVERSATIONS, SAMPLED, adapter="other")) == _key(first)
    shifted = vllm.generate(CONVERSATIONS[2:3], SamplingParams(n=2, max_tokens=16, seed=SAMPLED.seed + 2), "other")
    assert _key(shifted) == _key(first[2:3])
    for c in first:
        assert len(c.texts) == 2 and all(1 <= k <= 16 for k in c.completion_tokens)
        assert all(r == "stop" or k == 16 for r, k in zip(c.finish_reasons, c.completion_tokens, strict=True))
    with pytest.raises(UnknownAdapterError, match="nope"):
        vllm.generate(CONVERSATIONS[:1], GREEDY, adapter="nope")
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        vllm.add_adapter("empty", tmp_path)
    with pytest.raises(UserFacingError, match="context length"):
        vllm.generate([[{"role": "user", "content": "word " * 40}]], GREEDY)


@pytest.mark.slow
@needs_vllm
def test_vllm_many_seeded_prompts_beyond_one_steps_token_budget(vllm):
    """More prompt tokens than one engine step schedules (4096): on CPU a split (chunked) prefill of a seeded
    request used to kill the engine ("CPU Generator does not use offset")."""
    long = " ".join(OPENINGS[:4])  # ~45 prompt tokens: 120 of them fill more than one step, in fewer than 256 seqs
    many = [[{"role": "user", "content": f"{i} {long}"}] for i in range(120)]
    sampling = SamplingParams(n=1, temperature=0.8, max_tokens=4, seed=3)
    out = vllm.generate(many, sampling)
    assert len(out) == 120 and sum(c.prompt_tokens for c in out) > 4096
    assert _key(vllm.generate(many[:8], sampling)) == _key(out[:8])


@pytest.mark.slow
@needs_vllm
def test_generate_each_batches_adapters_with_the_results_of_separate_calls(vllm, hf):
    """One batch of the base model's and the adapters' prompts (vLLM: one `LLM.chat`, through the grouped CPU LoRA
    ops, where vLLM's own would give the base prompts an adapter's term: none of six matched then). Greedy replies
    match separate calls (vLLM: a different batch may flip a near-tie of this random-weights model, as in the
    engines' agreement test, so one reply in six may differ); sampled ones are reproducible."""
    requests = [(CONVERSATIONS, None), (CONVERSATIONS[:3], "style"), (CONVERSATIONS, "other"), ([], "style")]
    for engine in (vllm, hf):
        together = engine.generate_each(requests, GREEDY)
        assert [len(c) for c in together] == [6, 3, 6, 0] and together[1][0].adapter == "style"
        for got, (conversations, adapter) in zip(together, requests, strict=True):
            alone = engine.generate(conversations, GREEDY, adapter)
            matches = [a == b for a, b in zip(_key(got), _key(alone), strict=True)]
            assert sum(matches) >= len(matches) - (engine is vllm), (adapter, _key(got), _key(alone))
        sampled = engine.generate_each(requests, SAMPLED)
        assert [_key(c) for c in engine.generate_each(requests, SAMPLED)] == [_key(c) for c in sampled]


@pytest.mark.slow
@needs_vllm
def test_vllm_concurrent_requests(vllm):
    _assert_concurrent_routes(vllm, CONVERSATIONS[:2], requests=6, workers=3)


@pytest.mark.slow
@needs_vllm
def test_the_vllm_worker_computes_on_the_cores_left_to_it(vllm, tiny_inference_config):
    """On CPU the worker pins its OpenMP threads to every core but the reserved ones (on 2 cores: both; vLLM's own
    rule keeps one for the scheduler); this process's environment is as it was."""
    import psutil

    workers = [p for p in psutil.Process().children(recursive=True) if p.cmdline()[:1] == ["VLLM::Worker"]]
    assert len(workers) == 1
    cores = sorted(os.sched_getaffinity(0))
    reserved = reserved_cores(tiny_inference_config.vllm_cpu_reserved_cores, len(cores))
    pinned = {next(iter(a)) for a in (os.sched_getaffinity(t.id) for t in workers[0].threads()) if len(a) == 1}
    assert sorted(pinned) == cores[:len(cores) - (1 if reserved is None else reserved)]
    assert os.environ.get(RESERVED_ENV) == ENVIRONMENT_AT_IMPORT


HOLDER = """
import json, sys, time
import psutil
from parallel_r1.config import InferenceConfig
from parallel_r1.inference.vllm_engine import VLLMEngine

if __name__ == "__main__":
    engine = VLLMEngine(InferenceConfig.model_validate_json(sys.argv[1]), sys.argv[2])
    helpers = [p.pid for p in psutil.Process().children(recursive=True) if "parallel_r1.watchdog" not in p.cmdline()]
    print("helpers:", json.dumps(helpers), flush=True)
    time.sleep(600)
"""


@pytest.mark.slow
@needs_vllm
def test_the_vllm_engine_processes_stop_when_their_holder_is_killed(tiny_inference_config, tiny_base_model):
    """SIGTERM under Python's default handler runs no cleanup: vLLM's EngineCore and Worker would be left running
    (and holding memory) without the engine's watchdog."""
    import json
    import signal
    import subprocess
    import sys
    import time

    import psutil

    holder = subprocess.Popen([sys.executable, "-c", HOLDER, tiny_inference_config.model_dump_json(),
                               str(tiny_base_model)], stdout=subprocess.PIPE, text=True)
    try:
        while not (line := holder.stdout.readline()).startswith("helpers:"):  # vLLM logs on stdout too
            assert line, f"the holder exited with {holder.wait()}"
        helpers = [psutil.Process(pid) for pid in json.loads(line.removeprefix("helpers:"))]
        assert {p.cmdline()[0] for p in helpers} >= {"VLLM::EngineCore", "VLLM::Worker"}
        holder.send_signal(signal.SIGTERM)
        assert holder.wait(timeout=30) == -signal.SIGTERM
        deadline = time.monotonic() + 30
        while (left := [p for p in helpers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]) \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        assert left == []
    finally:
        holder.kill()


@pytest.mark.parametrize(("setting", "cores", "already", "expected"), [
    (None, 2, None, "0"), (None, 1, None, "0"), (None, 8, None, None), (3, 8, None, "3"),
    (None, 2, "1", "1"), (0, 2, "1", "0")])
def test_the_reserved_cores_are_set_while_the_engine_starts_and_restored(monkeypatch, setting, cores, already,
                                                                          expected):
    """The setting, else none on 2 cores or fewer, else vLLM's rule (nothing set); one in the environment stays
    unless the config says otherwise; the environment is as before afterwards."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(cores)))
    if already is None:
        monkeypatch.delenv(RESERVED_ENV, raising=False)
    else:
        monkeypatch.setenv(RESERVED_ENV, already)
    monkeypatch.delenv(LORA_ENV, raising=False)
    with cpu_engine_env(InferenceConfig(vllm_cpu_reserved_cores=setting, vllm_cpu_lora="vllm")):
        assert os.environ.get(RESERVED_ENV) == expected
        assert os.environ[LORA_ENV] == "vllm"
    assert os.environ.get(RESERVED_ENV) == already
    assert LORA_ENV not in os.environ
