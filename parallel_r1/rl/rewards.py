"""GRPO rewards for the Parallel-R1 stage as plain callables in TRL's signature `(prompts, completions, **kwargs)`.

Each reward is a small picklable object with a `__name__` TRL logs it under: rubric grade of the reply the
student sees, path diversity, verification consistency, format; `CombinedReward` weighs them by a
`RewardSchedule` (constant, or the paper's alternating task-only / with-bonus steps). No Ray, no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING, Any, Protocol

from parallel_r1.data import ScenarioCard, StudentProfileConfig, get_card
from parallel_r1.data.parallel_format import (
    DEFAULT_MAX_BLOCKS,
    MIN_PATHS,
    ParallelBlock,
    ParsedReply,
    bleu,
    overlap,
    parse_reply,
    words,
)
from parallel_r1.grade import Grade, HeuristicRubricGrader

if TYPE_CHECKING:
    from parallel_r1.config import RLConfig

COMPONENTS = ("rubric", "diversity", "consistency", "format")
MIN_PATH_WORDS = 3  # a path with fewer alphabetic words says nothing that could differ from another path
CLEAR_GRADE_GAP = 0.1  # grades of two paths this far apart are a clear preference between them


class TurnGrader(Protocol):
    """Grades one reply given the history before it (`HeuristicRubricGrader` is one)."""

    def grade_turn(self, history: list[dict], response: str, profile: StudentProfileConfig | None = None,
                   scenario: ScenarioCard | None = None) -> Grade: ...


# (history before the reply, the paths of its blocks, the student's profile, the scenario card)
PathRequest = tuple[list[dict], list[str], StudentProfileConfig | None, ScenarioCard | None]


class Critic(Protocol):
    """Grades every path of many replies at once (`parallel_r1.rl.critic.PathCritic` is one): per request the
    grade of each path in order, or None where it could not grade them."""

    def grade(self, requests: Sequence[PathRequest]) -> list[list[float] | None]: ...


def completion_text(completion: str | Sequence[Mapping[str, Any]]) -> str:
    """The generated text of a completion: the string itself, or the assistant messages of a chat completion."""
    if isinstance(completion, str):
        return completion
    return "".join(str(m.get("content") or "") for m in completion if m.get("role", "assistant") == "assistant")


def prompt_history(prompt: str | Sequence[Mapping[str, Any]]) -> list[dict]:
    """The dialogue before the reply in the chat format graders read (system messages dropped)."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": m["role"], "content": str(m.get("content") or "")} for m in prompt
            if m.get("role") in ("user", "assistant")]


def _profile(value: Any) -> StudentProfileConfig | None:
    if value is None or isinstance(value, StudentProfileConfig):
        return value
    if isinstance(value, str):
        return StudentProfileConfig.for_kind(value)
    return StudentProfileConfig(**value)


def _scenario(value: Any) -> ScenarioCard | None:
    if value is None or isinstance(value, ScenarioCard):
        return value
    return get_card(value)


def _column(kwargs: Mapping[str, Any], key: str, n: int) -> list[Any]:
    """A dataset column TRL passes through kwargs (one value per completion), or Nones when it is absent."""
    values = kwargs.get(key)
    if values is None:
        return [None] * n
    if len(values) != n:
        raise ValueError(f"column {key!r} has {len(values)} values for {n} completions")
    return list(values)


@dataclass(frozen=True)
class Sample:
    """One completion with what graders need: the history before it, the student's profile and the card."""

    history: list[dict]
    parsed: ParsedReply
    profile: StudentProfileConfig | None
    scenario: ScenarioCard | None


