"""OpenAIBackend through `simulate_dialogue` against the local fake OpenAI server: dialogue shape, the
prompts each role gets and sees, behaviour under injected 5xx / 429 / timeout failures, turns that break the
role-play rules (asked again with a note, or failing the dialogue with the reason), and requests trimmed to the
served context (also after a context-length refusal); and, through the discover stage, where such a failure is
recorded."""

from __future__ import annotations

import asyncio
import itertools
import math

import pytest

from parallel_r1.config import OpenAIEndpointConfig, RolePlayConfig
from parallel_r1.data import Dialogue, DialogueTask, discovery_plan
from parallel_r1.discover.chat_window import LEFT_OUT_NOTE, ContextTooSmall
from parallel_r1.discover.openai_backend import STUDENT_KICKOFF, TRAIT_NOTES, OpenAIBackend, student_prompt
from parallel_r1.discover.simulator import context_for, simulate_dialogue
from parallel_r1.discover.turn_checks import TurnRejected
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


def check_shape(d: Dialogue, task: DialogueTask, behaviours: list[str] | None = None) -> None:
    assert d.n_turns == task.target_turns
    assert [t.role for t in d.turns] == [("student", "teacher")[i % 2] for i in range(task.target_turns)]
    assert d.turns[0].content == context_for(task).card.opening
    assert all(t.content.strip() for t in d.turns)
    assert (d.backend, d.model, d.behaviours) == ("openai", "fake-tutor", behaviours or [])


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


def test_own_speaker_labels_are_stripped_but_content_is_kept():
    task = DialogueTask(iteration=0, dialogue_id="d-label", card_id="recursion-factorial",
                        profile_kind="standard", target_turns=4, seed=5)
    name = context_for(task).persona.name

    def labelled(request: dict) -> str:
        if speaker(request) == "teacher":
            return f"**Tutor:** Let's trace factorial({len(request['messages'])}) together."
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
        "Let's trace factorial(2) together.", "Note: I'm lost.", "Let's trace factorial(4) together."]
    assert d.behaviours == []


@pytest.mark.parametrize("max_retries", [3, 0])
def test_injected_failures_end_in_a_dialogue_or_an_endpoint_error(max_retries):
    tasks = discovery_plan(16, include_special=True, seed=3)
    with FakeOpenAIServer(role_responder, failure_rate=0.15, timeout_rate=0.05, latency_s=0.01, seed=11) as server:
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


def retried(request: dict) -> bool:
    return "was rejected because" in request["messages"][0]["content"]


def run_one(backend_kw: dict, task: DialogueTask, server: FakeOpenAIServer, **endpoint_kw) -> Dialogue:
    async def main():
        backend = OpenAIBackend(endpoint(server, **endpoint_kw), **backend_kw)
        try:
            return await simulate_dialogue(backend, task)
        finally:
            await backend.close()

    return asyncio.run(main())


TASK = DialogueTask(iteration=0, dialogue_id="d-rules", card_id="recursion-factorial", profile_kind="standard",
                    target_turns=4, seed=5)


@pytest.mark.parametrize(("role", "bad", "code", "found"), [
    ("student", "Great question! Recursion is when a function calls itself.", "tutor_voice", "sounds like the tutor"),
    ("student", "so it's 1?\nTutor: Exactly, well spotted.", "speaker_label", "speaker label ('Tutor:')"),
    ("teacher", "As an AI language model, I suggest tracing factorial(2).", "ai_talk", "being an AI"),
    ("teacher", "word " * 400, "too_long", "characters long"),
])
def test_a_turn_that_breaks_the_rules_is_asked_again_with_a_note(role, bad, code, found):
    def responder(request: dict) -> str:
        if speaker(request) == role and not retried(request):
            return bad
        return f"{speaker(request)} reply {len(request['messages'])}"

    with FakeOpenAIServer(responder) as server:
        d = run_one({}, TASK, server)
    bad_turns = [t for t in d.turns if t.role == role][1 if role == "student" else 0:]  # the opening is verbatim
    assert [t.role for t in d.turns] == ["student", "teacher", "student", "teacher"]
    assert all(t.content.startswith(f"{role} reply") for t in bad_turns)
    assert d.behaviours == [f"roleplay_retry:{role}:{code}"] * len(bad_turns)
    notes = [r["messages"][0]["content"] for r in server.requests if retried(r)]
    assert len(notes) == len(bad_turns) and all(found in n for n in notes)
    assert len(server.requests) == d.n_turns - 1 + len(bad_turns)


