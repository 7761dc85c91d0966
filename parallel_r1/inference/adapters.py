"""Named LoRA adapter folders, shared by the engines: folder checks, stable integer ids, unknown-name errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from parallel_r1.errors import UserFacingError

ADAPTER_CONFIG = "adapter_config.json"


class UnknownAdapterError(UserFacingError, KeyError):
    """A request named an adapter the engine does not hold; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class Adapter:
    name: str
    path: Path
    id: int  # stable per name within an engine, from 1 (vLLM's LoRARequest ids must be positive)
    rank: int


class AdapterRegistry:
    """The adapters of one engine. `register` validates a new one, has the engine load it, then records it;
    engines call it under their own lock."""

    def __init__(self) -> None:
        self._by_name: dict[str, Adapter] = {}
        self._ids = 0  # ids are never reused, also after an adapter is removed

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    def _check(self, name: str, path: Path | str) -> Adapter | None:
        """The adapter to load, or None when `name` already holds this folder; raises when the folder is
        not a PEFT adapter or the name is taken by another folder."""
        if not name or "." in name:
            raise ValueError(f"adapter name must be non-empty and without '.', got {name!r}")
        path = Path(path).expanduser().resolve()
        config = path / ADAPTER_CONFIG
        if not config.is_file():
            what = "does not exist" if not path.exists() else f"has no {ADAPTER_CONFIG}"
            raise FileNotFoundError(f"adapter folder {path} {what}: expected a PEFT LoRA adapter folder")
        known = self._by_name.get(name)
        if known is not None:
            if known.path == path:
                return None
            raise UserFacingError(f"adapter {name!r} is already registered from {known.path}: "
                                  "give a new adapter version a new name")
        return Adapter(name=name, path=path, id=self._ids + 1, rank=int(json.loads(config.read_text()).get("r", 0)))

    def register(self, name: str, path: Path | str, load: Callable[[Adapter], None]) -> None:
        """Validate, `load` into the engine and record the adapter; a no-op when `name` already holds `path`."""
        adapter = self._check(name, path)
        if adapter is not None:
            load(adapter)
            self._by_name[name] = adapter
            self._ids = adapter.id

    def remove(self, name: str) -> None:
        self.get(name)
        del self._by_name[name]

    def get(self, name: str) -> Adapter:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownAdapterError(f"unknown adapter {name!r}; known adapters: {self.names or 'none'}") from None
