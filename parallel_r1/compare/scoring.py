"""Grade every reply with the rubric, in the context it answered, and note the compliance signals the
promotion gate reads (dismissive or offensive tone, answer dumping, stock phrases). A reply in the Parallel-R1
format is graded by what the student sees (`student_view`: its summaries and the text between blocks)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from parallel_r1.compare.heldout import EvalItem
from parallel_r1.compare.replies import Reply
from parallel_r1.data import get_card
from parallel_r1.data.parallel_format import student_view
from parallel_r1.errors import UserFacingError
from parallel_r1.grade import Grade, HeuristicRubricGrader, stock_phrases
from parallel_r1.grade.cues import extract
from parallel_r1.grade.grade import ANSWER_DUMP_BELOW


@dataclass
class ScoredReply:
    model: str
    item_id: str
    sample: int
    slices: list[str]
    profile_kind: str
    scenario_id: str
    question_type: str
    score: float
    criteria: dict[str, float]
    stock_phrases: int
    dismissive: bool
    answer_dump: bool
    completion_tokens: int
    reply: str


def score_replies(items: list[EvalItem], replies: list[Reply], grader=None) -> list[ScoredReply]:
    """One ScoredReply per reply, graded by `grader` (default the rubric; an LLM judge grades them concurrently);
    the full (untruncated) history is the context it is graded in."""
    grader = grader or HeuristicRubricGrader()
    by_id = {i.item_id: i for i in items}
    calls = [(by_id[r.item_id].history, student_view(r.text), by_id[r.item_id].student,
              get_card(by_id[r.item_id].scenario_id)) for r in replies]
    out = []
    for r, (_, seen, _, card), grade in zip(replies, calls, _grade_all(grader, calls), strict=True):
        item = by_id[r.item_id]
        out.append(ScoredReply(
            model=r.model, item_id=r.item_id, sample=r.sample, slices=item.slices, profile_kind=item.profile_kind,
            scenario_id=item.scenario_id, question_type=item.question_type, score=grade.score,
            criteria=grade.criteria,
            stock_phrases=len(stock_phrases(seen)), dismissive=extract(seen).dismissive > 0,
            answer_dump=card.question_type == "original" and grade.criteria["no_answer_reveal"] < ANSWER_DUMP_BELOW,
            completion_tokens=r.completion_tokens, reply=r.text,
        ))
    return out


def _grade_all(grader, calls: list[tuple]) -> list[Grade]:
    """Every (history, reply, profile, card) graded; a grader that waits on an endpoint (the LLM judge) is asked
    for all of them at once, within its own concurrency bound. A reply it cannot grade fails the comparison."""
    if not hasattr(grader, "agrade_turn"):
        return [grader.grade_turn(*c) for c in calls]
    judge = getattr(grader, "judge", grader)

    async def every() -> list:
        return list(await asyncio.gather(*(grader.agrade_turn(*c) for c in calls), return_exceptions=True))

    grades = judge.run_sync(every())
    failed = [g for g in grades if isinstance(g, BaseException)]
    if failed:
        raise UserFacingError(f"compare: {grader.name} could not grade {len(failed)} of {len(grades)} replies "
                              f"(first: {failed[0]}); fix the judge endpoint or use another grade.grader")
    return grades
