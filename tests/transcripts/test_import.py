"""`parallel-r1 import`: hand-written transcripts (JSONL and Parquet) checked row by row, bad rows refused (nothing
written) or listed with --skip-bad, profiles given or inferred by the configured reader, idempotent re-imports,
grading through the grade stage's machinery (resumed after a failing judge), and batch taking the result."""

from __future__ import annotations

import asyncio
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from parallel_r1.cli import app
from parallel_r1.config import OpenAIEndpointConfig, load_config
from parallel_r1.data import discovery_plan, read_dialogues, write_dialogues
from parallel_r1.data.io import read_jsonl
from parallel_r1.discover.procedural import ProceduralBackend
from parallel_r1.discover.simulator import simulate_dialogue
from parallel_r1.grade import grade_dialogues
from parallel_r1.grade.stage import GradeFailedError
from parallel_r1.transcripts.reader import TranscriptError
from parallel_r1.transcripts.stage import run_import
from tests.fakes.openai_server import FakeHTTPError, FakeOpenAIServer

TUTOR = "You are a patient maths tutor."
RM_OPENING = "stop with the pizza slices please, just show me how to add 1/4 and 2/3"


def chat(student: str, teacher: str, *more: str, system: bool = False) -> list[dict]:
    """A conversation: student, teacher, then `more` alternating student / teacher turns."""
    turns = [student, teacher, *more]
    msgs = [{"role": "user" if i % 2 == 0 else "assistant", "content": text} for i, text in enumerate(turns)]
    return [{"role": "system", "content": TUTOR}, *msgs] if system else msgs


ROWS = [
    {"messages": chat(RM_OPENING, "Sure. What is a common multiple of 4 and 3? List a few multiples of each.",
                      "12?", "Yes. Rewrite 1/4 with 12 on the bottom: what goes on top?", system=True),
     "topic": "fractions", "domain": "maths", "difficulty": "easy"},
    {"messages": chat("why does my while loop never stop", "Let's trace it. What is i after the first pass?",
                      "still 0", "So which line should change i? Point to it."),
     "traits": ["bad_prior_teacher"], "scenario_id": "loops-offbyone-x"},
    {"messages": chat("can we not do the train thing? what actually happens to the wave?",
                      "Fair enough: the particles move up and down while the energy moves along. Which way does "
                      "one particle move?"),
     "metadata": {"topic": "waves", "question_type": "original"}},
    {"messages": chat("How does factorial(n) stop calling itself?",
                      "Trace factorial(3) by hand: what does it call, and what does that call?"),
     "traits": [], "scenario_id": "recursion-factorial"},
]


