"""The scoreboard as one self-contained HTML page: inline SVG charts and plain tables, no scripts, so it renders
the same from a file, from Serve's /dashboard, and in a headless browser."""

from __future__ import annotations

import html
import time

from parallel_r1.scoreboard.board import Board, baseline_of

WIDTH, HEIGHT, PAD = 640, 220, 34
STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}.bad{background:#fbd3d3}.ok{background:#d9f2d9}
.chart{border:1px solid #ddd;margin:6px 0;background:#fff}.muted{color:#777;font-size:12px}
"""


def _e(value) -> str:
    return html.escape(str(value))


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) if ts else ""


def _table(table_id: str, header: list[str], rows: list[list[tuple[str, str] | str]]) -> str:
    """A table; a cell is text or (text, css class)."""
    def cell(c) -> str:
        text, css = c if isinstance(c, tuple) else (c, "")
        return f'<td class="{css}">{_e(text)}</td>' if css else f"<td>{_e(text)}</td>"
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(f"<tr>{''.join(cell(c) for c in row)}</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _flag(value: float, limit: float, fmt: str = "{:.3f}") -> tuple[str, str]:
    return fmt.format(value), "bad" if value > limit else "ok"


def chart(board: Board, model: str) -> str:
    """The model's online scores over time, one point per evaluation (versions coloured apart), with the trigger
    thresholds drawn in: the low-score floor, the failure line and the drift limit under the baseline."""
    evals = board.evaluations[model]
    t0 = evals[0].ts
    span = max(evals[-1].ts - t0, 1.0)  # one evaluation (or all at one time): a one-second axis, not a zero division
    x = lambda ts: PAD + (WIDTH - 2 * PAD) * (ts - t0) / span  # noqa: E731
    y = lambda v: HEIGHT - PAD - (HEIGHT - 2 * PAD) * v  # noqa: E731
    th = board.thresholds
    lines = [("floor", th.score_floor, "#d97706"), ("failure", th.failure_below, "#dc2626")]
    if (base := baseline_of(board, model)) is not None:
        lines.append(("drift limit", base * (1 - th.max_drop), "#7c3aed"))
    parts = [f'<rect x="{PAD}" y="{PAD}" width="{WIDTH - 2 * PAD}" height="{HEIGHT - 2 * PAD}" fill="#fafafa"/>']
    for v in (0.0, 0.5, 1.0):
        parts.append(f'<text x="4" y="{y(v) + 4:.1f}" font-size="10">{v:.1f}</text>')
    for i, (name, value, colour) in enumerate(lines):
        parts.append(f'<line class="threshold" data-name="{name}" data-value="{value:.4f}" x1="{PAD}" '
                     f'x2="{WIDTH - PAD}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="{colour}" '
                     f'stroke-dasharray="5,4"/><text x="{WIDTH - PAD - 90 - 110 * i}" y="{y(value) - 3:.1f}" '
                     f'font-size="10" fill="{colour}">{_e(name)} {value:.2f}</text>')
    versions = list(dict.fromkeys(e.version for e in evals))
    palette = ["#2563eb", "#16a34a", "#db2777", "#0891b2", "#65a30d", "#9333ea"]
    for e in evals:
        colour = "#dc2626" if e.error else palette[versions.index(e.version) % len(palette)]
        parts.append(f'<circle class="point" data-version="{_e(e.version)}" data-score="{e.score:.4f}" '
                     f'cx="{x(e.ts):.1f}" cy="{y(e.score):.1f}" r="3" fill="{colour}"/>')
    legend = " ".join(f'<tspan fill="{palette[i % len(palette)]}">● {_e(v)}</tspan>' for i, v in enumerate(versions))
    parts.append(f'<text x="{PAD}" y="{HEIGHT - 8}" font-size="11">{legend}</text>')
    return (f'<svg class="chart" data-model="{_e(model)}" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="online score of {_e(model)}">'
            f'{"".join(parts)}</svg>')


def _served(board: Board) -> str:
    rows = [[name, p["ref"], f"{p.get('score', 0):.3f}", str(p.get("at") or ""), p.get("by", ""),
             p.get("reason", ""), ", ".join(p.get("previous") or [])] for name, p in sorted(board.promoted.items())]
    if not rows:
        return "<p>Nothing is promoted: Serve answers with the base model only.</p>"
    return _table("served", ["model", "served version", "promoted on score", "promoted at", "by", "why",
                             "earlier versions"], rows)


def _signals(board: Board) -> str:
    th = board.thresholds
    rows = []
    for s in board.signals:
        served = board.promoted.get(s.model, {}).get("ref") == s.version
        rows.append([s.model, s.version + (" (served)" if served else ""), str(s.n), f"{s.mean:.3f}",
                     _flag(s.std, th.max_std), _flag(s.failure_rate, th.max_failure_rate, "{:.1%}"),
                     _flag(s.drop, th.max_drop, "{:.1%}"), _flag(s.consecutive_low, th.consecutive_low - 1, "{:d}"),
                     _flag(s.compliance_failures, th.max_compliance_failures, "{:d}"), _when(s.last_ts)])
    header = ["model", "version", "evaluations", "mean (latest window)", f"std (limit {th.max_std:g})",
              f"failure rate (limit {th.max_failure_rate:.0%})", f"drift (limit {th.max_drop:.0%})",
              f"low in a row (limit {th.consecutive_low - 1})",
              f"compliance failures (limit {th.max_compliance_failures})", "last evaluation (UTC)"]
    return _table("signals", header, rows) if rows else "<p>No online evaluations yet.</p>"


def _routes(board: Board) -> str:
    table = board.routing
    if not table:
        return "<p>No routing table: the static routes (serve.static_routes) are in force.</p>"
    rows = []
    for kind, r in sorted((table.get("by_profile") or {}).items()):
        r = r if isinstance(r, dict) else {"model": r}
        ci = r.get("margin_ci")
        rows.append([kind, str(r.get("model", "")), f"{r['margin']:.3f}" if "margin" in r else "",
                     f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "",
                     ("routed", "ok") if r.get("significant") else ("static route (within noise)", "bad")])
    return (f"<p>Default: {_e(table.get('default', ''))}</p>" +
            _table("routes", ["profile", "winner", "margin", "margin 95% CI", "in force"], rows))


def _models(board: Board) -> str:
    rows = [[name, f"{s.mean:.3f}", f"{s.dismissive_rate:.1%}", f"{s.answer_dump_rate:.1%}",
             f"{s.parallel.parallel_ratio:.1%}", f"{s.parallel.mean_path_diversity:.3f}",
             f"{s.parallel.consensus_rate:.1%}"] for name, s in board.summaries.items()]
    header = ["model", "held-out score", "dismissive", "answer dumps", "format adherence", "path diversity",
              "consensus rate"]
    return _table("kpis", header, rows) if rows else "<p>No compare results yet.</p>"


def _triggers(board: Board) -> str:
    rows = [[_when(t.ts), t.model, t.version, t.action, t.reason, t.job_id or "",
             (t.status, "bad" if t.status in ("FAILED", "SUBMIT_FAILED", "LOST") else "")]
            for t in reversed(board.triggers)]
    return _table("triggers", ["queued (UTC)", "model", "version", "action", "why", "Ray job", "status"],
                  rows) if rows else "<p>No trigger has fired.</p>"


def _events(board: Board) -> str:
    rows = [[e.get("at", ""), e.get("event", ""), e.get("ref", ""), e.get("from") or "", e.get("by", ""),
             e.get("reason", "")] for e in reversed(board.events)]
    return _table("events", ["at", "event", "version", "from", "by", "why"], rows) if rows else \
        "<p>No promotion or rollback yet.</p>"


def render(board: Board) -> str:
    """The page."""
    charts = "".join(f"<h3>{_e(m)}</h3>{chart(board, m)}" for m in sorted(board.evaluations)) or \
        "<p>No online evaluations yet: serve with serve.grading_fraction &gt; 0.</p>"
    skipped = (f'<p class="muted">{board.skipped_lines} unreadable line(s) of the score log skipped.</p>'
               if board.skipped_lines else "")
    sections = [
        ("Served versions", _served(board)), ("Online score", charts + skipped),
        ("Reliability, drift and compliance", _signals(board)), ("Routes in force", _routes(board)),
        ("Held-out scores and parallel KPIs (last compare)", _models(board)),
        ("Triggers and their jobs", _triggers(board)), ("Promotions and rollbacks", _events(board)),
    ]
    body = "".join(f"<h2>{_e(title)}</h2>{content}" for title, content in sections)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>ParallelScoreboard</title>'
            f"<style>{STYLE}</style></head><body><h1>ParallelScoreboard</h1>"
            f'<p class="muted">{_e(board.workdir)} · generated {_when(board.generated_at)} UTC</p>{body}</body></html>')
