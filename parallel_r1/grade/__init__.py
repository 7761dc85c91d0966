"""Pedagogy grading: a deterministic heuristic rubric over generic text cues, an LLM judge, their
combination, and stock-phrase / pattern-density analysis. Pure domain: no Ray, no torch."""

from parallel_r1.grade.grade import CRITERIA, DESCRIPTIONS, DialogueItem, Grade, applicable_criteria
from parallel_r1.grade.judge import CombinedGrader, JudgeError, JudgeFailure, LLMJudgeGrader, parse_judge_reply
from parallel_r1.grade.patterns import (
    STOCK_PHRASES,
    PatternReport,
    opener,
    pattern_report,
    repeated_phrases,
    stock_phrase_density,
    stock_phrases,
)
from parallel_r1.grade.records import Grader, agrade_dialogues, build_grader, grade_dialogues, resolved_grade
from parallel_r1.grade.rubric import HeuristicRubricGrader, grade_dialogue, grade_turn

__all__ = [
    "CRITERIA", "DESCRIPTIONS", "STOCK_PHRASES", "CombinedGrader", "DialogueItem", "Grade", "Grader",
    "HeuristicRubricGrader", "JudgeError", "JudgeFailure", "LLMJudgeGrader", "PatternReport", "agrade_dialogues",
    "applicable_criteria", "build_grader", "grade_dialogue", "grade_dialogues", "grade_turn", "opener",
    "parse_judge_reply", "pattern_report", "repeated_phrases", "resolved_grade", "stock_phrase_density",
    "stock_phrases",
]