def write_jsonl(path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def cfg_for(workdir, **overrides):
    return load_config(overrides={"workdir": str(workdir), "serve.profile_reader": "cues", **overrides})


def by_row(dialogues):
    return {d.iteration: d for d in dialogues}


def test_jsonl_rows_become_graded_dialogues_with_digest_ids_and_their_source(tmp_path):
    src = tmp_path / "transcripts.jsonl"
    write_jsonl(src, ROWS)
    result = run_import(cfg_for(tmp_path / "run"), src, show_progress=False)
    assert (result.rows, result.imported, result.already_present, result.rejected) == (4, 4, 0, 0)
    assert result.dropped_system == 1 and result.grader == "heuristic-rubric-v2" and result.graded == 4
    dialogues = by_row(read_dialogues(tmp_path / "run" / "dialogues.parquet"))
    assert set(dialogues) == {1, 2, 3, 4}
    for d in dialogues.values():
        assert d.backend == "import" and d.source == str(src.resolve()) and d.dialogue_id.startswith("imp-")
        assert d.score is not None and d.grader == "heuristic-rubric-v2" and d.stock_phrase_density is not None
        assert d.turns[0].role == "student" and {t.role for t in d.turns} == {"student", "teacher"}
    first = dialogues[1]
    assert [t.content for t in first.turns][:2] == [RM_OPENING, ROWS[0]["messages"][2]["content"]]  # system dropped
    assert (first.topic, first.domain, first.difficulty, first.question_type) == ("fractions", "maths", "easy",
                                                                                   "original")
    assert first.scenario_id == "fractions"  # no scenario id: the topic stands in for it
    assert dialogues[3].topic == "waves"  # read from the row's metadata object
    card = dialogues[4]  # a known card fills what the row left out, and the grader grades against it
    assert (card.topic, card.domain, card.difficulty) == ("recursion", "programming", "medium")
    assert len({d.dialogue_id for d in dialogues.values()}) == 4


def test_given_profiles_are_kept_and_missing_ones_inferred_by_the_configured_reader(tmp_path):
    src = tmp_path / "t.jsonl"
    write_jsonl(src, ROWS)
    result = run_import(cfg_for(tmp_path), src, show_progress=False)
    assert (result.given, result.inferred, result.reader) == (2, 2, "cues")
    d = by_row(read_dialogues(tmp_path / "dialogues.parquet"))
    assert d[1].profile_source == "inferred:cues" and d[1].traits == ["neurodivergent", "rejects_metaphor"]
    assert d[1].profile_kind == "rejects_metaphor"
    assert d[3].profile_source == "inferred:cues" and d[3].profile_kind == "rejects_metaphor"
    assert d[2].profile_source == "given" and d[2].traits == ["bad_prior_teacher"]
    assert d[4].profile_source == "given" and d[4].traits == [] and d[4].profile_kind == "standard"


def test_the_same_message_given_a_profile_is_not_read(tmp_path):
    """A row's own flags win over what the reader would infer (here it would read rejects_metaphor)."""
    src = tmp_path / "t.jsonl"
    write_jsonl(src, [{**ROWS[0], "profile": {"executive_function_gap": True, "hyperfocus_trait": False}}])
    run_import(cfg_for(tmp_path), src, show_progress=False)
    (d,) = read_dialogues(tmp_path / "dialogues.parquet")
    assert d.profile_source == "given" and d.traits == ["neurodivergent", "executive_function_gap"]


def test_the_llm_reader_reads_profiles_through_the_judge_endpoint(tmp_path):
    reply = {"neurodivergent": True, "bad_prior_teacher": False, "rejects_metaphor": False,
             "executive_function_gap": False, "hyperfocus_trait": True, "evidence": []}
    src = tmp_path / "t.jsonl"
    write_jsonl(src, ROWS[:1])
    with FakeOpenAIServer(lambda req: json.dumps(reply)) as server:
        cfg = cfg_for(tmp_path, **{"serve.profile_reader": "llm"})
        cfg.grade.judge = OpenAIEndpointConfig(base_url=server.base_url, model="fake", api_key_env="PR1_NO_KEY",
                                               timeout_s=5, max_retries=0)
        result = run_import(cfg, src, show_progress=False)
        assert server.n_requests == 1
    (d,) = read_dialogues(tmp_path / "dialogues.parquet")
    assert result.reader == "llm" and d.profile_source == "inferred:llm" and d.profile_kind == "hyperfocus"


def test_importing_again_adds_nothing_and_a_second_file_only_its_new_conversations(tmp_path):
    src = tmp_path / "t.jsonl"
    write_jsonl(src, ROWS)
    cfg = cfg_for(tmp_path)
    run_import(cfg, src, show_progress=False)
    before = sorted((d.dialogue_id, d.score) for d in read_dialogues(tmp_path / "dialogues.parquet"))
    again = run_import(cfg, src, show_progress=False)
    assert (again.imported, again.already_present, again.graded) == (0, 4, 0)
    assert sorted((d.dialogue_id, d.score) for d in read_dialogues(tmp_path / "dialogues.parquet")) == before
    other = tmp_path / "other.parquet"  # one conversation seen before (same turns, other metadata), one new, twice
    new = {"messages": chat("what is a prime number", "Which numbers divide 7 exactly? Try them one by one.")}
    pq.write_table(pa.Table.from_pylist([{"messages": ROWS[1]["messages"]}, new, new]), other)
    third = run_import(cfg, other, show_progress=False)
    assert (third.rows, third.imported, third.already_present) == (3, 1, 2)
    assert len(read_dialogues(tmp_path / "dialogues.parquet")) == 5


def test_parquet_with_profile_struct_and_metadata_map_columns(tmp_path):
    rows = [{"messages": r["messages"], "profile": {"rejects_metaphor": i == 0, "bad_prior_teacher": None},
             "metadata": [("topic", f"topic {i}"), ("difficulty", "hard")]} for i, r in enumerate(ROWS[:2])]
    schema = pa.schema([
        ("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        ("profile", pa.struct([("rejects_metaphor", pa.bool_()), ("bad_prior_teacher", pa.bool_())])),
        ("metadata", pa.map_(pa.string(), pa.string())),
    ])
    src = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), src)
    result = run_import(cfg_for(tmp_path / "run"), src, show_progress=False)
    assert (result.imported, result.given) == (2, 2)
    d = by_row(read_dialogues(tmp_path / "run" / "dialogues.parquet"))
    assert d[1].profile_kind == "rejects_metaphor" and d[2].profile_kind == "standard"
    assert (d[1].topic, d[1].difficulty, d[2].topic) == ("topic 0", "hard", "topic 1")


