"""Pure domain: student profiles, scenario cards, dialogue records and their IO (no Ray, no torch)."""

from parallel_r1.data.plan import DialogueTask, discovery_plan
from parallel_r1.data.profiles import (
    PROFILE_KINDS,
    TRAITS,
    PersonaSampler,
    StudentPersona,
    StudentProfileConfig,
)
from parallel_r1.data.scenarios import ALL_CARDS, ORDINARY_CARDS, SPECIAL_CARDS, ScenarioCard, cards, get_card
from parallel_r1.data.schema import (
    DIALOGUE_SCHEMA,
    Dialogue,
    Turn,
    length_bucket,
    read_dialogues,
    write_dialogues,
)

__all__ = [
    "ALL_CARDS", "DIALOGUE_SCHEMA", "ORDINARY_CARDS", "PROFILE_KINDS", "SPECIAL_CARDS", "TRAITS",
    "Dialogue", "DialogueTask", "PersonaSampler", "ScenarioCard", "StudentPersona", "StudentProfileConfig",
    "Turn", "cards", "discovery_plan", "get_card", "length_bucket", "read_dialogues",
    "write_dialogues",
]
