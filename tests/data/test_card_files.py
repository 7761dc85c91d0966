"""Scenario card files: a good file joins the built-in cards and the discovery plan; every kind of bad file is a
one-line error naming the file and the field; `parallel-r1 cards` lists them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from parallel_r1.cli import app
from parallel_r1.config import load_config
from parallel_r1.data import get_card, scenarios
from parallel_r1.data.card_files import CardFileError, load_card_dir, use_card_dir
from parallel_r1.discover.procedural import ProceduralBackend
from parallel_r1.discover.simulator import simulate_dialogue
from parallel_r1.discover.stage import plan_for
from parallel_r1.errors import UserFacingError

REPO_CARDS = Path(__file__).resolve().parents[2] / "scenarios"
runner = CliRunner()

CARD = {
    "id": "trauma-test-card", "topic": "place value", "domain": "maths", "question_type": "original",
    "difficulty": "easy", "special": "bad_prior_teacher",
    "opening": "I was shouted at for getting place value wrong. What does the 4 in 340 mean?",
    "goal": "name the value of a digit from its place", "good_teaching": "calm, no pressure, the student leads",
    "answer": "the 4 is in the tens place, so it means 40", "steps": ["write 340 in a place-value table",
                                                                     "read the column of the 4", "multiply"],
    "metaphor": "it's like rooms in a house: ones, tens, hundreds", "check_question": "what does the 3 mean?",
    "misconception": "a digit means the same wherever it is",
}


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch):
    monkeypatch.setattr(scenarios, "_FROM_FILES", {})


def write(folder: Path, name: str, cards: list[dict] | str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(cards if isinstance(cards, str) else yaml.safe_dump({"cards": cards}))
    return path


def test_a_good_file_joins_the_cards_and_the_discovery_plan(tmp_path):
    write(tmp_path / "cards", "mine.yaml", [CARD])
    cfg = load_config(None, {"discover.n": 40, "discover.include_special": True,
                             "discover.card_dir": str(tmp_path / "cards")})
    plan = plan_for(cfg.discover)
    mine = [t for t in plan if t.card_id == "trauma-test-card"]
    assert mine and all(t.profile_kind == "bad_prior_teacher" for t in mine)
    assert get_card("trauma-test-card").steps[0] == "write 340 in a place-value table"

    async def run():
        return await simulate_dialogue(ProceduralBackend(seed=0), mine[0])

    dialogue = asyncio.run(run())
    assert dialogue.scenario_id == "trauma-test-card"
    assert "place value" in " ".join(t.content.lower() for t in dialogue.turns)
    # a special card from a file stays out of a plan without include_special
    ordinary = load_config(None, {"discover.n": 40, "discover.include_special": False,
                                  "discover.card_dir": str(tmp_path / "cards")})
    assert "trauma-test-card" not in {t.card_id for t in plan_for(ordinary.discover)}


def test_the_repository_cards_load_and_are_trauma_informed():
    cards = [card for card, _ in load_card_dir(REPO_CARDS)]
    trauma = [c for c in cards if c.id.startswith("trauma-")]
    assert len(trauma) >= 3 and sum(c.special == "bad_prior_teacher" for c in trauma) >= 3
    assert all(c.opening and len(c.steps) >= 3 for c in trauma)


@pytest.mark.parametrize(("cards", "message"), [
    ([{**CARD, "mood": "calm"}], "cards[0] (id 'trauma-test-card'): unknown field 'mood'"),
    ([{k: v for k, v in CARD.items() if k != "opening"}], "cards[0] (id 'trauma-test-card'): missing field 'opening'"),
    ([CARD, {**CARD, "topic": "other"}], "card id 'trauma-test-card' is already defined in"),
    ([{**CARD, "difficulty": "brutal"}], "field 'difficulty' is 'brutal'; expected one of easy, medium, hard"),
    ([{**CARD, "special": "standard"}], "field 'special' is 'standard'"),
    ([{**CARD, "steps": "one step"}], "field 'steps' must be a non-empty list of strings"),
    ([{**CARD, "id": "fractions-add"}], "card id 'fractions-add' is a built-in card's"),
    ("cards:\n  - id: x\n   topic: [unclosed\n", "not valid YAML at line"),
    ("- just a list\n", "expected a mapping with a `cards:` list"),
])
def test_bad_files_are_one_line_errors_naming_file_and_field(tmp_path, cards, message):
    path = write(tmp_path, "bad.yaml", cards)
    with pytest.raises(UserFacingError) as err:
        use_card_dir(tmp_path)
    text = str(err.value)
    assert str(path) in text and message in text and "\n" not in text, text


def test_an_id_in_two_files_is_an_error_naming_both(tmp_path):
    write(tmp_path, "a.yaml", [CARD])
    write(tmp_path, "b.yaml", [{**CARD, "topic": "other"}])
    with pytest.raises(CardFileError, match=r"b\.yaml: card id 'trauma-test-card' is already defined in .*a\.yaml"):
        use_card_dir(tmp_path)


def test_cards_command_lists_built_in_and_file_cards_and_rejects_a_bad_file(tmp_path):
    result = runner.invoke(app, ["cards", "--card-dir", str(REPO_CARDS)])
    assert result.exit_code == 0, result.output
    assert "fractions-add" in result.output and "trauma-returning-adult" in result.output
    assert "built-in" in result.output and "trauma-infor" in result.output  # the file, cut to the column
    write(tmp_path, "bad.yaml", [{**CARD, "mood": "calm"}])
    for args in (["cards", "--card-dir", str(tmp_path)], ["config", "--set", f"discover.card_dir={tmp_path}"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "unknown field 'mood'" in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
    result = runner.invoke(app, ["cards", "--card-dir", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "discover.card_dir: folder" in result.output