def test_a_reply_cut_at_max_tokens_is_asked_again_shorter():
    def responder(request: dict) -> str:
        if speaker(request) == "student" and not retried(request):
            return "so first I call it with n minus one and then I multiply and then " * 3
        return f"{speaker(request)} reply {len(request['messages'])}"

    with FakeOpenAIServer(responder, honour_max_tokens=True) as server:
        d = run_one({}, TASK, server, max_tokens=20)
    assert d.behaviours == ["roleplay_retry:student:cut_off"]
    assert "cut off at the token limit" in [r for r in server.requests if retried(r)][0]["messages"][0]["content"]


def test_a_turn_still_wrong_after_the_retries_fails_the_dialogue_with_its_reason():
    def responder(request: dict) -> str:
        if speaker(request) == "student":
            return f"Let me explain it to you, it is {len(server.requests)}."
        return f"teacher reply {len(request['messages'])}"

    with FakeOpenAIServer(responder) as server, pytest.raises(TurnRejected) as err:
        run_one({"roleplay": RolePlayConfig(max_retries=1)}, TASK, server)
    assert str(err.value).startswith("student turn 3: tutor_voice (it sounds like the tutor ('Let me explain')) "
                                     "after 1 retry; last reply: 'Let me explain")
    assert sum(speaker(r) == "student" for r in server.requests) == 2


def chars_tokens(text: str) -> int:
    """A tokenizer as dense as the estimate (three characters a token), without its per-message overhead."""
    return math.ceil(len(text) / 3)


CALLS = itertools.count()


def long_responder(request: dict) -> str:
    """Unique, chat-length replies (~300 characters) that pass the rules."""
    n = next(CALLS)
    return f"{speaker(request)} message {n}: " + " ".join(f"w{n % 10_000:04d}x{i:02d}" for i in range(50))


LONG_TASK = DialogueTask(iteration=0, dialogue_id="d-long", card_id="recursion-factorial", profile_kind="standard",
                         target_turns=12, seed=5)


def check_trimmed(request: dict, d: Dialogue, turn: int) -> bool:
    """Checks one request for turn `turn` of `d`: head kept, latest turns kept, roles alternate; True if trimmed."""
    role = d.turns[turn].role
    system, *rest = request["messages"]
    head = [{"role": "user", "content": STUDENT_KICKOFF}] if role == "student" else []
    full = head + [{"role": "assistant" if t.role == role else "user", "content": t.content} for t in d.turns[:turn]]
    keep = len(head) + 1
    assert rest[:keep] == full[:keep] and rest[keep:] == full[len(full) - len(rest) + keep:]
    roles = [m["role"] for m in rest]
    assert roles[-1] == "user" and all(a != b for a, b in zip(roles, roles[1:], strict=False))
    trimmed = len(rest) < len(full)
    assert system["content"].endswith(LEFT_OUT_NOTE) == trimmed
    return trimmed


