"""The Parallel-R1 format: the paper's tag layout, every malformed case with its reason, build -> parse round trips."""

from __future__ import annotations

import pytest

from parallel_r1.data import parallel_format as pf
from parallel_r1.data.parallel_format import ParallelBlock, format_block, format_reply, parse_reply, validate_reply

VALID = "<Parallel><Path>Ask what n is.</Path><Path>Trace it by hand.</Path></Parallel><Summary>Trace it.</Summary>"


def test_tag_constants_are_the_papers_and_unique():
    assert pf.SPECIAL_TOKENS == ("<Parallel>", "</Parallel>", "<Path>", "</Path>", "<Summary>", "</Summary>")
    assert format_block(["A", "B"], "C") == "<Parallel><Path>A</Path><Path>B</Path></Parallel><Summary>C</Summary>"


def test_valid_reply_parses_into_paths_summary_and_student_view():
    parsed = parse_reply(f"Good question. {VALID} Try it now.")
    assert parsed.valid and parsed.uses_parallel and parsed.reasons == []
    assert parsed.blocks == [ParallelBlock(["Ask what n is.", "Trace it by hand."], "Trace it.")]
    assert parsed.outside == ["Good question. ", " Try it now."]
    assert parsed.student_view() == "Good question.\nTrace it.\nTry it now."


def test_text_between_blocks_and_whitespace_before_summary_are_allowed():
    text = VALID + "\nThen:\n" + "<Parallel><Path>x</Path><Path>y</Path><Path>z</Path></Parallel>\n<Summary>s</Summary>"
    parsed = parse_reply(text)
    assert parsed.valid and len(parsed.blocks) == 2 and len(parsed.blocks[1].paths) == 3
    assert parsed.outside[1] == "\nThen:\n"


def test_plain_text_is_valid_but_not_parallel_and_validate_can_require_a_block():
    parsed = parse_reply("Just a normal reply.")
    assert parsed.valid and not parsed.uses_parallel and parsed.student_view() == "Just a normal reply."
    assert validate_reply("Just a normal reply.").reasons == [pf.NO_PARALLEL_BLOCK]
    assert validate_reply(VALID).valid


@pytest.mark.parametrize("text, reason", [
    ("<Parallel><Path>A</Path><Path>B", pf.UNCLOSED_TAG),
    ("<Parallel><Path>A</Path><Path>B</Path>", pf.UNCLOSED_TAG),
    ("<Parallel><Path>A<Path>B</Path></Parallel><Summary>C</Summary>", pf.UNCLOSED_TAG),
    ("<Parallel><Path>A</Path><Path>B</Path></Parallel><Summary>C", pf.UNCLOSED_TAG),
    ("<Parallel><Path>A<Parallel><Path>x</Path><Path>y</Path></Parallel></Path><Path>B</Path></Parallel>"
     "<Summary>C</Summary>", pf.NESTED_PARALLEL),
    ("<Parallel><Parallel><Path>A</Path><Path>B</Path></Parallel><Summary>C</Summary>", pf.NESTED_PARALLEL),
    ("<Parallel><Path>A</Path></Parallel><Summary>C</Summary>", pf.TOO_FEW_PATHS),
    ("<Parallel><Path>A</Path><Path>B</Path></Parallel>", pf.MISSING_SUMMARY),
    ("<Parallel><Path>A</Path><Path>B</Path></Parallel> so then <Summary>C</Summary>", pf.MISSING_SUMMARY),
    ("<Parallel><Path>A</Path><Path>  </Path></Parallel><Summary>C</Summary>", pf.EMPTY_PATH),
    ("<Parallel><Path>A</Path><Path>B</Path></Parallel><Summary> </Summary>", pf.EMPTY_SUMMARY),
    (VALID + "</Path>", pf.STRAY_CLOSING_TAG),
    ("</Parallel>" + VALID, pf.STRAY_CLOSING_TAG),
    ("<Path>A</Path>", pf.MISPLACED_TAG),
    ("<Summary>C</Summary>", pf.MISPLACED_TAG),
    ("<Parallel><Path>A</Path><Summary>C</Summary><Path>B</Path></Parallel><Summary>C</Summary>", pf.MISPLACED_TAG),
    ("<Parallel><Path>A</Path> chatter <Path>B</Path></Parallel><Summary>C</Summary>", pf.TEXT_OUTSIDE_PATH),
    (VALID * 4, pf.TOO_MANY_BLOCKS),
])
def test_malformed_reply_is_reported_with_its_reason(text, reason):
    parsed = parse_reply(text, max_blocks=3)
    assert not parsed.valid and not parsed.uses_parallel
    assert reason in parsed.reasons, parsed.issues
    assert all(i.message and 0 <= i.position <= len(text) for i in parsed.issues)
    assert len(parsed.outside) == len(parsed.blocks) + 1


def test_block_count_limit_is_configurable():
    assert parse_reply(VALID * 4, max_blocks=4).valid
    assert parse_reply(VALID * 2, max_blocks=1).reasons == [pf.TOO_MANY_BLOCKS]


def test_issues_point_at_their_block():
    parsed = parse_reply(VALID + " and " + "<Parallel><Path>A</Path></Parallel><Summary>C</Summary>")
    assert parsed.block_ok(0) and not parsed.block_ok(1)
    assert [i.block for i in parsed.issues] == [1]


@pytest.mark.parametrize("parts", [
    [ParallelBlock(["one", "two"], "pick one")],
    ["Hi Ana. ", ParallelBlock(["a\nwith lines", " b "], "sum"), " Middle. ",
     ParallelBlock(["x", "y", "z"], "s2"), " End."],
])
def test_build_then_parse_round_trips(parts):
    text = format_reply(parts)
    parsed = parse_reply(text)
    assert parsed.valid
    assert parsed.blocks == [p for p in parts if isinstance(p, ParallelBlock)]
    assert "".join(parsed.outside) == "".join(p for p in parts if isinstance(p, str))


@pytest.mark.parametrize("paths, summary", [(["only"], "s"), (["a", ""], "s"), (["a", "b"], " "),
                                            (["a", "<Path>b"], "s")])
def test_building_a_bad_block_is_a_programming_error(paths, summary):
    with pytest.raises(ValueError):
        format_block(paths, summary)


def test_student_view_of_malformed_text_still_strips_the_tags():
    view = pf.student_view("Hi <Parallel><Path>secret</Path></Parallel><Summary>shown</Summary>")
    assert view == "Hi\nshown" and "<" not in view
