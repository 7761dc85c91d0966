"""Validation of a grader against human labels: what a team runs on its own labelled replies before trusting
any grader. Run it with `parallel-r1 validate-grader LABELLED.jsonl [--grader heuristic|llm|combined|fitted]`.

Every reply is graded as one turn after its history; per human dimension the table gives the criterion it is
compared with, Spearman's rho with a 95 % interval (bootstrap over conversations), the same for a baseline
that only checks for a question mark, and macro-F1 of the criterion cut into the label's classes.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from parallel_r1.data.io import atomic_write_bytes, atomic_write_json
from parallel_r1.errors import UserFacingError
from parallel_r1.grade.agreement import Interval, cluster_bootstrap, cut, macro_f1
from parallel_r1.grade.grade import Grade
from parallel_r1.grade.labels import DIMENSIONS, LabelledReply

OVERALL = "overall"


def question_mark_baseline(response: str) -> float:
    """The trivial grader every real one must beat: 1 if the reply asks anything, else 0."""
    return 1.0 if "?" in response else 0.0


@dataclass
class DimensionResult:
    """Agreement of one criterion (or the overall score) with one human dimension."""

    dimension: str
    criterion: str
    n: int
    rho: Interval
    baseline_rho: Interval
    macro_f1: float
    baseline_macro_f1: float

    def to_dict(self) -> dict:
        return {"dimension": self.dimension, "criterion": self.criterion, "n": self.n,
                "rho": self.rho.to_dict(), "baseline_rho": self.baseline_rho.to_dict(),
                "macro_f1": _round(self.macro_f1), "baseline_macro_f1": _round(self.baseline_macro_f1)}


@dataclass
class ValidationReport:
    """The agreement table of one grader on one labelled file."""

    grader: str
    source: str
    n_replies: int
    n_conversations: int
    rows: list[DimensionResult]
    failed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    method: str = "graded"

    def to_dict(self) -> dict:
        return {"grader": self.grader, "source": self.source, "method": self.method, "n_replies": self.n_replies,
                "n_conversations": self.n_conversations, "failed": self.failed, "skipped": self.skipped,
                "elapsed_s": round(self.elapsed_s, 2), "rows": [r.to_dict() for r in self.rows]}

    def row(self, dimension: str) -> DimensionResult:
        return next(r for r in self.rows if r.dimension == dimension)


def _round(v: float) -> float | None:
    return None if math.isnan(v) else round(v, 4)


def agreement_table(replies: list[LabelledReply], grades: list[Grade | None], *, n_boot: int = 1000,
                    seed: int = 0) -> list[DimensionResult]:
    """One row per human dimension present in the replies (plus the overall score), over graded replies."""
    pairs = [(r, g) for r, g in zip(replies, grades, strict=True) if g is not None]
    groups = np.array([r.conversation_id for r, _ in pairs])
    baseline = np.array([question_mark_baseline(r.response) for r, _ in pairs])
    present = [d for d in DIMENSIONS if any(d in r.labels for r, _ in pairs)]
    rows = []
    for name in [*present, OVERALL]:
        if name == OVERALL:
            keep = [i for i, (r, _) in enumerate(pairs) if r.overall() is not None]
            truth = np.array([pairs[i][0].overall() for i in keep])
            values = np.array([pairs[i][1].score for i in keep])
            criterion, classes = "score", [0.0, 0.5, 1.0]
            truth_classes = cut(truth, classes) if len(keep) else truth
        else:
            dim = DIMENSIONS[name]
            keep = [i for i, (r, g) in enumerate(pairs) if name in r.labels and dim.criterion in g.criteria]
            truth = np.array([pairs[i][0].labels[name] for i in keep])
            values = np.array([pairs[i][1].criteria[dim.criterion] for i in keep])
            criterion, classes = dim.criterion, dim.classes
            truth_classes = truth
        if len(keep) < 3:
            continue
        base, group = baseline[keep], groups[keep]
        rows.append(DimensionResult(
            dimension=name, criterion=criterion, n=len(keep),
            rho=cluster_bootstrap(values, truth, group, n_boot=n_boot, seed=seed),
            baseline_rho=cluster_bootstrap(base, truth, group, n_boot=n_boot, seed=seed),
            macro_f1=macro_f1(cut(values, classes), truth_classes, classes),
            baseline_macro_f1=macro_f1(cut(base, classes), truth_classes, classes),
        ))
    return rows


def validate(replies: list[LabelledReply], grades: list[Grade | None], *, grader: str, source: str,
             elapsed_s: float = 0.0, method: str = "graded", n_boot: int = 1000) -> ValidationReport:
    """The report of grades (None where the grader failed on a reply) against the replies' labels."""
    skipped = Counter(name for r in replies for name in r.skipped)
    return ValidationReport(
        grader=grader, source=source, n_replies=len(replies),
        n_conversations=len({r.conversation_id for r in replies}),
        rows=agreement_table(replies, grades, n_boot=n_boot), failed=sum(g is None for g in grades),
        skipped=dict(skipped), elapsed_s=elapsed_s, method=method,
    )


