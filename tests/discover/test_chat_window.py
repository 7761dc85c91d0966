"""Trimming one role's request to a token budget: what stays, what goes, and that the roles still alternate."""

from __future__ import annotations

import pytest

from parallel_r1.discover.chat_window import LEFT_OUT_NOTE, ContextTooSmall, fit_messages


def words(messages: list[dict]) -> int:
    return sum(len(m["content"].split()) for m in messages)


def request(head: list[str], turns: int) -> list[dict]:
    """system, the head's roles, then `turns` alternating messages that end with a user turn."""
    msgs = [{"role": "system", "content": "sys " * 10}]
    msgs += [{"role": r, "content": f"{r} head"} for r in head]
    first = "user" if (msgs[-1]["role"] != "user") else "assistant"
    other = {"user": "assistant", "assistant": "user"}
    role = first
    for i in range(turns):
        msgs.append({"role": role, "content": f"turn{i} " + "w " * 9})
        role = other[role]
    return msgs


@pytest.mark.parametrize(("head", "turns"), [(["user"], 6), (["user", "assistant"], 7), (["user"], 2),
                                             (["user", "assistant"], 1)])
@pytest.mark.parametrize("budget", [40, 60, 80, 10_000])
def test_the_head_and_the_latest_turns_stay_and_roles_alternate(head, turns, budget):
    msgs = request(head, turns)
    k = 1 + len(head)
    try:
        fitted, dropped = fit_messages(msgs, k, budget, words)
    except ContextTooSmall as e:  # only when the shortest request it may send is too long
        assert "prompt tokens" in str(e) and "llm_server.max_model_len" in str(e)
        tail = msgs[k:]
        most = max(range(0, len(tail), 2), default=0)
        noted = {**msgs[0], "content": msgs[0]["content"] + LEFT_OUT_NOTE}
        assert words([noted, *msgs[1:k], *tail[most:]]) > budget
        return
    assert words(fitted) <= budget
    assert fitted[1:k] == msgs[1:k] and fitted[-1] == msgs[-1]
    assert fitted[k:] == msgs[k + dropped:]
    assert dropped % 2 == 0
    roles = [m["role"] for m in fitted[1:]]
    assert all(a != b for a, b in zip(roles, roles[1:], strict=False))
    assert fitted[0]["content"].endswith(LEFT_OUT_NOTE) == (dropped > 0)
    if dropped:  # no fewer turns left out than needed
        assert words([fitted[0], *msgs[1:k], *msgs[k + dropped - 2:]]) > budget


def test_an_unknown_budget_keeps_everything():
    msgs = request(["user"], 9)
    assert fit_messages(msgs, 2, None, words) == (msgs, 0)
