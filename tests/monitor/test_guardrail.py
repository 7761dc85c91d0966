"""The guardrail set: served replies that failed compliance are corrected, kept only when the rubric then finds
them compliant, added once each, and appended to the specialist's batch when it is fine-tuned."""

from __future__ import annotations

from typer.testing import CliRunner

from parallel_r1.cli import app
from parallel_r1.config import load_config
from parallel_r1.data.io import append_line, read_jsonl
from parallel_r1.grade import HeuristicRubricGrader
from parallel_r1.monitor.guardrail import NEXT_STEP, compliant, correct
from tests.support.batches import write_batches

HISTORY = [{"role": "assistant", "content": "What is 6 x 7? Try it with groups of six."},
           {"role": "user", "content": "is it 36? i added 6 six times i think"}]
DISMISSIVE = ("Come on, this is really easy, as I already told you. Count the groups of six again: how many "
              "groups did you add?")


def _log(workdir, reply, **flags):
    append_line(workdir / "serve" / "scores.jsonl", {
        "ts": 1.0, "specialist": "neurodivergent", "version": "neurodivergent@v1", "score": 0.4,
        "history": HISTORY, "reply": reply, **flags})


def test_a_dismissive_reply_keeps_its_guidance_and_loses_its_tone():
    grader = HeuristicRubricGrader()
    assert not compliant(HISTORY, DISMISSIVE, grader)
    fixed = correct(HISTORY, DISMISSIVE, grader)
    assert fixed == "Count the groups of six again: how many groups did you add?" and compliant(HISTORY, fixed, grader)


def test_a_reply_with_nothing_left_asks_for_the_next_step():
    fixed = correct(HISTORY, "Seriously? Pay attention.", HeuristicRubricGrader())
    assert fixed == NEXT_STEP


def test_guardrail_builds_the_set_once_and_finetune_trains_on_it_with_the_batch(tmp_path):
    write_batches(tmp_path, ["neurodivergent"], per_batch=3)
    _log(tmp_path, DISMISSIVE, dismissive=True)
    _log(tmp_path, "Good question, what do you get for 6 + 6?")  # compliant: not in the set
    append_line(tmp_path / "serve" / "scores.jsonl", {"ts": 2.0, "specialist": "neurodivergent", "score": 0.3,
                                                       "dismissive": True})  # logged without its conversation
    args = ["guardrail", "neurodivergent", "--workdir", str(tmp_path)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    rows = read_jsonl(tmp_path / "guardrail" / "neurodivergent.jsonl")
    assert len(rows) == 1
    messages = rows[0]["messages"]
    assert messages[0]["role"] == "system" and messages[1] == {**HISTORY[0], "weight": 0}
    assert messages[-1]["content"].startswith("Count the groups of six again")
    assert "not logged" in first.output and " 1 " in first.output
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and len(read_jsonl(tmp_path / "guardrail" / "neurodivergent.jsonl")) == 1

    from parallel_r1.finetune.stage import FinetuneStage

    stage = FinetuneStage(load_config(None, {"workdir": str(tmp_path), "finetune.batches": ["neurodivergent"]}))
    stage.setup()
    trained = read_jsonl(stage.files["neurodivergent"])
    assert len(trained) == 4 and trained[-1]["messages"] == messages  # the batch's 3, then the correction


def test_guardrail_of_an_unknown_specialist_is_a_one_line_error(tmp_path):
    out = CliRunner().invoke(app, ["guardrail", "nobody", "--workdir", str(tmp_path)])
    assert out.exit_code == 2 and "not a specialist batch" in out.output
    assert not (tmp_path / "guardrail").exists()
