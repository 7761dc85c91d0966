"""The critic of the verification-consistency reward (`rl.critic`): the fitted grader or the LLM judge grades every
path of the replies a reward call scores, so that the reward can ask whether each summary sides with the path the
critic prefers (`rewards.ConsistencyReward`).

The stage resolves the critic's grade section once (`critic_grade_config`: the fitted grader's folder made absolute,
or the judge's endpoint) and hands it to every Ray Train worker, which builds its own critic (`build_critic`).
No Ray, no torch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from parallel_r1.config import GradeConfig, PipelineConfig
from parallel_r1.errors import UserFacingError
from parallel_r1.grade import Grader, build_grader, resolved_grade
from parallel_r1.rl.rewards import PathRequest


class CriticError(UserFacingError):
    """The critic could not grade a single path of a reward call: its endpoint or model is unusable."""


class PathCritic:
    """A grader as the critic: `grade` scores the paths of many replies in one call; a grader that waits on an
    endpoint (the LLM judge) is asked for all of them at once, within its own concurrency bound."""

    def __init__(self, grader: Grader):
        self.grader = grader
        self.name = grader.name

    def grade(self, requests: Sequence[PathRequest]) -> list[list[float] | None]:
        """Per request the grade of each path in order; None for a request with a path the judge could not grade.
        CriticError when it could grade none of them."""
        if not hasattr(self.grader, "agrade_turn"):
            return [[g.score for g in self.grader.grade_turns([(history, p) for p in paths], profile, scenario)]
                    if paths else [] for history, paths, profile, scenario in requests]
        return self._ask_judge(requests)

    def _ask_judge(self, requests: Sequence[PathRequest]) -> list[list[float] | None]:
        calls = [(history, p, profile, scenario) for history, paths, profile, scenario in requests for p in paths]
        judge = getattr(self.grader, "judge", self.grader)

        async def every() -> list:
            return list(await asyncio.gather(*(self.grader.agrade_turn(*c) for c in calls), return_exceptions=True))

        grades = judge.run_sync(every()) if calls else []
        failed = [g for g in grades if isinstance(g, BaseException)]
        if failed and len(failed) == len(grades):
            raise CriticError(f"rl.critic: {self.name} could not grade any of {len(grades)} paths (first: "
                              f"{failed[0]}); fix the judge endpoint (grade.judge) or set rl.critic=none")
        out, start = [], 0
        for _, paths, _, _ in requests:
            mine = grades[start:start + len(paths)]
            start += len(paths)
            out.append(None if any(isinstance(g, BaseException) for g in mine) else [g.score for g in mine])
        return out


def critic_grade_config(cfg: PipelineConfig) -> GradeConfig | None:
    """The grade section that builds the critic `rl.critic` names (None for none): `grade` with its grader set to
    the critic and the fitted grader's folder made absolute, for critics built in Ray workers."""
    if cfg.rl.critic == "none":
        return None
    return resolved_grade(cfg.model_copy(update={"grade": cfg.grade.model_copy(update={"grader": cfg.rl.critic})}))


def build_critic(grade: GradeConfig | None) -> PathCritic | None:
    """The critic of a grade section (a GRPO job's `critic`), or None; a missing or broken fitted grader is a
    one-line error naming its folder."""
    return PathCritic(build_grader(grade)) if grade else None
