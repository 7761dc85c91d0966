"""The role-play rules on their own: what each refuses, what a real student's message passes, and the labels a
model adds to its own turn."""

from __future__ import annotations

import pytest

from parallel_r1.config import RolePlayConfig
from parallel_r1.data import Turn
from parallel_r1.discover.turn_checks import TurnProblem, TurnRejected, check_turn, strip_own_label

RULES = RolePlayConfig(max_student_chars=200, max_teacher_chars=400)
HISTORY = [Turn("student", "why does factorial(0) return 1?"),
           Turn("teacher", "What would factorial(1) be if factorial(0) were 0?")]


def check(role: str, text: str, finish_reason: str = "stop", history=HISTORY) -> str | None:
    problem = check_turn(role, text, finish_reason=finish_reason, history=history, name="Amara", rules=RULES)
    return problem and problem.code


@pytest.mark.parametrize("text", [
    "hmm 0? so everything would be 0?",
    "ok wait, I'm lost. can you explain the base case again?",
    "Is the answer 1? I tried 1*0 first and got 0.",
    "ugh sorry I keep asking, my last teacher said this was obvious",
    "first I multiply by n, then I call it again with n-1?",
    "Note: I wrote it down like you said.",
    "That's right?? I don't get why though",
])
def test_ordinary_student_messages_pass(text):
    assert check("student", text) is None


@pytest.mark.parametrize(("role", "text", "code"), [
    ("student", "   ", "empty"),
    ("student", "x" * 201, "too_long"),
    ("teacher", "y" * 401, "too_long"),
    ("student", "I think it's 0.\nTutor: Not quite, look again.", "speaker_label"),
    ("student", "**Teacher:** Let's look at the base case.", "speaker_label"),
    ("teacher", "Good try!\nStudent: oh I see", "speaker_label"),
    ("teacher", "Amara: thanks!", "speaker_label"),
    ("student", "As an AI language model, I don't have homework.", "ai_talk"),
    ("teacher", "I'm an AI, but I can help you with recursion.", "ai_talk"),
    ("student", "(breaking character) this role-play is fun", "ai_talk"),
    ("student", "Great question! The base case stops the recursion.", "tutor_voice"),
    ("student", "Let me explain: factorial(0) is the empty product.", "tutor_voice"),
    ("student", "Well done, you've understood it.", "tutor_voice"),
    ("student", "Steps:\n1. call f(n-1)\n2. multiply by n\n3. stop at 0", "lecture"),
    ("student", "## Base case\nIt returns 1.", "lecture"),
    ("teacher", "What would factorial(1) be if factorial(0) were 0?", "repeat"),
    ("student", "Why does factorial(0) return 1", "repeat"),
])
def test_each_rule(role, text, code):
    assert check(role, text) == code


def test_a_reply_cut_at_the_token_limit_is_refused_whatever_its_length():
    assert check("student", "so the answer is", finish_reason="length") == "cut_off"


def test_the_tutor_may_teach_in_its_own_voice():
    lesson = "Great question! Let's break it down:\n1. the base case\n2. the recursive step\n3. the result"
    assert check("teacher", lesson) is None


def test_the_note_says_what_was_wrong_and_what_to_do():
    problem = check_turn("student", "Great question! It is 1.", finish_reason="stop", history=HISTORY, name="Amara",
                         rules=RULES)
    assert isinstance(problem, TurnProblem)
    assert problem.note().startswith("Your last attempt at this message was rejected because it sounds like the "
                                     "tutor ('Great question')")
    assert "You are Amara, the student" in problem.note()
    err = TurnRejected("student", 2, problem, 2, "Great question! It is 1.")
    assert str(err).startswith("student turn 3: tutor_voice (it sounds like the tutor ('Great question')) after 2 "
                               "retries")


@pytest.mark.parametrize(("role", "text", "kept"), [
    ("teacher", "**Tutor:** Let's trace it.", "Let's trace it."),
    ("teacher", "Teacher: ok", "ok"),
    ("student", "Amara: I'm lost", "I'm lost"),
    ("student", "[Student]: I'm lost", "I'm lost"),
    ("student", "Tutor: you are right", "Tutor: you are right"),  # the other side's label: refused later
    ("teacher", "Note: watch the base case", "Note: watch the base case"),
])
def test_own_leading_labels_are_stripped(role, text, kept):
    assert strip_own_label(role, text, "Amara") == kept
