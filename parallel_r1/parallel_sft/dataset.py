"""Cold-start Parallel-R1 training data from graded dialogues: at a teacher turn of a dialogue scoring at least the
threshold, the paths are genuinely different teaching moves for the same student turn, and the summary chooses
(or merges) them into the reply the student sees.

Where the alternatives come from is `path_source`. A procedural dialogue is replayed from its seeds up to the turn,
then the teacher's move is forced, one move per alternative (fast, and only possible for that backend). Every other
dialogue (a real LLM's, an imported transcript) gets replies sampled by a model for the dialogue so far
(`path_generators`: the policy on the inference engines, or an endpoint), a batch of turns per call; replies too short
to teach anything are dropped, and failed endpoint requests are recorded in the dataset, not raised. Every record
names its paths' source and model. Pure Python at import: engines and clients are imported when first used.
"""

from __future__ import annotations

import contextlib
import random
import re
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parallel_r1.data import Dialogue, DialogueTask, ScenarioCard, StudentProfileConfig, Turn
from parallel_r1.data.io import atomic_write_jsonl
from parallel_r1.data.parallel_format import (
    DEFAULT_MAX_BLOCKS,
    MIN_PATHS,
    format_block,
    overlap,
    parallel_instruction,
    words,
)
from parallel_r1.data.prompts import TUTOR_SYSTEM_PROMPT
from parallel_r1.discover.procedural import ProceduralBackend
from parallel_r1.discover.procedural_behaviours import GOOD_BEHAVIOURS
from parallel_r1.discover.simulator import context_for
from parallel_r1.errors import UserFacingError
from parallel_r1.grade import HeuristicRubricGrader
from parallel_r1.grade.records import profile_of, scenario_of
from parallel_r1.parallel_sft.path_generators import Generated, PathGenerator, path_generator

if TYPE_CHECKING:
    from parallel_r1.config import InferenceConfig, ParallelConfig, RayConfig
    from parallel_r1.parallel_sft.grounding import Grounder

ORIGINAL = "original"  # the move label of the teacher reply the dialogue actually has
SAMPLED = "sampled"  # the move label of a model-written alternative (its moves are not known)
REPLAY, PROCEDURAL = "replay", "procedural"
PATH_SOURCES = ("auto", REPLAY, "policy", "endpoint")
_SENTENCE = re.compile(r"(?<=[.?!])\s+")


class TooFewDialoguesError(UserFacingError):
    """Fewer dialogues than required score at least the threshold; the message says which threshold would do."""


