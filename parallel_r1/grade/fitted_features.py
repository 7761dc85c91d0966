"""The features the fitted grader reads from one tutor reply: the heuristic rubric's base criteria, a few cue
counts of the reply and of the student's last message, and MiniLM sentence embeddings of the reply, the student's
last message, the tutor's earlier turns (the problem being worked on) and the whole dialogue so far, with the
reply's cosine to each: does the reply address what the student wrote, and does it stay on the problem.

All replies of a batch are embedded in one call; the rubric's own grade of each reply comes back with its
features, since the fitted grader keeps the rubric's values for every criterion it has no labels for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from parallel_r1.data import ScenarioCard, StudentProfileConfig
from parallel_r1.data.embeddings import DIMENSION, embed
from parallel_r1.grade import cues as C
from parallel_r1.grade.grade import BASE_CRITERIA, Grade
from parallel_r1.grade.labels import chat_history
from parallel_r1.grade.rubric import HeuristicRubricGrader

# Counts of the reply's cues, each as log(1 + count).
CUE_FEATURES = ("n_words", "n_sentences", "questions", "ends_with_question", "strong_checks", "yes_no_checks",
                "imperatives", "next_steps", "declaratives", "encouraging", "specific_success", "concrete",
                "dismissive")
EMBEDDING_BLOCKS = ("response", "student", "problem", "dialogue")


@dataclass(frozen=True)
class Turn:
    """One tutor reply to grade: the history before it (chat roles), the reply, and whom it is for."""

    history: list[dict]
    response: str
    profile: StudentProfileConfig | None = None
    scenario: ScenarioCard | None = None

    @property
    def student_last(self) -> str:
        return next((m["content"] for m in reversed(self.history) if m["role"] == "user"), "")

    @property
    def problem(self) -> str:
        """The tutor's turns so far: the problem and how it has been taught."""
        return " ".join(m["content"] for m in self.history if m["role"] == "assistant")

    @property
    def dialogue(self) -> str:
        """Both sides' turns so far: the student's working as well as the tutor's questions."""
        return " ".join(m["content"] for m in self.history)


def turn(history: list[dict], response: str, profile: StudentProfileConfig | None = None,
         scenario: ScenarioCard | None = None) -> Turn:
    """A `Turn` whose history may use the roles teacher/student (or tutor) as well as assistant/user."""
    return Turn(chat_history(history), response, profile, scenario)


def feature_names() -> list[str]:
    """The columns of the feature matrix, in order; what a saved model is checked against when loaded."""
    return [*(f"rubric:{c}" for c in BASE_CRITERIA), *(f"cue:{c}" for c in CUE_FEATURES),
            "student:words", "student:has_number", "overlap:student", "cosine:response_student",
            "cosine:response_problem", "cosine:response_dialogue",
            *(f"embedding:{block}:{i}" for block in EMBEDDING_BLOCKS for i in range(DIMENSION))]


def _hand_features(grade: Grade, t: Turn) -> list[float]:
    cues = C.extract(t.response)
    student = t.student_last
    return [*(grade.criteria[c] for c in BASE_CRITERIA), *(math.log1p(float(getattr(cues, c))) for c in CUE_FEATURES),
            math.log1p(len(student.split())), float(any(ch.isdigit() for ch in student)),
            C.overlap(t.response, student) if student else 0.0]


def _embeddings(texts: list[str]) -> dict[str, np.ndarray]:
    """One row per distinct non-empty text, embedded in one call; the empty text maps to zeros."""
    distinct = sorted({t for t in texts if t.strip()})
    rows = embed(distinct) if distinct else np.zeros((0, DIMENSION), dtype=np.float32)
    table = dict(zip(distinct, rows, strict=True))
    zero = np.zeros(DIMENSION, dtype=np.float32)
    return {t: table.get(t, zero) for t in texts}


def extract(turns: list[Turn], rubric: HeuristicRubricGrader) -> tuple[np.ndarray, list[Grade]]:
    """The feature matrix of the turns (rows in order, columns as `feature_names`) and the rubric's grade of each."""
    if not turns:
        return np.zeros((0, len(feature_names()))), []
    grades = [rubric.grade_turn(t.history, t.response, t.profile, t.scenario) for t in turns]
    fields = ("response", "student_last", "problem", "dialogue")
    vectors = _embeddings([getattr(t, field) for t in turns for field in fields])
    response, *context = (np.stack([vectors[getattr(t, field)] for t in turns]).astype(np.float64)
                          for field in fields)
    cosines = [(response * other).sum(axis=1, keepdims=True) for other in context]
    hand = np.array([_hand_features(g, t) for g, t in zip(grades, turns, strict=True)], dtype=np.float64)
    return np.hstack([hand, *cosines, response, *context]), grades
