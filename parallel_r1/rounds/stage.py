"""`parallel-r1 next`: gather compare's evidence from a run directory, plan the next round, and write it as
`next/round-N.yaml`, a config overlay (dotted keys, as `--set` takes them) with the reason for each change above
it; `parallel-r1 run --overlay` applies one on top of the config the round came from."""

from __future__ import annotations

import json
import logging
import math
import textwrap
from pathlib import Path

import yaml

from parallel_r1.compare.criteria import decision, routing_table, success_criteria
from parallel_r1.compare.report import read_results, read_routing_table
from parallel_r1.compare.stats import cell_map, compare_cells, niche_delta
from parallel_r1.config import ConfigError, PipelineConfig, read_yaml_mapping
from parallel_r1.data.io import atomic_write_text
from parallel_r1.paths import RunPaths, round_of
from parallel_r1.rounds.plan import Change, RoundEvidence, SpecialistEvidence, next_round

log = logging.getLogger(__name__)


def _length_slices(cfg: PipelineConfig) -> tuple[str, str] | None:
    """The held-out slices of only short and only long dialogues, when the config has both."""
    by = {tuple(s.lengths or ()): s.name for s in cfg.eval.slices}
    return (by[("short",)], by[("long",)]) if ("short",) in by and ("long",) in by else None


def gather_evidence(cfg: PipelineConfig) -> tuple[RoundEvidence, str]:
    """compare's evidence in a run directory (results.parquet, routing.json) and the decision's next step."""
    paths = RunPaths(cfg.workdir)
    rows = read_results(paths.require(paths.eval / "results.parquet", "compare"))
    ecfg = cfg.eval
    models = sorted({r.model for r in rows})
    cells = compare_cells(rows, models, [s.name for s in ecfg.slices], samples=ecfg.bootstrap_samples,
                          level=ecfg.ci_level)
    case, step = decision(success_criteria(rows, cells, models, ecfg))
    cm, lengths = cell_map(cells), _length_slices(cfg)
    specialists = {}
    for m in (m for m in models if m in ecfg.niches):
        delta, lo, hi, _ = niche_delta(rows, m, ecfg.niches[m], ecfg.bootstrap_samples, ecfg.ci_level)
        gap = None
        if lengths and all((m, s) in cm for s in lengths):
            gap = abs(cm[m, lengths[0]].delta - cm[m, lengths[1]].delta)
        specialists[m] = SpecialistEvidence(m, delta, (lo, hi), delta >= ecfg.improvement_threshold,
                                            None if gap is None or math.isnan(gap) else gap)
    routing = read_routing_table(paths.routing_table) or routing_table(rows, models, ecfg)
    winners = {k: e["model"] for k, e in routing.get("by_profile", {}).items() if e.get("significant")}
    return RoundEvidence(case, specialists, winners), step


def _plain(value):
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "model_dump"):  # a BatchSpec: what differs from the defaults, and its stratification
        return {**value.model_dump(mode="json", exclude_defaults=True), "stratify_by": value.stratify_by}
    return value


def _comment(text: str, indent: str = "") -> str:
    return textwrap.fill(text, 116, initial_indent="# ", subsequent_indent=f"# {indent}", break_long_words=False,
                         break_on_hyphens=False)


def render_overlay(changes: list[Change], header: str, command: str) -> str:
    """The overlay's YAML: a header comment and the command that runs it, then each change under its reason."""
    out = [_comment(header), f"#   {command}"]
    for c in changes:
        out += ["", _comment(c.reason, "  "), yaml.safe_dump({c.key: _plain(c.value)}, sort_keys=False,
                                                              width=116).rstrip()]
    return "\n".join(out) + "\n"


def write_next_round(cfg: PipelineConfig, config_path: Path | None) -> tuple[Path, str, list[Change]]:
    """Plan the round after this run directory's and write `<workdir>/next/round-N.yaml`; returns the path, the
    case and the changes."""
    evidence, step = gather_evidence(cfg)
    n = round_of(str(cfg.workdir)) + 1
    changes = next_round(cfg, evidence, n)
    path = RunPaths(cfg.workdir).workdir / "next" / f"round-{n}.yaml"
    header = (f"parallel-r1 next: round {n} after {cfg.workdir} ({evidence.case}: {step}). An overlay on "
              f"{config_path or 'the embedded defaults'}; run the round with:")
    command = f"parallel-r1 run{f' --config {config_path}' if config_path else ''} --overlay {path}"
    atomic_write_text(path, render_overlay(changes, header, command))
    log.info("next: %s, %d change(s) written to %s", evidence.case, len(changes), path)
    return path, evidence.case, changes


def overlay_sets(path: Path) -> list[str]:
    """An overlay file as `--set` overrides (`key=<JSON value>`), applied before the command line's own."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"overlay {path} not found")
    return [f"{key}={json.dumps(value)}" for key, value in read_yaml_mapping(path, "overlay").items()]
