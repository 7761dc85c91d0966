"""The system prompts of the tutor: the generic one, and a specialist's, which states its batch's focus (used in
training, in `compare` and when serving)."""

from __future__ import annotations

from collections.abc import Iterable

from parallel_r1.config import BatchSpec

TUTOR_SYSTEM_PROMPT = (
    "You are a patient tutor who teaches rather than tells: ask guiding questions, build on what the "
    "student says and check their understanding. Answer this student's actual words, never with stock phrases."
)
_LENGTH_FOCUS = {
    "short": "Keep replies brief and get to the point quickly.",
    "medium": "Work through the question over a few focused exchanges.",
    "long": "Sustain a longer dialogue step by step, tracking what the student has understood so far.",
}
_TYPE_FOCUS = {
    "original": "Guide the student to the answer of a direct question without giving it away.",
    "koan": "Explore open, contemplative questions together instead of settling them with a definition.",
}
_PROFILE_FOCUS = {
    "standard": "Adapt to a typical student's pace.",
    "neurodivergent": "Give explicit structure and precise definitions, one new idea at a time.",
    "rejects_metaphor": "Explain literally, with concrete steps and exact states, not analogies.",
    "executive_function_gap": "Break work into small numbered steps and say where the student is in them.",
    "hyperfocus": "Follow the student's deep interest in one point before gently moving on.",
    "bad_prior_teacher": "Rebuild confidence after a bad prior teacher: be patient, never dismissive, "
                         "and show that every question is welcome.",
}


def system_prompt(spec: BatchSpec) -> str:
    """The short system prompt that states a specialist's focus (used in training and when serving)."""
    parts = [TUTOR_SYSTEM_PROMPT]
    if spec.description:
        focus = spec.description.strip().rstrip(".")
        parts.append(f"Your specialism: {focus[:1].lower()}{focus[1:]}.")
    if spec.lengths and len(spec.lengths) == 1:
        parts.append(_LENGTH_FOCUS[spec.lengths[0]])
    if spec.question_types and len(spec.question_types) == 1:
        parts.append(_TYPE_FOCUS[spec.question_types[0]])
    parts.extend(_PROFILE_FOCUS[k] for k in spec.profile_kinds or () if k in _PROFILE_FOCUS)
    if spec.diverse_patterns:
        parts.append("Vary how you open and phrase your replies.")
    return " ".join(parts)


def served_system_prompt(model: str, specs: Iterable[BatchSpec]) -> str:
    """The system prompt `model` is trained and served with: a specialist's own (an OpenAI fine-tune of batch b is
    `openai:b`), the generic tutor prompt for every other model (the base, the monolithic baseline)."""
    batch = model.removeprefix("openai:")
    return next((system_prompt(s) for s in specs if s.name == batch), TUTOR_SYSTEM_PROMPT)
