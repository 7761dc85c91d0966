"""A grader fitted on a team's own labelled replies: the heuristic rubric's criteria, a few cue counts and MiniLM
embeddings as features, one ridge regression per labelled criterion (see `fitted_linear`), which may borrow from the
other pedagogy labels.

Only the criteria the labels answer (via `labels.DIMENSIONS`) are predicted; every other criterion keeps the
rubric's value, and the score is `weighted_score` of them all. Fit and save it with
`parallel-r1 grader fit LABELLED.jsonl`; use it with `grade.grader: fitted`. The saved model is plain numbers:
`model.npz` (scaler and coefficients) and `model.json` (features, targets, training data, cross-validation).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import GroupKFold

from parallel_r1.data import ScenarioCard, StudentProfileConfig
from parallel_r1.data.embeddings import MODEL_PACKAGE
from parallel_r1.data.io import atomic_write_json, file_digest, folder_build
from parallel_r1.errors import UserFacingError
from parallel_r1.grade.fitted_features import Turn, extract, feature_names, turn
from parallel_r1.grade.fitted_linear import fit_linear, scaler
from parallel_r1.grade.grade import DialogueItem, Grade, weighted_score
from parallel_r1.grade.labels import DIMENSIONS, OVERALL_DIMENSIONS, LabelledReply
from parallel_r1.grade.rubric import HeuristicRubricGrader
from parallel_r1.grade.validate import ValidationReport, validate, write_report

MODEL_FILE = "model.npz"
META_FILE = "model.json"
FORMAT = 1
FIT_COMMAND = "`parallel-r1 grader fit LABELLED.jsonl`"
MIN_LABELLED = 3  # replies a criterion needs labels on before it is fitted
ARRAYS = ("mean", "scale", "coef", "intercept")


class FittedGraderError(UserFacingError):
    """A fitted grader that cannot be fitted or loaded: says which file and what to run."""


@dataclass(frozen=True)
class Target:
    """A criterion the labels answer: the human dimensions averaged into it, its penalty, its labelled replies, and
    the weight of the shared pedagogy labels in what it learnt."""

    criterion: str
    dimensions: tuple[str, ...]
    alpha: float
    n: int
    borrowed: float

    @classmethod
    def from_dict(cls, d: dict) -> Target:
        return cls(str(d["criterion"]), tuple(d["dimensions"]), float(d["alpha"]), int(d["n"]), float(d["borrowed"]))


@dataclass
class TrainingData:
    """Labelled replies with their features and the rubric's grade of each, computed once (one embedding call)."""

    replies: list[LabelledReply]
    X: np.ndarray
    grades: list[Grade]
    groups: np.ndarray


def prepare(replies: list[LabelledReply]) -> TrainingData:
    """The features of every labelled reply, each graded as one turn after its history."""
    X, grades = extract([Turn(r.history, r.response) for r in replies], HeuristicRubricGrader())
    return TrainingData(list(replies), X, grades, np.array([r.conversation_id for r in replies]))


def _data(replies: list[LabelledReply] | TrainingData) -> TrainingData:
    return replies if isinstance(replies, TrainingData) else prepare(replies)


def label_targets(replies: list[LabelledReply]) -> dict[str, tuple[str, ...]]:
    """Criterion -> the human dimensions present in the replies that it answers (in `DIMENSIONS` order)."""
    present = {name for r in replies for name in r.labels}
    out: dict[str, tuple[str, ...]] = {}
    for name, dim in DIMENSIONS.items():
        if name in present:
            out[dim.criterion] = (*out.get(dim.criterion, ()), name)
    return out


def _label(reply: LabelledReply, dimensions: tuple[str, ...]) -> float:
    values = [reply.labels[d] for d in dimensions if d in reply.labels]
    return float(np.mean(values)) if values else np.nan


