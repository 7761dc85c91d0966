"""The GRPO run's per-step metrics: one JSON line per step in `parallel/rl/metrics.jsonl`, a PNG of the reward
components and format adherence over the steps, and the rows of the stage's summary.

A resumed run first drops the lines of steps after its checkpoint (they are replayed), so the file never holds a
step twice. The names under which TRL logs each reward function's mean are mapped to the components here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from parallel_r1.data.io import atomic_write_jsonl, read_jsonl

# component -> the reward function's `__name__`, under which TRL logs `rewards/<name>/mean`
REWARD_NAMES = {"rubric": "rubric", "diversity": "path_diversity", "consistency": "verification_consistency",
                "format": "format"}
ADHERENCE = "format_adherence"
TIMINGS = ("generation_s", "reward_s", "weight_sync_s", "update_s", "step_s")


def component_means(logs: dict) -> dict[str, float | None]:
    """Each component's mean reward of the step, from TRL's logs."""
    return {c: logs.get(f"rewards/{name}/mean") for c, name in REWARD_NAMES.items()}


class MetricsLog:
    """Append-only JSONL of step records (`{"step": n, ...}`), truncated to a checkpoint on resume."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def read(self) -> list[dict]:
        return read_jsonl(self.path)

    def keep_until(self, step: int) -> int:
        """Drop records after `step`, and a torn last line, so appends start on a line of their own (atomically);
        returns how many whole records were dropped."""
        rows = self.read()
        kept = [r for r in rows if r["step"] <= step]
        if len(kept) != len(rows) or self._torn():
            atomic_write_jsonl(self.path, kept)
        return len(rows) - len(kept)

    def _torn(self) -> bool:
        """Whether the file ends inside a line (a run killed while appending)."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return False
        with open(self.path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"

    def append(self, record: dict) -> None:
        """One line per call, flushed and synced: a killed run loses at most the line being written."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())


def trend(rows: Sequence[dict], key: str, window: int = 5) -> tuple[float | None, float | None]:
    """Mean of `key` over the first and the last `window` steps that have it (windows never overlap)."""
    values = [r[key] for r in rows if r.get(key) is not None]
    if not values:
        return None, None
    w = max(1, min(window, len(values) // 2))
    return sum(values[:w]) / w, sum(values[-w:]) / w


def plot_metrics(rows: Sequence[dict], out: Path) -> Path | None:
    """Reward components, total reward and format adherence per step (top), step-time breakdown (bottom)."""
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from parallel_r1.data.io import atomic_write_bytes

    steps = [r["step"] for r in rows]
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(8, 7), sharex=True, height_ratios=(2, 1))
    for key in (*REWARD_NAMES, "reward", ADHERENCE):
        ax.plot(steps, [r.get(key) for r in rows], marker=".", label=key,
                linewidth=2.5 if key == ADHERENCE else 1.2)
    for r in rows:
        if r.get("promoted_to"):
            ax.axvline(r["step"], color="grey", linestyle=":")
            ax.annotate(f" -> {r['promoted_to']}", (r["step"], 0.97), xycoords=("data", "axes fraction"), fontsize=8)
    ax.set_ylabel("mean per step")
    ax.set_title("GRPO: reward components and format adherence")
    ax.legend(fontsize=8, ncol=3)
    bottom = [0.0] * len(rows)
    for key in TIMINGS[:-1]:
        values = [r.get(key) or 0.0 for r in rows]
        bx.bar(steps, values, bottom=bottom, label=key.removesuffix("_s"))
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    bx.set_xlabel("step")
    bx.set_ylabel("seconds")
    bx.legend(fontsize=8, ncol=4)
    fig.tight_layout()
    out = Path(out)
    tmp = out.with_name(f".{out.name}.render.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    atomic_write_bytes(out, tmp.read_bytes())
    tmp.unlink()
    return out
