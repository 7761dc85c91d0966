"""Scheduled evaluations: held-out prefixes sent to a running OpenAI-compatible app (a local fake server here)
for every served model, graded and logged like served traffic, so the monitor sees them."""

from __future__ import annotations

from typer.testing import CliRunner

from parallel_r1.cli import app
from parallel_r1.compare.heldout import EvalItem, write_heldout
from parallel_r1.monitor.log import read_score_log
from tests.fakes.openai_server import FakeHTTPError, FakeOpenAIServer
from tests.support.adapters import promote
from tests.support.ray_head import free_ports


def _item(i: int) -> EvalItem:
    return EvalItem(item_id=f"p{i}", dialogue_id=f"d{i}", scenario_id="s", profile={}, profile_kind="standard",
                    length_bucket="short", question_type="original", reference="",
                    history=[{"role": "assistant", "content": f"What is {i} x 7?"},
                             {"role": "user", "content": "is it 40?"}], slices=["all"])


def _responder(request: dict) -> str:
    if request["model"] == "koan":
        raise FakeHTTPError(500, "the model crashed")
    return "Come on, this is really easy, as I already told you. What do you get for 7 + 7?"


def test_probes_are_logged_for_each_served_model_and_fire_triggers(tmp_path):
    promote(tmp_path, "neuro", "ft:n", kind="openai")
    promote(tmp_path, "koan", "ft:k", kind="openai")
    write_heldout(tmp_path / "eval" / "heldout.json", [_item(i) for i in range(3)], 0)
    with FakeOpenAIServer(responder=_responder) as server:
        url = server.base_url.removesuffix("/v1")
        out = CliRunner().invoke(app, ["monitor", "--dry-run", "--workdir", str(tmp_path), "--set",
                                       f"monitor.probe_url={url}", "--set", "monitor.probe_prompts=2",
                                       "--set", "monitor.min_evaluations=2"])
        assert out.exit_code == 0, out.output
        assert len(server.requests) == 4 and {r["model"] for r in server.requests} == {"neuro", "koan"}
    evaluations = read_score_log(tmp_path / "serve" / "scores.jsonl").evaluations
    neuro = [e for e in evaluations if e.model == "neuro"]
    koan = [e for e in evaluations if e.model == "koan"]
    assert len(neuro) == 2 and all(e.dismissive and e.version == "neuro@v1" and e.history for e in neuro)
    assert len(koan) == 2 and all(e.error and e.version == "koan@v1" for e in koan)
    text = " ".join(out.output.split())
    assert "probed" in text and "neuro neuro@v1 → guardrail_sft" in text and "koan koan@v1 → rl" in text


def test_an_unreachable_app_is_a_one_line_error(tmp_path):
    promote(tmp_path, "neuro", "ft:n", kind="openai")
    write_heldout(tmp_path / "eval" / "heldout.json", [_item(1)], 0)
    out = CliRunner().invoke(app, ["monitor", "--dry-run", "--workdir", str(tmp_path), "--set",
                                   f"monitor.probe_url=http://127.0.0.1:{free_ports(1)[0]}"])
    assert out.exit_code == 2 and out.output.count("error:") == 1 and "unreachable" in out.output
    assert not (tmp_path / "serve" / "scores.jsonl").exists()
