"""What the app serves, read from the run directory: the promoted version of each model (the registry's promotion
record) and the routing table. Router replicas re-read it when those files change, so a promotion, a rollback or new
routes are served without a restart; a record that cannot be read keeps the previous set in service."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from parallel_r1.paths import RunPaths
from parallel_r1.registry.promotion import PromotionRecord
from parallel_r1.registry.versions import ModelVersion
from parallel_r1.serve.routing import read_routing_table

SERVABLE_KINDS = ("adapter",)  # the router's backends serve LoRA adapters on the base model


@dataclass(frozen=True)
class ServedSet:
    """The promoted adapter versions by model name, the promoted versions that cannot be served (name -> why),
    the routing table (None: static routes) and the files' stamp it was read at."""

    models: dict[str, ModelVersion]
    unservable: dict[str, str] = field(default_factory=dict)
    routing_table: dict | None = None
    stamp: tuple = ()

    def target(self, name: str) -> tuple[str, str | None]:
        """(backend model id, adapter folder) of a served name: the version's ref, or the base model."""
        version = self.models.get(name)
        return (version.ref, version.source) if version else (name, None)


def files_stamp(workdir: Path | str) -> tuple:
    """Changes whenever the promotion record, the registry or the routing table is rewritten."""
    paths = RunPaths(Path(workdir))
    files = (paths.promotion, paths.workdir / "registry" / "versions.json", paths.routing_table)
    return tuple((st.st_mtime_ns, st.st_size) if (st := _stat(f)) else None for f in files)


def _stat(path: Path):
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def read_served(workdir: Path | str) -> ServedSet:
    """The served set of a run directory (a corrupt record or a missing stored version is a one-line error)."""
    stamp = files_stamp(workdir)
    models, unservable = {}, {}
    for name, version in PromotionRecord(workdir).served().items():
        if version.kind not in SERVABLE_KINDS:
            unservable[name] = f"{version.ref} is a {version.kind} model: the router serves adapters only"
        elif not Path(version.source).is_dir():
            unservable[name] = f"{version.ref}: its stored folder {version.source} is missing"
        else:
            models[name] = version
    return ServedSet(models, unservable, read_routing_table(RunPaths(Path(workdir)).routing_table), stamp)
