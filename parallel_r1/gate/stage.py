"""The promotion gate: a model version becomes the one Serve serves under its name only if it scores at least
`min_relative_gain` better on the held-out set than the score its name's promoted version was promoted on (the
base's score when none is), its compliance checks are green (no dismissive or offensive tone, no answer dumping where
the card calls for guidance, stock-phrase density within bounds) and, for a model answering in the parallel format,
its paths are neither copies nor unrelated noise. Each decision, with its reasons, goes into the registry's promotion
record (promotion.json).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field

from parallel_r1.compare.models import BASE, REGISTRY_KIND, compared_models
from parallel_r1.compare.report import read_results
from parallel_r1.compare.scoring import ScoredReply
from parallel_r1.compare.stats import ModelSummary, summarise
from parallel_r1.config import PipelineConfig
from parallel_r1.console import notice, summary_table
from parallel_r1.errors import UserFacingError
from parallel_r1.paths import RunPaths
from parallel_r1.recipe import run_recipe
from parallel_r1.registry.promotion import PromotionRecord
from parallel_r1.registry.versions import ModelVersion, now, weights_digest

log = logging.getLogger(__name__)


@dataclass
class Check:
    name: str
    value: float
    threshold: float
    passed: bool
    rule: str


@dataclass
class GateDecision:
    candidate: str  # the version's ref (name@vN)
    incumbent: str  # the ref it would replace, or "base"
    promoted: bool
    checks: list[Check]
    reasons: list[str] = field(default_factory=list)
    results: str = ""  # fingerprint of the compare results it was decided on
    decided_at: str = field(default_factory=now)
    score: float = 0.0


@dataclass
class GateResult:
    decisions: list[GateDecision]

    @property
    def promoted(self) -> list[str]:
        return [d.candidate for d in self.decisions if d.promoted]


def results_fingerprint(rows: list[ScoredReply]) -> str:
    """Changes whenever any graded reply does."""
    keys = sorted((r.model, r.item_id, r.sample, round(r.score, 6)) for r in rows)
    return hashlib.sha1(json.dumps(keys).encode()).hexdigest()[:16]


def evaluate_gate(s: ModelSummary, candidate: str, incumbent: str, bar: float, cfg: PipelineConfig,
                  parallel: bool = False) -> GateDecision:
    """The checks of one candidate against the score `bar` of the version it would replace."""
    g = cfg.gate
    need = bar * (1 + g.min_relative_gain)
    checks = [
        Check("score", s.mean, need, s.mean >= need, f">= {incumbent} {bar:.3f} x {1 + g.min_relative_gain:g}"),
        Check("dismissive or offensive tone", s.dismissive_rate, g.max_dismissive_rate,
              s.dismissive_rate <= g.max_dismissive_rate, "share of replies"),
        Check("answer dumping", s.answer_dump_rate, g.max_answer_dump_rate,
              s.answer_dump_rate <= g.max_answer_dump_rate, "share of replies to direct questions"),
        Check("pattern density", s.pattern_density, g.max_pattern_density,
              s.pattern_density <= g.max_pattern_density, "stock phrases per reply"),
    ]
    if parallel:
        diversity = s.parallel.mean_path_diversity
        checks += [Check("paths not copied", diversity, g.min_path_diversity, diversity >= g.min_path_diversity,
                         "mean path diversity at least"),
                   Check("paths not noise", diversity, g.max_path_diversity, diversity <= g.max_path_diversity,
                         "mean path diversity at most")]
    failed = [c for c in checks if not c.passed]
    reasons = ([f"{c.name} {c.value:.3f} fails {c.rule} (limit {c.threshold:.3f})" for c in failed] or
               [f"score {s.mean:.3f} >= {need:.3f} and every compliance check is green"])
    return GateDecision(candidate, incumbent, not failed, checks, reasons, score=s.mean)


class GateStage:
    """setup() → run() → cleanup() over one PipelineConfig: decide on `candidate` (default: every compared model
    but the base), each as the registry version compare evaluated."""

    def __init__(self, cfg: PipelineConfig, candidate: str | None = None):
        self.cfg = cfg
        self.paths = RunPaths(cfg.workdir)
        self.candidate = candidate or cfg.gate.candidate

    def setup(self) -> None:
        paths = self.paths
        self.rows = read_results(paths.require(paths.eval / "results.parquet", "compare"))
        self.record = PromotionRecord(paths.workdir)
        self.record.read()  # a corrupt record is an error before anything is decided
        self.compared = compared_models(paths)

    def run(self) -> GateResult:
        rows = self.rows
        models = list(dict.fromkeys(r.model for r in rows))
        summaries = summarise(rows, models)
        names = [self.candidate] if self.candidate else [m for m in models if m != BASE]
        unknown = [n for n in names if n not in summaries or n == BASE]
        if unknown or not names:
            raise UserFacingError(f"gate: no results for candidate(s) {unknown or names} in "
                                  f"{self.paths.eval / 'results.parquet'}; evaluated: {', '.join(models)}")
        fingerprint = results_fingerprint(rows)
        decisions = [self._decide(n, summaries, fingerprint) for n in names]
        result = GateResult([d for d in decisions if d is not None])
        _print(result)
        return result

    def _version(self, name: str) -> ModelVersion:
        """The registry version of the weights compare evaluated as `name` (registered now if it is not yet)."""
        spec = self.compared.get(name)
        if spec is None or not spec.source:
            raise UserFacingError(f"gate: compare recorded no weights for {name!r}: re-run `parallel-r1 compare`")
        registry = self.record.registry
        kind = REGISTRY_KIND[spec.kind]
        digest = spec.digest or weights_digest(kind, spec.source)
        version = registry.find(name, digest)
        if version is None:
            if weights_digest(kind, spec.source) != digest:
                raise UserFacingError(f"gate: {spec.source} changed since compare evaluated {name}: re-run "
                                      "`parallel-r1 compare`")
            version = registry.register(name, kind, spec.source)
        return version

    def _decide(self, name: str, summaries: dict[str, ModelSummary], fingerprint: str) -> GateDecision | None:
        version = self._version(name)
        record = self.record.read()
        current = record["promoted"].get(name)
        if current and current["ref"] == version.ref:
            notice(f"gate: {version.ref} is already the promoted version of {name}", log)
            return None
        for d in reversed(record["decisions"]):
            if d["candidate"] == version.ref and d["results"] == fingerprint:
                notice(f"gate: {version.ref} was decided on these results at {d['decided_at']}", log)
                return GateDecision(**{**d, "checks": [Check(**c) for c in d["checks"]]})
        incumbent, bar = (current["ref"], current["score"]) if current else (BASE, summaries[BASE].mean)
        decision = evaluate_gate(summaries[name], version.ref, incumbent, bar, self.cfg,
                                 parallel=self.compared[name].kind == "parallel")
        decision.results = fingerprint
        self.record.decide(asdict(decision), version if decision.promoted else None, decision.score)
        return decision

    def cleanup(self) -> None:
        """Nothing to release."""


def run_gate(cfg: PipelineConfig, candidate: str | None = None) -> GateResult:
    return run_recipe(GateStage(cfg, candidate))


def _print(result: GateResult) -> None:
    for d in result.decisions:
        rows = [[c.name, c.value, c.threshold, "pass" if c.passed else "FAIL"] for c in d.checks]
        notice(summary_table(f"gate: {d.candidate} against {d.incumbent}", ["check", "value", "limit", "verdict"],
                             rows), log)
        verdict = "[bold green]promoted[/]" if d.promoted else "[bold red]not promoted[/]"
        notice(f"gate: {d.candidate} {verdict}: {'; '.join(d.reasons)}", log)
