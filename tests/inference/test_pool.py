"""The engine pool: requests spread over Ray actors give a single engine's replies; a dead actor is a clear error."""

from __future__ import annotations

import pytest

from parallel_r1.errors import UserFacingError
from parallel_r1.inference import SamplingParams
from parallel_r1.inference.hf_engine import HFEngine
from parallel_r1.inference.pool import EnginePool, assign_requests

OPENINGS = ["I don't understand fractions.", "Why does the moon change shape?", "Can you help me with loops?",
            "What is a variable?", "hi"]
CONVERSATIONS = [[{"role": "user", "content": text}] for text in OPENINGS]
SAMPLED = SamplingParams(n=2, temperature=0.8, max_tokens=12, seed=5)


def test_assign_requests_balances_work_largest_first():
    assert assign_requests([5, 1, 4, 3, 3], 2) == [[0, 4], [1, 2, 3]]
    assert assign_requests([2, 2], 3) == [[0], [1], []]
    groups = assign_requests([7, 7, 7, 7, 7, 7, 7, 7], 2)
    assert sorted(i for g in groups for i in g) == list(range(8)) and [len(g) for g in groups] == [4, 4]


@pytest.fixture(scope="module")
def pool(ray_session, tiny_inference_config, tiny_base_model, tiny_adapters):
    cfg = tiny_inference_config.model_copy(update={"engine": "hf", "num_engines": 2})
    engine = EnginePool(cfg, tiny_base_model, tiny_adapters)
    yield engine
    engine.close()


def _key(completions):
    return [(c.texts, c.completion_tokens, c.finish_reasons, c.adapter) for c in completions]


def test_pool_gives_the_replies_of_one_engine(pool, tiny_inference_config, tiny_base_model, tiny_adapters):
    requests = [(CONVERSATIONS, None), (CONVERSATIONS[:3], "style"), (CONVERSATIONS, "other"),
                (CONVERSATIONS[1:], "style")]
    local = HFEngine(tiny_inference_config, tiny_base_model, tiny_adapters)
    try:
        expected = [_key(c) for c in local.generate_each(requests, SAMPLED)]
    finally:
        local.close()
    assert [_key(c) for c in pool.generate_each(requests, SAMPLED)] == expected
    assert _key(pool.generate(CONVERSATIONS, SAMPLED, adapter="other")) == expected[2]
    assert pool.name == "hf" and pool.adapters == ["style", "other"]


def test_an_added_adapter_answers_on_every_engine_and_a_dead_actor_is_a_clear_error(
        ray_session, tiny_inference_config, tiny_base_model, tiny_adapters):
    import ray

    cfg = tiny_inference_config.model_copy(update={"engine": "hf", "num_engines": 2})
    engine = EnginePool(cfg, tiny_base_model)
    try:
        engine.add_adapter("style", tiny_adapters["style"])
        assert engine.adapters == ["style"]
        both = engine.generate_each([(CONVERSATIONS, "style"), (CONVERSATIONS, "style")], SAMPLED)  # one per actor
        local = HFEngine(tiny_inference_config, tiny_base_model, {"style": tiny_adapters["style"]})
        try:
            expected = _key(local.generate(CONVERSATIONS, SAMPLED, adapter="style"))
        finally:
            local.close()
        assert [_key(c) for c in both] == [expected, expected]
        ray.kill(engine._actors[1])
        with pytest.raises(UserFacingError, match="engine actor died"):
            engine.generate_each([(CONVERSATIONS, None), (CONVERSATIONS, None)], SAMPLED)
    finally:
        engine.close()


def test_engines_the_cluster_cannot_hold_are_refused(ray_session, tiny_inference_config, tiny_base_model):
    cfg = tiny_inference_config.model_copy(update={"engine": "hf", "num_engines": 3, "cpus_per_engine": 2})
    with pytest.raises(UserFacingError, match="num_engines=3 x 2 CPU per engine does not fit"):
        EnginePool(cfg, tiny_base_model)
    with pytest.raises(UserFacingError, match="GPU per engine does not fit"):
        EnginePool(cfg.model_copy(update={"num_engines": 1, "cpus_per_engine": 1, "gpus_per_engine": 1}),
                   tiny_base_model)