def test_consecutive_messages_of_one_role_are_merged_into_one_turn(tmp_path):
    msgs = [{"role": "user", "content": "hi"}, {"role": "user", "content": "how do I add 1/4 and 2/3?"},
            {"role": "system", "content": "be brief"}, {"role": "user", "content": "please"},
            {"role": "assistant", "content": "What do 4 and 3 share as a multiple?"},
            {"role": "assistant", "content": [{"type": "text", "text": "Try listing a few."}]}]
    src = tmp_path / "t.jsonl"
    write_jsonl(src, [{"messages": msgs}])
    result = run_import(cfg_for(tmp_path), src, show_progress=False)
    (d,) = read_dialogues(tmp_path / "dialogues.parquet")
    assert [(t.role, t.content) for t in d.turns] == [
        ("student", "hi\n\nhow do I add 1/4 and 2/3?\n\nplease"),
        ("teacher", "What do 4 and 3 share as a multiple?\n\nTry listing a few.")]
    assert (result.merged, result.dropped_system) == (3, 1)


def test_long_messages_are_truncated_when_configured(tmp_path):
    long = "word " * 100
    src = tmp_path / "t.jsonl"
    write_jsonl(src, [{"messages": chat("how do I start?", long.strip())}])
    with pytest.raises(TranscriptError, match=r"row 1: messages\[1\]\.content: 499 characters, over "
                                              r"transcripts\.max_chars \(120\)"):
        run_import(cfg_for(tmp_path, **{"transcripts.max_chars": 120}), src, show_progress=False)
    cfg = cfg_for(tmp_path, **{"transcripts.max_chars": 120, "transcripts.too_long": "truncate"})
    assert run_import(cfg, src, show_progress=False).truncated == 1
    (d,) = read_dialogues(tmp_path / "dialogues.parquet")
    assert 100 <= len(d.turns[1].content) <= 120 and d.turns[1].content.endswith("word")


GOOD = chat("how do I add fractions?", "What do the denominators share?")
BAD_ROWS = [  # (row, field in the error, words of the reason)
    ({"messages": [GOOD[0], {"role": "bot", "content": "hello"}]}, "messages[1].role",
     "unknown role 'bot'; expected one of user, assistant"),
    ({"messages": [{"role": "user", "content": "   "}, GOOD[1]]}, "messages[0].content", "empty"),
    ({"messages": [GOOD[0], {"role": "assistant", "content": None}]}, "messages[1].content", "missing (null)"),
    ({"messages": [GOOD[0], {"role": "assistant", "content": [{"type": "image_url", "image_url": {}}]}]},
     "messages[1].content[0]", "only text parts"),
    ({"messages": [GOOD[0], "hello"]}, "messages[1]", "expected an object with role and content"),
    ({"messages": [GOOD[0], {"role": "user", "content": "anyone?"}]}, "messages", "no assistant (teacher) message"),
    ({"messages": [{"role": "system", "content": TUTOR}, GOOD[1]]}, "messages", "no user (student) message"),
    ({"messages": []}, "messages", "non-empty list"),
    ({"conversation": GOOD}, "messages", "missing"),
    ({"messages": GOOD, "traits": ["rejects_metaphor", "adhd"]}, "traits[1]",
     "unknown trait 'adhd'; expected one of neurodivergent, bad_prior_teacher, rejects_metaphor, "
     "executive_function_gap, hyperfocus_trait"),
    ({"messages": GOOD, "profile": {"visual_learner": True}}, "profile.visual_learner", "unknown trait"),
    ({"messages": GOOD, "profile": {"rejects_metaphor": "yes"}}, "profile.rejects_metaphor", "true or false"),
    ({"messages": GOOD, "traits": [], "profile": {}}, "traits", "both `traits` and `profile`"),
    ({"messages": GOOD, "question_type": "riddle"}, "question_type", "expected one of original, koan"),
    ({"messages": GOOD, "difficulty": "extreme"}, "difficulty", "expected one of easy, medium, hard"),
    ({"messages": GOOD, "topic": "a", "metadata": {"topic": "b"}}, "topic", "'a' on the row but 'b' in its metadata"),
    ({"messages": GOOD, "metadata": "fractions"}, "metadata", "expected an object"),
    ([GOOD], "row", "expected a JSON object"),
]


