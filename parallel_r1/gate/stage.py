"""The promotion gate: a model replaces the promoted one only if it scores at least `min_relative_gain`
better on the held-out set, its compliance checks are green (no dismissive or offensive tone, no answer
dumping where the card calls for guidance) and its stock-phrase density is within bounds. Every decision, with its
reasons, is appended to `promotion.json`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import pyarrow.parquet as pq

from parallel_r1.compare.models import BASE
from parallel_r1.compare.scoring import ScoredReply
from parallel_r1.compare.stats import ModelSummary, summarise
from parallel_r1.config import PipelineConfig
from parallel_r1.console import console, summary_table
from parallel_r1.data.io import atomic_write_json
from parallel_r1.errors import UserFacingError
from parallel_r1.finetune.manifest import now
from parallel_r1.paths import RunPaths
from parallel_r1.recipe import run_recipe


@dataclass
class Check:
    name: str
    value: float
    threshold: float
    passed: bool
    rule: str


@dataclass
class GateDecision:
    candidate: str
    incumbent: str
    promoted: bool
    checks: list[Check]
    reasons: list[str] = field(default_factory=list)
    results: str = ""  # fingerprint of the compare results it was decided on
    decided_at: str = field(default_factory=now)


def results_fingerprint(rows: list[ScoredReply]) -> str:
    """Changes whenever any graded reply does."""
    keys = sorted((r.model, r.item_id, r.sample, round(r.score, 6)) for r in rows)
    return hashlib.sha1(json.dumps(keys).encode()).hexdigest()[:16]


def read_results(path) -> list[ScoredReply]:
    rows = pq.read_table(path).to_pylist()
    return [ScoredReply(**{**r, "criteria": dict(r["criteria"] or [])}) for r in rows]


def evaluate_gate(summaries: dict[str, ModelSummary], candidate: str, incumbent: str, incumbent_score: float,
                  cfg: PipelineConfig) -> GateDecision:
    g = cfg.gate
    s = summaries[candidate]
    need = incumbent_score * (1 + g.min_relative_gain)
    checks = [
        Check("score", s.mean, need, s.mean >= need,
              f">= {incumbent} {incumbent_score:.3f} x {1 + g.min_relative_gain:g}"),
        Check("dismissive or offensive tone", s.dismissive_rate, g.max_dismissive_rate,
              s.dismissive_rate <= g.max_dismissive_rate, "share of replies"),
        Check("answer dumping", s.answer_dump_rate, g.max_answer_dump_rate,
              s.answer_dump_rate <= g.max_answer_dump_rate, "share of replies to direct questions"),
        Check("pattern density", s.pattern_density, g.max_pattern_density,
              s.pattern_density <= g.max_pattern_density, "stock phrases per reply"),
    ]
    failed = [c for c in checks if not c.passed]
    reasons = ([f"{c.name} {c.value:.3f} fails {c.rule} (limit {c.threshold:.3f})" for c in failed] or
               [f"score {s.mean:.3f} >= {need:.3f} and every compliance check is green"])
    return GateDecision(candidate, incumbent, not failed and candidate != incumbent, checks, reasons)


class GateStage:
    """setup() → run() → cleanup() over one PipelineConfig: decide on `candidate` (default: the best compared)."""

    def __init__(self, cfg: PipelineConfig, candidate: str | None = None):
        self.cfg = cfg
        self.paths = RunPaths(cfg.workdir)
        self.candidate = candidate

    def setup(self) -> None:
        paths = self.paths
        self.rows = read_results(paths.require(paths.eval / "results.parquet", "compare"))
        self.history = (json.loads(paths.promotion.read_text()) if paths.promotion.exists()
                        else {"promoted": None, "decisions": []})

    def run(self) -> GateDecision:
        cfg, paths, rows, history, candidate = self.cfg, self.paths, self.rows, self.history, self.candidate
        models = list(dict.fromkeys(r.model for r in rows))
        summaries = summarise(rows, models)
        fingerprint = results_fingerprint(rows)
        last = history["decisions"][-1] if history["decisions"] else None
        if (last and last["results"] == fingerprint and candidate in (None, last["candidate"])
                and not cfg.gate.candidate):
            result = GateDecision(**{**last, "checks": [Check(**c) for c in last["checks"]]})
            console.print(f"gate: already decided on these results at {result.decided_at} ({paths.promotion})")
            _print(result)
            return result
        current = history["promoted"] or {"model": BASE, "score": summaries[BASE].mean}
        incumbent = current["model"]
        incumbent_score = summaries[incumbent].mean if incumbent in summaries else current["score"]
        candidate = candidate or cfg.gate.candidate or max((m for m in models if m != incumbent),
                                                           key=lambda m: summaries[m].mean, default=None)
        if candidate is None or candidate not in summaries:
            raise UserFacingError(f"gate: no results for candidate {candidate!r} in "
                                  f"{paths.eval / 'results.parquet'}; evaluated: {', '.join(models)}")
        result = evaluate_gate(summaries, candidate, incumbent, incumbent_score, cfg)
        result.results = fingerprint
        if result.promoted:
            history["promoted"] = {"model": candidate, "score": summaries[candidate].mean, "at": result.decided_at}
        history["decisions"].append(asdict(result))
        atomic_write_json(paths.promotion, history)
        _print(result)
        return result

    def cleanup(self) -> None:
        """Nothing to release."""


def run_gate(cfg: PipelineConfig, candidate: str | None = None) -> GateDecision:
    return run_recipe(GateStage(cfg, candidate))


def _print(result: GateDecision) -> None:
    candidate, incumbent = result.candidate, result.incumbent
    rows = [[c.name, c.value, c.threshold, "pass" if c.passed else "FAIL"] for c in result.checks]
    console.print(summary_table(f"gate: {candidate} against {incumbent}", ["check", "value", "limit", "verdict"], rows))
    verdict = "[bold green]promoted[/]" if result.promoted else "[bold red]not promoted[/]"
    console.print(f"gate: {candidate} {verdict}: {'; '.join(result.reasons)}")
