"""Prompt fitting: the latest student-first messages that fit the budget, a cut student message when nothing
else fits, and a clear error when not even the system prompt leaves room."""

from __future__ import annotations

import pytest

from parallel_r1.compare.replies import Reply, ReplyCache, eval_system_prompt
from parallel_r1.config import load_config
from parallel_r1.data.context import fit_prompt
from parallel_r1.data.prompts import TUTOR_SYSTEM_PROMPT, system_prompt
from parallel_r1.errors import UserFacingError


def words(messages: list[dict]) -> int:
    return sum(len(m["content"].split()) for m in messages)


HISTORY = [{"role": "user", "content": "one two three"}, {"role": "assistant", "content": "four five"},
           {"role": "user", "content": "six seven eight nine"}]
SYSTEM = len(TUTOR_SYSTEM_PROMPT.split())


def test_everything_fits_then_the_oldest_turns_go_first():
    assert fit_prompt(HISTORY, words, 1000, TUTOR_SYSTEM_PROMPT)[1:] == HISTORY
    cut = fit_prompt(HISTORY, words, SYSTEM + 4, TUTOR_SYSTEM_PROMPT)
    assert cut[0]["role"] == "system" and cut[1:] == HISTORY[2:]


def test_a_too_long_last_message_is_cut_from_its_beginning():
    long = [{"role": "user", "content": " ".join(f"w{i}" for i in range(400))}]
    prompt = fit_prompt(long, words, SYSTEM + 50, TUTOR_SYSTEM_PROMPT)
    assert words(prompt) <= SYSTEM + 50 and long[0]["content"].endswith(prompt[1]["content"])
    assert prompt[1]["content"].endswith("w399")


def test_no_room_for_any_student_text_is_a_clear_error():
    with pytest.raises(UserFacingError, match="lower eval.max_tokens or raise inference.max_model_len"):
        fit_prompt(HISTORY, words, SYSTEM - 1, TUTOR_SYSTEM_PROMPT)


def test_reply_cache_returns_replies_only_for_the_same_key(tmp_path):
    cache = ReplyCache(tmp_path)
    replies = [Reply("openai:x", "d1@0", 0, "hello", 3, "stop")]
    cache.put("openai:x", {"k": 1}, replies)
    assert cache.get("openai:x", {"k": 1}) == replies
    assert cache.get("openai:x", {"k": 2}) is None and cache.get("other", {"k": 1}) is None


def test_served_prompts_a_specialist_and_its_openai_fine_tune_alike_and_the_others_generically():
    cfg = load_config()
    batches = cfg.batch.batches
    spec = batches[0]
    assert eval_system_prompt(spec.name, cfg.eval, batches) == system_prompt(spec) != TUTOR_SYSTEM_PROMPT
    assert eval_system_prompt(f"openai:{spec.name}", cfg.eval, batches) == system_prompt(spec)
    assert eval_system_prompt("base", cfg.eval, batches) == eval_system_prompt("monolithic", cfg.eval, batches) \
        == TUTOR_SYSTEM_PROMPT
    generic = cfg.eval.model_copy(update={"system_prompt": "generic"})
    assert eval_system_prompt(spec.name, generic, batches) == TUTOR_SYSTEM_PROMPT