@pytest.mark.parametrize("bad, field, reason", BAD_ROWS, ids=[f for _, f, _ in BAD_ROWS])
def test_a_bad_row_names_file_row_and_field_and_nothing_is_written(tmp_path, bad, field, reason):
    src = tmp_path / "t.jsonl"
    write_jsonl(src, [{"messages": GOOD}, bad, {"messages": chat("what is 2/3 of 9?", "What is 9 / 3 first?")}])
    run = tmp_path / "run"
    with pytest.raises(TranscriptError) as err:
        run_import(cfg_for(run), src, show_progress=False)
    message = str(err.value)
    assert message.startswith(f"{src.resolve()} row 2: {field}: ") and reason in message and "\n" not in message
    assert "--skip-bad" in message
    assert not run.exists()


def test_line_that_is_not_json_is_a_bad_row_by_its_line_number(tmp_path):
    src = tmp_path / "t.jsonl"
    src.write_text(json.dumps({"messages": GOOD}) + "\n\n{\"messages\": [\n")
    with pytest.raises(TranscriptError, match=r"t\.jsonl row 3: row: not JSON"):
        run_import(cfg_for(tmp_path / "run"), src, show_progress=False)


def test_skip_bad_imports_the_rest_and_lists_each_bad_row_with_its_reason_and_raw_row(tmp_path):
    bad_rows = [b for b, _, _ in BAD_ROWS[:3]]
    src = tmp_path / "t.jsonl"
    write_jsonl(src, [ROWS[0], bad_rows[0], ROWS[1], bad_rows[1], bad_rows[2]])
    cfg = cfg_for(tmp_path)
    result = run_import(cfg, src, skip_bad=True, show_progress=False)
    assert (result.rows, result.imported, result.rejected) == (5, 2, 3)
    assert len(read_dialogues(tmp_path / "dialogues.parquet")) == 2
    rejects = read_jsonl(tmp_path / "import_rejects.jsonl")
    assert [(r["row"], r["field"]) for r in rejects] == [(2, "messages[1].role"), (4, "messages[0].content"),
                                                         (5, "messages[1].content")]
    assert rejects[0]["raw"] == bad_rows[0] and rejects[0]["source"] == str(src.resolve())
    assert "unknown role 'bot'" in rejects[0]["reason"]
    run_import(cfg, src, skip_bad=True, show_progress=False)  # a rerun replaces this file's rejects
    assert len(read_jsonl(tmp_path / "import_rejects.jsonl")) == 3
    write_jsonl(src, [ROWS[0], ROWS[1]])  # fixed: its stale rejects go
    run_import(cfg, src, show_progress=False)
    assert read_jsonl(tmp_path / "import_rejects.jsonl") == []


def test_files_that_cannot_be_read_are_one_line_errors(tmp_path):
    cfg = cfg_for(tmp_path / "run")
    with pytest.raises(TranscriptError, match="no such transcripts file"):
        run_import(cfg, tmp_path / "missing.jsonl", show_progress=False)
    (tmp_path / "t.csv").write_text("messages\n")
    with pytest.raises(TranscriptError, match="expected a JSONL"):
        run_import(cfg, tmp_path / "t.csv", show_progress=False)
    pq.write_table(pa.table({"chat": ["hi"]}), tmp_path / "t.parquet")
    with pytest.raises(TranscriptError, match="no `messages` column"):
        run_import(cfg, tmp_path / "t.parquet", show_progress=False)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(TranscriptError, match="no conversations"):
        run_import(cfg, tmp_path / "empty.jsonl", show_progress=False)
    assert not (tmp_path / "run").exists()


