"""Grounding beyond the dataset builder, on the real embedded store: discovery's openai tutor (against the local fake
OpenAI server) and the Serve router's replies get the high-confidence passages in their system prompt and name them;
a store that cannot be reached leaves the reply ungrounded, never failed."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from starlette.requests import Request

from parallel_r1.config import OpenAIEndpointConfig, PipelineConfig, load_config
from parallel_r1.data import DialogueTask, read_dialogues, write_dialogues
from parallel_r1.discover.openai_backend import OpenAIBackend
from parallel_r1.discover.simulator import context_for, simulate_dialogue
from parallel_r1.discover.stage import DiscoverStage
from parallel_r1.kb import KBError, open_kb
from parallel_r1.kb.grounding import Retriever
from parallel_r1.kb.stage import collect
from parallel_r1.serve.generation import Delta, Generation
from parallel_r1.serve.grounding import check_store
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.router import bare_router
from tests.kb.servers import free_port

pytestmark = pytest.mark.kb

SWAP_QUESTION = "Why does my swap(int a, int b) function in C not actually swap anything?"


@pytest.fixture(scope="module")
def grounded_cfg(kb_workdir, embedder, small_corpus) -> PipelineConfig:
    """A config grounding discover and serve in a table of the small corpus."""
    cfg = load_config(None, {"workdir": str(kb_workdir), "kb.table": "t_prompts",
                             "kb.ground": ["discover", "serve"], "kb.top_k": 2})
    with open_kb(cfg.kb, kb_workdir, embedder) as kb:
        kb.ingest(collect(cfg, small_corpus)[0])
    return cfg


def _speaker(request: dict) -> str:
    return "student" if "role-playing a student" in request["messages"][0]["content"] else "teacher"


def test_discover_tutor_prompt_gets_the_passages_and_the_record_names_them(grounded_cfg, tmp_path):
    task = DialogueTask(iteration=0, dialogue_id="g0", card_id="pointers-swap", profile_kind="standard",
                        target_turns=6, seed=3)
    retriever = Retriever(grounded_cfg.kb, grounded_cfg.workdir)
    with FakeOpenAIServer(responder=lambda r: f"{_speaker(r)} reply {len(r['messages'])}") as server:
        async def main():
            backend = OpenAIBackend(OpenAIEndpointConfig(base_url=server.base_url, model="fake-tutor",
                                                         api_key_env="PR1_TEST_NO_KEY"), retrieve=retriever.retrieve)
            try:
                return await simulate_dialogue(backend, task)
            finally:
                await backend.close()

        try:
            dialogue = asyncio.run(main())
        finally:
            retriever.close()
        requests = list(server.requests)
    assert [_speaker(r) for r in requests] == ["teacher", "student"] * 2 + ["teacher"]
    used = {turn: [g for g in dialogue.grounding if g["turn"] == turn] for turn in (1, 3, 5)}
    assert set(used) == {g["turn"] for g in dialogue.grounding}  # only tutor turns are grounded
    first = used[1]  # the card's opening about swap(): the pointers note, above the threshold
    assert first and first[0]["source"].endswith("pointers.md") and all(g["score"] >= 0.45 for g in first)
    for turn, request in zip((1, 3, 5), requests[0::2], strict=True):
        system = request["messages"][0]["content"]
        assert ("Reference notes" in system) == bool(used[turn])
    assert "by value" in requests[0]["messages"][0]["content"]
    assert all("Reference notes" not in r["messages"][0]["content"] for r in requests[1::2])  # nor the student's
    assert context_for(task).card.opening in requests[0]["messages"][1]["content"]
    write_dialogues(tmp_path / "d.parquet", [dialogue])
    assert read_dialogues(tmp_path / "d.parquet")[0].grounding == dialogue.grounding


def test_procedural_discovery_is_not_grounded_and_says_so(grounded_cfg, caplog):
    stage = DiscoverStage(grounded_cfg.model_copy(update={"discover": grounded_cfg.discover.model_copy(
        update={"backend": "procedural"})}), show_progress=False)
    with caplog.at_level(logging.WARNING):
        assert stage._retriever() is None
    assert "procedural backend writes no prompt to ground" in caplog.text


def _router(workdir, kb: dict | None, tmp_path, context_chars: int | None = None):
    """The router's own class (not deployed), its model backend replaced by one that records what it is sent and
    refuses, as the engines do, a prompt over its context (`context_chars` characters)."""
    class Recorder:
        def __init__(self):
            self.seen: list[list[dict]] = []

        async def models(self):
            return []

        async def generate(self, conversation, sampling, target):
            self.seen.append(conversation)
            size = sum(len(m["content"]) for m in conversation)
            if context_chars is not None and size > context_chars:
                return Generation.refused(f"the prompt has {size} tokens, over the context length ({context_chars})")
            return Generation(["Let's trace it together."], ["stop"], 10, [5])

        async def stream(self, conversation, sampling, target):
            done = await self.generate(conversation, sampling, target)
            if not done.error:
                yield Delta(0, done.texts[0])
            yield done

    return bare_router(workdir, Recorder(), tmp_path / "scores.jsonl", kb=kb,
                       system_prompts={"": "You are a patient tutor."})


async def _ask(router, text: str, stream: bool = False) -> tuple[int, dict]:
    body = json.dumps({"model": "parallel-r1", "messages": [{"role": "user", "content": text}],
                       "stream": stream}).encode()

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "query_string": b"",
             "headers": [(b"content-type", b"application/json")]}
    response = await router.chat_completions(Request(scope, receive))
    if not stream or response.status_code != 200:
        return response.status_code, json.loads(response.body)
    events = [json.loads(e.removeprefix("data: ")) async for e in response.body_iterator if "[DONE]" not in e]
    return response.status_code, events[-1]


def test_router_grounds_the_conversation_and_the_reply_names_the_passages(grounded_cfg, tmp_path):
    router = _router(grounded_cfg.workdir, grounded_cfg.kb.model_dump(), tmp_path)
    try:
        status, reply = asyncio.run(_ask(router, SWAP_QUESTION))
        off_status, off_topic = asyncio.run(_ask(router, "What should I cook for dinner tonight?"))
    finally:
        router.grounding.retriever.close()
    assert status == 200 and reply["specialist"] == "base" and reply["route_source"]
    [g, *_] = reply["grounding"]
    assert g["source"].endswith("pointers.md") and g["score"] >= 0.45 and len(reply["grounding"]) <= 2
    system, *rest = router.backend.seen[0]
    assert system["content"].startswith("You are a patient tutor.") and "Reference notes" in system["content"]
    assert "by value" in system["content"] and rest == [{"role": "user", "content": SWAP_QUESTION}]
    assert (off_status, off_topic["grounding"]) == (200, [])
    assert "Reference notes" not in router.backend.seen[1][0]["content"]
    ungrounded = _router(grounded_cfg.workdir, None, tmp_path)
    assert "grounding" not in asyncio.run(_ask(ungrounded, SWAP_QUESTION))[1]


@pytest.mark.parametrize("stream", [False, True])
def test_notes_that_do_not_fit_the_context_are_left_out_rather_than_refused(grounded_cfg, tmp_path, caplog, stream):
    fits = len("You are a patient tutor.") + len(SWAP_QUESTION) + 10  # the question fits, the notes do not
    router = _router(grounded_cfg.workdir, grounded_cfg.kb.model_dump(), tmp_path, context_chars=fits)
    try:
        with caplog.at_level(logging.WARNING):
            status, reply = asyncio.run(_ask(router, SWAP_QUESTION, stream))
        too_long = asyncio.run(_ask(router, SWAP_QUESTION + " " * fits, stream))
    finally:
        router.grounding.retriever.close()
    assert (status, reply["grounding"]) == (200, [])
    grounded, plain = router.backend.seen[:2]
    assert "Reference notes" in grounded[0]["content"] and "Reference notes" not in plain[0]["content"]
    assert "the reference notes do not fit the model's context" in caplog.text
    assert too_long[0] == 400 and too_long[1]["error"]["code"] == "context_length_exceeded"  # its own fault


def test_an_unreachable_store_gives_an_ungrounded_reply(grounded_cfg, tmp_path, caplog):
    kb = {**grounded_cfg.kb.model_dump(), "postgres_dsn": f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
          "cache": False, "connect_timeout_s": 1}
    router = _router(grounded_cfg.workdir, kb, tmp_path)
    with caplog.at_level(logging.WARNING):
        status, reply = asyncio.run(_ask(router, SWAP_QUESTION))
    assert (status, reply["grounding"]) == (200, [])
    assert reply["choices"][0]["message"]["content"] == "Let's trace it together."
    assert "kb grounding: the knowledge base failed (KBError: cannot reach PostgreSQL" in caplog.text
    assert "Reference notes" not in router.backend.seen[0][0]["content"]


@pytest.mark.slow
def test_discover_stage_grounds_through_its_actors(grounded_cfg, ray_session):
    from parallel_r1.discover.stage import run_discover

    with FakeOpenAIServer(responder=lambda r: f"{_speaker(r)} reply {len(r['messages'])}") as server:
        cfg = load_config(None, {
            "workdir": str(grounded_cfg.workdir), "kb": grounded_cfg.kb.model_dump(), "discover.n": 2,
            "discover.num_actors": 1, "discover.include_special": False, "discover.grade": False,
            "discover.backend": "openai", "discover.openai.base_url": server.base_url,
            "discover.openai.model": "fake-tutor", "discover.openai.api_key_env": "PR1_TEST_NO_KEY"})
        result = run_discover(cfg, show_progress=False)
    assert (result.completed, result.failed) == (2, 0)
    dialogues = read_dialogues(grounded_cfg.workdir / "dialogues.parquet")
    assert {d.scenario_id for d in dialogues} == {"recursion-koan", "git-koan"}  # topics of the small corpus
    assert all(g["turn"] % 2 == 1 for d in dialogues for g in d.grounding)  # tutor turns only
    assert all(any(g["turn"] == 1 for g in d.grounding) for d in dialogues)  # the opening finds its note


def test_serve_refuses_to_start_on_an_empty_or_unreachable_store(grounded_cfg):
    from parallel_r1.serve.stage import start_local

    empty = grounded_cfg.model_copy(update={"kb": grounded_cfg.kb.model_copy(update={"table": "t_nothing"})})
    with pytest.raises(KBError, match="kb.ground includes serve but the knowledge base is empty"):
        start_local(empty)
    down = grounded_cfg.kb.model_copy(update={
        "postgres_dsn": f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", "connect_timeout_s": 1})
    with pytest.raises(KBError, match="cannot reach PostgreSQL"):
        start_local(grounded_cfg.model_copy(update={"kb": down}))
    check_store(grounded_cfg.kb, grounded_cfg.workdir)  # the ingested table: no error