class FittedGrader:
    """The rubric with its labelled criteria replaced by models fitted on human labels."""

    def __init__(self, *, features: list[str], mean: np.ndarray, scale: np.ndarray, targets: list[Target],
                 coef: np.ndarray, intercept: np.ndarray, training: dict | None = None) -> None:
        p, k = len(features), len(targets)
        shapes = {"mean": (mean.shape, (p,)), "scale": (scale.shape, (p,)), "coef": (coef.shape, (k, p)),
                  "intercept": (intercept.shape, (k,))}
        for key, (got, want) in shapes.items():
            if got != want:
                raise ValueError(f"{key} has shape {got}, expected {want}")
        arrays = (mean, scale, coef, intercept)
        if not all(np.isfinite(a).all() for a in arrays) or not (scale > 0).all():
            raise ValueError("non-finite coefficients or a non-positive scale")
        self.features, self.targets, self.training = list(features), list(targets), dict(training or {})
        self.mean, self.scale, self.coef, self.intercept = (np.asarray(a, dtype=np.float64) for a in arrays)
        self.rubric = HeuristicRubricGrader()
        self.digest = self._digest()
        self.name = f"fitted:{self.digest}"

    def _digest(self) -> str:
        h = hashlib.sha1(json.dumps({"features": self.features, "targets": [asdict(t) for t in self.targets]},
                                    sort_keys=True).encode())
        for a in (self.mean, self.scale, self.coef, self.intercept):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:12]

    @property
    def criteria(self) -> list[str]:
        return [t.criterion for t in self.targets]

    def predict(self, X: np.ndarray) -> np.ndarray:
        """One column per target criterion, in [0, 1]."""
        Z = (X - self.mean) / self.scale
        return np.clip(Z @ self.coef.T + self.intercept, 0.0, 1.0)

    def with_predictions(self, base: Grade, values: np.ndarray | None) -> Grade:
        """The rubric's grade with the target criteria set to `values` (kept when None) and the score redone."""
        criteria = dict(base.criteria)
        if values is not None:
            criteria.update({c: float(v) for c, v in zip(self.criteria, values, strict=True)})
        return Grade(score=weighted_score(criteria), confidence=base.confidence, criteria=criteria,
                     grader=self.name, notes=list(base.notes))

    def _grade(self, turns: list[Turn]) -> list[Grade]:
        X, grades = extract(turns, self.rubric)
        return [self.with_predictions(g, p) for g, p in zip(grades, self.predict(X), strict=True)]

    def grade_turn(self, history: list[dict], response: str, profile: StudentProfileConfig | None = None,
                   scenario: ScenarioCard | None = None) -> Grade:
        """Grade one teacher reply given the history before it (roles user/assistant or student/teacher)."""
        return self._grade([turn(history, response, profile, scenario)])[0]

    def grade_turns(self, pairs: list[tuple[list[dict], str]], profile: StudentProfileConfig | None = None,
                    scenario: ScenarioCard | None = None) -> list[Grade]:
        """Grade (history, reply) pairs, each reply as one turn after its history; one embedding call for all."""
        return self._grade([turn(h, r, profile, scenario) for h, r in pairs])

    def grade_dialogue(self, messages: list[dict], profile: StudentProfileConfig | None = None,
                       scenario: ScenarioCard | None = None) -> Grade:
        """Grade a dialogue: the rubric's grade, with each target criterion the mean over the teacher turns."""
        return self.grade_many([(messages, profile, scenario)])[0]

    def grade_many(self, items: list[DialogueItem]) -> list[Grade]:
        """Grade (messages, profile, scenario) items in order, embedding every teacher turn of them at once."""
        turns, owner = [], []
        for k, (messages, profile, scenario) in enumerate(items):
            chat = [m for m in messages if m.get("role") in ("user", "assistant")]
            for i, m in enumerate(chat):
                if m["role"] == "assistant":
                    turns.append(Turn(chat[:i], m["content"], profile, scenario))
                    owner.append(k)
        predictions, owner = self.predict(extract(turns, self.rubric)[0]), np.array(owner, dtype=int)
        return [self.with_predictions(self.rubric.grade_dialogue(*item),
                                      predictions[owner == k].mean(axis=0) if (owner == k).any() else None)
                for k, item in enumerate(items)]

    async def agrade_many(self, items: list[DialogueItem]) -> list[Grade]:
        """`grade_many` in a worker thread, so that embedding does not block the caller's event loop."""
        return await asyncio.to_thread(self.grade_many, items)

    async def aclose(self) -> None:
        """Nothing to release; graders share this interface."""

    def save(self, folder: Path, report: ValidationReport | None = None) -> Path:
        """Write model.npz, model.json (and the cross-validation report, if given) to a temporary folder beside
        `folder`, then rename it into place: a reader sees the old model or the new one, never a mix."""
        folder = Path(folder)
        with folder_build(folder) as tmp:
            np.savez(tmp / MODEL_FILE, mean=self.mean, scale=self.scale, coef=self.coef, intercept=self.intercept)
            atomic_write_json(tmp / META_FILE, {
                "format": FORMAT, "grader": self.name, "digest": self.digest, "rubric": self.rubric.name,
                "embedding_model": MODEL_PACKAGE, "features": self.features,
                "targets": [asdict(t) for t in self.targets], "training": self.training,
                "cross_validation": report.to_dict() if report is not None else None,
            })
            if report is not None:
                write_report(report, tmp)
        return folder


