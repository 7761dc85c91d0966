"""The RL curriculum: easy -> medium -> hard scenario tiers, explore / verify phases, and the stop criteria.

`Curriculum.update(step, rewards)` is fed each training step's rewards; it promotes to the next tier when the
mean reward over a window passes a threshold, says which phase's sampling settings apply, and stops on a
plateau or a collapsed reward variance, with the reason. Its `CurriculumState` round-trips through JSON, so
a killed run resumes where it was; a step it has already seen is ignored. No Ray, no torch.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from parallel_r1.data import ALL_CARDS, ScenarioCard
from parallel_r1.data.scenarios import DIFFICULTIES

if TYPE_CHECKING:
    from parallel_r1.config import RLConfig

PLATEAU = "plateau"
LOW_VARIANCE = "low_variance"
EXPLORE, VERIFY = "explore", "verify"


@dataclass(frozen=True)
class PhaseSettings:
    """How rollouts are sampled in a phase: temperature, parallel paths per block, token budget."""

    name: str
    temperature: float
    branches: int
    max_tokens: int


@dataclass(frozen=True)
class CurriculumSettings:
    """Thresholds and windows of the curriculum and its stop criteria (built from `RLConfig` by `from_config`)."""

    tiers: tuple[str, ...] = DIFFICULTIES
    promote_threshold: float = 0.7  # mean step reward over `promote_window` steps that promotes
    promote_window: int = 20
    explore: PhaseSettings = PhaseSettings(EXPLORE, 1.0, 4, 256)
    verify: PhaseSettings = PhaseSettings(VERIFY, 0.6, 2, 256)
    explore_steps: int | None = 50  # steps on a tier before verify; None: only by reward
    verify_from_reward: float | None = 0.5  # windowed mean that switches to verify early; None: only by steps
    eval_window: int = 10  # steps per evaluation window
    min_improvement: float = 0.01  # relative improvement a window must bring ...
    patience: int = 3  # ... within this many windows, else stop (plateau)
    min_variance: float = 0.02  # sample-reward variance of a window below this stops (collapse)

    def __post_init__(self) -> None:
        unknown = [t for t in self.tiers if t not in DIFFICULTIES]
        if not self.tiers or unknown:
            raise ValueError(f"tiers must be a non-empty list of {DIFFICULTIES}, got {list(self.tiers)}")
        for name in ("promote_window", "eval_window", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class StopReason:
    """Why the run stopped: a code (`PLATEAU` or `LOW_VARIANCE`), a sentence, and the step."""

    code: str
    message: str
    step: int


@dataclass
class CurriculumState:
    """Everything the curriculum has learnt so far; JSON-serialisable so a resumed run continues from it."""

    tier_index: int = 0
    phase: str = EXPLORE
    last_step: int = -1
    steps_on_tier: int = 0
    tier_means: list[float] = field(default_factory=list)  # per-step mean rewards, last promote_window
    window_samples: list[float] = field(default_factory=list)  # sample rewards of the open evaluation window
    window_means: list[float] = field(default_factory=list)  # closed evaluation windows on this tier
    window_variances: list[float] = field(default_factory=list)
    promotions: list[dict] = field(default_factory=list)  # {"step", "from", "to", "mean"}
    stopped: StopReason | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CurriculumState:
        data = json.loads(text)
        stopped = data.pop("stopped", None)
        return cls(**data, stopped=StopReason(**stopped) if stopped else None)


@dataclass(frozen=True)
class StepOutcome:
    """What one update changed: a promotion (to which tier), a phase switch, or a stop."""

    promoted_to: str | None = None
    phase_changed_to: str | None = None
    stop: StopReason | None = None


def plateaued(window_means: Sequence[float], min_improvement: float = 0.01, patience: int = 3) -> bool:
    """True when none of the last `patience` windows beats the best window before them by >= `min_improvement`
    (relative to that best; absolute when the best is 0)."""
    if len(window_means) <= patience:
        return False
    best_before = max(window_means[:-patience])
    return max(window_means[-patience:]) - best_before < min_improvement * (abs(best_before) or 1.0)


def collapsed(rewards: Sequence[float], min_variance: float = 0.02) -> bool:
    """True when the rewards (of two or more samples) vary less than `min_variance`: GRPO has no signal left."""
    return len(rewards) >= 2 and statistics.pvariance(rewards) < min_variance


def tier_cards(tier: str, include_special: bool = True) -> list[ScenarioCard]:
    """The scenario cards of a difficulty tier."""
    return [c for c in ALL_CARDS if c.difficulty == tier and (include_special or c.special is None)]


class Curriculum:
    """Tier, phase and stop decisions over the training steps; its `state` is all it remembers."""

    def __init__(self, settings: CurriculumSettings | None = None, state: CurriculumState | None = None):
        self.settings = settings or CurriculumSettings()
        self.state = state or CurriculumState()
        if not 0 <= self.state.tier_index < len(self.settings.tiers):
            raise ValueError(f"state tier_index {self.state.tier_index} is outside the {len(self.settings.tiers)} "
                             "configured tiers")

    @classmethod
    def from_config(cls, rl: RLConfig, state: CurriculumState | None = None) -> Curriculum:
        """From an `RLConfig` (its curriculum, phases and stop sections)."""
        cur, stop = rl.curriculum, rl.stop
        phases = {name: PhaseSettings(name, p.temperature, p.branches, p.max_tokens)
                  for name, p in ((EXPLORE, rl.explore), (VERIFY, rl.verify))}
        settings = CurriculumSettings(
            tiers=tuple(cur.tiers), promote_threshold=cur.promote_threshold, promote_window=cur.promote_window,
            explore=phases[EXPLORE], verify=phases[VERIFY], explore_steps=cur.explore_steps,
            verify_from_reward=cur.verify_from_reward, eval_window=stop.eval_window,
            min_improvement=stop.min_improvement, patience=stop.patience, min_variance=stop.min_variance)
        return cls(settings, state)

    @property
    def tier(self) -> str:
        return self.settings.tiers[self.state.tier_index]

    @property
    def phase(self) -> PhaseSettings:
        return self.settings.explore if self.state.phase == EXPLORE else self.settings.verify

    @property
    def stopped(self) -> StopReason | None:
        return self.state.stopped

    def update(self, step: int, rewards: Sequence[float]) -> StepOutcome:
        """Record one step's sample rewards; a step at or before the last one recorded (a replay) changes nothing."""
        s, cfg = self.state, self.settings
        if step <= s.last_step or s.stopped is not None or not rewards:
            return StepOutcome()
        mean = statistics.fmean(rewards)
        s.last_step = step
        s.steps_on_tier += 1
        s.tier_means = [*s.tier_means, mean][-cfg.promote_window:]
        s.window_samples = [*s.window_samples, *map(float, rewards)]
        windowed = statistics.fmean(s.tier_means) if len(s.tier_means) == cfg.promote_window else None
        if windowed is not None and windowed >= cfg.promote_threshold and s.tier_index + 1 < len(cfg.tiers):
            return StepOutcome(promoted_to=self._promote(step, windowed), phase_changed_to=EXPLORE)
        phase_change = self._maybe_verify(windowed)
        stop = self._close_window(step) if s.steps_on_tier % cfg.eval_window == 0 else None
        return StepOutcome(phase_changed_to=phase_change, stop=stop)

    def _promote(self, step: int, windowed: float) -> str:
        s = self.state
        old = self.tier
        s.tier_index += 1
        s.promotions = [*s.promotions, {"step": step, "from": old, "to": self.tier, "mean": windowed}]
        s.phase, s.steps_on_tier = EXPLORE, 0
        s.tier_means, s.window_samples, s.window_means, s.window_variances = [], [], [], []
        return self.tier

    def _maybe_verify(self, windowed: float | None) -> str | None:
        s, cfg = self.state, self.settings
        if s.phase == VERIFY:
            return None
        by_steps = cfg.explore_steps is not None and s.steps_on_tier >= cfg.explore_steps
        by_reward = cfg.verify_from_reward is not None and windowed is not None and windowed >= cfg.verify_from_reward
        if by_steps or by_reward:
            s.phase = VERIFY
            return VERIFY
        return None

    def _close_window(self, step: int) -> StopReason | None:
        s, cfg = self.state, self.settings
        samples, s.window_samples = s.window_samples, []
        s.window_means = [*s.window_means, statistics.fmean(samples)]
        s.window_variances = [*s.window_variances, statistics.pvariance(samples)]
        if collapsed(samples, cfg.min_variance):
            s.stopped = StopReason(LOW_VARIANCE, f"reward variance {s.window_variances[-1]:.4f} over the last "
                                                 f"{cfg.eval_window} steps is below {cfg.min_variance}", step)
        elif plateaued(s.window_means, cfg.min_improvement, cfg.patience):
            s.stopped = StopReason(PLATEAU, f"no {cfg.min_improvement:.0%} improvement of the mean reward over the "
                                            f"last {cfg.patience} evaluation windows on tier {self.tier} "
                                            f"(best before {max(s.window_means[:-cfg.patience]):.3f})", step)
        return s.stopped
