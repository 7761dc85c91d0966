"""Scenario cards from YAML files: the schema, its one-line errors, and joining them to the built-in cards.

A card file holds `cards:`, a list of mappings with the fields of `ScenarioCard` (all but `special` required);
a folder of them (`discover.card_dir`) is read in name order. Errors name the file, the card and the field.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import yaml

from parallel_r1.data.profiles import PROFILE_KINDS
from parallel_r1.data.scenarios import (
    ALL_CARDS,
    DIFFICULTIES,
    QUESTION_TYPES,
    ScenarioCard,
    card_source,
    register_cards,
)
from parallel_r1.errors import UserFacingError

FIELDS = tuple(f.name for f in fields(ScenarioCard))
REQUIRED = tuple(name for name in FIELDS if name != "special")
CHOICES = {"question_type": QUESTION_TYPES, "difficulty": DIFFICULTIES,
           "special": tuple(k for k in PROFILE_KINDS if k != "standard")}
CARD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class CardFileError(UserFacingError):
    """A card file that cannot be read as cards; the message names the file and the field."""


def _text(where: str, name: str, value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CardFileError(f"{where}: field {name!r} must be a non-empty string")
    if name in CHOICES and value not in CHOICES[name]:
        raise CardFileError(f"{where}: field {name!r} is {value!r}; expected one of {', '.join(CHOICES[name])}")
    return value.strip()


def _card(where: str, raw) -> ScenarioCard:
    if not isinstance(raw, dict):
        raise CardFileError(f"{where}: a card must be a mapping of its fields")
    if isinstance(raw.get("id"), str):
        where = f"{where} (id {raw['id']!r})"
    unknown = sorted(set(map(str, raw)) - set(FIELDS))
    if unknown:
        raise CardFileError(f"{where}: unknown field {unknown[0]!r}; the fields are {', '.join(FIELDS)}")
    missing = [name for name in REQUIRED if raw.get(name) is None]
    if missing:
        raise CardFileError(f"{where}: missing field {missing[0]!r}")
    steps = raw["steps"]
    if not isinstance(steps, list) or not steps:
        raise CardFileError(f"{where}: field 'steps' must be a non-empty list of strings")
    values = {name: _text(where, name, raw[name]) for name in REQUIRED if name != "steps"}
    if not CARD_ID.match(values["id"]):
        raise CardFileError(f"{where}: field 'id' may hold only letters, digits, '_', '-' and '.'")
    special = None if raw.get("special") is None else _text(where, "special", raw["special"])
    return ScenarioCard(**values, steps=tuple(_text(f"{where} steps", "steps", s) for s in steps), special=special)


def load_card_file(path: Path) -> tuple[ScenarioCard, ...]:
    """The cards of one file, each checked against the schema."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise CardFileError(f"{path}: not valid YAML{at}: {getattr(e, 'problem', None) or 'unreadable'}") from None
    if not isinstance(data, dict) or not isinstance(data.get("cards"), list):
        raise CardFileError(f"{path}: expected a mapping with a `cards:` list at the top level")
    extra = sorted(set(map(str, data)) - {"cards"})
    if extra:
        raise CardFileError(f"{path}: unknown top-level field {extra[0]!r}; a card file holds only `cards:`")
    return tuple(_card(f"{path}: cards[{i}]", raw) for i, raw in enumerate(data["cards"]))


def load_card_dir(folder: Path | str) -> tuple[tuple[ScenarioCard, Path], ...]:
    """Each card of every `*.yaml` file in a folder with its file, in file-name order; an id used twice is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CardFileError(f"discover.card_dir: folder {folder} not found")
    seen: dict[str, tuple[ScenarioCard, Path]] = {}
    for path in sorted(folder.glob("*.yaml")):
        for card in load_card_file(path):
            if card.id in seen:
                raise CardFileError(f"{path}: card id {card.id!r} is already defined in {seen[card.id][1]}")
            seen[card.id] = (card, path)
    return tuple(seen.values())


def use_card_dir(folder: Path | str | None) -> tuple[ScenarioCard, ...]:
    """Read a card folder and make its cards known to `get_card` in this process (None: no card files); returns
    them. An id that a built-in card holds is an error."""
    if folder is None:
        return ()
    found = load_card_dir(folder)
    for card, path in found:
        register_cards([card], str(path))
    return tuple(card for card, _ in found)


CARD_COLUMNS = ("id", "topic", "domain", "type", "difficulty", "written for", "source")


def card_rows(include_files: tuple[ScenarioCard, ...]) -> list[tuple[str, ...]]:
    """One row per card for `parallel-r1 cards`: the built-in cards, then those of card files (by file name)."""
    return [(c.id, c.topic, c.domain, c.question_type, c.difficulty, c.special or "any profile",
             Path(card_source(c.id)).name) for c in (*ALL_CARDS, *include_files)]