def samples(prompts: Sequence, completions: Sequence, kwargs: Mapping[str, Any], *, max_blocks: int,
            profile_key: str = "profile_kind", scenario_key: str = "scenario_id") -> list[Sample]:
    """Pair each completion with its prompt and the profile / scenario columns."""
    n = len(completions)
    if len(prompts) != n:
        raise ValueError(f"{len(prompts)} prompts for {n} completions")
    profiles, scenarios = _column(kwargs, profile_key, n), _column(kwargs, scenario_key, n)
    return [Sample(prompt_history(p), parse_reply(completion_text(c), max_blocks=max_blocks), _profile(pk),
                   _scenario(sc)) for p, c, pk, sc in zip(prompts, completions, profiles, scenarios, strict=True)]


class _Reward:
    """Shared plumbing: TRL's call signature, the log name, the block limit of the format."""

    def __init__(self, name: str, max_blocks: int = DEFAULT_MAX_BLOCKS):
        self.__name__ = name
        self.max_blocks = max_blocks

    def __call__(self, prompts: Sequence, completions: Sequence, **kwargs: Any) -> list[float]:
        return [self.score(s) for s in samples(prompts, completions, kwargs, max_blocks=self.max_blocks)]

    def score(self, sample: Sample) -> float:
        raise NotImplementedError


class RubricReward(_Reward):
    """The rubric grade of what the student sees (summaries and text outside blocks); 0 for an empty reply."""

    def __init__(self, grader: TurnGrader | None = None, max_blocks: int = DEFAULT_MAX_BLOCKS):
        super().__init__("rubric", max_blocks)
        self.grader = grader or HeuristicRubricGrader()

    def score(self, sample: Sample) -> float:
        view = sample.parsed.student_view()
        if not view:
            return 0.0
        return self.grader.grade_turn(sample.history, view, sample.profile, sample.scenario).score


def substantive(path: str, min_words: int = MIN_PATH_WORDS) -> bool:
    """Whether a path has at least `min_words` words with a letter in them (numbers and punctuation do not count)."""
    return sum(any(c.isalpha() for c in w) for w in words(path)) >= min_words


def block_diversity(paths: Sequence[str], max_n: int = 4, min_words: int = MIN_PATH_WORDS) -> float:
    """1 - mean pairwise self-BLEU (both directions) of a block's paths, where a pair with a path that is not
    `substantive` counts as copies: empty, wordless or near-empty paths add no diversity."""
    pairs = list(combinations(paths, 2))
    if not pairs:
        return 0.0
    distinct = [1.0 - (bleu(a, b, max_n) + bleu(b, a, max_n)) / 2 for a, b in pairs
                if substantive(a, min_words) and substantive(b, min_words)]
    return sum(distinct) / len(pairs)


class DiversityReward(_Reward):
    """Mean over a reply's blocks of their `block_diversity`; 0 for a reply without a block."""

    def __init__(self, max_n: int = 4, max_blocks: int = DEFAULT_MAX_BLOCKS, min_words: int = MIN_PATH_WORDS):
        super().__init__("path_diversity", max_blocks)
        self.max_n, self.min_words = max_n, min_words

    def score(self, sample: Sample) -> float:
        blocks = [b for b in sample.parsed.blocks if len(b.paths) >= MIN_PATHS]
        if not blocks:
            return 0.0
        return sum(block_diversity(b.paths, self.max_n, self.min_words) for b in blocks) / len(blocks)


def sided_agreement(summary: str, paths: Sequence[str], grades: Sequence[float]) -> float:
    """How far a summary sides with the best-graded path: its overlap with the path it follows most closely, times
    that path's standing (1 for the best, falling linearly to 0 at `CLEAR_GRADE_GAP` or the worst path's grade below
    the best, whichever is further)."""
    best = max(grades)
    spread = max(best - min(grades), CLEAR_GRADE_GAP)
    standing = [1.0 - (best - g) / spread for g in grades]
    follows = [overlap(summary, p) for p in paths]
    i = max(range(len(paths)), key=lambda k: (follows[k], standing[k]))
    return follows[i] * standing[i]


def verified_blocks(sample: Sample) -> list[ParallelBlock]:
    """The blocks of a reply whose summary can be checked against paths."""
    return [b for b in sample.parsed.blocks if b.paths and b.summary and b.summary.strip()]