def _drive(coro: Coroutine) -> Any:
    """Run a coroutine that never waits (the procedural session's `reply`), without an event loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("the procedural session awaited something; it is expected to reply synchronously")


@dataclass
class Candidate:
    """One possible reply at the turn: its text, the teacher moves behind it, its rubric grade."""

    text: str
    moves: list[str]
    grade: float


@dataclass
class ParallelRecord:
    """One training example: a teacher turn rewritten as a parallel block plus its summary."""

    dialogue_id: str
    turn_index: int  # index of the teacher turn in the dialogue's turns
    scenario_id: str
    profile_kind: str
    difficulty: str
    paths: list[str]
    path_moves: list[list[str]]
    path_grades: list[float]
    path_context: list[list[str]]  # knowledge-base passages per path (parallel_sft/grounding.py); empty ungrounded
    summary: str
    summary_mode: str  # "choose" | "merge"
    chosen_path: int  # the path the summary is (or starts from)
    summary_grade: float
    target: str  # the formatted assistant reply
    path_source: str  # who wrote the alternatives: "replay" | "policy" | "endpoint"
    path_model: str  # the model behind them ("procedural" for a replay)
    messages: list[dict] = field(default_factory=list)  # system, the dialogue so far, the assistant target
    grounding: list[dict] = field(default_factory=list)  # the passages used: {"digest", "source", "title", "score"}

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ParallelDataset:
    """The records built, and every teacher turn that gave none, with why (nothing is dropped silently)."""

    records: list[ParallelRecord]
    skipped: list[dict]  # {"dialogue_id", "turn_index", "reason"}
    eligible_dialogues: int
    failures: list[dict] = field(default_factory=list)  # {"dialogue_id", "turn_index", "error"}: failed requests

    def write_jsonl(self, path: Path) -> Path:
        """The records as JSONL (one record per line, `messages` included), written atomically."""
        return atomic_write_jsonl(path, (r.to_dict() for r in self.records))


def threshold_summary(dialogues: Sequence[Dialogue], threshold: float, needed: int) -> str:
    """How many dialogues reach the threshold, a few lower thresholds, and the highest one that gives `needed`."""
    scores = sorted((d.score for d in dialogues if d.score is not None), reverse=True)
    ungraded = len(dialogues) - len(scores)
    lines = [f"only {sum(s >= threshold for s in scores)} of {len(dialogues)} dialogues score >= {threshold:g} "
             f"(parallel.dataset_threshold); at least {needed} are needed (parallel.min_dialogues)"]
    lower = [round(threshold - d, 2) for d in (0.05, 0.1, 0.15, 0.2) if threshold - d > 0]
    lines.append("; ".join(f">= {t:g}: {sum(s >= t for s in scores)}" for t in lower))
    if len(scores) >= needed:
        lines.append(f"a threshold of {scores[needed - 1]:.3f} would give {needed}")
    else:
        lines.append(f"even threshold 0 gives only {len(scores)}: discover more dialogues")
    if ungraded:
        lines.append(f"{ungraded} dialogues are ungraded: run `parallel-r1 grade`")
    return "; ".join(line for line in lines if line)


class ParallelDatasetBuilder:
    """Builds `ParallelRecord`s from graded dialogues; deterministic in its seed, except for an endpoint's paths."""

    def __init__(self, *, threshold: float = 0.9, branches: int = 3, max_blocks: int = DEFAULT_MAX_BLOCKS,
                 min_dialogues: int = 20, turns_per_dialogue: int = 1, path_min_grade: float = 0.6,
                 max_path_overlap: float = 0.5, summary_mode: str = "choose", moves: Sequence[str] = GOOD_BEHAVIOURS,
                 seed: int = 0, backend_seed: int = 0, grader: HeuristicRubricGrader | None = None,
                 path_source: str = "auto", generator: PathGenerator | None = None, min_path_words: int = 3,
                 batch_turns: int = 16, progress: bool = False, grounder: Grounder | None = None):
        """`generator` writes the paths of the turns `path_source` does not replay ("auto": every non-procedural
        dialogue's); it is closed at the end of each build. `grounder` adds knowledge-base passages to the records."""
        if path_source not in PATH_SOURCES:
            raise ValueError(f"path_source must be one of {PATH_SOURCES}, got {path_source!r}")
        if path_source in ("policy", "endpoint") and getattr(generator, "source", None) != path_source:
            raise ValueError(f"path_source {path_source!r} needs a generator whose source is {path_source!r}")
        if branches < MIN_PATHS:
            raise ValueError(f"branches must be >= {MIN_PATHS}, got {branches}")
        if summary_mode not in ("choose", "merge"):
            raise ValueError(f"summary_mode must be 'choose' or 'merge', got {summary_mode!r}")
        unknown = [m for m in moves if m not in GOOD_BEHAVIOURS]
        if unknown:
            raise ValueError(f"unknown teacher moves {unknown}; expected names from {GOOD_BEHAVIOURS}")
        self.threshold, self.branches, self.max_blocks = threshold, branches, max_blocks
        self.min_dialogues, self.turns_per_dialogue = min_dialogues, turns_per_dialogue
        self.path_min_grade, self.max_path_overlap, self.summary_mode = path_min_grade, max_path_overlap, summary_mode
        self.moves, self.seed = tuple(moves), seed
        self.backend = ProceduralBackend(seed=backend_seed)
        self.grader = grader or HeuristicRubricGrader()
        self.path_source, self.generator = path_source, generator
        self.min_path_words, self.batch_turns, self.progress = min_path_words, batch_turns, progress
        self.grounder = grounder

    @classmethod
    def from_config(cls, parallel: ParallelConfig, backend_seed: int = 0, *, inference: InferenceConfig | None = None,
                    base_model: Path | str | None = None, ray: RayConfig | None = None,
                    progress: bool = False) -> ParallelDatasetBuilder:
        """From a `ParallelConfig`; `backend_seed` is the discover seed the dialogues were simulated with;
        `base_model` is the policy when `parallel.path_generation.model` is unset, run on the `inference` engine."""
        from parallel_r1.config import InferenceConfig

        gen = parallel.path_generation
        generator = path_generator(parallel.path_source, gen, inference=inference or InferenceConfig(),
                                   base_model=base_model, ray=ray)
        return cls(threshold=parallel.dataset_threshold, branches=parallel.branches, max_blocks=parallel.max_blocks,
                   min_dialogues=parallel.min_dialogues, turns_per_dialogue=parallel.turns_per_dialogue,
                   path_min_grade=parallel.path_min_grade, max_path_overlap=parallel.max_path_overlap,
                   summary_mode=parallel.summary_mode, seed=parallel.seed, backend_seed=backend_seed,
                   path_source=parallel.path_source, generator=generator, min_path_words=gen.min_words,
                   batch_turns=gen.batch_turns, progress=progress)

    def eligible(self, dialogues: Sequence[Dialogue]) -> list[Dialogue]:
        """The dialogues scoring at least the threshold; TooFewDialoguesError when fewer than `min_dialogues`."""
        kept = [d for d in dialogues if d.score is not None and d.score >= self.threshold]
        if len(kept) < self.min_dialogues:
            raise TooFewDialoguesError(threshold_summary(dialogues, self.threshold, self.min_dialogues))
        return kept

    def build(self, dialogues: Sequence[Dialogue]) -> ParallelDataset:
        """Records for the drawn teacher turns of every eligible dialogue, and the turns skipped with their reason;
        a UserFacingError when not one record could be built."""
        kept = self.eligible(dialogues)
        picked = [(d, t) for d in kept for t in self.pick_turns(d)]
        outcomes: dict[int, tuple[ParallelRecord | None, str]] = {}
        failures: list[dict] = []
        with self._progress(len(picked)) as advance:
            for i, (dialogue, turn_index) in enumerate(picked):
                if self.source_for(dialogue) == REPLAY:
                    outcomes[i] = self.replay_turn(dialogue, turn_index)
                    advance(1)
            try:
                self._sample_turns(picked, [i for i in range(len(picked)) if i not in outcomes], outcomes, failures,
                                   advance)
            finally:
                if self.generator is not None:
                    self.generator.close()
        records, skipped = [], []
        for i, (dialogue, turn_index) in enumerate(picked):
            record, reason = outcomes[i]
            if record is None:
                skipped.append({"dialogue_id": dialogue.dialogue_id, "turn_index": turn_index, "reason": reason})
            else:
                records.append(record)
        if not records:
            first = f"; first failed request: {failures[0]['error']}" if failures else ""
            raise UserFacingError(f"no parallel record could be built from {len(kept)} dialogues: "
                                  f"{sorted({s['reason'] for s in skipped})}{first}")
        if self.grounder is not None:
            self.grounder.ground(records)
        return ParallelDataset(records, skipped, len(kept), failures)

    def source_for(self, dialogue: Dialogue) -> str:
        """Who writes the dialogue's paths: "replay" (the procedural simulator), else the generator's source."""
        if self.path_source == REPLAY or (self.path_source == "auto" and dialogue.backend == PROCEDURAL):
            return REPLAY
        return self.generator.source if self.generator is not None else "model"

    @contextlib.contextmanager
    def _progress(self, total: int) -> Iterator[Callable[..., None]]:
        """`advance(n, status="")`: a progress bar over the picked turns when `progress` is on."""
        if not self.progress or not total:
            yield lambda n, status="": None
            return
        from parallel_r1.console import progress_bar

        with progress_bar() as bar:
            task = bar.add_task("parallel dataset", total=total, status="")
            yield lambda n, status="": bar.update(task, advance=n, status=status)

    def _sample_turns(self, picked: list[tuple[Dialogue, int]], todo: list[int],
                      outcomes: dict[int, tuple[ParallelRecord | None, str]], failures: list[dict],
                      advance: Callable[..., None]) -> None:
        """The model-written turns, `batch_turns` per generator call. When the first call gets not one reply and
        some requests failed, the generator is taken to be down: the remaining turns are skipped, not sent."""
        ready = []
        for i in todo:
            history = self._history(*picked[i])
            if history and history[-1]["role"] == "user":
                ready.append(i)
            else:
                outcomes[i] = (None, "not_after_student_turn")
                advance(1)
        if ready and self.generator is None:
            dialogue = picked[ready[0]][0]
            raise UserFacingError(f"dialogue {dialogue.dialogue_id} (backend {dialogue.backend!r}) cannot be replayed "
                                  "and there is no model to write its paths: set parallel.path_generation.model, "
                                  "base_model.path, or parallel.path_source")
        answered = False
        for start in range(0, len(ready), self.batch_turns):
            batch = ready[start:start + self.batch_turns]
            if start and not answered and failures:
                outcomes.update({i: (None, "generation_aborted") for i in batch})
                advance(len(batch), status="aborted: the first requests all failed")
                continue
            generated = self.generator.generate([self._history(*picked[i]) for i in batch], first=start)
            for i, out in zip(batch, generated, strict=True):
                dialogue, turn_index = picked[i]
                failures += [{"dialogue_id": dialogue.dialogue_id, "turn_index": turn_index, "error": e}
                             for e in out.errors]
                answered = answered or bool(out.texts)
                outcomes[i] = self.sampled_turn(dialogue, turn_index, out)
            advance(len(batch), status=f"{self.generator.source} {self.generator.model}: {len(failures)} failed")

    def _rng(self, dialogue: Dialogue, *key: object) -> random.Random:
        return random.Random(":".join(map(str, ("parallel", self.seed, dialogue.dialogue_id, *key))))

    def pick_turns(self, dialogue: Dialogue) -> list[int]:
        """The teacher turns to rewrite, drawn with the seed (one draw per dialogue, independent of the others)."""
        teacher = [i for i, t in enumerate(dialogue.turns) if t.role == "teacher"]
        k = min(self.turns_per_dialogue, len(teacher))
        return sorted(self._rng(dialogue, "turns").sample(teacher, k))

    def alternatives(self, dialogue: Dialogue, turn_index: int) -> list[Candidate] | None:
        """One reply per move at the turn, from a replay of the dialogue; None if the replay does not reproduce
        the recorded turns (the dialogue was not simulated by this backend and seed)."""
        task = DialogueTask(dialogue.iteration, dialogue.dialogue_id, dialogue.scenario_id, dialogue.profile_kind,
                            dialogue.n_turns, dialogue.seed)
        ctx = context_for(task)
        history = self._history(dialogue, turn_index)
        out = []
        for move in self.moves:
            session = self.backend.open(ctx)
            turns: list[Turn] = []
            for i in range(turn_index):
                role = "student" if i % 2 == 0 else "teacher"
                turns.append(Turn(role, _drive(session.reply(role, turns))))
                if turns[-1].content != dialogue.turns[i].content:
                    return None
            session.forced = (move,)
            text = _drive(session.reply("teacher", turns))
            out.append(Candidate(text, [move], self._grade(dialogue, history, text)))
        return out

    def replay_turn(self, dialogue: Dialogue, turn_index: int) -> tuple[ParallelRecord | None, str]:
        """The record for one teacher turn with replayed alternatives, or None and the reason it cannot be built."""
        generated = self.alternatives(dialogue, turn_index) if dialogue.backend == PROCEDURAL else None
        if generated is None:
            return None, "replay_mismatch"
        return self.assemble(dialogue, turn_index, generated, REPLAY, PROCEDURAL)

    def sampled_turn(self, dialogue: Dialogue, turn_index: int, out: Generated) -> tuple[ParallelRecord | None, str]:
        """The record for one teacher turn from the replies a model wrote for it (near-empty ones dropped)."""
        texts = [t for t in out.texts if len(words(t)) >= self.min_path_words]
        if not texts:
            return None, "generation_failed" if out.errors and not out.texts else "empty_generations"
        history = self._history(dialogue, turn_index)
        generated = [Candidate(t, [SAMPLED], self._grade(dialogue, history, t)) for t in texts]
        return self.assemble(dialogue, turn_index, generated, self.generator.source, self.generator.model)

    def assemble(self, dialogue: Dialogue, turn_index: int, generated: Sequence[Candidate], source: str,
                 model: str) -> tuple[ParallelRecord | None, str]:
        """The record from the recorded reply and the alternatives, or None and why too few paths remain."""
        history = self._history(dialogue, turn_index)
        original = dialogue.turns[turn_index].content
        candidates = [Candidate(original, [ORIGINAL], self._grade(dialogue, history, original)), *generated]
        chosen = self.distinct_paths(candidates)
        if len(chosen) < MIN_PATHS:
            return None, "too_few_distinct_alternatives"
        best = max(chosen, key=lambda c: c.grade)
        summary, mode, summary_grade = self.summarise(dialogue, history, best, chosen)
        self._rng(dialogue, turn_index, "order").shuffle(chosen)
        target = format_block([c.text for c in chosen], summary)
        system = f"{TUTOR_SYSTEM_PROMPT} {parallel_instruction(len(chosen), self.max_blocks)}"
        messages = [{"role": "system", "content": system}, *history, {"role": "assistant", "content": target}]
        return ParallelRecord(
            dialogue_id=dialogue.dialogue_id, turn_index=turn_index, scenario_id=dialogue.scenario_id,
            profile_kind=dialogue.profile_kind, difficulty=dialogue.difficulty, paths=[c.text for c in chosen],
            path_moves=[c.moves for c in chosen], path_grades=[c.grade for c in chosen],
            path_context=[[] for _ in chosen], summary=summary, summary_mode=mode,
            chosen_path=chosen.index(best), summary_grade=summary_grade, target=target, path_source=source,
            path_model=model, messages=messages,
        ), ""

    def distinct_paths(self, candidates: Sequence[Candidate]) -> list[Candidate]:
        """Up to `branches` candidates, best graded first, each above the grade floor and unlike those kept."""
        kept: list[Candidate] = []
        for c in sorted(candidates, key=lambda c: -c.grade):
            if len(kept) == self.branches:
                break
            if c.grade >= self.path_min_grade and all(overlap(c.text, k.text) < self.max_path_overlap for k in kept):
                kept.append(c)
        return kept

    def summarise(self, dialogue: Dialogue, history: list[dict], best: Candidate,
                  paths: Sequence[Candidate]) -> tuple[str, str, float]:
        """(summary, mode, grade): the best path, or in "merge" mode the best path plus the runner-up's closing
        sentence when that grades at least as well."""
        if self.summary_mode == "merge":
            runner_up = max((c for c in paths if c is not best), key=lambda c: c.grade)
            closing = _SENTENCE.split(runner_up.text.strip())[-1]
            if closing not in best.text:
                merged = f"{best.text.rstrip()} {closing}"
                grade = self._grade(dialogue, history, merged)
                if grade >= best.grade:
                    return merged, "merge", grade
        return best.text, "choose", best.grade

    @staticmethod
    def _history(dialogue: Dialogue, turn_index: int) -> list[dict]:
        return dialogue.messages()[:turn_index]

    def _grade(self, dialogue: Dialogue, history: list[dict], reply: str) -> float:
        profile, card = _student(dialogue)
        return self.grader.grade_turn(history, reply, profile, card).score


def _student(dialogue: Dialogue) -> tuple[StudentProfileConfig, ScenarioCard | None]:
    """The student and card the dialogue's own grade used (the persona's traits, not only its kind; no card for a
    transcript whose scenario is not one of ours)."""
    return profile_of(dialogue), scenario_of(dialogue)
