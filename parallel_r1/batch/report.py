"""Batch artifacts: per batch a Parquet table and SFT-ready JSONL, plus report.md of their composition.

Also the per-batch training messages (under the specialist's system prompt) and the rows of the terminal summary
table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from parallel_r1.batch.batches import Batch, BatchSet, confidence_tier, describe
from parallel_r1.batch.sampler import teacher_openers
from parallel_r1.data.io import atomic_write_jsonl, atomic_write_text
from parallel_r1.data.prompts import system_prompt
from parallel_r1.data.schema import Dialogue, write_dialogues
from parallel_r1.grade.records import profile_of, scenario_of
from parallel_r1.grade.rubric import grade_turn


def training_messages(dialogue: Dialogue, system: str, turn_floor: float | None = None) -> list[dict]:
    """The dialogue as chat messages after `system`. With a `turn_floor`, each teacher turn carries a `weight`
    (the OpenAI fine-tuning format's): 1 when the rubric grades it >= the floor or it is the dialogue's best turn,
    0 otherwise — a weak turn stays as context for the next one but is not a target."""
    messages = dialogue.messages(system=system)
    if turn_floor is None:
        return messages
    profile, scenario = profile_of(dialogue), scenario_of(dialogue)
    turns = messages[1:]
    scores = {i: grade_turn(turns[:i], m["content"], profile, scenario).score
              for i, m in enumerate(turns) if m["role"] == "assistant"}
    best = max(scores, key=scores.get, default=None)
    return messages[:1] + [{**m, "weight": int(scores[i] >= turn_floor or i == best)} if i in scores else m
                           for i, m in enumerate(turns)]


def sft_records(batch: Batch, turn_floor: float | None = None) -> list[dict]:
    """One `{"messages": [...]}` per dialogue: the system prompt, then the student as user, the teacher as
    assistant (weighted per turn with a `turn_floor`, see `training_messages`)."""
    prompt = system_prompt(batch.spec)
    return [{"messages": training_messages(d, prompt, turn_floor)} for d in batch.dialogues]


def trained_turns(records: list[dict]) -> tuple[int, int]:
    """(teacher turns that carry loss, all teacher turns) over SFT records."""
    turns = [m for r in records for m in r["messages"] if m["role"] == "assistant"]
    return sum(1 for m in turns if m.get("weight", 1)), len(turns)


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _counts(values: Iterable) -> str:
    counts = Counter(values)
    return ", ".join(f"{k} {n}" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))) or "–"


def summary_rows(batch_set: BatchSet) -> list[dict]:
    """One row per batch for the terminal summary table (means are None for an empty batch)."""
    return [
        {
            "name": b.name,
            "size": b.size,
            "target": b.target,
            "mean_score": b.mean_score,
            "mean_confidence": b.mean_confidence,
            "density": b.mean_density,
            "status": b.status,
        }
        for b in batch_set
    ]


def _opener_variety(batch: Batch) -> str:
    openers = [o for d in batch.dialogues for o in teacher_openers(d)]
    return f"{len(set(openers))} distinct of {len(openers)}" if openers else "–"


def _trained_turns(records: list[dict], turn_floor: float | None) -> str:
    trained, total = trained_turns(records)
    rule = "every teacher turn" if turn_floor is None else f"turns graded >= {turn_floor:g} or a dialogue's best"
    return f"{trained} of {total} ({rule})"


def _composition(batch: Batch, batch_set: BatchSet, records: list[dict]) -> list[str]:
    cfg = batch_set.config
    ds = batch.dialogues
    rows = [
        ("count / target", f"{batch.size} / {batch.target}"),
        ("eligible", f"{batch.eligible} ({describe(batch.spec, cfg)})"),
        ("length buckets", _counts(d.length_bucket for d in ds)),
        ("question types", _counts(d.question_type for d in ds)),
        ("confidence tiers", _counts(confidence_tier(d.confidence, cfg) for d in ds)),
        ("profile kinds", _counts(d.profile_kind for d in ds)),
        ("scenarios", f"{len({d.scenario_id for d in ds})} distinct"),
        ("mean score", _fmt(batch.mean_score)),
        ("mean confidence", _fmt(batch.mean_confidence)),
        ("mean stock-phrase density",
         f"{_fmt(batch.mean_density)} (cap {cfg.max_stock_phrase_density:g}; {batch.cap_removed} replaced or dropped)"),
        ("teacher openers", _opener_variety(batch)),
        ("trained teacher turns", _trained_turns(records, cfg.turn_floor)),
    ]
    return ["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]


def render_report(batch_set: BatchSet, records: dict[str, list[dict]] | None = None) -> str:
    """report.md: an overview table, shortfall warnings, then a composition table per batch. `records`: each
    batch's `sft_records`, when the caller has them already (grading every turn again is the costly part)."""
    cfg = batch_set.config
    records = records or {b.name: sft_records(b, cfg.turn_floor) for b in batch_set}
    lines = [
        "# Specialist batches",
        "",
        f"Built from {batch_set.discovered} graded dialogues; quality floor {cfg.quality_floor:g}, "
        f"confidence high >= {cfg.high_confidence:g}, medium >= {cfg.medium_confidence:g}, stock-phrase cap "
        f"{cfg.max_stock_phrase_density:g} per teacher turn, overlap {'allowed' if cfg.allow_overlap else 'none'}, "
        f"seed {cfg.seed}. Filled in this order (most constrained first, unfillable last): "
        f"{', '.join(batch_set.allocation_order)}.",
        "",
        "| batch | size / target | mean score | mean confidence | stock-phrase density | status |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {r['name']} | {r['size']} / {r['target']} | {_fmt(r['mean_score'])} | "
              f"{_fmt(r['mean_confidence'])} | {_fmt(r['density'])} | {r['status']} |"
              for r in summary_rows(batch_set)]
    if batch_set.warnings:
        lines += ["", "## Warnings", "", *(f"- **short**: {w}" for w in batch_set.warnings)]
    for batch in batch_set:
        lines += ["", f"## {batch.name}", ""]
        if batch.spec.description:
            lines += [batch.spec.description, ""]
        lines += _composition(batch, batch_set, records[batch.name])
    return "\n".join(lines) + "\n"


def write_batches(batch_set: BatchSet, out_dir: Path) -> list[Path]:
    """Write `<name>.parquet` (Dialogue schema) and `<name>.jsonl` (SFT messages) per batch, then report.md.

    Every file is written atomically; returns the paths written.
    """
    out_dir = Path(out_dir)
    paths: list[Path] = []
    records = {b.name: sft_records(b, batch_set.config.turn_floor) for b in batch_set}
    for batch in batch_set:
        paths.append(write_dialogues(out_dir / f"{batch.name}.parquet", batch.dialogues))
        paths.append(atomic_write_jsonl(out_dir / f"{batch.name}.jsonl", records[batch.name]))
    paths.append(atomic_write_text(out_dir / "report.md", render_report(batch_set, records)))
    return paths
