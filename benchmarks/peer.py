"""The shared harness of the peer benchmarks: ours and what a user would run instead, alternately and repeatedly, and
one row per benchmark in benchmarks/results/summary.json with the machine it ran on.

Run: `python benchmarks/peer.py [--markdown]` prints the summary table of summary.json (`make bench` ends with it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SUMMARY = ROOT / "benchmarks" / "results" / "summary.json"
T = TypeVar("T")
COLUMNS = ("benchmark", "ours", "peer", "unit", "ratio", "goal", "verdict", "physical limit")


@dataclass(frozen=True)
class Goal:
    """A goal on ours against the peer: on their ratio (ours / peer) or on their difference (ours - peer)."""

    on: str  # "ratio" or "difference"
    op: str  # ">=" or "<="
    bound: float

    def __post_init__(self) -> None:
        if self.on not in ("ratio", "difference") or self.op not in (">=", "<="):
            raise ValueError(f"a goal is on 'ratio' or 'difference' with '>=' or '<=', not {self}")

    @property
    def text(self) -> str:
        op = "≥" if self.op == ">=" else "≤"
        return f"{op} {self.bound:g}×" if self.on == "ratio" else f"Δ {op} {self.bound:+g}"  # Δ: ours - peer

    def met(self, ours: float, peer: float) -> bool:
        value = ours / peer if self.on == "ratio" else ours - peer
        return value >= self.bound if self.op == ">=" else value <= self.bound


def alternate(ours: Callable[[], T], peer: Callable[[], T], reps: int) -> tuple[list[T], list[T]]:
    """`reps` figures of each, the two interleaved (ours first in even repetitions, the peer first in odd ones) so
    that the host's load drift hits both alike."""
    if reps < 1:
        raise ValueError("reps must be at least 1")
    mine: list[T] = []
    theirs: list[T] = []
    for rep in range(reps):
        order = ((ours, mine), (peer, theirs)) if rep % 2 == 0 else ((peer, theirs), (ours, mine))
        for run, into in order:
            into.append(run())
    return mine, theirs


def spread(values: list[float]) -> dict:
    """The median, min and max of a figure's repetitions, and the repetitions themselves."""
    if not values:
        raise ValueError("no repetitions to summarise")
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": list(values)}


def row(benchmark: str, ours: list[float], peer: list[float], unit: str, goal: Goal | None,
        limit: dict | None = None) -> dict:
    """One summary row from the repetitions of both: medians, spreads, ratio, goal and verdict (on the medians; "-"
    without a goal); `limit` is the physical limit of the figure where one exists ({"value", "unit", "note"})."""
    mine, theirs = spread(ours), spread(peer)
    met = goal is not None and goal.met(mine["median"], theirs["median"])
    return {"benchmark": benchmark, "ours": mine["median"], "peer": theirs["median"], "unit": unit,
            "ours_spread": mine, "peer_spread": theirs, "ratio": mine["median"] / theirs["median"],
            "goal": goal.text if goal else "-", "verdict": "-" if goal is None else "met" if met else "missed",
            "limit": limit}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (Linux /proc); 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(root: int, exclude: int | None = None) -> list[int]:
    """The processes below `root` (not `root` itself), leaving out `exclude` and everything below it."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if pid != exclude:
            found.append(pid)
            todo += children.get(pid, [])
    return found


def tree_cpu_seconds(root: int, exclude: int | None = None) -> dict[int, tuple[str, float]]:
    """CPU seconds so far of the live processes below `root` (see `descendants`): pid -> (title, seconds)."""
    found = {}
    for pid in descendants(root, exclude):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")[:60]
        except OSError:
            continue
        found[pid] = (title, cpu_seconds(pid))
    return found


def cpu_spent(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds spent between two `tree_cpu_seconds` snapshots, by process title, matched by pid (a process
    started in between counts whole). A Ray worker's title names its current task (`ray::ProxyActor.method`), so a
    title is cut at the first "." after "ray::"."""
    spent: dict[str, float] = {}
    for pid, (title, seconds) in after.items():
        if title.startswith("ray::"):
            title = title.split(".", 1)[0]
        spent[title] = spent.get(title, 0.0) + seconds - before.get(pid, ("", 0.0))[1]
    return spent


def _git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)benchmarks/results"],  # the summary a run writes is not the code
                               cwd=ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("+uncommitted" if dirty.stdout.strip() else "")


class Machine:
    """The machine a benchmark ran on; made at its start (load average before), closed by `describe` (after)."""

    def __init__(self) -> None:
        self.load_before = list(os.getloadavg())
        self.started = time.time()

    def describe(self) -> dict:
        return {"cpus": os.cpu_count(), "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
                                                            / 1024**3, 1),
                "load_before": self.load_before, "load_after": list(os.getloadavg()), "commit": _git_commit(),
                "date": datetime.now(UTC).isoformat(timespec="seconds"), "duration_s": time.time() - self.started}


def record(rows: list[dict], machine: Machine, path: Path = SUMMARY) -> Path:
    """Put `rows` into the summary, each with the machine; a row replaces the one of the same benchmark. Written
    atomically (a temporary file, then os.replace)."""
    summary = json.loads(path.read_text()) if path.exists() else {"rows": []}
    where = machine.describe()
    kept = {r["benchmark"]: r for r in summary["rows"]}
    for r in rows:
        kept[r["benchmark"]] = {**r, "machine": where}
    summary["rows"] = list(kept.values())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def _figure(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def table_rows(summary: dict) -> list[tuple[str, ...]]:
    """The summary table's rows: medians with their min-max, ratio, goal, verdict and the physical limit."""
    out = []
    for r in summary["rows"]:
        ours, peer = r["ours_spread"], r["peer_spread"]
        limit = r.get("limit")
        out.append((r["benchmark"], f"{_figure(r['ours'])} ({_figure(ours['min'])}–{_figure(ours['max'])})",
                    f"{_figure(r['peer'])} ({_figure(peer['min'])}–{_figure(peer['max'])})", r["unit"],
                    f"{r['ratio']:.2f}×", r["goal"], r["verdict"],
                    "-" if not limit else _figure(limit["value"]) + ("" if limit["unit"] == r["unit"]
                                                                       else f" {limit['unit']}")))
    return out


def print_table(title: str, summary: dict) -> None:
    """The summary table on stdout, wide enough for every column however the output is piped."""
    from rich.console import Console

    from parallel_r1.console import summary_table

    Console(highlight=False, width=None if sys.stdout.isatty() else 200).print(
        summary_table(title, COLUMNS, table_rows(summary)))


def markdown(summary: dict) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in table_rows(summary)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown (for the README)")
    ap.add_argument("--summary", type=Path, default=SUMMARY)
    args = ap.parse_args()
    if not args.summary.exists():
        sys.exit(f"{args.summary} does not exist yet: run a benchmark with a peer first")
    summary = json.loads(args.summary.read_text())
    if args.markdown:
        print(markdown(summary))
        return
    print_table(f"benchmarks against their peers ({args.summary})", summary)


if __name__ == "__main__":
    main()
