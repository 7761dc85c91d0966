"""OpenAIBackend through `simulate_dialogue` against the local fake OpenAI server: dialogue shape, the
prompts each role gets and sees, and behaviour under injected 5xx / 429 / timeout failures."""

from __future__ import annotations

import asyncio

import pytest

from parallel_r1.config import OpenAIEndpointConfig
from parallel_r1.data import Dialogue, DialogueTask, discovery_plan
from parallel_r1.discover.openai_backend import STUDENT_KICKOFF, TRAIT_NOTES, OpenAIBackend
from parallel_r1.discover.simulator import context_for, simulate_dialogue
from parallel_r1.llm_client import EndpointError
from tests.fakes.openai_server import FakeOpenAIServer


def endpoint(server: FakeOpenAIServer, **kw) -> OpenAIEndpointConfig:
    kw = {"timeout_s": 0.5, "max_retries": 3, "backoff_s": 0.01, "max_backoff_s": 0.05, **kw}
    return OpenAIEndpointConfig(base_url=server.base_url, model="fake-tutor", api_key_env="PR1_TEST_NO_KEY",
                                **kw)


def speaker(request: dict) -> str:
    return "student" if "role-playing a student" in request["messages"][0]["content"] else "teacher"


def role_responder(request: dict) -> str:
    """Names the role whose system prompt it was sent, so each turn can be traced to its prompt."""
    return f"{speaker(request)} reply {len(request['messages'])}"


def check_shape(d: Dialogue, task: DialogueTask) -> None:
    assert d.n_turns == task.target_turns
    assert [t.role for t in d.turns] == [("student", "teacher")[i % 2] for i in range(task.target_turns)]
    assert d.turns[0].content == context_for(task).card.opening
    assert all(t.content.strip() for t in d.turns)
    assert (d.backend, d.model, d.behaviours) == ("openai", "fake-tutor", [])


async def run_sequentially(backend: OpenAIBackend, server: FakeOpenAIServer, tasks: list[DialogueTask]):
    out = []
    for task in tasks:
        first = len(server.requests)
        dialogue = await simulate_dialogue(backend, task)
        out.append((task, dialogue, server.requests[first:]))
    return out


def test_dialogues_alternate_and_each_role_sees_its_own_side():
    tasks = discovery_plan(10, include_special=True, seed=7)[:6]
    assert {t.profile_kind for t in tasks} - {"standard"}  # some trait-heavy students are covered
    with FakeOpenAIServer(responder=role_responder) as server:
        async def main():
            backend = OpenAIBackend(endpoint(server), seed=1)
            try:
                return await run_sequentially(backend, server, tasks)
            finally:
                await backend.close()

        for task, d, requests in asyncio.run(main()):
            check_shape(d, task)
            assert len(requests) == task.target_turns - 1  # the opening line costs no call
            ctx = context_for(task)
            persona, card = ctx.persona, ctx.card
            for i, request in enumerate(requests, start=1):
                role = d.turns[i].role
                assert speaker(request) == role and d.turns[i].content.startswith(f"{role} reply")
                assert request["model"] == "fake-tutor" and request["temperature"] == 0.8
                system, *rest = request["messages"]
                assert system["role"] == "system"
                if role == "student":
                    for part in (persona.name, str(persona.age), persona.level, persona.background,
                                 persona.voice, persona.struggles, card.topic, card.opening,
                                 card.misconception, *(TRAIT_NOTES[t] for t in persona.traits)):
                        assert part in system["content"]
                    assert rest[0] == {"role": "user", "content": STUDENT_KICKOFF}
                    rest = rest[1:]
                else:
                    assert card.topic in system["content"] and card.goal in system["content"]
                    for hidden in (persona.name, persona.background, persona.struggles, persona.voice,
                                   *TRAIT_NOTES.values()):
                        assert hidden not in system["content"]
                assert rest == [{"role": "assistant" if t.role == role else "user", "content": t.content}
                                for t in d.turns[:i]]


def test_speaker_labels_are_stripped_but_content_is_kept():
    task = DialogueTask(iteration=0, dialogue_id="d-label", card_id="recursion-factorial",
                        profile_kind="standard", target_turns=4, seed=5)
    name = context_for(task).persona.name

    def labelled(request: dict) -> str:
        if speaker(request) == "teacher":
            return "**Tutor:** Let's trace factorial(3) together."
        return f"{name}: Note: I'm lost."

    with FakeOpenAIServer(responder=labelled) as server:
        async def main():
            backend = OpenAIBackend(endpoint(server))
            try:
                return await simulate_dialogue(backend, task)
            finally:
                await backend.close()

        d = asyncio.run(main())
    assert [t.content for t in d.turns[1:]] == [
        "Let's trace factorial(3) together.", "Note: I'm lost.", "Let's trace factorial(3) together."]


@pytest.mark.parametrize("max_retries", [3, 0])
def test_injected_failures_end_in_a_dialogue_or_an_endpoint_error(max_retries):
    tasks = discovery_plan(16, include_special=True, seed=3)
    with FakeOpenAIServer(failure_rate=0.15, timeout_rate=0.05, latency_s=0.01, seed=11) as server:
        async def main():
            backend = OpenAIBackend(endpoint(server, max_retries=max_retries))
            try:
                async with asyncio.timeout(20):  # a hang fails the test instead of stalling it
                    results = await asyncio.gather(*(simulate_dialogue(backend, t) for t in tasks),
                                                   return_exceptions=True)
                return results, backend.client.retries
            finally:
                await backend.close()

        results, retries = asyncio.run(main())
    assert len(results) == len(tasks)
    done = [(t, r) for t, r in zip(tasks, results, strict=True) if isinstance(r, Dialogue)]
    errors = [r for r in results if not isinstance(r, Dialogue)]
    assert all(isinstance(e, EndpointError) for e in errors), errors
    for task, d in done:
        check_shape(d, task)
    assert server.n_requests == server.n_ok + server.n_failures + server.n_timeouts
    assert server.n_failures > 0 and server.n_timeouts > 0
    assert sum(d.n_turns - 1 for _, d in done) <= server.n_ok
    if max_retries:
        assert retries > 0 and len(done) >= 0.75 * len(tasks)
    else:
        assert retries == 0 and errors and done
