"""The cue reader on fixed labelled examples (it would fail if the cues regressed), its hard negatives, context
cues from the teacher's turns, texting spellings, and its evidence."""

from __future__ import annotations

import subprocess
import sys

import pytest

from parallel_r1.profiles.cues import normalize, read_cues
from tests.profiles.examples import BPT, EF, EXAMPLES, HF, LONG_EXPLANATION, RM, profile_of


def test_cue_reader_reads_most_fixed_examples():
    exact = [set(read_cues(m).profile.traits) == set(profile_of(t).traits) for m, t in EXAMPLES]
    kinds = [read_cues(m).profile.kind == profile_of(t).kind for m, t in EXAMPLES]
    assert sum(exact) >= 24, f"{sum(exact)}/{len(EXAMPLES)} exact"
    assert sum(kinds) >= 25


@pytest.mark.parametrize("message, kind", [
    ("stop with the pizza slices", "rejects_metaphor"),
    ("can we not do the train thing", "rejects_metaphor"),
    ("pls no more examples like that", "rejects_metaphor"),
    ("wat do i do 1st", "executive_function_gap"),
    ("i keep losing my place, can u write the steps as a checklist", "executive_function_gap"),
    ("noooo dont move on yet, can we stay on this", "hyperfocus"),
    ("sry if this is a dumb question, my old teacher used to laugh at me", "bad_prior_teacher"),
    ("I'm autistic and I need the exact definition", "neurodivergent"),
])
def test_texting_and_indirect_signals(message, kind):
    assert read_cues(message).profile.kind == kind


@pytest.mark.parametrize("message", [
    "Can you give me an analogy for how voltage works?",
    "Is there a real-world example of exponential decay?",
    "What's the first step to solve 3x + 5 = 11?",
    "Sorry, I meant 3x not 2x.",
    "Why does my loop skip the first item?",
    "What order do the planets go in?",
    "My teacher said the exam is on chapters 3 to 5.",
    "What's the difference between a metaphor and a simile?",
])
def test_hard_negatives_are_standard(message):
    reading = read_cues(message)
    assert reading.profile.traits == [], reading.evidence


def test_a_short_reply_is_read_against_the_teacher_turn_before_it():
    after_long = [{"role": "assistant", "content": LONG_EXPLANATION}, {"role": "user", "content": "?"}]
    after_short = [{"role": "assistant", "content": "Try subtracting 5 first."}, {"role": "user", "content": "?"}]
    assert read_cues(after_long).profile.traits == ["neurodivergent", EF]
    assert read_cues(after_short).profile.traits == []
    assert read_cues(["?"]).profile.traits == []  # no teacher turn seen: no context


def test_refusing_the_teachers_picture_and_resisting_a_new_topic():
    picture = [{"role": "teacher", "content": "Imagine the electrons are cars on a motorway..."},
               {"role": "student", "content": "can we skip the cars"}]
    assert RM in read_cues(picture).profile.traits
    moving_on = [{"role": "assistant", "content": "Good, that covers triads. Let's move on to seventh chords."},
                 {"role": "user", "content": "not yet, I still want to try the inversions"}]
    assert HF in read_cues(moving_on).profile.traits


def test_apologies_in_several_messages_add_up():
    assert read_cues(["sorry"]).profile.traits == []
    assert read_cues(["sorry, I don't know", "sorry. is it 4?"]).profile.traits == [BPT]


def test_evidence_names_the_cue_the_phrase_and_the_message():
    messages = [{"role": "system", "content": "You are a tutor."}, {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "can we not do the train thing"}]
    reading = read_cues(messages)
    fired = [e for e in reading.evidence if e.trait == RM]
    assert fired and all(e.message == 3 and e.phrase for e in fired)
    assert reading.scores[RM] == pytest.approx(sum(e.weight for e in fired))
    assert {"trait", "cue", "phrase", "message", "weight"} <= set(fired[0].to_dict())


def test_normalize_expands_texting_spellings():
    assert normalize("wat do u do 1st pls, idk") == "what do you do first please, i don't know"
    assert normalize("Sooo   confused") == "so confused"
    assert HF in read_cues(["wait whyyy are we moving on"]).profile.traits


def test_unknown_role_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown message role 'robot'"):
        read_cues([{"role": "robot", "content": "hi"}])


def test_the_cue_reader_imports_neither_torch_nor_ray():
    code = ("import sys; import parallel_r1.profiles.cues, parallel_r1.profiles.reader; "
            "print(sorted(m for m in ('torch', 'ray', 'transformers', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
