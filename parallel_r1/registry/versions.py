"""The versioned model registry: every trained model is an immutable version (`name@vN`) with its content digest,
training config, data digest, parent version and metrics. Local weights are copied into
<workdir>/registry/store/<name>/v<N>/, so retraining a model never touches a version that is served.

The version list lives in <workdir>/registry/versions.json, rewritten atomically under a file lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import Field, ValidationError

from parallel_r1.data.io import atomic_write_json, file_digest, folder_build
from parallel_r1.data.records import Record, problem
from parallel_r1.errors import UserFacingError
from parallel_r1.paths import RunPaths

KINDS = ("adapter", "model", "openai")  # a LoRA adapter on the base, a full model folder, an OpenAI fine-tuned id
WEIGHT_PATTERNS = {"adapter": ("adapter_model.*", "adapter_config.json"), "model": ("*.safetensors", "config.json")}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class RegistryError(UserFacingError):
    """A registry file that cannot be read, or a version that does not exist."""


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    kind: str
    digest: str  # of the weights (of the model id for "openai")
    source: str  # the stored folder, or the OpenAI model id
    training: dict = field(default_factory=dict)
    data_digest: str | None = None
    parent: str | None = None  # the ref of the version it was trained from
    metrics: dict = field(default_factory=dict)
    created_at: str = field(default_factory=now)

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"


class RegistryFile(Record):
    """The shape of registry/versions.json."""

    versions: list[ModelVersion] = Field(description="Every version, oldest first.")


def weights_digest(kind: str, source: str | Path) -> str:
    """What identifies a model's weights: the digest of its weight and config files, or of its OpenAI id."""
    if kind == "openai":
        return hashlib.sha1(str(source).encode()).hexdigest()[:16]
    folder = Path(source)
    files = sorted({p for pattern in WEIGHT_PATTERNS[kind] for p in folder.glob(pattern)})
    if not files:
        raise RegistryError(f"{folder} holds no {kind} weights ({', '.join(WEIGHT_PATTERNS[kind])})")
    return file_digest(*files)


def parse_ref(ref: str) -> tuple[str, int | None]:
    """`name@vN` -> (name, N); `name` -> (name, None)."""
    name, _, version = ref.partition("@")
    if not version:
        return name, None
    if not (version.startswith("v") and version[1:].isdigit()):
        raise RegistryError(f"{ref!r} is not a version: expected NAME or NAME@vN (e.g. neurodivergent@v2)")
    return name, int(version[1:])


class ModelRegistry:
    """The registry of one run directory."""

    def __init__(self, workdir: Path | str):
        self.paths = RunPaths(Path(workdir))
        self.root = self.paths.workdir / "registry"
        self.file = self.root / "versions.json"
        self.store = self.root / "store"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        """Every version (of `name`), oldest first."""
        if not self.file.exists():
            return []
        try:
            found = RegistryFile.model_validate_json(self.file.read_bytes()).versions
        except ValidationError as e:
            raise RegistryError(f"{self.file} is not a model registry ({problem(e)}); restore it from a backup (the "
                                "stored weights under registry/store are untouched)") from None
        return [v for v in found if name is None or v.name == name]

    def get(self, ref: str) -> ModelVersion:
        """The version `name@vN`, or the latest of `name`; a one-line error naming what exists."""
        name, number = parse_ref(ref)
        mine = self.versions(name)
        if not mine:
            known = sorted({v.name for v in self.versions()})
            raise RegistryError(f"no model {name!r} in the registry ({self.file}); registered: {known or 'none'}")
        if number is None:
            return mine[-1]
        for v in mine:
            if v.version == number:
                return v
        raise RegistryError(f"{ref} does not exist; versions of {name}: {', '.join(v.ref for v in mine)}")

    def find(self, name: str, digest: str) -> ModelVersion | None:
        """The version of `name` with these weights, if registered."""
        return next((v for v in self.versions(name) if v.digest == digest), None)

    def register(self, name: str, kind: str, source: str | Path, *, training: dict | None = None,
                 data_digest: str | None = None, parent: str | None = None,
                 metrics: dict | None = None) -> ModelVersion:
        """Add a version of `name` (its weights stored immutably); the existing version when the weights are the
        same as one already registered (re-registering is idempotent)."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if not name or "@" in name or "/" in name or name.startswith("."):
            raise RegistryError(f"model name {name!r} is not usable in the registry (no '@', '/', leading '.')")
        digest = weights_digest(kind, source)
        with self._locked():
            versions = self.versions()
            same = next((v for v in versions if v.name == name and v.digest == digest), None)
            if same is not None:
                return same
            number = 1 + max((v.version for v in versions if v.name == name), default=0)
            stored = str(source)
            if kind != "openai":
                out = self.store / name / f"v{number}"
                with folder_build(out) as tmp:
                    # a copy: a hard link would follow the trainer's in-place rewrites of the source
                    shutil.copytree(source, tmp, dirs_exist_ok=True)
                stored = str(out.resolve())
            version = ModelVersion(name=name, version=number, kind=kind, digest=digest, source=stored,
                                   training=training or {}, data_digest=data_digest, parent=parent,
                                   metrics=metrics or {})
            atomic_write_json(self.file, {"versions": [asdict(v) for v in [*versions, version]]})
        return version
