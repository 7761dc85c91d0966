"""The Grade record every grader returns, the rubric's criteria, and how criteria weigh into a score."""

from __future__ import annotations

from dataclasses import dataclass, field

from parallel_r1.data import ScenarioCard, StudentProfileConfig

# What graders grade: a dialogue in the chat `messages` format, the student's profile, the scenario card.
DialogueItem = tuple[list[dict], StudentProfileConfig | None, ScenarioCard | None]

BASE_CRITERIA = (
    "guidance", "mistake_identification", "no_answer_reveal", "checks_understanding", "actionability", "coherence",
    "tone", "concision", "pattern_penalty",
)
PROFILE_CRITERIA = (
    "concrete_not_metaphor", "structured_steps", "stays_on_topic", "validation", "reflective_openness",
)
CRITERIA = BASE_CRITERIA + PROFILE_CRITERIA
ANSWER_DUMP_BELOW = 0.5  # no_answer_reveal under this: the reply gave the answer away

# What each criterion rewards; shared by the heuristic rubric's docs and the LLM judge's prompt.
DESCRIPTIONS = {
    "guidance": "offers correct, relevant guidance tied to what the student did (a hint, an explanation, a "
                "question that leads them on), not bare praise, a move to the next problem or the answer itself",
    "mistake_identification": "reacts rightly to the student's last attempt: notices what is wrong and points to "
                              "where (or confirms it when it is right)",
    "no_answer_reveal": "does not state the final answer before the student has produced it (1 = no reveal)",
    "checks_understanding": "asks the student to explain, predict or apply, not just 'does that make sense?'",
    "actionability": "leaves the student a clear, concrete next step on this problem (a question to answer, a "
                     "task to do), not a result to copy",
    "coherence": "stays on the card's topic and responds to what the student actually said",
    "tone": "encouraging and respectful; never dismissive, impatient or condescending",
    "concision": "length fits the student's message; no walls of text",
    "pattern_penalty": "free of stock phrases and clichés, and of phrases repeated verbatim (1 = none)",
    "concrete_not_metaphor": "for a student who rejects metaphors: literal, concrete explanation, no analogies",
    "structured_steps": "for a student with an executive-function gap: short numbered steps, one at a time",
    "stays_on_topic": "for a hyperfocused student: stays with their point of interest, no topic switches",
    "validation": "for a student hurt by a prior teacher: specific, genuine trust-building and reframing "
                  "of the label, without clichés",
    "reflective_openness": "for a koan-style question: open, reflective questions that let the student "
                           "arrive at the insight, no pat answer",
}

WEIGHTS = {
    # Mistake identification weighs half: whether an attempt was wrong is often unknown to the grader.
    "guidance": 1.5, "mistake_identification": 0.5, "no_answer_reveal": 1.5, "checks_understanding": 1.0,
    "actionability": 1.0, "coherence": 1.0, "tone": 1.0, "concision": 0.75, "pattern_penalty": 1.0,
    # The profile criteria are the specialist's niche: they weigh most where they apply.
    "concrete_not_metaphor": 2.0, "structured_steps": 2.0, "stays_on_topic": 2.0, "validation": 2.0,
    "reflective_openness": 2.0,
}
# Share of the score that comes from the weakest criterion, so one clear failure is not averaged away.
WEAKEST_LINK = 0.2


def applicable_criteria(profile: StudentProfileConfig | None, scenario: ScenarioCard | None) -> tuple[str, ...]:
    """The base criteria plus the profile- and card-specific ones that apply to this student."""
    profile = effective_profile(profile, scenario)
    extra = [
        name for name, on in (
            ("concrete_not_metaphor", profile.rejects_metaphor),
            ("structured_steps", profile.executive_function_gap),
            ("stays_on_topic", profile.hyperfocus_trait),
            ("validation", profile.bad_prior_teacher),
            ("reflective_openness", scenario is not None and scenario.question_type == "koan"),
        ) if on
    ]
    # A koan has no wrong attempt to catch: the student is led to an insight, not corrected.
    base = BASE_CRITERIA if scenario is None or scenario.question_type != "koan" else tuple(
        c for c in BASE_CRITERIA if c != "mistake_identification")
    return base + tuple(extra)


def effective_profile(profile: StudentProfileConfig | None, scenario: ScenarioCard | None) -> StudentProfileConfig:
    """The given profile; without one, the student a special card is written for, else standard."""
    if profile is not None:
        return profile
    if scenario is not None and scenario.special:
        return StudentProfileConfig.for_kind(scenario.special)
    return StudentProfileConfig()


def weighted_score(criteria: dict[str, float]) -> float:
    """Weighted mean of the criteria blended with the weakest one; 0.0 for no criteria."""
    if not criteria:
        return 0.0
    total = sum(WEIGHTS.get(k, 1.0) for k in criteria)
    mean = sum(WEIGHTS.get(k, 1.0) * v for k, v in criteria.items()) / total
    return clamp((1 - WEAKEST_LINK) * mean + WEAKEST_LINK * min(criteria.values()))


def clamp(x: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo if x < lo else hi if x > hi else float(x)


@dataclass
class Grade:
    """A pedagogy grade: overall score, how sure the grader is, and the per-criterion scores."""

    score: float
    confidence: float
    criteria: dict[str, float]
    grader: str
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name, value in (("score", self.score), ("confidence", self.confidence), *self.criteria.items()):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"grade {name} must be in [0, 1], got {value!r}")