class ConsistencyReward(_Reward):
    """Whether the summaries verify their paths: the mean over blocks of how far the summary sides with the path
    `grader` grades best (`sided_agreement`); with a critic, blended (`critic_weight`) with how far it sides with the
    path the critic grades best. A reply whose paths the critic could not grade keeps the grader's part alone."""

    def __init__(self, grader: TurnGrader | None = None, critic: Critic | None = None,
                 critic_weight: float = 0.5, max_blocks: int = DEFAULT_MAX_BLOCKS):
        super().__init__("verification_consistency", max_blocks)
        if not 0.0 <= critic_weight <= 1.0:
            raise ValueError(f"critic_weight must be in [0, 1], got {critic_weight}")
        self.grader = grader or HeuristicRubricGrader()
        self.critic, self.critic_weight = critic, critic_weight

    def __call__(self, prompts: Sequence, completions: Sequence, **kwargs: Any) -> list[float]:
        batch = samples(prompts, completions, kwargs, max_blocks=self.max_blocks)
        if self.critic is None:
            return [self.score(s) for s in batch]
        graded = self.critic.grade([(s.history, [p for b in verified_blocks(s) for p in b.paths], s.profile,
                                     s.scenario) for s in batch])
        return [self.score(s, g) for s, g in zip(batch, graded, strict=True)]

    def score(self, sample: Sample, critic_grades: Sequence[float] | None = None) -> float:
        """critic_grades: the critic's grade of every path of the verified blocks, in order (None: no critic)."""
        blocks = verified_blocks(sample)
        if not blocks:
            return 0.0
        own = [sided_agreement(b.summary, b.paths, [self.grader.grade_turn(sample.history, p, sample.profile,
                                                                           sample.scenario).score for p in b.paths])
               for b in blocks]
        agreement = sum(own) / len(own)
        if critic_grades is None:
            return agreement
        theirs, start = [], 0
        for b in blocks:
            theirs.append(sided_agreement(b.summary, b.paths, critic_grades[start:start + len(b.paths)]))
            start += len(b.paths)
        return (1 - self.critic_weight) * agreement + self.critic_weight * sum(theirs) / len(theirs)


class FormatReward(_Reward):
    """1 for a well-formed reply with a block; `partial_credit` x the share of well-formed blocks for a malformed
    one; `plain_score` for a reply without any tag."""

    def __init__(self, partial_credit: float = 0.5, plain_score: float = 0.0, max_blocks: int = DEFAULT_MAX_BLOCKS):
        super().__init__("format", max_blocks)
        self.partial_credit, self.plain_score = partial_credit, plain_score

    def score(self, sample: Sample) -> float:
        parsed = sample.parsed
        if parsed.uses_parallel:
            return 1.0
        if parsed.valid:
            return self.plain_score
        if not parsed.blocks or any(i.block is None for i in parsed.issues):
            return 0.0
        ok = sum(parsed.block_ok(i) for i in range(len(parsed.blocks)))
        return self.partial_credit * ok / len(parsed.blocks)


@dataclass(frozen=True)
class RewardSchedule:
    """Which component weights apply at a step: always `weights` ("constant"), or ("alternating", the paper's)
    only the task components in all but the last `bonus_steps` of every `period` steps."""

    weights: Mapping[str, float]
    kind: str = "constant"
    period: int = 10
    bonus_steps: int = 2
    task_components: tuple[str, ...] = ("rubric",)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.weights) - set(COMPONENTS)) + sorted(set(self.task_components) - set(COMPONENTS))
        if unknown:
            raise ValueError(f"unknown reward components {unknown}; expected names from {COMPONENTS}")
        if self.kind not in ("constant", "alternating"):
            raise ValueError(f"schedule kind must be 'constant' or 'alternating', got {self.kind!r}")
        if self.kind == "alternating" and not 0 < self.bonus_steps <= self.period:
            raise ValueError(f"bonus_steps must be in [1, period={self.period}], got {self.bonus_steps}")

    def is_bonus_step(self, step: int) -> bool:
        """Whether every component counts at this step (always, for a constant schedule)."""
        return self.kind == "constant" or step % self.period >= self.period - self.bonus_steps

    def weights_at(self, step: int) -> dict[str, float]:
        if self.is_bonus_step(step):
            return dict(self.weights)
        return {k: (w if k in self.task_components else 0.0) for k, w in self.weights.items()}


