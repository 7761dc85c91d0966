"""Compare artifacts: `eval/results.parquet` (one row per graded reply), `eval/report.md` with the
results table, the success criteria and the decision, and two plots: a model x slice heatmap and the
deltas against the base with their confidence intervals."""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from parallel_r1.compare.criteria import Criterion
from parallel_r1.compare.models import BASE
from parallel_r1.compare.questions import Answer, render_answers
from parallel_r1.compare.scoring import ScoredReply
from parallel_r1.compare.stats import Cell, ModelSummary, cell_map
from parallel_r1.data.io import atomic_write_bytes, atomic_write_table, atomic_write_text
from parallel_r1.data.records import unreadable
from parallel_r1.errors import UserFacingError
from parallel_r1.paths import RunPaths

RESULTS_SCHEMA = pa.schema([
    ("model", pa.string()), ("item_id", pa.string()), ("sample", pa.int32()), ("slices", pa.list_(pa.string())),
    ("profile_kind", pa.string()), ("scenario_id", pa.string()), ("question_type", pa.string()),
    ("score", pa.float64()), ("criteria", pa.map_(pa.string(), pa.float64())), ("stock_phrases", pa.int32()),
    ("dismissive", pa.bool_()), ("answer_dump", pa.bool_()), ("completion_tokens", pa.int32()),
    ("reply", pa.string()),
])


def write_results(path: Path, rows: list[ScoredReply]) -> Path:
    records = [{**asdict(r), "criteria": list(r.criteria.items())} for r in rows]
    return atomic_write_table(path, pa.Table.from_pylist(records, schema=RESULTS_SCHEMA))


def read_results(path: Path) -> list[ScoredReply]:
    """compare's graded replies; a truncated or corrupt file is a one-line error naming it."""
    try:
        rows = pq.read_table(path, schema=RESULTS_SCHEMA).to_pylist()
        return [ScoredReply(**{**r, "criteria": dict(r["criteria"] or [])}) for r in rows]
    except (pa.ArrowException, OSError, ValueError, KeyError, TypeError) as e:
        lines = str(e).strip().splitlines() or [type(e).__name__]
        raise unreadable(path, lines[0], "re-run `parallel-r1 compare` to write it again") from None


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    return buf.getvalue()


def plot_heatmap(cells: list[Cell], models: list[str], slices: list[str], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = cell_map(cells)
    grid = [[cm[m, s].mean if (m, s) in cm else float("nan") for s in slices] for m in models]
    fig, ax = plt.subplots(figsize=(1.1 * len(slices) + 3, 0.5 * len(models) + 1.8))
    im = ax.imshow(grid, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(slices)), slices, rotation=35, ha="right")
    ax.set_yticks(range(len(models)), models)
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white" if v < 0.6 else "black", fontsize=8)
    fig.colorbar(im, ax=ax, label="mean rubric score")
    ax.set_title("Held-out rubric score by model and slice")
    data = _png(fig)
    plt.close(fig)
    return atomic_write_bytes(path, data)


def plot_deltas(cells: list[Cell], models: list[str], slices: list[str], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = cell_map(cells)
    others = [m for m in models if m != BASE]
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(slices)), 4))
    width = 0.8 / max(1, len(others))
    for k, m in enumerate(others):
        xs = [j + (k - (len(others) - 1) / 2) * width for j in range(len(slices))]
        ys = [cm[m, s].delta for s in slices]
        err = [[cm[m, s].delta - cm[m, s].ci_low for s in slices], [cm[m, s].ci_high - cm[m, s].delta for s in slices]]
        ax.bar(xs, ys, width, yerr=err, capsize=2, label=m)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(slices)), slices, rotation=35, ha="right")
    ax.set_ylabel("score - base (95% CI)")
    ax.set_title("Delta against the base model, per slice")
    ax.legend(fontsize=7, ncols=2)
    data = _png(fig)
    plt.close(fig)
    return atomic_write_bytes(path, data)


def render_report(cells: list[Cell], models: list[str], slices: list[str], summaries: dict[str, ModelSummary],
                  criteria: list[Criterion], verdict: tuple[str, str], meta: dict, answers: list[Answer],
                  level: float) -> str:
    cm = cell_map(cells)
    lines = ["# Compare: specialists against the base model", "",
             f"{meta['items']} held-out prefixes ({meta['dropped']} candidates dropped because a training batch "
             f"holds them), {meta['samples']} sampled replies each (temperature {meta['temperature']:g}, "
             f"same seeds for every model), engine `{meta['engine']}`, graded by `{meta.get('grader', 'unknown')}` "
             "(see docs/grading.md). Cells: mean rubric score, delta against "
             "the base with a paired bootstrap 95% CI, n prefixes.", "",
             "| model | " + " | ".join(slices) + " |", "|---|" + "---|" * len(slices)]
    for m in models:
        row = []
        for s in slices:
            c = cm.get((m, s))
            row.append("–" if c is None else f"{c.mean:.3f}" if m == BASE else
                       f"{c.mean:.3f} ({c.delta:+.3f} [{c.ci_low:+.3f}, {c.ci_high:+.3f}], n={c.n})")
        lines.append(f"| {m} | " + " | ".join(row) + " |")
    lines += ["", "## Success criteria", "", "| criterion | verdict | numbers |", "|---|---|---|"]
    lines += [f"| {c.name} | **{c.verdict}** | {c.detail} |" for c in criteria]
    lines += ["", f"**Decision: {verdict[0]}** — {verdict[1]}.", "",
              "## Memorisation check: score next to stock-phrase density", "",
              "| model | mean score | stock phrases / reply | dismissive | answer dumps | tokens / reply |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {s.model} | {s.mean:.3f} | {s.pattern_density:.3f} | {s.dismissive_rate:.1%} | "
              f"{s.answer_dump_rate:.1%} | {s.mean_tokens:.1f} |" for s in summaries.values()]
    lines += ["", "## Parallel thinking", "",
              "Replies in the `<Parallel><Path>…</Path>…</Parallel><Summary>…</Summary>` format (graded by what the "
              "student sees); diversity and consensus over the well-formed blocks.", "",
              "| model | parallel ratio | path diversity | consensus rate |", "|---|---|---|---|"]
    lines += [f"| {s.model} | {s.parallel.parallel_ratio:.1%} | {s.parallel.mean_path_diversity:.3f} | "
              f"{s.parallel.consensus_rate:.1%} |" for s in summaries.values()]
    lines += ["", *render_answers(answers, level)]
    lines += ["![scores](heatmap.png)", "", "![deltas](deltas.png)", ""]
    return "\n".join(lines)


def write_report(paths: RunPaths, text: str, routing: dict) -> tuple[Path, Path]:
    return (atomic_write_text(paths.eval / "report.md", text),
            atomic_write_text(paths.routing_table, json.dumps(routing, indent=2, sort_keys=True) + "\n"))


def read_routing_table(path: Path) -> dict | None:
    """The parsed routing table, or None when the file does not exist."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        table = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserFacingError(f"{path} is not valid JSON ({e}): re-run `parallel-r1 compare`") from None
    if not isinstance(table, dict) or not isinstance(table.get("by_profile", {}), dict):
        raise UserFacingError(f"{path} is not a routing table (expected an object with 'default' and 'by_profile')")
    return table