def grade_replies(replies: list[LabelledReply], grader) -> tuple[list[Grade | None], float]:
    """Each reply graded as one turn after its history (None where the grader failed), and the time taken.

    A grader that fails on every reply is an error naming its most common failure."""
    started = time.perf_counter()
    results = grader.grade_turns([(r.history, r.response) for r in replies])
    grades = [g if isinstance(g, Grade) else None for g in results]
    if replies and not any(grades):
        (error, count), = Counter(str(getattr(g, "error", g)) for g in results).most_common(1)
        raise UserFacingError(f"{grader.name} could not grade any of the {len(replies)} replies; most common error "
                              f"({count}x): {error}")
    return grades, time.perf_counter() - started


def write_report(report: ValidationReport, out_dir: Path) -> tuple[Path, Path]:
    """validation.json and validation.png (rho per dimension, grader vs baseline, with intervals)."""
    out_dir = Path(out_dir)
    json_path = atomic_write_json(out_dir / "validation.json", report.to_dict())
    return json_path, atomic_write_bytes(out_dir / "validation.png", _plot(report))


def _plot(report: ValidationReport) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report.rows
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.55 * len(rows)))
    for offset, label, pick, color in ((-0.18, report.grader, lambda r: r.rho, "tab:blue"),
                                       (0.18, "question-mark baseline", lambda r: r.baseline_rho, "tab:gray")):
        values = np.array([np.nan_to_num(pick(r).value) for r in rows])
        low = np.array([max(0.0, np.nan_to_num(pick(r).value - pick(r).low)) for r in rows])
        high = np.array([max(0.0, np.nan_to_num(pick(r).high - pick(r).value)) for r in rows])
        ax.barh(y + offset, values, height=0.34, xerr=[low, high], color=color, label=label, capsize=3)
    ax.set_yticks(y, [f"{r.dimension}\n({r.criterion})" for r in rows], fontsize=8)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.invert_yaxis()
    ax.set_xlabel("Spearman rho with the human labels (95 % bootstrap interval over conversations)")
    ax.set_title(f"{report.grader} on {Path(report.source).name} ({report.n_replies} replies)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def table_rows(report: ValidationReport) -> list[tuple]:
    """The report as rows for a summary table."""
    def fmt(i: Interval) -> str:
        if math.isnan(i.value):
            return "n/a"
        return f"{i.value:+.2f} [{i.low:+.2f}, {i.high:+.2f}]" if not math.isnan(i.low) else f"{i.value:+.2f}"

    def f1(v: float) -> str:
        return "n/a" if math.isnan(v) else f"{v:.2f}"

    return [(r.dimension, r.criterion, r.n, fmt(r.rho), fmt(r.baseline_rho), f1(r.macro_f1), f1(r.baseline_macro_f1))
            for r in report.rows]


TABLE_COLUMNS = ["human dimension", "criterion", "n", "rho [95% CI]", "'?' rho [95% CI]", "F1", "'?' F1"]
