"""Student profiles (trait flags) and a seeded sampler of varied personas consistent with them."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from pydantic import BaseModel, ConfigDict, model_validator

NEURODIVERGENT_TRAITS = ("rejects_metaphor", "executive_function_gap", "hyperfocus_trait")
TRAITS = ("neurodivergent", "bad_prior_teacher", *NEURODIVERGENT_TRAITS)

# The six student kinds the product trains specialists for, by their primary trait.
PROFILE_KINDS = (
    "standard",
    "neurodivergent",
    "bad_prior_teacher",
    "rejects_metaphor",
    "executive_function_gap",
    "hyperfocus",
)


class StudentProfileConfig(BaseModel):
    """Trait flags of a simulated student; all False is the standard student."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    neurodivergent: bool = False
    bad_prior_teacher: bool = False
    rejects_metaphor: bool = False
    executive_function_gap: bool = False
    hyperfocus_trait: bool = False

    @model_validator(mode="after")
    def _neurodivergent_traits_imply_flag(self) -> StudentProfileConfig:
        if any(getattr(self, t) for t in NEURODIVERGENT_TRAITS) and not self.neurodivergent:
            object.__setattr__(self, "neurodivergent", True)
        return self

    @property
    def traits(self) -> list[str]:
        return [t for t in TRAITS if getattr(self, t)]

    @property
    def kind(self) -> str:
        """The primary trait, used to stratify batches and route students to specialists."""
        for flag, kind in (
            ("rejects_metaphor", "rejects_metaphor"),
            ("executive_function_gap", "executive_function_gap"),
            ("hyperfocus_trait", "hyperfocus"),
            ("bad_prior_teacher", "bad_prior_teacher"),
            ("neurodivergent", "neurodivergent"),
        ):
            if getattr(self, flag):
                return kind
        return "standard"

    @classmethod
    def for_kind(cls, kind: str) -> StudentProfileConfig:
        if kind not in PROFILE_KINDS:
            raise ValueError(f"unknown profile kind {kind!r}; expected one of {', '.join(PROFILE_KINDS)}")
        flag = {"hyperfocus": "hyperfocus_trait"}.get(kind, kind)
        return cls() if kind == "standard" else cls(**{flag: True})


@dataclass(frozen=True)
class StudentPersona:
    """A concrete simulated student: who they are, how they talk, what they struggle with."""

    name: str
    age: int
    level: str
    background: str
    voice: str
    struggles: str
    kind: str
    traits: tuple[str, ...]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["traits"] = list(self.traits)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> StudentPersona:
        return cls(**{**d, "traits": tuple(d.get("traits") or ())})

    @property
    def profile(self) -> StudentProfileConfig:
        return StudentProfileConfig(**{t: True for t in self.traits})


_NAMES = (
    "Amara", "Bilal", "Chen", "Dana", "Eitan", "Fatima", "Gus", "Hana", "Ivo", "Jada", "Kofi", "Lena",
    "Mateo", "Nia", "Oskar", "Priya", "Quinn", "Rosa", "Sami", "Tomasz", "Uma", "Vik", "Wren", "Yusuf",
    "Zoe", "Aiko", "Bram", "Carmen", "Dev", "Elif", "Farid", "Greta", "Hugo", "Imani", "Jonas", "Kira",
)
_LEVELS = (
    (14, "year 9 student"), (16, "high-school junior"), (17, "high-school senior"),
    (19, "first-year undergraduate"), (21, "second-year CS major"), (24, "bootcamp student"),
    (29, "career changer learning to code"), (35, "parent back in community college"),
    (42, "self-taught hobbyist"), (18, "apprentice on a coding course"),
)
_BACKGROUNDS = (
    "works evenings at a café and studies after shifts",
    "switched from a humanities degree",
    "is preparing for a resit exam next month",
    "learns mostly from videos and forum posts",
    "is the first in their family to study this subject",
    "has a part-time job in retail and limited study time",
    "moved schools recently and missed a term",
    "is strong in art and music, less so in exams",
    "tutors younger siblings and wants to explain it to them",
    "is building a small game as a side project",
)
_VOICES = {
    "standard": (
        "casual and direct, short messages", "polite, asks follow-up questions",
        "a bit rushed, wants to get to the point", "curious, thinks out loud",
    ),
    "neurodivergent": (
        "precise wording, asks for exact definitions", "jumps between ideas, long run-on messages",
        "literal-minded, notices inconsistencies", "talks in bursts, sometimes very short replies",
    ),
    "bad_prior_teacher": (
        "guarded, apologises for asking", "self-deprecating ('I'm just bad at this')",
        "tests whether the tutor will be patient", "quiet, gives minimal answers at first",
    ),
    "rejects_metaphor": (
        "blunt: 'just show me the actual steps'", "wants literal, line-by-line explanations",
        "gets irritated by analogies and asks for the real thing", "prefers code and numbers to stories",
    ),
    "executive_function_gap": (
        "loses track of where they are in long explanations", "asks 'wait, what do I do first?'",
        "understands the idea but freezes at the next step", "messages trail off mid-thought",
    ),
    "hyperfocus": (
        "deeply engaged, wants to go further into one detail", "resists changing topic",
        "asks many 'but why exactly' questions on one point", "enthusiastic, long detailed messages",
    ),
}
_STRUGGLES = {
    "standard": (
        "mixes up similar-looking definitions", "can follow examples but not start alone",
        "rushes and makes small slips", "unsure when to use which method",
    ),
    "neurodivergent": (
        "needs explicit structure to stay oriented", "overloaded by several new terms at once",
        "processes better with written, visual layouts", "needs time before answering",
    ),
    "bad_prior_teacher": (
        "was told they are 'not a maths person'", "was told it is impossible for visual learners",
        "was mocked for asking basic questions", "believes they will fail no matter what",
    ),
    "rejects_metaphor": (
        "analogies confuse the real mechanism for them", "wants to see exact state changes",
        "needs the literal definition before examples", "finds hand-wavy explanations untrustworthy",
    ),
    "executive_function_gap": (
        "cannot organise multi-step work without a checklist", "forgets intermediate results",
        "starts tasks but cannot decide the next step", "overwhelmed by walls of text",
    ),
    "hyperfocus": (
        "finds topic switches jarring and disengages", "wants to exhaust one idea before moving on",
        "loses motivation when interrupted", "follows tangents deep into one concept",
    ),
}


class PersonaSampler:
    """Seeded sampler of personas whose voice and struggles follow the profile's traits."""

    def __init__(self, seed: int = 0):
        self._rng = random.Random(seed)

    def sample(self, profile: StudentProfileConfig) -> StudentPersona:
        rng = self._rng
        kind = profile.kind
        age, level = rng.choice(_LEVELS)
        voice = rng.choice(_VOICES[kind])
        struggles = rng.choice(_STRUGGLES[kind])
        if profile.bad_prior_teacher and kind != "bad_prior_teacher":
            struggles += "; " + rng.choice(_STRUGGLES["bad_prior_teacher"])
        return StudentPersona(
            name=rng.choice(_NAMES),
            age=age,
            level=level,
            background=rng.choice(_BACKGROUNDS),
            voice=voice,
            struggles=struggles,
            kind=kind,
            traits=tuple(profile.traits),
        )
