"""Grading `Dialogue` records in place, and choosing the grader the configuration asks for."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from parallel_r1.config import GradeConfig, PipelineConfig
from parallel_r1.data import Dialogue, ScenarioCard, StudentProfileConfig, get_card
from parallel_r1.grade.grade import DialogueItem, Grade
from parallel_r1.grade.judge import CombinedGrader, JudgeFailure, LLMJudgeGrader
from parallel_r1.grade.patterns import stock_phrase_density
from parallel_r1.grade.rubric import HeuristicRubricGrader
from parallel_r1.paths import RunPaths


class Grader(Protocol):
    name: str

    def grade_dialogue(self, messages: list[dict], profile: StudentProfileConfig | None = None,
                       scenario: ScenarioCard | None = None) -> Grade: ...

    def grade_many(self, items: list[DialogueItem]) -> list[Grade]: ...

    def grade_turn(self, history: list[dict], response: str, profile: StudentProfileConfig | None = None,
                   scenario: ScenarioCard | None = None) -> Grade: ...

    def grade_turns(self, pairs: list[tuple[list[dict], str]]) -> list[Grade | JudgeFailure]: ...

    async def agrade_many(self, items: list[DialogueItem]) -> list[Grade]: ...

    async def aclose(self) -> None: ...


def build_grader(grade_cfg: GradeConfig, paths: RunPaths | None = None) -> Grader:
    """The grader named by `grade.grader`: heuristic (default), llm, combined, or fitted (its folder is
    `grade.fitted_path`, else the run directory's `grader/fitted`)."""
    if grade_cfg.grader == "heuristic":
        return HeuristicRubricGrader()
    if grade_cfg.grader == "fitted":
        from parallel_r1.grade.fitted import load_fitted_grader

        folder = grade_cfg.fitted_path or (paths or RunPaths("data")).fitted_grader
        return load_fitted_grader(Path(folder))
    judge = LLMJudgeGrader(grade_cfg.judge)
    if grade_cfg.grader == "llm":
        return judge
    return CombinedGrader(HeuristicRubricGrader(), judge, grade_cfg.llm_weight)


def resolved_grade(cfg: PipelineConfig) -> GradeConfig:
    """The grade section with the fitted grader's folder made absolute, for graders built in Ray workers."""
    if cfg.grade.grader != "fitted":
        return cfg.grade
    folder = Path(cfg.grade.fitted_path or RunPaths(cfg.workdir).fitted_grader).resolve()
    return cfg.grade.model_copy(update={"fitted_path": str(folder)})


def profile_of(dialogue: Dialogue) -> StudentProfileConfig:
    return StudentProfileConfig(**{t: True for t in dialogue.traits})


def scenario_of(dialogue: Dialogue) -> ScenarioCard | None:
    try:
        return get_card(dialogue.scenario_id)
    except KeyError:
        return None


def _items(dialogues: list[Dialogue]) -> list[DialogueItem]:
    return [(d.messages(), profile_of(d), scenario_of(d)) for d in dialogues]


def _apply(dialogues: list[Dialogue], grades: list[Grade]) -> list[Dialogue]:
    for d, g in zip(dialogues, grades, strict=True):
        d.score, d.confidence, d.criteria, d.grader = g.score, g.confidence, dict(g.criteria), g.grader
        d.stock_phrase_density = stock_phrase_density([t.content for t in d.turns if t.role == "teacher"])
    return dialogues


def grade_dialogues(dialogues: list[Dialogue], grader: Grader | None = None) -> list[Dialogue]:
    """Set score, confidence, criteria, grader and stock_phrase_density on each record; returns them.

    Not inside a running event loop when the grader is an LLM judge: await `agrade_dialogues` there.
    """
    grader = grader or HeuristicRubricGrader()
    return _apply(dialogues, grader.grade_many(_items(dialogues)))


async def agrade_dialogues(dialogues: list[Dialogue], grader: Grader | None = None) -> list[Dialogue]:
    """`grade_dialogues` for callers inside an event loop (a Ray async actor, a server)."""
    grader = grader or HeuristicRubricGrader()
    return _apply(dialogues, await grader.agrade_many(_items(dialogues)))
