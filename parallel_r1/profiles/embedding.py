"""The embedding reader: classifiers over MiniLM sentence embeddings of the student's messages, stacked with the cue
reader's scores, fitted on the hand-written `data/train.jsonl`.

Per target (the five flags, "neurodivergent" meaning any neurodivergent trait, and "neurodivergent_plain", such a
student with none of the three sub-traits), a logistic regression on the embeddings gives out-of-fold logits, and a
small logistic regression over (that logit, the five cue scores) learns how far to trust each. Fitting is
deterministic. The weights are cached as an .npz keyed by the digest of the training file, the cue table and the
feature version (written atomically), so a Serve replica loads them in milliseconds instead of refitting; one fitted
classifier is kept per process. torch, transformers and scikit-learn are imported only when needed.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import threading
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parallel_r1.data.io import atomic_write_bytes
from parallel_r1.data.profiles import NEURODIVERGENT_TRAITS, TRAITS, StudentProfileConfig
from parallel_r1.profiles.cues import Evidence, conversation_evidence, cue_table_digest, scores_from_evidence
from parallel_r1.profiles.labelled import load_labelled
from parallel_r1.profiles.messages import Turn, student_text

log = logging.getLogger(__name__)

TRAIN_FILE = Path(__file__).resolve().parent / "data" / "train.jsonl"
FEATURE_VERSION = "minilm-l6-mean-l2+cue-stack-v2"
EMBEDDING_C = 4.0  # inverse L2 strength of the embedding regressions (embeddings have unit norm)
STACK_C = 1.0
CUE_CLIP = (-3.0, 6.0)  # cue scores past these add nothing more
FOLDS = 5
BACKUP = 0.6  # "any neurodivergent trait" this likely, with none of them set: the likeliest one
SEED = 0
_LOCK = threading.Lock()
_LOADED: dict[str, FittedClassifier] = {}


def cache_dir() -> Path:
    """$PARALLEL_R1_CACHE_DIR, else $XDG_CACHE_HOME/parallel-r1, else ~/.cache/parallel-r1."""
    if env := os.environ.get("PARALLEL_R1_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "parallel-r1"


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def cue_features(scores: dict[str, float]) -> np.ndarray:
    """The cue score of each trait, clipped, in `TRAITS` order."""
    return np.clip(np.array([scores[t] for t in TRAITS], dtype=np.float64), *CUE_CLIP)


# What the classifier predicts: the five flags ("neurodivergent" is any neurodivergent trait), and a neurodivergent
# student with none of the three sub-traits (the "neurodivergent" kind itself).
TARGETS = (*TRAITS, "neurodivergent_plain")
SUB_KINDS = ("rejects_metaphor", "executive_function_gap", "hyperfocus_trait", "neurodivergent_plain")


def targets(labels: np.ndarray) -> np.ndarray:
    """[n, TARGETS] from [n, TRAITS] flags."""
    plain = labels[:, 0] * (labels[:, 2:].sum(1) == 0)
    return np.column_stack([labels, plain])


@dataclass(frozen=True)
class FittedClassifier:
    """Per target (rows in `TARGETS` order): a regression on the embedding, and a stacker over (its logit, the
    five cue scores). `source`: "fitted" or "cache" (where this object's weights came from)."""

    emb_coef: np.ndarray  # [targets, 384]
    emb_intercept: np.ndarray  # [targets]
    stack_coef: np.ndarray  # [targets, 1 + traits]
    stack_intercept: np.ndarray  # [targets]
    digest: str
    n_train: int
    source: str = "fitted"

    def embedding_logits(self, embeddings: np.ndarray) -> np.ndarray:
        return embeddings.astype(np.float64) @ self.emb_coef.T + self.emb_intercept

    def probabilities(self, embeddings: np.ndarray, cues: np.ndarray) -> np.ndarray:
        """P(target) per row: `embeddings` [n, 384], `cues` [n, traits] (clipped cue scores) -> [n, targets]."""
        logits = self.embedding_logits(embeddings)
        stacked = logits * self.stack_coef[:, 0] + cues @ self.stack_coef[:, 1:].T + self.stack_intercept
        return _sigmoid(stacked)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        meta = json.dumps({"digest": self.digest, "n_train": self.n_train, "targets": list(TARGETS)})
        np.savez(buf, emb_coef=self.emb_coef, emb_intercept=self.emb_intercept, stack_coef=self.stack_coef,
                 stack_intercept=self.stack_intercept, meta=np.array(meta))
        return buf.getvalue()

    @classmethod
    def from_file(cls, path: Path) -> FittedClassifier:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("targets") != list(TARGETS):
                raise ValueError(f"{path}: fitted for {meta.get('targets')}, not {list(TARGETS)}")
            return cls(z["emb_coef"], z["emb_intercept"], z["stack_coef"], z["stack_intercept"], meta["digest"],
                       int(meta["n_train"]), source="cache")


def decide(probs: np.ndarray, threshold: float = 0.5, backup: float = BACKUP) -> StudentProfileConfig:
    """The profile from one row of target probabilities: each flag at `threshold`; when no neurodivergent flag is
    set but "any neurodivergent trait" reaches `backup`, the likeliest of the neurodivergent kinds."""
    p = dict(zip(TARGETS, probs, strict=True))
    flags = {t: bool(p[t] >= threshold) for t in TRAITS if t != "neurodivergent"}
    flags["neurodivergent"] = bool(p["neurodivergent_plain"] >= threshold)
    if not any(flags[k] for k in ("neurodivergent", *NEURODIVERGENT_TRAITS)) and p["neurodivergent"] >= backup:
        best = max(SUB_KINDS, key=lambda k: p[k])
        flags["neurodivergent" if best == "neurodivergent_plain" else best] = True
    return StudentProfileConfig(**flags)


def training_digest(train_path: Path) -> str:
    """What the fitted weights depend on: the training file, the cue table and the feature version."""
    h = hashlib.sha256(Path(train_path).read_bytes())
    h.update(cue_table_digest().encode())
    h.update(FEATURE_VERSION.encode())
    return h.hexdigest()


def _fit(embeddings: np.ndarray, cues: np.ndarray, labels: np.ndarray, digest: str) -> FittedClassifier:
    """`labels`: [n, TRAITS] flags. Out-of-fold embedding logits train the stackers, so they learn how far the
    embedding regressions generalise, not how well they fit."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    wanted = targets(labels)
    n_targets = wanted.shape[1]
    emb_coef = np.zeros((n_targets, embeddings.shape[1]))
    emb_intercept, stack_intercept = np.zeros(n_targets), np.zeros(n_targets)
    stack_coef = np.zeros((n_targets, 1 + cues.shape[1]))
    for j in range(n_targets):
        y = wanted[:, j]
        oof = np.zeros(len(y))
        for train, held in StratifiedKFold(FOLDS, shuffle=True, random_state=SEED).split(embeddings, y):
            fold = LogisticRegression(C=EMBEDDING_C, max_iter=2000).fit(embeddings[train], y[train])
            oof[held] = fold.decision_function(embeddings[held])
        full = LogisticRegression(C=EMBEDDING_C, max_iter=2000).fit(embeddings, y)
        emb_coef[j], emb_intercept[j] = full.coef_[0], full.intercept_[0]
        stack = LogisticRegression(C=STACK_C, max_iter=2000).fit(np.column_stack([oof, cues]), y)
        stack_coef[j], stack_intercept[j] = stack.coef_[0], stack.intercept_[0]
    return FittedClassifier(emb_coef, emb_intercept, stack_coef, stack_intercept, digest, len(labels))


def fit_classifier(train_path: Path = TRAIN_FILE) -> FittedClassifier:
    """Fit on a labelled JSONL (the `evaluate` formats); deterministic for a given file."""
    from parallel_r1.data.embeddings import embed

    examples = load_labelled(train_path)
    texts = [student_text(e.turns) for e in examples]
    cues = np.stack([cue_features(scores_from_evidence(conversation_evidence(e.turns))) for e in examples])
    labels = np.array([[int(getattr(e.profile, t)) for t in TRAITS] for e in examples])
    return _fit(embed(texts).astype(np.float64), cues, labels, training_digest(train_path))


def load_classifier(train_path: Path = TRAIN_FILE, cache: Path | None = None, *,
                    reuse_loaded: bool = True) -> FittedClassifier:
    """The classifier for `train_path`: kept in this process, else read from the cache, else fitted and cached.
    Thread-safe; a cache folder that cannot be written only costs a refit next time."""
    digest = training_digest(train_path)
    with _LOCK:
        if reuse_loaded and digest in _LOADED:
            return _LOADED[digest]
        path = Path(cache or cache_dir()) / "profiles" / f"classifier-{digest[:24]}.npz"
        classifier = None
        if path.is_file():
            try:
                classifier = FittedClassifier.from_file(path)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
                log.warning("profile classifier cache %s unreadable (%s): refitting over it", path, type(e).__name__)
                classifier = None
        if classifier is None or classifier.digest != digest:
            classifier = fit_classifier(train_path)
            try:
                atomic_write_bytes(path, classifier.to_bytes())
            except OSError as e:
                log.info("profile classifier cache %s not written (%s): it is refitted next time", path, e)
        _LOADED[digest] = classifier
        return classifier


@dataclass(frozen=True)
class EmbeddingReading:
    """Per-target probabilities (the five flags, and "neurodivergent_plain"), the profile they give, and the
    evidence: the cues, and per trait set the message the classifier reads it from most strongly."""

    profile: StudentProfileConfig
    scores: dict[str, float]
    evidence: list[Evidence]


class EmbeddingReader:
    """Reads traits with the fitted classifier; create once per process (it holds the classifier; the MiniLM encoder
    is shared process-wide by `parallel_r1.data.embeddings`). Thread-safe."""

    def __init__(self, classifier: FittedClassifier | None = None, threshold: float = 0.5, backup: float = BACKUP):
        self.classifier = classifier or load_classifier()
        self.threshold = threshold
        self.backup = backup

    def warm(self) -> EmbeddingReader:
        """Load the sentence-embedding model now (a Serve replica does it at start, not on its first request)."""
        from parallel_r1.data.embeddings import embed

        embed(["warm up"])
        return self

    def read(self, turns: Sequence[Turn]) -> EmbeddingReading:
        from parallel_r1.data.embeddings import embed

        evidence = conversation_evidence(turns)
        cues = cue_features(scores_from_evidence(evidence))
        students = [t for t in turns if t.role == "student" and t.content.strip()]
        if not students:
            return EmbeddingReading(StudentProfileConfig(), dict.fromkeys(TARGETS, 0.0), evidence)
        texts = [student_text(turns)] + ([t.content for t in students] if len(students) > 1 else [])
        vectors = embed(texts).astype(np.float64)
        probs = self.classifier.probabilities(vectors[:1], cues[None, :])[0]
        scores = {t: round(float(p), 4) for t, p in zip(TARGETS, probs, strict=True)}
        profile = decide(probs, self.threshold, self.backup)
        per_message = self.classifier.embedding_logits(vectors[1:] if len(students) > 1 else vectors)
        implied = any(getattr(profile, t) for t in NEURODIVERGENT_TRAITS)
        for trait in profile.traits:
            if trait == "neurodivergent" and implied:
                continue  # set by a sub-trait, not read on its own
            j = TARGETS.index("neurodivergent_plain" if trait == "neurodivergent" else trait)
            best = students[int(np.argmax(per_message[:, j]))]
            evidence.append(Evidence(trait, "embedding classifier", best.content.strip()[:120], best.index,
                                     scores[TARGETS[j]]))
        return EmbeddingReading(profile, scores, evidence)
