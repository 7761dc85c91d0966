"""Measuring a profile reader on a labelled JSONL: right-specialist and exact-trait-set accuracy, per-trait
precision / recall / F1, and the confusion of specialist picks. The file's format is `labelled`'s.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from parallel_r1.config import ConfigError, OpenAIEndpointConfig, PipelineConfig, ServeConfig
from parallel_r1.data.profiles import TRAITS, StudentProfileConfig
from parallel_r1.profiles.labelled import LabelledExample, load_labelled
from parallel_r1.profiles.reader import check_method, format_reading, read_profile, read_profiles


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


@dataclass
class TraitScore:
    precision: float
    recall: float
    f1: float
    support: int  # examples that truly have the trait
    predicted: int  # examples the reader gave it


@dataclass
class EvaluationResult:
    """How a reader did on a labelled set. `confusion`: true specialist -> picked specialist -> count."""

    method: str
    n: int
    specialist_accuracy: float
    exact_accuracy: float
    kind_accuracy: float
    per_trait: dict[str, TraitScore]
    confusion: dict[str, dict[str, int]]
    errors: list[dict[str, Any]] = field(default_factory=list)  # the wrong specialist picks, by line

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_readings(pairs: list[tuple[StudentProfileConfig, StudentProfileConfig, int]], method: str,
                   routes: dict[str, str] | None = None) -> EvaluationResult:
    """`pairs`: (true profile, read profile, line number) per example."""
    routes = routes or ServeConfig().static_routes
    confusion: dict[str, Counter] = {}
    right_specialist = exact = right_kind = 0
    tp, fp, fn = Counter(), Counter(), Counter()
    errors = []
    for truth, read, line in pairs:
        want, got = routes.get(truth.kind, truth.kind), routes.get(read.kind, read.kind)
        confusion.setdefault(want, Counter())[got] += 1
        right_specialist += want == got
        exact += set(truth.traits) == set(read.traits)
        right_kind += truth.kind == read.kind
        for t in TRAITS:
            tp[t] += getattr(truth, t) and getattr(read, t)
            fp[t] += getattr(read, t) and not getattr(truth, t)
            fn[t] += getattr(truth, t) and not getattr(read, t)
        if want != got:
            errors.append({"line": line, "truth": truth.traits, "read": read.traits})
    per_trait = {}
    for t in TRAITS:
        p, r = _ratio(tp[t], tp[t] + fp[t]), _ratio(tp[t], tp[t] + fn[t])
        per_trait[t] = TraitScore(round(p, 4), round(r, 4), round(_ratio(2 * p * r, p + r), 4), tp[t] + fn[t],
                                  tp[t] + fp[t])
    n = len(pairs)
    return EvaluationResult(method, n, round(_ratio(right_specialist, n), 4), round(_ratio(exact, n), 4),
                            round(_ratio(right_kind, n), 4), per_trait,
                            {k: dict(v) for k, v in sorted(confusion.items())}, errors)


def evaluate(examples: list[LabelledExample], method: str = "embedding",
             endpoint: OpenAIEndpointConfig | None = None) -> EvaluationResult:
    """Read every example with `method` and score the readings."""

    readings = read_profiles([e.turns for e in examples], method=method, endpoint=endpoint)
    return score_readings([(e.profile, r.profile, e.line) for e, r in zip(examples, readings, strict=True)],
                          method)


def evaluate_file(path: str | Path, method: str = "embedding",
                  endpoint: OpenAIEndpointConfig | None = None) -> EvaluationResult:
    """`parallel-r1 profile --eval FILE`: the reader's accuracy on a labelled JSONL."""
    return evaluate(load_labelled(path), method, endpoint)


def format_evaluation(result: EvaluationResult):
    """A rich renderable: the headline accuracies, per-trait scores and the specialist confusion."""
    from rich.console import Group
    from rich.table import Table

    head = Table(title=f"profile reader '{result.method}' on {result.n} labelled examples", title_justify="left")
    head.add_column("measure")
    head.add_column("value", justify="right")
    head.add_row("right specialist", f"{result.specialist_accuracy:.1%}")
    head.add_row("exact trait set", f"{result.exact_accuracy:.1%}")
    head.add_row("right primary kind", f"{result.kind_accuracy:.1%}")
    traits = Table(title="per trait", title_justify="left")
    for col in ("trait", "precision", "recall", "F1", "true", "read"):
        traits.add_column(col, justify="left" if col == "trait" else "right")
    for t, s in result.per_trait.items():
        traits.add_row(t, f"{s.precision:.2f}", f"{s.recall:.2f}", f"{s.f1:.2f}", str(s.support), str(s.predicted))
    picked = sorted({p for row in result.confusion.values() for p in row})
    confusion = Table(title="specialist picks (rows: right one)", title_justify="left")
    confusion.add_column("right \\ picked")
    for p in picked:
        confusion.add_column(p, justify="right")
    for want, row in result.confusion.items():
        confusion.add_row(want, *(str(row.get(p, 0)) for p in picked))
    return Group(head, traits, confusion)



def profile_report(cfg: PipelineConfig, messages: list[str] | None, method: str, eval_file: Path | None):
    """What `parallel-r1 profile` prints: the reading of a student's `messages` (traits, evidence, the specialist
    Serve would pick), or with `eval_file` the `method` reader measured on that labelled JSONL."""
    try:
        check_method(method)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if eval_file is not None:
        return format_evaluation(evaluate_file(eval_file, method, cfg.grade.judge))
    if not messages:
        raise ConfigError("profile: give the student's message(s), or --eval FILE")
    return format_reading(read_profile(messages, method, cfg.grade.judge, cfg.serve.static_routes), messages)

__all__ = ["EvaluationResult", "TraitScore", "evaluate", "evaluate_file", "format_evaluation", "profile_report",
           "score_readings"]
