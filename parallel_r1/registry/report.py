"""`parallel-r1 models`: the registry as tables: every version with what it was trained from, which one is served,
and the promotion history."""

from __future__ import annotations

from pathlib import Path

from parallel_r1.console import console, summary_table
from parallel_r1.registry.promotion import PromotionRecord


def print_registry(workdir: Path | str) -> None:
    record = PromotionRecord(workdir)
    versions = record.registry.versions()
    served = {p.ref for p in record.promoted().values()}
    rows = [[v.ref, v.kind, "served" if v.ref in served else "", v.digest, v.parent or "", v.data_digest or "",
             v.created_at] for v in versions]
    console.print(summary_table(f"model registry ({record.registry.file})",
                                ["version", "kind", "status", "digest", "parent", "data", "created"], rows))
    events = record.read()["events"]
    if events:
        console.print(summary_table(f"promotions and rollbacks ({record.file})", ["event", "version", "from", "at",
                                                                                 "by", "reason"],
                                    [[e["event"], e["ref"], e.get("from") or "", e["at"], e["by"], e["reason"]]
                                     for e in events]))
    if not versions:
        console.print("no model is registered yet: `parallel-r1 finetune` registers each model it trains")