def test_requests_are_trimmed_to_the_served_context_keeping_the_head_and_the_latest_turns():
    with FakeOpenAIServer(long_responder, max_model_len=1100, context_tokens=1100,
                          count_tokens=chars_tokens) as server:
        d = run_one({}, LONG_TASK, server)
    check_shape(d, LONG_TASK, behaviours=d.behaviours)
    assert server.n_rejected == 0  # the estimate kept every request inside the context: no refusal needed
    trimmed = [check_trimmed(r, d, i) for i, r in enumerate(server.requests, start=1)]
    assert sum(trimmed) >= 3 and d.behaviours == [f"context_trimmed:{sum(trimmed)}"]
    for r in server.requests:
        assert sum(chars_tokens(m["content"]) for m in r["messages"]) + r["max_tokens"] <= 1100
        assert r["max_tokens"] == 275  # a quarter of the context, below the configured 300


def test_a_context_length_refusal_is_learnt_from_and_the_turn_asked_again():
    ctx = context_for(LONG_TASK)
    student_system = len(student_prompt(ctx.persona, ctx.card))
    context = student_system // 2 + 1000  # at two characters a token: the student's prompt, a reply, a few turns
    with FakeOpenAIServer(long_responder, context_tokens=context, count_tokens=lambda t: len(t) // 2) as server:
        d = run_one({}, LONG_TASK, server)  # the context is unknown until the server names it in a refusal
    check_shape(d, LONG_TASK, behaviours=d.behaviours)
    assert server.n_rejected >= 1 and d.behaviours and d.behaviours[0].startswith("context_trimmed:")
    accepted = [r for r in server.requests
                if sum(len(m["content"]) // 2 for m in r["messages"]) + r["max_tokens"] <= context]
    assert len(accepted) == d.n_turns - 1 and len(server.requests) == len(accepted) + server.n_rejected


def test_a_context_too_small_for_the_role_prompt_fails_the_dialogue():
    with FakeOpenAIServer(long_responder) as server, pytest.raises(ContextTooSmall, match="llm_server.max_model_len"):
        run_one({}, TASK, server, context_tokens=256)
    assert [speaker(r) for r in server.requests] == ["teacher"]  # the student's request was never sent


@pytest.mark.slow
def test_discover_records_rule_failures_and_retries(ray_session, tmp_path):
    from parallel_r1.config import load_config
    from parallel_r1.data import read_dialogues
    from parallel_r1.data.io import read_jsonl
    from parallel_r1.discover.stage import run_discover

    plan = discovery_plan(4, seed=0)
    doomed = next(t for t in plan if t.target_turns >= 3)
    doomed_opening = context_for(doomed).card.opening

    def responder(request: dict) -> str:
        n = next(CALLS)
        if speaker(request) == "teacher":  # every tutor turn comes labelled once, then clean
            return f"teacher reply {n}" if retried(request) else f"Student: ok\nTutor: teacher reply {n}"
        if request["messages"][2]["content"] == doomed_opening:
            return f"Great question! Here it is: {n}"
        return f"student reply {n}"

    with FakeOpenAIServer(responder) as server:
        cfg = load_config(overrides={
            "workdir": str(tmp_path), "discover.n": 4, "discover.include_special": False, "discover.backend": "openai",
            "discover.num_actors": 1, "discover.dialogue_attempts": 1, "discover.roleplay.max_retries": 1,
            "discover.openai.base_url": server.base_url, "discover.openai.model": "fake-tutor",
            "discover.openai.api_key_env": "PR1_TEST_NO_KEY"})
        result = run_discover(cfg, show_progress=False)
    assert (result.completed, result.failed) == (3, 1)
    [failure] = read_jsonl(tmp_path / "discover_failures.jsonl")
    assert failure["dialogue_id"] == doomed.dialogue_id
    assert failure["error"].startswith("TurnRejected: student turn 3: tutor_voice (it sounds like the tutor")
    for d in read_dialogues(tmp_path / "dialogues.parquet"):
        teacher_turns = sum(t.role == "teacher" for t in d.turns)
        assert d.behaviours == ["roleplay_retry:teacher:speaker_label"] * teacher_turns
        assert all("Tutor:" not in t.content for t in d.turns)
