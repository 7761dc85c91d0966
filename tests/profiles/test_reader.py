"""`read_profile` / `infer_profile` / `aread_profile`: methods, message shapes, the specialist picked, and the
rendering the CLI prints."""

from __future__ import annotations

import asyncio

import pytest
from rich.console import Console

from parallel_r1.config import ServeConfig
from parallel_r1.data.profiles import StudentProfileConfig
from parallel_r1.profiles import ProfileReading, aread_profile, format_reading, infer_profile, read_profile
from tests.profiles.examples import BPT, RM


def test_unknown_method_names_the_choices():
    with pytest.raises(ValueError, match="unknown profile reader method 'regex'; choose one of cues, embedding, llm"):
        read_profile(["hi"], method="regex")


def test_the_llm_method_needs_an_endpoint():
    with pytest.raises(ValueError, match="needs an endpoint"):
        read_profile(["hi"], method="llm")


@pytest.mark.parametrize("method", ["cues", "embedding"])
def test_each_local_method_reads_and_routes(method, embedding_reader):
    hurt = read_profile(["Sorry if this is obvious. My last teacher said I'm not a maths person."], method)
    assert isinstance(hurt, ProfileReading) and hurt.method == method
    assert hurt.traits == [BPT] and hurt.specialist == "prior_trauma_recovery"
    plain = read_profile("Why does my loop skip the first item?", method)
    assert plain.kind == "standard" and plain.specialist == ServeConfig().static_routes["standard"]
    picture = infer_profile(["No analogies please, what literally happens, line by line?"], method)
    assert isinstance(picture, StudentProfileConfig) and picture.kind == RM


def test_strings_are_student_messages_and_roles_are_kept(embedding_reader):
    as_strings = read_profile(["can we not do the train thing"], "cues")
    as_chat = read_profile([{"role": "system", "content": "Be kind."},
                            {"role": "user", "content": "can we not do the train thing"}], "cues")
    assert as_strings.traits == as_chat.traits == ["neurodivergent", RM]
    assert {e.message for e in as_chat.evidence} == {1}


def test_routes_can_be_given():
    reading = read_profile(["I keep losing track of the steps"], "cues", routes={"executive_function_gap": "ef"})
    assert reading.specialist == "ef"


def test_aread_profile_in_an_event_loop(embedding_reader):
    async def both():
        return await asyncio.gather(aread_profile(["stop with the pizza slices"], "cues"),
                                    aread_profile(["stop with the pizza slices"], "embedding"))

    cues, emb = asyncio.run(both())
    assert cues.kind == emb.kind == RM


def test_format_reading_shows_traits_specialist_and_evidence():
    messages = ["hello", "stop with the pizza slices please"]
    reading = read_profile(messages, "cues")
    console = Console(width=160, record=True)
    console.print(format_reading(reading, messages))
    text = console.export_text()
    assert "rejects_metaphor" in text and "neurodivergent" in text and "stop with the" in text
    assert "student messages" in text and "stop with the pizza slices please" in text
    assert reading.to_dict()["specialist"] == "neurodivergent"


def test_the_public_infer_profile_and_the_profile_command(embedding_reader):
    from typer.testing import CliRunner

    import parallel_r1
    from parallel_r1.cli import app

    message = "can we please not do the pizza slices again, just show me the numbers"
    assert parallel_r1.infer_profile([message]).rejects_metaphor
    result = CliRunner().invoke(app, ["profile", message])
    assert result.exit_code == 0 and "rejects_metaphor" in result.output and "neurodivergent" in result.output
    for bad in (["profile"], ["profile", "hi", "--method", "tarot"]):
        result = CliRunner().invoke(app, bad)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