def test_existing_dialogues_are_kept_and_ungraded_imports_are_graded_by_the_next_import(tmp_path):
    """A judge that fails leaves the imported dialogues in place, ungraded and listed in grade_failures.jsonl; the
    next import of the file grades them (the discovered dialogue already there is untouched throughout)."""
    discovered = grade_dialogues([asyncio.run(simulate_dialogue(ProceduralBackend(seed=1), t))
                                  for t in discovery_plan(1, seed=3)])
    write_dialogues(tmp_path / "dialogues.parquet", discovered)
    src = tmp_path / "t.jsonl"
    write_jsonl(src, ROWS[:2])

    def down(request):
        raise FakeHTTPError(503, "judge is down")

    with FakeOpenAIServer(down) as server:
        cfg = cfg_for(tmp_path, **{"grade.grader": "llm"})
        cfg.grade.judge = OpenAIEndpointConfig(base_url=server.base_url, model="judge", api_key_env="PR1_NO_KEY",
                                               timeout_s=5, max_retries=0)
        with pytest.raises(GradeFailedError, match="2 dialogue\\(s\\) imported, but llm"):
            run_import(cfg, src, show_progress=False)
    on_disk = {d.dialogue_id: d for d in read_dialogues(tmp_path / "dialogues.parquet")}
    assert len(on_disk) == 3 and on_disk[discovered[0].dialogue_id].score == discovered[0].score
    imported = [d for d in on_disk.values() if d.backend == "import"]
    assert [d.score for d in imported] == [None, None]
    assert {f["dialogue_id"] for f in read_jsonl(tmp_path / "grade_failures.jsonl")} == {d.dialogue_id
                                                                                        for d in imported}
    again = run_import(cfg_for(tmp_path), src, show_progress=False)
    assert (again.imported, again.already_present, again.graded) == (0, 2, 2)
    on_disk = {d.dialogue_id: d for d in read_dialogues(tmp_path / "dialogues.parquet")}
    assert all(d.score is not None for d in on_disk.values())
    assert on_disk[discovered[0].dialogue_id].score == discovered[0].score


BATCH_CONFIG = """serve:
  profile_reader: cues
batch:
  quality_floor: 0.0
  batches:
    - name: imported_no_metaphors
      size: 2
      profile_kinds: [rejects_metaphor]
"""


def test_cli_import_then_batch_takes_the_imported_dialogues(tmp_path):
    src = tmp_path / "t.jsonl"
    write_jsonl(src, ROWS)
    config = tmp_path / "config.yaml"
    config.write_text(BATCH_CONFIG)
    run = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(app, ["import", str(src), "--config", str(config), "--workdir", str(run)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "rows read" in out and "already present" in out and "mean score" in out and "inferred" in out
    assert "rejects_metaphor" in out  # the by-profile table
    result = runner.invoke(app, ["batch", "--config", str(config), "--workdir", str(run)])
    assert result.exit_code == 0, result.output
    batch = read_dialogues(run / "batches" / "imported_no_metaphors.parquet")
    assert len(batch) == 2 and all(d.backend == "import" and d.profile_source == "inferred:cues" for d in batch)
    lines = (run / "batches" / "imported_no_metaphors.jsonl").read_text().splitlines()
    assert [m["role"] for m in json.loads(lines[0])["messages"]][:3] == ["system", "user", "assistant"]


def test_cli_bad_row_exits_2_with_one_line(tmp_path):
    src = tmp_path / "t.jsonl"
    write_jsonl(src, [ROWS[0], {"messages": GOOD, "traits": ["adhd"]}])
    result = CliRunner().invoke(app, ["import", str(src), "--workdir", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert "row 2: traits[0]: unknown trait 'adhd'" in result.output.replace("\n", "")
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()
