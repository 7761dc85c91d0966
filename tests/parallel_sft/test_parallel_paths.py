"""Model-written paths for dialogues the procedural simulator cannot replay (a real LLM's, imported transcripts):
from an OpenAI-compatible endpoint (a real local fake server) and from the policy on a tiny local model."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from itertools import combinations

import pytest

from parallel_r1.config import InferenceConfig, OpenAIEndpointConfig, PathGenerationConfig, load_config
from parallel_r1.data import discovery_plan
from parallel_r1.data.parallel_format import overlap, parse_reply
from parallel_r1.data.prompts import TUTOR_SYSTEM_PROMPT
from parallel_r1.discover.procedural import ProceduralBackend
from parallel_r1.discover.simulator import simulate_dialogue
from parallel_r1.errors import UserFacingError
from parallel_r1.grade import grade_dialogues
from parallel_r1.parallel_sft.dataset import ORIGINAL, SAMPLED, ParallelDatasetBuilder
from parallel_r1.parallel_sft.path_generators import EndpointPathGenerator, PolicyPathGenerator, plain_reply
from tests.fakes.openai_server import FakeOpenAIServer
from tests.parallel_sft.parallel_dialogues import NEAR_EMPTY, STOCK, VariedResponder, all_replies, real_dialogues


def endpoint_generator(server: FakeOpenAIServer, **gen) -> EndpointPathGenerator:
    endpoint = OpenAIEndpointConfig(base_url=server.base_url, model="fake-tutor", api_key_env="PR1_TEST_NO_KEY",
                                    max_retries=0, timeout_s=10)
    return EndpointPathGenerator(PathGenerationConfig(endpoint=endpoint, **gen))


def builder(generator, **kw) -> ParallelDatasetBuilder:
    return ParallelDatasetBuilder(**{"threshold": 0.5, "min_dialogues": 1, "turns_per_dialogue": 2,
                                     "path_source": generator.source, "generator": generator, **kw})


def test_endpoint_paths_are_the_servers_replies_graded_and_distinct():
    dialogues = real_dialogues()
    in_flight, most = [0], [0]
    responder = VariedResponder()

    async def reply(request: dict) -> str:
        in_flight[0] += 1
        most[0] = max(most[0], in_flight[0])
        await asyncio.sleep(0.05)
        in_flight[0] -= 1
        return responder(request)

    with FakeOpenAIServer(reply) as server:
        dataset = builder(endpoint_generator(server, samples=6)).build(dialogues)
    assert server.n_requests == 6 * 6 and most[0] > 1  # 6 turns x 6 samples, sent concurrently
    by_id = {d.dialogue_id: d for d in dialogues}
    for request in server.requests:
        system, *history = request["messages"]
        assert system == {"role": "system", "content": TUTOR_SYSTEM_PROMPT} and history[-1]["role"] == "user"
        assert request["model"] == "fake-tutor"
    assert len(dataset.records) == 6 and not dataset.skipped and not dataset.failures
    sampled_any = set()
    for r in dataset.records:
        assert (r.path_source, r.path_model) == ("endpoint", "fake-tutor")
        original = by_id[r.dialogue_id].turns[r.turn_index].content
        for text, moves in zip(r.paths, r.path_moves, strict=True):
            assert (text == original) if moves == [ORIGINAL] else (moves == [SAMPLED] and text in all_replies())
        sampled_any |= {t for t, m in zip(r.paths, r.path_moves, strict=True) if m == [SAMPLED]}
        assert STOCK not in r.paths and NEAR_EMPTY not in r.paths  # graded below the floor; too short
        assert len(r.paths) == 3 and all(overlap(a, b) < 0.5 for a, b in combinations(r.paths, 2))
        assert parse_reply(r.target).blocks[0].paths == r.paths
        assert r.messages[1:-1] == by_id[r.dialogue_id].messages()[:r.turn_index]
    assert len(sampled_any) >= 6  # the server's varied replies, not one text over and over


def test_procedural_dialogues_are_still_replayed_under_auto():
    async def simulate():
        backend = ProceduralBackend(seed=0)
        return [await simulate_dialogue(backend, task) for task in discovery_plan(12, seed=3)]

    procedural = grade_dialogues(asyncio.run(simulate()))
    real = real_dialogues()
    with FakeOpenAIServer(VariedResponder()) as server:
        generator = endpoint_generator(server, samples=3)
        dataset = builder(generator, threshold=0.0, path_source="auto").build([*procedural, *real])
    sources = {r.dialogue_id: (r.path_source, r.path_model) for r in dataset.records}
    assert {sources[d.dialogue_id] for d in procedural if d.dialogue_id in sources} == {("replay", "procedural")}
    assert {sources[d.dialogue_id] for d in real} == {("endpoint", "fake-tutor")}
    assert server.n_requests == 2 * len(real) * 3  # the procedural turns asked the server nothing
    assert {s["reason"] for s in dataset.skipped} <= {"too_few_distinct_alternatives"}


def test_an_erroring_endpoint_is_recorded_and_a_dead_one_is_a_clear_error():
    dialogues = real_dialogues()
    with FakeOpenAIServer(VariedResponder(), failure_rate=0.3, timeout_rate=0.0, seed=1) as server:
        dataset = builder(endpoint_generator(server, samples=6)).build(dialogues)
    assert dataset.records and len(dataset.failures) == server.n_failures > 0
    assert {f["dialogue_id"] for f in dataset.failures} <= {d.dialogue_id for d in dialogues}
    assert all("injected failure" in f["error"] for f in dataset.failures)

    dead = "no parallel record could be built.*first failed request.*fake-tutor"
    with FakeOpenAIServer(failure_rate=1.0, timeout_rate=0.0) as server:
        with pytest.raises(UserFacingError, match=dead):
            builder(endpoint_generator(server, samples=2), batch_turns=2).build(dialogues)
    assert server.n_requests == 2 * 2  # the first batch failed wholesale: the other turns were not sent


def test_near_empty_and_tagged_replies():
    dialogues = real_dialogues()[:1]
    with FakeOpenAIServer(lambda request: NEAR_EMPTY) as server:
        with pytest.raises(UserFacingError, match="empty_generations"):
            builder(endpoint_generator(server, samples=2), turns_per_dialogue=1).build(dialogues)
    summary = "Which number should range start from, if the first item has index 0?"
    assert plain_reply(f"<Parallel><Path>a b c</Path><Path>d e f</Path></Parallel><Summary>{summary}</Summary>") \
        == summary


def test_a_teacher_turn_without_a_student_turn_before_it_is_skipped():
    dialogue = real_dialogues()[2]
    opened_by_teacher = dataclasses.replace(dialogue, turns=dialogue.turns[1:])
    with FakeOpenAIServer(VariedResponder()) as server:
        dataset = builder(endpoint_generator(server, samples=3)).build([opened_by_teacher, dialogue])
    assert {"dialogue_id": opened_by_teacher.dialogue_id, "turn_index": 0,
            "reason": "not_after_student_turn"} in dataset.skipped


def test_path_source_from_the_config():
    cfg = load_config(None, ["parallel.path_source=endpoint", "parallel.path_generation.endpoint.model=m1",
                             "parallel.dataset_threshold=0.5", "parallel.min_dialogues=1"]).parallel
    built = ParallelDatasetBuilder.from_config(cfg)
    assert isinstance(built.generator, EndpointPathGenerator) and built.generator.model == "m1"
    policy = cfg.model_copy(update={"path_source": "policy"})
    with pytest.raises(UserFacingError, match="path_generation.model"):
        ParallelDatasetBuilder.from_config(policy)
    assert ParallelDatasetBuilder.from_config(policy, base_model="/models/base").generator.model == "/models/base"
    replay = ParallelDatasetBuilder.from_config(cfg.model_copy(update={"path_source": "replay"}))
    with pytest.raises(UserFacingError, match="replay_mismatch"):  # an imported transcript has no seeds to replay
        replay.build(real_dialogues())
    auto = cfg.model_copy(update={"path_source": "auto"})
    with pytest.raises(UserFacingError, match="no model to write its paths"):
        ParallelDatasetBuilder.from_config(auto).build(real_dialogues())
    with pytest.raises(ValueError, match="needs a generator whose source is 'endpoint'"):
        ParallelDatasetBuilder(path_source="endpoint")


@pytest.mark.slow
def test_the_policy_writes_paths_on_the_local_engine(tiny_base_model):
    """The tiny embedded model on the HF engine: its context is raised so the tutor prompt fits (it has RoPE)."""
    inference = InferenceConfig(engine="hf", max_model_len=512, max_batch_size=16)
    gen = PathGenerationConfig(samples=4, max_tokens=24, seed=5)
    dialogues = real_dialogues()
    make = lambda: builder(PolicyPathGenerator(tiny_base_model, inference, gen), path_min_grade=0.0,  # noqa: E731
                           min_path_words=2)
    dataset = make().build(dialogues)
    model_written = [r for r in dataset.records if SAMPLED in {m for moves in r.path_moves for m in moves}]
    assert model_written and all((r.path_source, r.path_model) == ("policy", str(tiny_base_model))
                                 for r in dataset.records)
    dialogue_text = {t.content for d in dialogues for t in d.turns}
    direct = PolicyPathGenerator(tiny_base_model, inference, gen)
    try:  # the same batch (all six turns, first=0) sampled directly: the paths are those samples
        picked = [(d, t) for d in dialogues for t in make().pick_turns(d)]
        samples = direct.generate([d.messages()[:t] for d, t in picked], first=0)
    finally:
        direct.close()
    by_turn = {(d.dialogue_id, t): set(s.texts) for (d, t), s in zip(picked, samples, strict=True)}
    for r in model_written:
        sampled = [p for p, m in zip(r.paths, r.path_moves, strict=True) if m == [SAMPLED]]
        assert sampled and set(sampled) <= by_turn[(r.dialogue_id, r.turn_index)]
        assert not set(sampled) & dialogue_text
    assert [r.to_dict() for r in make().build(dialogues).records] == [r.to_dict() for r in dataset.records]


@pytest.mark.slow
def test_the_parallel_sft_stage_builds_llm_dialogues_with_the_policy(tmp_path, tiny_base_model):
    """The stage's dataset step under the default `auto`: dialogues of a real LLM get the base model's paths."""
    from parallel_r1.data.schema import write_dialogues
    from parallel_r1.parallel_sft.stage import ParallelSFTStage
    from parallel_r1.paths import RunPaths

    write_dialogues(tmp_path / "dialogues.parquet", real_dialogues())
    cfg = load_config(overrides={
        "workdir": str(tmp_path), "base_model.path": str(tiny_base_model), "inference.engine": "hf",
        "inference.max_model_len": 512, "parallel.dataset_threshold": 0.5, "parallel.min_dialogues": 1,
        "parallel.path_min_grade": 0.0, "parallel.path_generation.max_tokens": 24,
        "parallel.path_generation.min_words": 2})
    ParallelSFTStage(cfg).setup()
    paths = RunPaths(tmp_path)
    rows = [json.loads(line) for line in paths.parallel_sft_data.read_text().splitlines()]
    assert rows and {(r["path_source"], r["path_model"]) for r in rows} == {("policy", str(tiny_base_model))}
    meta = json.loads((paths.parallel / "sft_data.meta.json").read_text())
    assert meta["info"]["path_sources"] == {f"policy: {tiny_base_model}": len(rows)} and meta["failures"] == []


@pytest.mark.slow
def test_the_policy_spread_over_ray_engine_actors(ray_session, tiny_base_model):
    """The cluster's layout (engines as Ray actors, as GPU engines must be): a batch split over two engines."""
    inference = InferenceConfig(engine="hf", max_model_len=512, num_engines=2, cpus_per_engine=1)
    generator = PolicyPathGenerator(tiny_base_model, inference, PathGenerationConfig(samples=3, max_tokens=16))
    assert generator.spread
    dataset = builder(generator, path_min_grade=0.0, min_path_words=2).build(real_dialogues())
    assert any([SAMPLED] in r.path_moves for r in dataset.records)
    assert {(r.path_source, r.path_model) for r in dataset.records} == {("policy", str(tiny_base_model))}
    assert generator._engine is None  # closed after the build: the actors are gone