def _step(kwargs: Mapping[str, Any]) -> int:
    """The training step: TRL's `trainer_state.global_step`, else a `step` keyword, else 0."""
    state = kwargs.get("trainer_state")
    if state is not None:
        return int(state.global_step)
    return int(kwargs.get("step", 0))


class CombinedReward:
    """The weighted sum of the component rewards under a schedule; logs each component through TRL's
    `log_metric` keyword (as `reward/<name>`) when it is given."""

    def __init__(self, components: Mapping[str, Callable[..., list[float]]], schedule: RewardSchedule,
                 name: str = "parallel_r1_reward"):
        missing = sorted(set(schedule.weights) - set(components))
        if missing:
            raise ValueError(f"the schedule weighs components without a reward: {missing}")
        self.components, self.schedule, self.__name__ = dict(components), schedule, name

    def __call__(self, prompts: Sequence, completions: Sequence, **kwargs: Any) -> list[float]:
        weights = self.schedule.weights_at(_step(kwargs))
        totals = [0.0] * len(completions)
        log_metric = kwargs.get("log_metric")
        for name, reward in self.components.items():
            values = reward(prompts, completions, **kwargs)
            if log_metric is not None and values:
                log_metric(f"reward/{getattr(reward, '__name__', name)}", sum(values) / len(values))
            weight = weights.get(name, 0.0)
            totals = [t + weight * v for t, v in zip(totals, values, strict=True)]
        return totals


def build_rewards(weights: Mapping[str, float], *, kind: str = "constant", period: int = 10, bonus_steps: int = 2,
                  task_components: Sequence[str] = ("rubric",), max_blocks: int = DEFAULT_MAX_BLOCKS,
                  partial_credit: float = 0.5, diversity_max_n: int = 4, critic: Critic | None = None,
                  critic_weight: float = 0.5, grader: TurnGrader | None = None) -> CombinedReward:
    """Every component reward and their scheduled combination, from plain settings (see `RLConfig`); `grader`
    (default the rubric) grades replies for the rubric and consistency rewards."""
    components = {
        "rubric": RubricReward(grader, max_blocks=max_blocks),
        "diversity": DiversityReward(diversity_max_n, max_blocks=max_blocks),
        "consistency": ConsistencyReward(grader, critic=critic, critic_weight=critic_weight, max_blocks=max_blocks),
        "format": FormatReward(partial_credit, max_blocks=max_blocks),
    }
    schedule = RewardSchedule(dict(weights), kind, period, bonus_steps, tuple(task_components))
    return CombinedReward(components, schedule)


def rewards_from_config(rl: RLConfig, max_blocks: int = DEFAULT_MAX_BLOCKS, critic: Critic | None = None,
                        grader: TurnGrader | None = None) -> CombinedReward:
    """`build_rewards` with the settings of an `RLConfig` and the format's block limit (`ParallelConfig.max_blocks`),
    grading with `grader` (`grade.grader`; default the rubric)."""
    s = rl.schedule
    return build_rewards(rl.rewards.model_dump(), kind=s.kind, period=s.period, bonus_steps=s.bonus_steps,
                         task_components=s.task_components, max_blocks=max_blocks,
                         partial_credit=rl.format_partial_credit, diversity_max_n=rl.diversity_max_n,
                         critic=critic, critic_weight=rl.critic_weight, grader=grader)