def _fit_rows(data: TrainingData, rows: np.ndarray, training: dict | None = None) -> FittedGrader | None:
    """A grader fitted on some rows of the data; None when no criterion has enough labels there."""
    names = feature_names()
    replies = [data.replies[i] for i in rows]
    X, groups = data.X[rows], data.groups[rows]
    mean, scale = scaler(X, names)
    Z = (X - mean) / scale
    targets, coefs, intercepts = [], [], []
    shared = np.array([_label(r, OVERALL_DIMENSIONS) for r in replies])
    for criterion, dimensions in label_targets(replies).items():
        y = np.array([_label(r, dimensions) for r in replies])
        keep = ~np.isnan(y)
        if keep.sum() < MIN_LABELLED:
            continue
        column = f"rubric:{criterion}"
        model = fit_linear(Z[keep], y[keep], np.where(np.isnan(shared), y, shared)[keep], groups[keep],
                           names.index(column) if column in names else None)
        targets.append(Target(criterion, dimensions, model.alpha, int(keep.sum()), model.borrowed))
        coefs.append(model.coef)
        intercepts.append(model.intercept)
    if not targets:
        return None
    return FittedGrader(features=names, mean=mean, scale=scale, targets=targets, coef=np.array(coefs),
                        intercept=np.array(intercepts), training=training)


def fit(replies: list[LabelledReply] | TrainingData, *, source: Path | None = None) -> FittedGrader:
    """A grader fitted on every labelled reply (`source`, the labelled file, is recorded with its digest)."""
    data = _data(replies)
    training = {"source": str(source) if source else None,
                "source_digest": file_digest(Path(source)) if source else None,
                "n_replies": len(data.replies), "n_conversations": len(np.unique(data.groups))}
    grader = _fit_rows(data, np.arange(len(data.replies)), training)
    if grader is None:
        raise FittedGraderError(f"no human dimension has labels on at least {MIN_LABELLED} replies: nothing to fit")
    return grader


def conversation_folds(groups: np.ndarray, folds: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) row indices of at most `folds` folds; the replies to one conversation share a fold."""
    n = len(np.unique(groups))
    if n < 2:
        raise FittedGraderError(f"cross-validation by conversation needs replies from at least 2 conversations, "
                                f"got {n}")
    splitter = GroupKFold(n_splits=min(folds, n), shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros((len(groups), 1)), groups=groups))


def cross_validate(replies: list[LabelledReply] | TrainingData, folds: int = 5, seed: int = 0, *,
                   source: str = "labelled replies") -> ValidationReport:
    """The agreement table of out-of-fold grades: each fold graded by a grader fitted on the other folds."""
    started = time.perf_counter()
    data = _data(replies)
    splits = conversation_folds(data.groups, folds, seed)
    grades: list[Grade | None] = [None] * len(data.replies)
    for train, test in splits:
        grader = _fit_rows(data, train)
        predictions = grader.predict(data.X[test]) if grader else [None] * len(test)
        for i, values in zip(test, predictions, strict=True):
            grades[i] = grader.with_predictions(data.grades[i], values) if grader else data.grades[i]
    return validate(data.replies, grades, grader="fitted", source=source, elapsed_s=time.perf_counter() - started,
                    method=f"cross-validated, {len(splits)} folds by conversation")


def load_fitted_grader(folder: Path) -> FittedGrader:
    """The grader saved in `folder`; a one-line `FittedGraderError` naming the file when it is missing or bad."""
    folder = Path(folder)
    meta_path, model_path = folder / META_FILE, folder / MODEL_FILE
    if not folder.is_dir():
        raise FittedGraderError(f"{folder}: no fitted grader there; run {FIT_COMMAND} first")
    for path in (meta_path, model_path):
        if not path.is_file():
            raise FittedGraderError(f"{path}: missing, the fitted grader is incomplete; run {FIT_COMMAND} again")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        features, digest, rubric = list(meta["features"]), str(meta["digest"]), str(meta["rubric"])
        targets = [Target.from_dict(t) for t in meta["targets"]]
        training = dict(meta.get("training") or {})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise FittedGraderError(f"{meta_path}: corrupt or incomplete ({_why(e)}); run {FIT_COMMAND} again") from None
    try:
        with np.load(model_path, allow_pickle=False) as z:
            arrays = {key: np.asarray(z[key], dtype=np.float64) for key in ARRAYS}
        grader = FittedGrader(features=features, targets=targets, training=training, **arrays)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise FittedGraderError(f"{model_path}: corrupt or incomplete ({_why(e)}); run {FIT_COMMAND} again") from None
    if grader.digest != digest:
        raise FittedGraderError(f"{model_path}: does not match {META_FILE} (digest {grader.digest}, expected "
                                f"{digest}); run {FIT_COMMAND} again")
    if rubric != grader.rubric.name or features != feature_names():
        raise FittedGraderError(f"{folder}: fitted on the features of {rubric}, which this version "
                                f"({grader.rubric.name}) computes differently; run {FIT_COMMAND} again")
    return grader


def _why(e: Exception) -> str:
    text = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    return " ".join(text.split())[:160]
